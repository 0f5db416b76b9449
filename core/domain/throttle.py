"""Login throttling per identifier and request limits per client address (LG3, LG4).

Counters live in the store, so every instance on the same database shares them.
"""

from __future__ import annotations

import math

from core.config.config_sections import LimitsConfig
from core.domain.errors import ApiError
from core.domain.event_types import EventType
from core.domain.events import identifier_hash, security_event
from core.infra.clock import Clock, system_clock
from core.infra.net import address_key
from storage.base import Store

IP_WINDOW_SECONDS = 60


def rate_limited(retry_after: float) -> ApiError:
    # One body for every cause and for known and unknown accounts alike.
    seconds = max(1, math.ceil(retry_after))
    return ApiError(
        429,
        "rate_limited",
        "Too many attempts; retry later.",
        headers={"Retry-After": str(seconds)},
    )


def login_key(user_id: str | None, identifier: str) -> str:
    """The counter a login attempt counts against.

    A known user counts per user, so the email and phone paths share one count; an unknown
    identifier counts by its hash, so guessing at accounts that don't exist is limited too.
    """
    if user_id is not None:
        return f"login:user:{user_id}"
    return f"login:id:{identifier_hash(identifier)}"


class Throttle:
    def __init__(self, store: Store, limits: LimitsConfig, clock: Clock = system_clock) -> None:
        self.store = store
        self.limits = limits
        self.clock = clock

    async def reserve_login(self, key: str) -> int:
        """Count one attempt on `key` before its password is verified; 429 past the limit.

        Counting first, in one atomic store operation, is what bounds the verifications:
        however many attempts arrive in parallel, at most `login_failures` of them get a
        number within the limit (LG7). Returns this attempt's number in the window.
        """
        now = self.clock()
        attempt, window_end = await self.store.hit_counter(key, self.limits.login_window, now)
        if attempt > self.limits.login_failures:
            raise rate_limited(window_end - now)
        return attempt

    def login_failed(self, key: str, attempt: int) -> None:
        """The reserved attempt `attempt` failed: it stays counted; the last one locks."""
        if attempt == self.limits.login_failures:
            # Named as the login events name it, so the audit log finds it by user too.
            kind, _, value = key.removeprefix("login:").partition(":")
            security_event(
                EventType.LOGIN_LOCKED,
                user=value if kind == "user" else None,
                identifier=value if kind == "id" else None,
                failures=attempt,
            )

    async def login_succeeded(self, key: str) -> None:
        """A right password ends the count, the attempt reserved for it included."""
        await self.store.reset_counter(key)

    async def hit_address(self, address: str) -> None:
        """Count one request from `address`; 429 past the per-minute limit."""
        now = self.clock()
        key = f"ip:{address_key(address, self.limits.ipv6_prefix)}"
        hits, window_end = await self.store.hit_counter(key, IP_WINDOW_SECONDS, now)
        if hits > self.limits.per_ip_per_minute:
            if hits == self.limits.per_ip_per_minute + 1:
                security_event(EventType.ADDRESS_LIMITED, hits=hits)
            raise rate_limited(window_end - now)
