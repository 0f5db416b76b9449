"""Settings: `config.yaml` merged over defaults, then `VHOD_<PATH>__<KEY>` environment overrides.

An unknown key, a wrong type or an unsafe value stops startup with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.admin_config import AdminConfig, AuditConfig, admin_config_problem, string_mapping
from core.config_sections import (
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
from core.identifiers import is_valid_region
from core.kek import MIN_KEK_BYTES
from core.keys import ALLOWED_ALGORITHMS, ASYMMETRIC_ALGORITHMS, MIN_ROTATION_LEAD
from core.lifecycle_settings import (
    AccountsConfig,
    CaptchaConfig,
    EmailConfig,
    SmsConfig,
    check_captcha,
    check_lifecycle,
)
from core.net import normal_origin
from core.passwords import ALGORITHMS as PASSWORD_ALGORITHMS
from core.passwords import ARGON2_FLOOR
from core.redact import redact_url
from core.relying_party import relying_party
from core.tokens import ACCESS_TYPES, MIN_SECRET_BYTES
from core.workers import parse_processes, processes_problem
from storage import is_shared, url_problem

ENV_PREFIX = "VHOD_"
MAX_ARGON2_MEMORY_KIB = 1 << 20  # 1 GiB
MAX_ARGON2_PARALLELISM = 16
SECRET_KEYS = frozenset(
    {
        "secret",
        "client_secret",
        "pseudonym_key",
        "key_encryption_key",
        # sms.channels entries and captcha
        "token",
        "api_id",
        "password",
        "apikey",
        "server_key",
    }
)


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key."""


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
    config: Config = _build(Config, raw, "")
    _check(config)
    return _normalised(config)


def _normalised(config: Config) -> Config:
    """The CORS origins in the form browsers send (`Origin` is compared byte for byte, so
    `https://app.example.com/` would refuse every request of that page)."""
    try:
        origins = [normal_origin(entry) for entry in config.server.cors_origins]
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    server = dataclasses.replace(
        config.server,
        cors_origins=list(dict.fromkeys(origins)),
        # "2" from the environment reads as 2, as in the file (_check refused anything else)
        processes=parse_processes(config.server.processes),
    )
    config = dataclasses.replace(config, server=server)
    try:
        passkeys = relying_party(config.webauthn, config.public_url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    webauthn = dataclasses.replace(
        config.webauthn, rp_id=passkeys.rp_id, origins=list(passkeys.origins)
    )
    return dataclasses.replace(config, webauthn=webauthn)


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
    # A field named after a Python keyword ends in "_" (email.from_): the key has none.
    names = {f.name.removesuffix("_"): f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"{path}{key}: unknown key")
    values: dict[str, Any] = {}
    for key, name in names.items():
        if key not in raw:
            continue
        key_path = f"{path}{key}"
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            values[name] = _build(hint, raw[key], key_path + ".")
        elif name == "providers" and cls is Config:
            values[name] = _providers(raw[key], key_path)
        else:
            values[name] = _coerce(raw[key], hint, key_path)
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
        if kind == dict[str, str] and (mapping := string_mapping(value)) is not None:
            return mapping
        mappings = isinstance(value, list) and all(isinstance(v, dict) for v in value)
        if kind == list[dict[str, Any]] and mappings:
            return [dict(v) for v in value]
    names = " or ".join(_type_name(kind) for kind in allowed)
    raise ConfigError(f"{path}: expected {names}, got {type(value).__name__}")


def _type_name(kind: Any) -> str:
    if kind is type(None):
        return "null"
    if kind == list[str]:
        return "a list of strings"
    if kind == dict[str, str]:
        return "a mapping of strings"
    if kind == list[dict[str, Any]]:
        return "a list of mappings"
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
    if config.jwt.algorithm is not None and config.jwt.algorithm not in ALLOWED_ALGORITHMS:
        raise ConfigError(f"jwt.algorithm: must be one of {', '.join(ALLOWED_ALGORITHMS)}")
    kek = config.jwt.key_encryption_key
    if kek is not None and len(kek.encode()) < MIN_KEK_BYTES:
        raise ConfigError(
            f"jwt.key_encryption_key: must be at least {MIN_KEK_BYTES} bytes "
            "(or null on a single machine, to have one generated into server.data_dir)"
        )
    if (
        kek is None
        and config.jwt.algorithm in ASYMMETRIC_ALGORITHMS
        and is_shared(config.storage.url)
    ):
        raise ConfigError(
            "jwt.key_encryption_key: required with MongoDB storage, where every instance "
            "decrypts the same signing keys (VHOD_JWT__KEY_ENCRYPTION_KEY)"
        )
    if config.jwt.access_token_type not in ACCESS_TYPES:
        raise ConfigError(f"jwt.access_token_type: must be one of {', '.join(ACCESS_TYPES)}")
    if config.jwt.audience is not None and (
        not config.jwt.audience or not all(config.jwt.audience)
    ):
        raise ConfigError("jwt.audience: must be null, a non-empty string or list of them")
    if config.jwt.rotation_lead < MIN_ROTATION_LEAD:
        raise ConfigError(
            f"jwt.rotation_lead: must be at least {MIN_ROTATION_LEAD} seconds, so that verifiers"
            " that refetch the JWKS at most every 30 s (jose, PyJWT) hold a new key before it"
            " signs"
        )
    if config.jwt.rotation_interval <= config.jwt.rotation_lead:
        raise ConfigError("jwt.rotation_interval: must be longer than jwt.rotation_lead")
    if not 4 <= config.passwords.bcrypt_rounds <= 31:
        raise ConfigError("passwords.bcrypt_rounds: must be between 4 and 31 (12 recommended)")
    _check_passwords(config.passwords)
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
    if problem := url_problem(config.storage.url, deep=False):
        raise ConfigError(f"storage.url: {problem}")
    if problem := processes_problem(config.server.processes, config.storage.url):
        raise ConfigError(problem)
    if problems := check_lifecycle(config.email, config.sms, config.accounts):
        raise ConfigError(problems[0])
    if problems := check_captcha(config.captcha):
        raise ConfigError(problems[0])
    if problem := admin_config_problem(config.admin, config.audit, config.server):
        raise ConfigError(problem)


def _check_passwords(passwords: PasswordsConfig) -> None:
    if passwords.algorithm not in PASSWORD_ALGORITHMS:
        raise ConfigError(f"passwords.algorithm: must be one of {', '.join(PASSWORD_ALGORITHMS)}")
    # OWASP's minimum for Argon2id, checked whichever algorithm is chosen: a switch back
    # to argon2id never meets a weaker setting left behind.
    if not ARGON2_FLOOR.memory_kib <= passwords.argon2_memory_kib <= MAX_ARGON2_MEMORY_KIB:
        raise ConfigError(
            f"passwords.argon2_memory_kib: must be between {ARGON2_FLOOR.memory_kib} "
            f"(19 MiB, OWASP's minimum) and {MAX_ARGON2_MEMORY_KIB} (1 GiB); it is in KiB"
        )
    if passwords.argon2_iterations < ARGON2_FLOOR.iterations:
        raise ConfigError(
            f"passwords.argon2_iterations: must be at least {ARGON2_FLOOR.iterations} "
            "(OWASP's minimum at 19 MiB)"
        )
    if not 1 <= passwords.argon2_parallelism <= MAX_ARGON2_PARALLELISM:
        raise ConfigError(
            f"passwords.argon2_parallelism: must be between 1 and {MAX_ARGON2_PARALLELISM} "
            "(1 recommended: the hash pool already runs hashes side by side)"
        )


def masked(config: Config) -> dict[str, Any]:
    """The effective configuration with secrets and URL credentials masked, for printing."""

    def walk(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k.removesuffix("_"): walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        if key in SECRET_KEYS and node:
            return "***"
        if (key == "url" or key.endswith("_url")) and isinstance(node, str):
            return redact_url(node)
        return node

    shown: dict[str, Any] = walk(dataclasses.asdict(config))
    return shown
