"""Security events: one structured log line each, never a secret (AP4).

The client address is request context, not a service argument: the handler sets it once
and every event logged while serving that request carries it.

Each event also goes to the audit sink of the request's services (core.domain.audit), which keeps
it in the store; a handler sets the sink with the client address.

An email or phone number appears only as a keyed pseudonym (HMAC-SHA-256 under a server
key): without the key, nobody can try every phone number to find whose pseudonym it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from core.domain.event_types import EventType, level
from core.infra.logs import request_id_var

security_log = logging.getLogger("vhod.security")
client_ip_var: ContextVar[str] = ContextVar("client_ip", default="-")
# Takes (the event's record, the request id); must not block or raise (core.domain.audit.AuditLog).
AuditSink = Callable[[Mapping[str, Any], str], None]
audit_sink_var: ContextVar[AuditSink | None] = ContextVar("audit_sink", default=None)

PSEUDONYM_KEY_FILE = "pseudonym_key"
MIN_KEY_FILE_BYTES = 32

# Until the service sets its key, a random one: pseudonyms are never unkeyed, only unstable.
_pseudonym_key = secrets.token_bytes(32)


def identifier_hash(identifier: str) -> str:
    """A stable pseudonym for a normalised email or phone, so events and counters hold no PII."""
    return hmac.new(_pseudonym_key, identifier.encode(), hashlib.sha256).hexdigest()[:24]


def set_pseudonym_key(key: bytes) -> None:
    """The key identifier_hash uses from now on (core.signing.shared_keys chooses it)."""
    global _pseudonym_key
    _pseudonym_key = key


def load_or_create_key_file(path: Path) -> bytes:
    """The key in `path`, made on first use: owner-only, and whole or not there at all.

    It is written to a temporary file first and linked into place; a link never replaces a
    file, so of processes starting together one key wins and every one of them reads it."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_hex(32).encode("ascii"))
            file.flush()
            os.fsync(file.fileno())
        # If another process linked its key first, this one's is dropped and that one read.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_FILE_BYTES:
        raise ValueError(f"{path}: the key in it is shorter than {MIN_KEY_FILE_BYTES} bytes")
    return key


def security_event(event: EventType, **fields: str | int | None) -> None:
    """Log `event` at its catalogued level and hand it to the request's audit sink."""
    record = {"event": str(event), **{k: v for k, v in fields.items() if v is not None}}
    record["ip"] = client_ip_var.get()
    line = json.dumps(record, sort_keys=True)
    security_log.log(level(event), "security %s", line, extra=record)
    sink = audit_sink_var.get()
    if sink is not None:
        try:
            sink(record, request_id_var.get())
        except Exception:  # the audit log never fails the request that had the event
            security_log.warning("audit: event %s not queued", event, exc_info=True)
