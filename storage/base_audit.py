"""The audit log's part of the Store protocol (storage/base.py) and its records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class AuditEvent:
    """One security event as the audit log keeps it: never a secret, only pseudonyms.

    `id` is random; with `time` it orders events stably. `details` holds a fixed set of
    keys (core.domain.audit); the event is kept until `expires_at` (the retention). Events with
    one `fold` key are kept as one (the first), `repeats` counting them all: what one
    client repeats does not grow the store (core.domain.audit.fold_key)."""

    id: str
    time: float
    type: str
    user_id: str | None = None
    identifier: str | None = None  # the keyed pseudonym of an email or phone
    ip: str = "-"
    request_id: str = "-"
    details: dict[str, str | int] = field(default_factory=dict)
    expires_at: float = 0.0
    fold: str | None = None
    repeats: int = 1


@dataclass(frozen=True)
class EventQuery:
    """Which audit events to read: every given filter applies; `after` is the (time, id)
    of the last event of the previous page, in the order asked for."""

    limit: int
    user_id: str | None = None
    types: tuple[str, ...] = ()
    since: float | None = None  # time >= since
    until: float | None = None  # time < until
    after: tuple[float, str] | None = None
    newest_first: bool = False


class AuditStore(Protocol):
    # the audit log; shared by every instance on the same store
    async def add_events(self, events: Sequence[AuditEvent]) -> None:
        """Append events in one round trip; an id that exists already is not an error.
        An event whose `fold` a kept event has adds its `repeats` to that one instead."""

    async def purge_events_before(self, time: float) -> None:
        """Delete the audit events that happened before `time`: the retention as it is
        configured now, so a shorter one applies to events kept already."""

    async def forget_user_in_events(self, user_id: str, pseudonym: str) -> None:
        """After a deletion: the user's events name `pseudonym` instead of the user id."""

    async def list_events(self, query: EventQuery) -> list[AuditEvent]:
        """The events `query` selects, in (time, id) order (newest first if it asks)."""
