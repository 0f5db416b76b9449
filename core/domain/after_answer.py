"""Sends after the answer: a code's delivery that runs once the HTTP answer went out, so
that neither the answer nor its timing tells whether the account exists (a password reset,
a sign-in code with sign-up by code off). Used by core.domain.lifecycle and
core.domain.code_signin; each tells its own events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from core.domain.errors import ApiError
from core.domain.event_types import EventType
from core.domain.events import security_event
from storage.base import StorageUnavailable

# At most this many sends wait to go out; beyond, a request sends none.
MAX_PENDING_SENDS = 100
# How long a send cancelled at shutdown has to withdraw its code from the store.
CANCELLED_SEND_GRACE_SECONDS = 5
log = logging.getLogger("vhod")


class AfterAnswer:
    """The sends still going out after their answers: bounded, and drained at shutdown."""

    def __init__(self) -> None:
        self._sending: set[asyncio.Task[Any]] = set()

    def start(self, send: Callable[[], Coroutine[Any, Any, object]]) -> bool:
        """Run `send()` in the background; False, and nothing started, when
        MAX_PENDING_SENDS are still going out (the caller tells what it did instead)."""
        if len(self._sending) >= MAX_PENDING_SENDS:
            return False
        task = asyncio.create_task(send())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return True

    async def drain(self, grace: float) -> int:
        """Wait up to `grace` seconds for the sends still going out, then cancel the rest
        and let them withdraw their codes while the store is still open (at shutdown);
        how many were cancelled."""
        if not self._sending:
            return 0
        _, late = await asyncio.wait(set(self._sending), timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=CANCELLED_SEND_GRACE_SECONDS)
        return len(late)


async def reported(
    send: Awaitable[None], not_sent: EventType, what: str, **fields: str | None
) -> bool:
    """Await a send no request is left to answer for: True when it went out; else False,
    and a `not_sent` event (with `fields`) gives the reason: the error's code,
    storage_unavailable or server_error (logged too, by its class only: its text may
    quote the address)."""
    try:
        await send
    except ApiError as exc:
        security_event(not_sent, **fields, reason=exc.code)
    except StorageUnavailable:
        security_event(not_sent, **fields, reason="storage_unavailable")
    except Exception as exc:
        security_event(not_sent, **fields, reason="server_error")
        log.error("%s was not sent: %s", what, type(exc).__name__)
    else:
        return True
    return False
