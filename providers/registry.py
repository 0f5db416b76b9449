"""Which providers exist: the built-ins plus entry points of the group `vhod.providers`."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import replace
from importlib import metadata
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from core.config.settings import Setting, type_name
from providers.base import CLIENT_AUTH_METHODS, TOKEN_CHECKS, OAuthProvider
from providers.mailru import MailRuProvider
from providers.oidc import GENERIC_SETTINGS, TYPES, provider_class
from providers.presets import PRESET_PROVIDERS, PRESETS, preset_class
from providers.settings import common_settings
from providers.vk import OKProvider, VKProvider
from providers.yandex import YandexProvider

ENTRY_POINT_GROUP = "vhod.providers"
BUILTIN_PROVIDERS: dict[str, type[OAuthProvider]] = {
    "vk": VKProvider,
    "mailru": MailRuProvider,
    "yandex": YandexProvider,
    "ok": OKProvider,
    **PRESET_PROVIDERS,  # telegram, tid, sber: the generic provider with their defaults
}
# First path segments the server itself answers; a provider prefix there would shadow them.
RESERVED_PREFIXES = frozenset({"authorization", "validate", "healthz", "readyz", "metrics"})
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PREFIX = re.compile(r"[a-z0-9]+(?:[.\-][a-z0-9]+)*")


class ProviderRegistryError(Exception):
    """A provider cannot be registered: broken plugin, bad declaration or a clash."""


def discover_providers() -> dict[str, type[OAuthProvider]]:
    """Built-ins merged with installed plugins, by name. Plugins are loaded here, once."""
    found: dict[str, type[OAuthProvider]] = {}
    sources: dict[str, str] = {}
    for cls in BUILTIN_PROVIDERS.values():
        _register(found, sources, cls, f"built-in {cls.__module__}.{cls.__qualname__}")
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point {entry.name} = {entry.value}"
        if entry.dist is not None:
            source += f" (package {entry.dist.name})"
        try:
            cls = entry.load()
        except Exception as exc:  # a plugin may fail in any way; say which one
            raise ProviderRegistryError(f"{source}: cannot be loaded: {exc!r}") from exc
        if not (inspect.isclass(cls) and issubclass(cls, OAuthProvider)):
            raise ProviderRegistryError(
                f"{source}: {cls!r} is not a subclass of providers.base.OAuthProvider"
            )
        if entry.name != getattr(cls, "name", None):
            raise ProviderRegistryError(
                f"{source}: the entry point name must equal the class's name "
                f"{getattr(cls, 'name', None)!r}"
            )
        _register(found, sources, cls, source)
    return found


def _register(
    found: dict[str, type[OAuthProvider]],
    sources: dict[str, str],
    cls: type[OAuthProvider],
    source: str,
) -> None:
    problem = _declaration_problem(cls)
    if problem:
        raise ProviderRegistryError(f"{source}: {problem}")
    if cls.name in found:
        raise ProviderRegistryError(
            f"provider name {cls.name!r} is declared twice: by {sources[cls.name]} and by {source}"
        )
    for name, other in found.items():
        if other.prefix == cls.prefix:
            raise ProviderRegistryError(
                f"URL prefix /{cls.prefix}/ is declared twice: by {sources[name]} "
                f"(provider {name!r}) and by {source} (provider {cls.name!r})"
            )
    found[cls.name] = cls
    sources[cls.name] = source


def _declaration_problem(cls: type[OAuthProvider]) -> str | None:
    name, prefix = getattr(cls, "name", None), getattr(cls, "prefix", None)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return f"name {name!r} must be lower-case letters, digits and _"
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        return f"prefix {prefix!r} must be lower-case letters and digits joined by . or -"
    if prefix in RESERVED_PREFIXES:
        return f"prefix {prefix!r} is a route of the server itself"
    if not isinstance(getattr(cls, "title", None), str) or not cls.title:
        return "title must be a non-empty string"
    if cls.client_auth not in CLIENT_AUTH_METHODS:
        return f"client_auth {cls.client_auth!r} must be one of {', '.join(CLIENT_AUTH_METHODS)}"
    if cls.token_check not in TOKEN_CHECKS:
        return f"token_check {cls.token_check!r} must be one of {', '.join(TOKEN_CHECKS)}"
    for attribute in ("callback_params", "forwarded_params"):
        value = getattr(cls, attribute)
        if not isinstance(value, tuple) or not all(isinstance(p, str) for p in value):
            return f"{attribute} must be a tuple of strings"
    if inspect.isabstract(cls):
        return "to_profile is not implemented"
    return None


def build_providers(
    classes: Mapping[str, type[OAuthProvider]],
    sections: Mapping[str, Mapping[str, Any] | None] | None,
    *,
    public_url: str,
    http_client: AsyncHTTPClient | None = None,
    connect_timeout: float = 5,
    request_timeout: float = 10,
) -> dict[str, OAuthProvider]:
    """One instance per known provider, configured from its `providers.<name>` section.

    A provider without a section is still built (unconfigured: its routes answer 503).
    Raises ValueError naming `providers.<name>` for a section of an unknown provider, and
    naming the key for a bad value."""
    sections = sections or {}
    classes = with_generic(classes, sections)
    for name in sections:
        if name not in classes:
            raise ValueError(
                f"providers.{name}: unknown provider (installed: {', '.join(classes)}; "
                f"or give the section a type: {' or '.join(TYPES)}, or a preset: "
                f"{', '.join(PRESETS)})"
            )
    return {
        name: cls(
            cls.load_settings(sections.get(name)),
            public_url=public_url,
            http_client=http_client,
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
        )
        for name, cls in classes.items()
    }


def with_generic(
    classes: Mapping[str, type[OAuthProvider]], sections: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, type[OAuthProvider]]:
    """`classes` plus one generic provider per `type: oidc|oauth2` section, each checked
    like any plugin (name, prefix, clashes)."""
    found: dict[str, type[OAuthProvider]] = {}
    sources: dict[str, str] = {}
    for cls in classes.values():
        _register(found, sources, cls, f"{cls.__module__}.{cls.__qualname__}")
    for name, section in sections.items():
        kind, preset = (section or {}).get("type"), (section or {}).get("preset")
        if name in classes or (kind is None and preset is None):
            continue
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"providers.{name}.preset: expected one of {', '.join(PRESETS)}")
        if preset is None and kind not in TYPES:
            raise ValueError(f"providers.{name}.type: expected one of {', '.join(TYPES)}")
        if not _NAME.fullmatch(name):
            raise ValueError(f"providers.{name}: a name must be lower-case letters, digits, _")
        try:
            cls = (
                preset_class(PRESETS[preset], name, section)
                if preset is not None
                else provider_class(name, section or {})
            )
            _register(found, sources, cls, f"providers.{name}")
        except ProviderRegistryError as exc:
            raise ValueError(str(exc)) from exc
    return found


def by_prefix(providers: Mapping[str, OAuthProvider]) -> dict[str, OAuthProvider]:
    """The same providers keyed by URL prefix (`mail.ru` → the mailru provider)."""
    return {provider.prefix: provider for provider in providers.values()}


def settings_help(classes: Mapping[str, type[OAuthProvider]]) -> list[str]:
    """Every key each installed provider takes, with type, default and help: what
    `--check-config` lists (as YAML comments after the effective configuration)."""
    lines = ["# Provider keys (providers.<name>.<key>); every provider takes:"]
    lines += [f"#   {spec.key}: {spec.help}" for spec in common_settings()]
    own = {name: cls.extra_settings for name, cls in classes.items() if cls.extra_settings}
    own["<any name> with type: oidc|oauth2"] = GENERIC_SETTINGS
    for name, settings in own.items():
        lines.append(f"# providers.{name} also takes:")
        for key, setting in settings.items():
            kind = "|".join(c or '""' for c in setting.choices) or type_name(setting.type)
            lines.append(f"#   {key} ({kind}, default {setting.default!r}): {setting.help}")
    return lines


def secret_keys(classes: Mapping[str, type[OAuthProvider]]) -> set[str]:
    """The keys of provider sections that hold secrets, for --check-config's masking."""
    keys = {spec.key for spec in common_settings() if spec.secret}
    for own in [GENERIC_SETTINGS, *(cls.extra_settings for cls in classes.values())]:
        keys.update(key for key, spec in own.items() if spec.secret)
    return keys


def documented_sections(
    classes: Mapping[str, type[OAuthProvider]],
) -> list[tuple[str, str, list[Setting]]]:
    """Each provider's section as the settings table has it: (name, what it is, settings
    with this provider's defaults), for config.yaml and docs/configuration.md. A default
    that follows another setting (VK ID's URLs follow `host`) is left out: written in the
    file, it would no longer follow."""
    sections = []
    for name, cls in classes.items():
        own = {
            key: replace(spec, name=f"providers.{name}.{key}")
            for key, spec in cls.extra_settings.items()
        }
        derived = _derived_keys(cls, own)
        defaults = {
            "scope": cls.default_scope,
            "authorize_url": cls.default_authorize_url,
            "token_url": cls.default_token_url,
            "userinfo_url": cls.default_userinfo_url,
        }
        common = [
            replace(
                spec,
                name=f"providers.{name}.{spec.key}",
                default=defaults.get(spec.key, spec.default),
                help=cls.setting_notes.get(spec.key, spec.help).replace("<prefix>", cls.prefix),
            )
            for spec in common_settings()
            if spec.key not in derived
        ]
        about = f"{cls.title}, URL prefix /{cls.prefix}/"
        if derived:
            about += f"; {', '.join(derived)} follow {', '.join(own)}"
        sections.append((name, about, [*own.values(), *common]))
    return sections


def _derived_keys(cls: type[OAuthProvider], own: Mapping[str, Setting]) -> list[str]:
    """The common keys whose defaults follow the provider's own settings, for any choice."""
    options = {key: spec.default for key, spec in own.items()}
    derived = dict.fromkeys(cls.defaults_for(options))
    for key, spec in own.items():
        for choice in spec.choices:
            try:
                derived.update(dict.fromkeys(cls.defaults_for({**options, key: choice})))
            except ValueError:
                continue  # a choice the provider refuses with its other defaults
    return list(derived)
