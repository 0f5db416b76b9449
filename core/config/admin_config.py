"""The settings of the operators' side: admin keys and listener (`admin.*`), audit (`audit.*`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.config.settings import POSITIVE, between, setting

ADMIN_KEY_NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class AdminConfig:
    """The admin API (/admin/…). The configuration holds hashes: it grants nothing by itself."""

    keys: dict[str, str] = setting(
        {},
        "key name: SHA-256 (hex) of the key; `python server.py admin new-key NAME` makes one."
        " No key: /admin/ answers 404",
    )
    host: str | None = setting(None, "with port: the admin routes' own address; null: server.host")
    port: int | None = setting(
        None, "null: the admin routes are served by the main server", check=between(1, 65535)
    )
    per_ip_per_minute: int = setting(
        60, "admin requests per client address per minute", check=POSITIVE
    )


@dataclass(frozen=True)
class AuditConfig:
    """The audit log of security events."""

    enabled: bool = setting(
        True, "keep the security events in the store for GET /admin/events (they are logged anyway)"
    )
    retention_days: float = setting(
        90.0, "events older than this many days are deleted", check=POSITIVE
    )


def admin_key_entries(config: Any) -> str | None:
    """Each admin.keys entry is a name of 1-32 of a-z, 0-9, _ and -, and a SHA-256 in hex."""
    for name, digest in config.admin.keys.items():
        if not ADMIN_KEY_NAME.match(name):
            return f"admin.keys.{name}: a key name is 1-32 of a-z, 0-9, _ and -"
        if not _SHA256_HEX.match(digest):
            return (
                f"admin.keys.{name}: must be the SHA-256 (64 lower-case hex digits) of the key;"
                " `python server.py admin new-key NAME` makes one"
            )
    return None


def admin_listener(config: Any) -> str | None:
    """admin.host needs admin.port, and admin.port differs from server.port on the same host."""
    admin, server = config.admin, config.server
    if admin.port is not None:
        if admin.port == server.port and (admin.host or server.host) == server.host:
            return "admin.port: must differ from server.port on the same host"
    elif admin.host is not None:
        return "admin.host: needs admin.port (null serves on the main server)"
    return None


RULES = (admin_key_entries, admin_listener)
