"""Settings: `config.yaml` merged over defaults, then `VHOD_<PATH>__<KEY>` environment overrides.

An unknown key, a wrong type or an unsafe value stops startup with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_plus

import yaml

from core.identifiers import is_valid_region
from core.tokens import ALLOWED_ALGORITHMS, MIN_SECRET_BYTES

ENV_PREFIX = "VHOD_"
SECRET_KEYS = frozenset({"secret", "client_secret", "pseudonym_key"})
# MongoDB URL options whose values are secrets (a key file's password, AWS session tokens).
_SECRET_OPTION = re.compile(
    r"([?&;](?:tlsCertificateKeyFilePassword|authMechanismProperties|password)=)([^&;]*)",
    re.IGNORECASE,
)


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8888
    public_url: str | None = None  # None: http://{host}:{port}
    data_dir: str = "data"
    max_body_bytes: int = 65536
    body_timeout: float = 30.0  # seconds a request body may take to arrive
    trusted_proxies: list[str] = field(default_factory=list)
    cors_origins: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StorageConfig:
    url: str = "sqlite:///data/vhod.db"


@dataclass(frozen=True)
class JwtConfig:
    secret: str | None = None
    algorithm: str = "HS256"
    issuer: str = "vhod"
    access_ttl: int = 900
    refresh_ttl: int = 2_592_000
    rotate_refresh: bool = False


@dataclass(frozen=True)
class PasswordsConfig:
    bcrypt_rounds: int = 12
    min_length: int = 8


@dataclass(frozen=True)
class IdentifiersConfig:
    default_region: str = "RU"


@dataclass(frozen=True)
class LimitsConfig:
    login_failures: int = 10
    login_window: int = 900
    per_ip_per_minute: int = 30
    ipv6_prefix: int = 64  # IPv6 clients count per network of this many bits
    hash_workers: int | None = None
    hash_queue: int = 64
    provider_connect_timeout: float = 5.0
    provider_timeout: float = 10.0


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "text"
    pseudonym_key: str | None = None  # None: derived from jwt.secret, else made in data_dir


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True


@dataclass(frozen=True)
class SocialConfig:
    # true: get/token refuses a code without its state unless the browser that started the
    # flow was checked at the callback (OA7); false keeps the seed's code-only clients.
    require_binding: bool = False


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
    # Per-provider sections; their keys are checked against each provider's settings once
    # the provider registry is known (providers.registry.build_providers).
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def public_url(self) -> str:
        url = self.server.public_url or f"http://{self.server.host}:{self.server.port}"
        return url.rstrip("/")


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    required: bool = False,
) -> Config:
    """Read `path`, apply environment then explicit overrides, validate.

    A missing file is an error only when `required` (the operator named it)."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if file.exists():
            try:
                loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
            if loaded is not None and not isinstance(loaded, dict):
                raise ConfigError(f"{file}: the top level must be a mapping")
            raw = loaded or {}
        elif required:
            raise ConfigError(f"{file}: no such configuration file")
    for name, value in sorted(environ.items()):
        if name.startswith(ENV_PREFIX) and "__" in name:
            keys = name[len(ENV_PREFIX) :].lower().split("__")
            _set_path(raw, keys, _EnvValue(value), name)
    for dotted, value in (overrides or {}).items():
        _set_path(raw, dotted.split("."), value, dotted)
    config = _build(Config, raw, "")
    _check(config)
    return config


class _EnvValue(str):
    """A string from the environment: parsed as YAML where the key wants another type."""


def _set_path(raw: dict[str, Any], keys: list[str], value: Any, source: str) -> None:
    node = raw
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: {key} is not a section")
        node = child
    node[keys[-1]] = value


def _build(cls: type, raw: Any, path: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or 'config'}: must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"{path}{key}: unknown key")
    values: dict[str, Any] = {}
    for name in names:
        if name not in raw:
            continue
        key_path = f"{path}{name}"
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, raw[name], key_path + ".")
        elif name == "providers" and cls is Config:
            values[name] = _providers(raw[name], key_path)
        else:
            values[name] = _coerce(raw[name], hint, key_path)
    return cls(**values)


def _providers(raw: Any, path: str) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping of provider sections")
    sections: dict[str, dict[str, Any]] = {}
    for name, section in raw.items():
        section = section or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{path}.{name}: must be a mapping")
        sections[str(name)] = {
            key: (str(value) if isinstance(value, _EnvValue) else value)
            for key, value in section.items()
        }
    return sections


def _coerce(value: Any, hint: Any, path: str) -> Any:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if isinstance(value, _EnvValue):
        if str in allowed and value.lower() not in ("null", "~"):
            return str(value)
        try:
            value = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: cannot parse {value!r}") from exc
        if value is not None and list[str] in allowed and not isinstance(value, list):
            value = [item.strip() for item in str(value).split(",") if item.strip()]
    for kind in allowed:
        if kind is type(None) and value is None:
            return None
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
        if kind == list[str] and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
    names = " or ".join(_type_name(kind) for kind in allowed)
    raise ConfigError(f"{path}: expected {names}, got {type(value).__name__}")


def _type_name(kind: Any) -> str:
    if kind is type(None):
        return "null"
    if kind == list[str]:
        return "a list of strings"
    return getattr(kind, "__name__", str(kind))


def _check(config: Config) -> None:
    def positive(path: str, value: float) -> None:
        if value <= 0:
            raise ConfigError(f"{path}: must be greater than 0")

    if config.jwt.secret is not None and len(config.jwt.secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"jwt.secret: must be at least {MIN_SECRET_BYTES} bytes "
            "(or null, to have one generated and kept in server.data_dir)"
        )
    key = config.logging.pseudonym_key
    if key is not None and len(key.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"logging.pseudonym_key: must be at least {MIN_SECRET_BYTES} bytes "
            "(or null, to derive one from jwt.secret or keep one in server.data_dir)"
        )
    if config.jwt.algorithm not in ALLOWED_ALGORITHMS:
        raise ConfigError(f"jwt.algorithm: must be one of {', '.join(ALLOWED_ALGORITHMS)}")
    if not 4 <= config.passwords.bcrypt_rounds <= 31:
        raise ConfigError("passwords.bcrypt_rounds: must be between 4 and 31 (12 recommended)")
    if not 1 <= config.server.port <= 65535:
        raise ConfigError("server.port: must be between 1 and 65535")
    if not is_valid_region(config.identifiers.default_region):
        raise ConfigError("identifiers.default_region: not a known region code such as RU")
    if config.logging.format not in ("text", "json"):
        raise ConfigError("logging.format: must be text or json")
    if config.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("logging.level: must be debug, info, warning, error or critical")
    for path, value in (
        ("jwt.access_ttl", config.jwt.access_ttl),
        ("jwt.refresh_ttl", config.jwt.refresh_ttl),
        ("passwords.min_length", config.passwords.min_length),
        ("server.max_body_bytes", config.server.max_body_bytes),
        ("server.body_timeout", config.server.body_timeout),
        ("limits.login_failures", config.limits.login_failures),
        ("limits.login_window", config.limits.login_window),
        ("limits.per_ip_per_minute", config.limits.per_ip_per_minute),
        ("limits.provider_connect_timeout", config.limits.provider_connect_timeout),
        ("limits.provider_timeout", config.limits.provider_timeout),
    ):
        positive(path, value)
    if not 1 <= config.limits.ipv6_prefix <= 128:
        raise ConfigError("limits.ipv6_prefix: must be between 1 and 128 (64 recommended)")
    if config.limits.hash_workers is not None:
        positive("limits.hash_workers", config.limits.hash_workers)
    if config.limits.hash_queue < 0:
        raise ConfigError("limits.hash_queue: must be 0 or more")
    if not config.storage.url.startswith(("sqlite:///", "mongodb://", "mongodb+srv://")):
        raise ConfigError("storage.url: must start with sqlite:///, mongodb:// or mongodb+srv://")


def masked(config: Config) -> dict[str, Any]:
    """The effective configuration with secrets and URL credentials masked, for printing."""

    def walk(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k) for k, v in node.items()}
        if key in SECRET_KEYS and node:
            return "***"
        if (key == "url" or key.endswith("_url")) and isinstance(node, str):
            return redact_url(node)
        return node

    return walk(dataclasses.asdict(config))


def redact_url(url: str) -> str:
    """A URL without its password or secret options, for logs and --check-config.

    A password may hold an unescaped "/", "@", "?" or "#": everything up to the last "@" is
    taken as the credentials, so no part of one can show. A "@" later in the URL (an option
    value) costs only the host part of the output, never the secrecy of the password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() == "sqlite":
        return url
    if "@" in rest:
        credentials, _, rest = rest.rpartition("@")
        user, colon, _ = credentials.partition(":")
        rest = f"{user}:***@{rest}" if colon else f"{credentials}@{rest}"
    return f"{scheme}://" + _SECRET_OPTION.sub(r"\1***", rest)


def redact_text(text: str, url: str) -> str:
    """`text` (a driver's error message, say) without `url`'s password in any spelling."""
    text = text.replace(url, redact_url(url))
    for secret in _url_secrets(url):
        text = text.replace(secret, "***")
    return text


def _url_secrets(url: str) -> list[str]:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() == "sqlite":
        return []
    found = []
    if "@" in rest:
        password = rest.rpartition("@")[0].partition(":")[2]
        found.append(password)
    found += [match.group(2) for match in _SECRET_OPTION.finditer(rest)]
    found = [secret for secret in found if secret]
    found += [unquote(secret) for secret in found] + [unquote_plus(secret) for secret in found]
    # The longest first, so that a shorter spelling never leaves part of a longer one.
    return sorted({secret for secret in found if secret}, key=len, reverse=True)
