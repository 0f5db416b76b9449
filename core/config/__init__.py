"""Settings: `config.yaml` merged over defaults, then `VHOD_<PATH>__<KEY>` environment overrides.

The settings are declared once, in the table (core.config.settings: the sections of
core.config.config_sections, core.config.lifecycle_settings and core.config.admin_config);
this module reads a file and the environment into it. Every unknown key, wrong type or unsafe
value is one line of the ConfigError, naming the setting (and the variable it came from).
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.config import admin_config, config_sections, lifecycle_settings
from core.config.admin_config import AdminConfig, AuditConfig
from core.config.config_sections import (
    IdentifiersConfig,
    JwtConfig,
    LimitsConfig,
    LoggingConfig,
    MetricsConfig,
    PasswordsConfig,
    ServerConfig,
    SocialConfig,
    StorageConfig,
    WebauthnConfig,
)
from core.config.lifecycle_settings import AccountsConfig, CaptchaConfig, EmailConfig, SmsConfig
from core.config.settings import ENV_PREFIX, ConfigError, EnvValue, Setting, build_section, named
from core.config.settings import settings_of as settings_of
from core.domain.relying_party import relying_party
from core.infra.redact import redact_url

__all__ = ["ENV_PREFIX", "SECTIONS", "Config", "ConfigError", "load_config", "masked"]

# Keys of entries inside a setting (sms.channels' channel specs; providers.<name> besides
# the providers' own secret settings) that hold secrets.
NESTED_SECRET_KEYS = frozenset(
    {"client_secret", "token", "api_id", "password", "apikey", "secret", "server_key"}
)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    jwt: JwtConfig = field(default_factory=JwtConfig)
    passwords: PasswordsConfig = field(default_factory=PasswordsConfig)
    identifiers: IdentifiersConfig = field(default_factory=IdentifiersConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    social: SocialConfig = field(default_factory=SocialConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)
    captcha: CaptchaConfig = field(default_factory=CaptchaConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    webauthn: WebauthnConfig = field(default_factory=WebauthnConfig)
    # Per-provider sections; their keys are checked against each provider's settings once
    # the provider registry is known (providers.registry.build_providers).
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Setting path -> the environment variable it came from, for error messages.
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def public_url(self) -> str:
        url = self.server.public_url or f"http://{self.server.host}:{self.server.port}"
        return url.rstrip("/")

    def problem(self, message: str) -> str:
        """`message` ("path: …") naming the environment variable the setting came from."""
        return named(message, self.sources)


# The core sections in file order: the table's top level.
SECTIONS: dict[str, type] = {
    name: hint
    for name, hint in typing.get_type_hints(Config).items()
    if isinstance(hint, type) and dataclasses.is_dataclass(hint)
}


def passkey_relying_party(config: Config) -> str | None:
    """webauthn.rp_id (or server.public_url's host) is a domain that covers every one of
    webauthn.origins (or server.public_url's origin)."""
    try:
        relying_party(config.webauthn, config.public_url)
    except ValueError as exc:
        return str(exc)
    return None


RULES: tuple[Callable[[Config], str | None], ...] = (
    *config_sections.RULES,
    *lifecycle_settings.RULES,
    *admin_config.RULES,
    passkey_relying_party,
)


def core_settings() -> list[Setting]:
    """Every core setting of the table, in file order."""
    return [spec for name, cls in SECTIONS.items() for spec in settings_of(cls, name + ".")]


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    required: bool = False,
) -> Config:
    """Read `path`, apply environment then explicit overrides, validate.

    A missing file is an error only when `required` (the operator named it)."""
    raw = _read(path, required)
    sources: dict[str, str] = {}
    environ = os.environ if environ is None else environ
    for name, value in sorted(environ.items()):
        if name.startswith(ENV_PREFIX) and "__" in name:
            keys = name[len(ENV_PREFIX) :].lower().split("__")
            _set_path(raw, keys, EnvValue(value), name)
            sources[".".join(keys)] = name
    for dotted, value in (overrides or {}).items():
        _set_path(raw, dotted.split("."), value, dotted)
    problems = [
        named(f"{key}: unknown key", sources)
        for key in raw
        if key not in SECTIONS and key != "providers"
    ]
    sections = {
        name: build_section(cls, raw.get(name), name + ".", problems, sources)
        for name, cls in SECTIONS.items()
    }
    config = Config(
        **sections, providers=_providers(raw.get("providers"), problems), sources=sources
    )
    if not problems:  # the rules across settings need every one of them well typed
        problems = [config.problem(problem) for rule in RULES if (problem := rule(config))]
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def _read(path: str | os.PathLike[str] | None, required: bool) -> dict[str, Any]:
    if path is None:
        return {}
    file = Path(path)
    if not file.exists():
        if required:
            raise ConfigError(f"{file}: no such configuration file")
        return {}
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{file}: the top level must be a mapping")
    return loaded or {}


def _set_path(raw: dict[str, Any], keys: list[str], value: Any, source: str) -> None:
    node = raw
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: {key} is not a section")
        node = child
    node[keys[-1]] = value


def _providers(raw: Any, problems: list[str]) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("providers: must be a mapping of provider sections")
        return {}
    sections: dict[str, dict[str, Any]] = {}
    for name, section in raw.items():
        section = section or {}
        if not isinstance(section, dict):
            problems.append(f"providers.{name}: must be a mapping")
            continue
        sections[str(name)] = {
            key: (str(value) if isinstance(value, EnvValue) else value)
            for key, value in section.items()
        }
    return sections


def masked(config: Config, provider_secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The effective configuration with secrets and URL credentials masked, for printing:
    the table's secret settings, and the keys `provider_secrets` in provider sections."""
    secret = {spec.name for spec in core_settings() if spec.secret}
    nested = NESTED_SECRET_KEYS | set(provider_secrets)

    def walk(node: Any, path: str, key: str) -> Any:
        if isinstance(node, dict):
            return {
                k.removesuffix("_"): walk(v, f"{path}.{k.removesuffix('_')}", k)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(item, path, "") for item in node]
        if node and (path.lstrip(".") in secret or key in nested):
            return "***"
        if (key == "url" or key.endswith("_url")) and isinstance(node, str):
            return redact_url(node)
        return node

    shown = {
        item.name: dataclasses.asdict(getattr(config, item.name))
        if item.name in SECTIONS
        else getattr(config, item.name)
        for item in dataclasses.fields(config)
        if item.name != "sources"
    }
    result: dict[str, Any] = walk(shown, "", "")
    return result
