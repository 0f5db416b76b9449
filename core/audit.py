"""The audit log: every security event, also kept in the store for operators to read.

core.events.security_event hands each event to the AuditLog of the request's services.
Writing happens off the request: events wait in a bounded queue and one task writes them
in batches. A store that refuses a batch never fails a request: its events go to the log
with a warning. A full queue (the store is slower than the events) drops new events, with
a warning saying how many, rather than growing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from core.clock import Clock, system_clock
from core.event_types import KEPT_TYPES
from storage.base import AuditEvent, Store

log = logging.getLogger("vhod.audit")

# The event types the store keeps: every one of the catalogue (core.event_types); another
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
        "provider",
        "purpose",
        "reason",
        "scope",
    }
)
MAX_DETAIL_CHARS = 300
QUEUE_LIMIT = 10_000
BATCH_SIZE = 200
DEFAULT_RETENTION_SECONDS = 90 * 86_400


_sequence = itertools.count()


def new_event_id() -> str:
    """Unique, and in the order this process made them: events of one instant keep the
    order they happened in (the time sorts first, the id breaks ties)."""
    return f"{next(_sequence):012x}{os.urandom(8).hex()}"


def to_audit_event(
    record: Mapping[str, Any], *, now: float, request_id: str, retention: float
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
    user = record.get("user")
    identifier = record.get("identifier")
    return AuditEvent(
        id=new_event_id(),
        time=now,
        type=str(kind),
        user_id=None if user is None else str(user),
        identifier=None if identifier is None else str(identifier),
        ip=str(record.get("ip") or "-"),
        request_id=request_id,
        details=details,
        expires_at=now + retention,
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
    ) -> None:
        self.store = store
        self.retention = retention
        self.enabled = enabled
        self.queue_limit = queue_limit
        self.clock = clock
        self.dropped = 0
        self._pending: list[AuditEvent] = []
        self._lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._unknown_types: set[str] = set()
        self._closed = False

    def __call__(self, record: Mapping[str, Any], request_id: str) -> None:
        """Queue one event (core.events calls this); never blocks, never raises."""
        if not self.enabled or self._closed:
            return
        event = to_audit_event(
            record, now=self.clock(), request_id=request_id, retention=self.retention
        )
        if event is None:
            kind = str(record.get("event"))
            if kind not in self._unknown_types:
                self._unknown_types.add(kind)
                log.warning("audit: event type %r is not kept in the store", kind)
            return
        if len(self._pending) >= self.queue_limit:
            if self.dropped == 0:
                log.warning("audit: the queue is full; events are dropped until it drains")
            self.dropped += 1
            return
        self._pending.append(event)
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
                batch, self._pending = self._pending[:BATCH_SIZE], self._pending[BATCH_SIZE:]
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
