"""Equal work for a password reset with or without an account (issue 21, item 9).

An address without an account gets a stand-in code, stored after the answer and read and
counted at confirm as an account's code is, so both paths make the same store calls; and a
reset's delivery is held back a random while after the answer, so that its work (the SMTP
or SMS conversation) does not land on the requests right after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterator

from core.domain.codes import Codes
from core.domain.events import identifier_hash
from storage.base import StorageUnavailable, User

# The hold's range in seconds: a code arrives at most this much later.
RESET_SEND_DELAY = (0.2, 1.0)
log = logging.getLogger("vhod")


def reset_key(user: User | None, address: str) -> str:
    """The key of a reset code: the account's, or for an address without one a stand-in
    (a keyed pseudonym of the address, never the address itself)."""
    if user is not None:
        return f"reset:{user.id}"
    return f"reset:unknown:{identifier_hash(address)}"


async def store_stand_in_code(codes: Codes, address: str, to: str) -> None:
    """The store write an account's reset makes, for an address without one: a code that
    nobody receives (and no answer matches, unless guessed: then confirm still refuses)."""
    try:
        await codes.issue(reset_key(None, address), "", to)
    except StorageUnavailable:
        pass  # as a failed send for an account: nothing to answer, nothing to log
    except Exception as exc:  # no request is left to answer 500: log it, without its text
        log.error("a stand-in reset code was not stored: %s", type(exc).__name__)


class HoldBack:
    """The random wait before a reset's delivery, cut short while the sends are drained."""

    def __init__(self) -> None:
        self._released = asyncio.Event()

    async def wait(self) -> None:
        delay = random.uniform(*RESET_SEND_DELAY)  # noqa: S311 -- timing, not a secret
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), delay)

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Within it, held sends go at once (drain at shutdown, or a test settling)."""
        self._released.set()
        try:
            yield
        finally:
            self._released.clear()
