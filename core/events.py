"""Security events: one structured log line each, never a secret (AP4).

The client address is request context, not a service argument: the handler sets it once
and every event logged while serving that request carries it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextvars import ContextVar

security_log = logging.getLogger("vhod.security")
client_ip_var: ContextVar[str] = ContextVar("client_ip", default="-")


def identifier_hash(identifier: str) -> str:
    """A stable pseudonym for a normalised email or phone, so events and counters hold no PII."""
    return hashlib.sha256(identifier.encode()).hexdigest()[:24]


def security_event(event: str, *, level: int = logging.WARNING, **fields: str | int | None) -> None:
    record = {"event": event, **{k: v for k, v in fields.items() if v is not None}}
    record["ip"] = client_ip_var.get()
    security_log.log(level, "security %s", json.dumps(record, sort_keys=True), extra=record)
