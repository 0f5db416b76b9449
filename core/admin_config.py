"""The settings of the operators' side: admin keys and listener (`admin.*`), audit (`audit.*`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ADMIN_KEY_NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class AdminConfig:
    # key name -> SHA-256 (hex) of the key: the configuration grants nothing by itself.
    # No key: the admin routes are not served (404).
    keys: dict[str, str] = field(default_factory=dict)
    host: str | None = None  # with port: a listener of their own; null: server.host
    port: int | None = None  # null: on the main server
    per_ip_per_minute: int = 60


@dataclass(frozen=True)
class AuditConfig:
    enabled: bool = True  # keep the security events in the store (they are logged anyway)
    retention_days: float = 90.0  # events older than this are deleted


def string_mapping(value: Any) -> dict[str, str] | None:
    """`value` as a mapping of strings (null: an empty one), or None when it is not one."""
    if value is None:
        return {}
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return {k: str(v) for k, v in value.items()}  # str(): an environment value
    return None


def admin_config_problem(admin: AdminConfig, audit: AuditConfig, server: Any) -> str | None:
    """What is wrong with these settings, naming the key; None when they can be used.
    `server` is the ServerConfig the admin listener must not collide with."""
    server_host, server_port = server.host, server.port
    for name, digest in admin.keys.items():
        if not ADMIN_KEY_NAME.match(name):
            return f"admin.keys.{name}: a key name is 1-32 of a-z, 0-9, _ and -"
        if not _SHA256_HEX.match(digest):
            return (
                f"admin.keys.{name}: must be the SHA-256 (64 lower-case hex digits) of the key;"
                " `python server.py admin new-key NAME` makes one"
            )
    if admin.port is not None:
        if not 1 <= admin.port <= 65535:
            return "admin.port: must be between 1 and 65535"
        if admin.port == server_port and (admin.host or server_host) == server_host:
            return "admin.port: must differ from server.port on the same host"
    elif admin.host is not None:
        return "admin.host: needs admin.port (null serves on the main server)"
    if admin.per_ip_per_minute <= 0:
        return "admin.per_ip_per_minute: must be greater than 0"
    if audit.retention_days <= 0:
        return "audit.retention_days: must be greater than 0"
    return None
