"""One `providers.<name>` config section, checked strictly when the server starts.

Every provider takes the keys of ProviderSettings (COMMON_SETTINGS says what each means);
a provider declares its own further keys as `Setting`s (`OAuthProvider.extra_settings`),
which land in `ProviderSettings.options`."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# RFC 3986 characters a URL may hold as written (unreserved, reserved, "%"); anything else
# (a backslash, a space or tab, a control or non-ASCII character) is read differently by
# different browsers, e.g. `/\evil.example` goes to another host.
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_OPTIONAL = ("redirect_uri", "frontend_redirect")


@dataclass(frozen=True)
class Setting:
    """One key a provider declares: its type (str, bool, int, or dict of str to str), default
    and help text; `choices` fixes the values a str may take."""

    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()

    def check(self, path: str, value: Any) -> Any:
        if self.type is bool and isinstance(value, bool):
            return value
        if self.type is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if self.type is str and isinstance(value, str):
            value = value.strip()
            if self.choices and value not in self.choices:
                raise ValueError(f"{path}: expected one of {', '.join(self.choices)}")
            return value
        if self.type is dict and isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str) or not isinstance(item, str):
                    raise ValueError(f"{path}: expected a mapping of strings to strings")
            return {key.strip(): item.strip() for key, item in value.items()}
        raise ValueError(f"{path}: expected {self.type.__name__}, got {type(value).__name__}")


# What every provider's section takes (the ProviderSettings fields), for --check-config.
COMMON_SETTINGS: dict[str, str] = {
    "client_id": "the application's id at the provider; empty: the routes answer 503",
    "client_secret": "the application's secret (not for public clients)",
    "redirect_uri": "the callback registered at the provider; null: {public_url}/<prefix>/callback",
    "frontend_redirect": "set: the callback sends the browser here with code and state",
    "scope": "space-separated scopes asked for",
    "authorize_url": "the provider's authorization endpoint",
    "token_url": "the provider's token endpoint",
    "userinfo_url": "the provider's user-info endpoint",
}


@dataclass(frozen=True)
class ProviderSettings:
    """One `providers.<name>` config section; every provider accepts exactly these keys."""

    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    redirect_uri: str | None = None  # None: {public_url}/{prefix}/callback
    frontend_redirect: str | None = None
    scope: str = ""
    authorize_url: str = ""
    token_url: str = ""
    userinfo_url: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)  # the provider's own keys


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
    extra = extra or {}
    section = dict(section or {})
    options = {key: setting.default for key, setting in extra.items()}
    for key in list(section):
        if key in extra:
            options[key] = extra[key].check(f"providers.{name}.{key}", section.pop(key))
    values: dict[str, Any] = dict(defaults)
    if endpoints is not None:
        values.update(endpoints(options))
    fields = {f.name for f in dataclasses.fields(ProviderSettings)} - {"options"}
    for key, value in section.items():
        path = f"providers.{name}.{key}"
        if key not in fields:
            raise ValueError(f"{path}: unknown key")
        optional = key in _OPTIONAL
        if value is None and optional:
            values[key] = None
            continue
        if not isinstance(value, str):
            kind = "str or null" if optional else "str"
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            hint = " (quote numeric ids in YAML)" if numeric else ""
            raise ValueError(f"{path}: expected {kind}, got {type(value).__name__}{hint}")
        values[key] = (value.strip() or None) if optional else value.strip()
    for key in ("authorize_url", "token_url", "userinfo_url"):
        check_endpoint(f"providers.{name}.{key}", values[key])
    if values.get("redirect_uri"):
        check_absolute_url(f"providers.{name}.redirect_uri", values["redirect_uri"])
    if values.get("frontend_redirect"):
        check_frontend_redirect(f"providers.{name}.frontend_redirect", values["frontend_redirect"])
    return ProviderSettings(**values, options=options)


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
