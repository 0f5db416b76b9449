"""One `providers.<name>` config section, checked strictly when the server starts.

Every provider takes the keys of ProviderSettings, declared in the settings table like the
core sections (core.config.settings); a provider declares its own further keys as `Setting`s of
the same kind (`OAuthProvider.extra_settings`), which land in `ProviderSettings.options`."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from core.config.settings import Setting, kinds_of, setting, settings_of, table

__all__ = ["ProviderSettings", "Setting", "common_settings", "load_settings"]

# RFC 3986 characters a URL may hold as written (unreserved, reserved, "%"); anything else
# (a backslash, a space or tab, a control or non-ASCII character) is read differently by
# different browsers, e.g. `/\evil.example` goes to another host.
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


@dataclass(frozen=True)
class ProviderSettings:
    """One `providers.<name>` config section; every provider accepts these keys, and the
    provider's own (`OAuthProvider.extra_settings`) land in `options`. The defaults here
    are for any provider; a provider's class gives its own scope and URLs."""

    client_id: str = setting(
        "", "the application's id at the provider; empty: the routes answer 503"
    )
    client_secret: str = setting(
        "", "the application's secret (not for public clients)", secret=True
    )
    redirect_uri: str | None = setting(
        None, "the callback registered at the provider; null: {public_url}/<prefix>/callback"
    )
    frontend_redirect: str | None = setting(
        None, "set: the callback sends the browser here with code and state"
    )
    scope: str = setting("", "space-separated scopes asked for")
    authorize_url: str = setting("", "the provider's authorization endpoint")
    token_url: str = setting("", "the provider's token endpoint")
    userinfo_url: str = setting("", "the provider's user-info endpoint")
    options: Mapping[str, Any] = field(default_factory=dict)  # the provider's own keys


def common_settings() -> list[Setting]:
    """What every provider's section takes (the ProviderSettings fields), with their help."""
    return settings_of(ProviderSettings, "providers.<name>.")


def load_settings(
    name: str,
    defaults: Mapping[str, str],
    section: Mapping[str, Any] | None,
    *,
    extra: Mapping[str, Setting] | None = None,
    endpoints: Callable[[Mapping[str, Any]], Mapping[str, str]] | None = None,
) -> ProviderSettings:
    """Settings of provider `name` from its section over `defaults`.

    `extra` are the provider's own keys; `endpoints` gives the default URLs for its
    options (a configured host). Raises ValueError naming the key
    (`providers.vk.client_idd: unknown key`) for an unknown key, a wrong type or an
    unusable URL."""
    prefix = f"providers.{name}."
    own = {
        key: (key, dataclasses.replace(spec, name=prefix + key))
        for key, spec in (extra or {}).items()
    }
    common = table(ProviderSettings, prefix)
    section = {key: _stripped(value) for key, value in (section or {}).items()}
    for key in section:
        if key not in own and key not in common:
            raise ValueError(f"{prefix}{key}: unknown key")
    options = {key: _parsed(spec, section, key) for key, (_attr, spec) in own.items()}
    values: dict[str, Any] = dict(defaults)
    if endpoints is not None:
        values.update(endpoints(options))
    for key, (_attr, spec) in common.items():
        if key in section:
            values[key] = _parsed(spec, section, key)
    _check_urls(prefix, values)
    return ProviderSettings(**values, options=options)


def _check_urls(prefix: str, values: Mapping[str, Any]) -> None:
    """The URLs a provider section ends up with (configured or default) are usable."""
    for key in ("authorize_url", "token_url", "userinfo_url"):
        check_endpoint(f"{prefix}{key}", values[key])
    if values.get("redirect_uri"):
        check_absolute_url(f"{prefix}redirect_uri", values["redirect_uri"])
    if values.get("frontend_redirect"):
        check_frontend_redirect(f"{prefix}frontend_redirect", values["frontend_redirect"])


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _parsed(spec: Setting, section: Mapping[str, Any], key: str) -> Any:
    if key not in section:
        return spec.default
    value = section[key]
    if value == "" and kinds_of(spec.type)[-1] is type(None):
        return None  # a blank optional key is unset
    try:
        return spec.parse(value)
    except ValueError as exc:
        raise ValueError(f"{spec.name}: {exc}") from exc


def check_absolute_url(path: str, url: str) -> None:
    if not _URL_CHARACTERS.fullmatch(url):
        raise ValueError(f"{path}: holds characters a URL cannot hold (space, \\, non-ASCII)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise ValueError(f"{path}: expected an absolute http(s) URL without a fragment")
    if "@" in parts.netloc:
        raise ValueError(f"{path}: a URL with user information is refused")


def check_frontend_redirect(path: str, url: str) -> None:
    """An absolute http(s) URL, or a path on this host: `/signed-in`, never `//host`,
    `/\\host` or `/\\t/host`, which browsers send to another host."""
    if not url.startswith("/"):
        check_absolute_url(path, url)
        return
    if not _URL_CHARACTERS.fullmatch(url) or url.startswith("//") or "#" in url:
        raise ValueError(
            f"{path}: a relative front end must be a plain path such as /signed-in "
            "(no //, \\, spaces, control characters or fragment)"
        )


def check_endpoint(path: str, url: str) -> None:
    """Provider endpoints get our secret and tokens: https, except on this machine (tests)."""
    if not url:
        raise ValueError(f"{path}: a URL is required")
    check_absolute_url(path, url)
    parts = urlsplit(url)
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        raise ValueError(f"{path}: must be https (plain http only to a loopback address)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
