"""The audit log: every security event, also kept in the store for operators to read.

core.domain.events.security_event hands each event to the AuditLog of the request's services.
Writing happens off the request: events wait in a bounded queue and one task writes them
in batches. A store that refuses a batch never fails a request: its events go to the log
with a warning. A full queue (the store is slower than the events) drops new events, with
a warning saying how many, rather than growing without bound.

Repeats of one event by one client within a window are kept as one event with a count
(fold_key): a client replaying one token six thousand times makes one row, not 6,000, on
every instance of the store (the stores raise the kept event's count; see Store.add_events).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from core.domain.event_types import KEPT_TYPES, UNFOLDED_TYPES
from core.domain.events import identifier_hash
from core.infra.clock import Clock, system_clock
from core.infra.net import address_key
from storage.base import AuditEvent, Store

log = logging.getLogger("vhod.audit")

# The event types the store keeps: every one of the catalogue (core.domain.event_types); another
# type cannot be emitted, and would be logged only (with one warning).
EVENT_TYPES = KEPT_TYPES
# The fields an event may carry besides its user, pseudonym and address; never a secret.
DETAIL_KEYS = frozenset(
    {
        "admin",
        "call",
        "channel",
        "count",
        "failures",
        "family",
        "hits",
        "limit",
        "method",
        "outcome",
        "provider",
        "purpose",
        "reason",
        "scope",
    }
)
# Details that count or describe rather than name what happened: repeats differing only in
# these are one event (the first one's values are kept). `reason` may carry a provider's text.
VARYING_DETAILS = frozenset({"count", "failures", "hits", "reason"})
# Repeats within this many seconds are kept as one event with a count (see fold_key).
FOLD_SECONDS = 600
DEFAULT_IPV6_PREFIX = 64
MAX_DETAIL_CHARS = 300
QUEUE_LIMIT = 10_000
BATCH_SIZE = 200
DEFAULT_RETENTION_SECONDS = 90 * 86_400


_sequence = itertools.count()


def new_event_id() -> str:
    """Unique, and in the order this process made them: events of one instant keep the
    order they happened in (the time sorts first, the id breaks ties)."""
    return f"{next(_sequence):012x}{os.urandom(8).hex()}"


def fold_key(
    kind: str,
    user_id: str | None,
    identifier: str | None,
    ip: str,
    details: Mapping[str, str | int],
    *,
    now: float,
    fold_seconds: float,
    ipv6_prefix: int,
) -> str | None:
    """The key under which repeats of one event are kept as one: the same type, user,
    pseudonym, client (an IPv6 client by its network, as the per-address limit counts it)
    and details, within one window of `fold_seconds`. None for a type kept every time."""
    if kind in UNFOLDED_TYPES or fold_seconds <= 0:
        return None
    same = {k: v for k, v in details.items() if k not in VARYING_DETAILS}
    parts = [
        kind,
        user_id or "",
        identifier or "",
        address_key(ip, ipv6_prefix),
        json.dumps(same, sort_keys=True),
        str(math.floor(now / fold_seconds)),
    ]
    # Keyed like the pseudonyms: the key names no user id to anyone without the key.
    return identifier_hash("\x1f".join(parts))


def to_audit_event(
    record: Mapping[str, Any],
    *,
    now: float,
    request_id: str,
    retention: float,
    fold_seconds: float = FOLD_SECONDS,
    ipv6_prefix: int = DEFAULT_IPV6_PREFIX,
) -> AuditEvent | None:
    """The stored form of a security event's record, or None for a type not kept."""
    kind = record.get("event")
    if kind not in EVENT_TYPES:
        return None
    details: dict[str, str | int] = {}
    for key in sorted(DETAIL_KEYS & record.keys()):
        value = record[key]
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int):
            details[key] = value
        elif value is not None:
            details[key] = str(value)[:MAX_DETAIL_CHARS]
    user = None if record.get("user") is None else str(record["user"])
    identifier = None if record.get("identifier") is None else str(record["identifier"])
    ip = str(record.get("ip") or "-")
    return AuditEvent(
        id=new_event_id(),
        time=now,
        type=str(kind),
        user_id=user,
        identifier=identifier,
        ip=ip,
        request_id=request_id,
        details=details,
        expires_at=now + retention,
        fold=fold_key(
            str(kind),
            user,
            identifier,
            ip,
            details,
            now=now,
            fold_seconds=fold_seconds,
            ipv6_prefix=ipv6_prefix,
        ),
    )


def event_json(event: AuditEvent) -> dict[str, Any]:
    """An event as the admin API and the CLI show it."""
    return {
        "id": event.id,
        "time": event.time,
        "type": event.type,
        "user_id": event.user_id,
        "identifier": event.identifier,
        "ip": event.ip,
        "request_id": event.request_id,
        "details": dict(event.details),
        "repeats": event.repeats,
    }


class AuditLog:
    """The bounded queue of events waiting for the store, and the task that writes them."""

    def __init__(
        self,
        store: Store,
        *,
        retention: float = DEFAULT_RETENTION_SECONDS,
        enabled: bool = True,
        queue_limit: int = QUEUE_LIMIT,
        clock: Clock = system_clock,
        fold_seconds: float = FOLD_SECONDS,
        ipv6_prefix: int = DEFAULT_IPV6_PREFIX,
    ) -> None:
        self.store = store
        self.retention = retention
        self.enabled = enabled
        self.queue_limit = queue_limit
        self.clock = clock
        self.fold_seconds = fold_seconds
        self.ipv6_prefix = ipv6_prefix
        self.dropped = 0
        # By fold key (or id), in the order queued: a repeat of a queued event only counts.
        self._pending: dict[str, AuditEvent] = {}
        self._lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._unknown_types: set[str] = set()
        self._closed = False

    def __call__(self, record: Mapping[str, Any], request_id: str) -> None:
        """Queue one event (core.domain.events calls this); never blocks, never raises."""
        if not self.enabled or self._closed:
            return
        event = to_audit_event(
            record,
            now=self.clock(),
            request_id=request_id,
            retention=self.retention,
            fold_seconds=self.fold_seconds,
            ipv6_prefix=self.ipv6_prefix,
        )
        if event is None:
            kind = str(record.get("event"))
            if kind not in self._unknown_types:
                self._unknown_types.add(kind)
                log.warning("audit: event type %r is not kept in the store", kind)
            return
        queued = self._pending.get(event.fold) if event.fold else None
        if queued is not None:
            self._pending[queued.fold or ""] = replace(queued, repeats=queued.repeats + 1)
            return
        if len(self._pending) >= self.queue_limit:
            if self.dropped == 0:
                log.warning("audit: the queue is full; events are dropped until it drains")
            self.dropped += 1
            return
        self._pending[event.fold or event.id] = event
        self._start()

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # outside an event loop: written by the next flush()
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._write_forever())
        self._wake.set()

    async def _write_forever(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._write_pending()

    async def _write_pending(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one batch at a time, in the order queued
            while self._pending:
                keys = list(itertools.islice(self._pending, BATCH_SIZE))
                batch = [self._pending.pop(key) for key in keys]
                try:
                    await self.store.add_events(batch)
                except Exception as exc:  # any refusal: the request was answered long ago
                    log.warning(
                        "audit: the store refused %d events (%s); they are only in this log: %s",
                        len(batch),
                        type(exc).__name__,
                        json.dumps([event_json(event) for event in batch], sort_keys=True),
                    )
                if self.dropped:
                    log.warning("audit: %d events were dropped: the queue was full", self.dropped)
                    self.dropped = 0

    async def flush(self) -> None:
        """Write everything queued so far (tests, the CLI and shutdown wait for this)."""
        await self._write_pending()

    async def close(self) -> None:
        """Write what is queued, then stop; later events are only logged."""
        await self.flush()
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
