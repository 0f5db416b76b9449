"""Ended sessions, in memory: what lets /validate/jwt/access refuse a revoked session's
access tokens on every instance without a store read per check.

Every revocation of a session goes through Store.revoke_family, revoke_user_tokens or
delete_user (logout, logout everywhere, ending a session, password change and reset,
disabling, deletion, refresh-token reuse), which record each family with the time it was
revoked. Each instance reads the families revoked since its last read about once a second
and keeps their ids until every access token of theirs has expired: a set lookup per check.
"""

from __future__ import annotations

import asyncio
import logging

from core.infra.clock import Clock, system_clock
from core.signing.tokens import LEEWAY_SECONDS
from storage.base import StorageUnavailable, Store

log = logging.getLogger("vhod")

POLL_SECONDS = 1.0
# Each read starts this long before the previous one: a revocation stamped by an instance
# whose clock is behind ours, or whose write was still committing when we read, is read
# again the next time. Instances' clocks must agree this closely, as for token times.
OVERLAP_SECONDS = float(LEEWAY_SECONDS)
FORGET_EVERY_SECONDS = 60.0


class RevokedSessions:
    """The session ids (`sid`, the refresh-token family) revoked recently, kept for as long
    as an access token of theirs can still be accepted."""

    def __init__(self, store: Store, *, access_ttl: float, clock: Clock = system_clock) -> None:
        self.store = store
        self.clock = clock
        # An access token issued as its session ended (a refresh in flight) lives access_ttl
        # and is accepted LEEWAY past its exp; another LEEWAY covers the instances' clocks.
        self.keep = access_ttl + 2 * LEEWAY_SECONDS
        self._until: dict[str, float] = {}  # sid -> when it can be forgotten
        self._read_up_to: float | None = None  # our clock at the start of the last read
        self._forgotten_at = clock()
        self._failing = False

    def __contains__(self, sid: str) -> bool:
        return sid in self._until

    @property
    def size(self) -> int:
        return len(self._until)

    async def poll(self) -> None:
        """Read the families revoked since the last read (at the first, those whose access
        tokens may still be live). StorageUnavailable when the store does not answer; the
        next read then covers what this one missed."""
        now = self.clock()
        last = self._read_up_to
        since = now - self.keep if last is None else last - OVERLAP_SECONDS
        revoked = await self.store.revoked_families_since(since)
        for family, at in revoked:
            forget = at + self.keep
            if forget > now and forget > self._until.get(family, 0.0):
                self._until[family] = forget
        self._read_up_to = now
        if now - self._forgotten_at >= FORGET_EVERY_SECONDS:
            # A whole pass once a minute keeps the set bounded by a TTL's worth of
            # revocations, at no cost per check.
            self._until = {sid: t for sid, t in self._until.items() if t > now}
            self._forgotten_at = now

    async def follow(self, interval: float = POLL_SECONDS) -> None:
        """Forever: poll; a store outage is retried next time, and said once."""
        while True:
            try:
                await self.poll()
            except StorageUnavailable as exc:
                if not self._failing:
                    log.warning(
                        "reading revoked sessions failed, access checks may accept an ended"
                        " session until the store answers: %s",
                        exc,
                    )
                self._failing = True
            except Exception:
                log.exception("reading revoked sessions failed, will retry")
            else:
                if self._failing:
                    log.info("revoked sessions are read again")
                self._failing = False
            await asyncio.sleep(interval)
