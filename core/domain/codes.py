"""One-time codes: made by a CSPRNG, stored as a keyed hash, single-use, short-lived, and
void after a few wrong tries. Plain functions over the store; no delivery, no HTTP."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets

from core.config.lifecycle_settings import AccountsConfig
from core.domain.errors import ApiError
from core.domain.event_types import EventType
from core.domain.events import identifier_hash, security_event
from core.domain.throttle import rate_limited
from core.infra.clock import Clock, system_clock
from storage.base import OneTimeCode, Store

SEND_WINDOW_SECONDS = 3600
MAX_CODE_INPUT = 32  # longer input is no code of ours: refused before anything is stored


def invalid_code() -> ApiError:
    # One answer for wrong, expired, reused and voided codes, and for unknown accounts.
    return ApiError(400, "invalid_code", "The code is wrong, expired or already used.")


def code_hash(secret: bytes, key: str, code: str, to: str) -> str:
    """The stored form of `code` for `key`, sent to `to` (recipient()), keyed with `secret`:
    a copy of the database alone does not give the codes away to a million guesses, and the
    code checks out only with the address it was sent to."""
    return hmac.new(secret, f"{key}:{to}:{code}".encode(), hashlib.sha256).hexdigest()


def recipient(channel: str, address: str) -> str:
    """What a code is bound to: the channel and the normalised address it went to. Only
    its hash is stored, inside the code's."""
    return f"{channel}:{address}"


class Codes:
    """Issues and confirms the codes of one store; every instance on it shares them."""

    def __init__(
        self,
        store: Store,
        settings: AccountsConfig,
        secret: bytes,
        clock: Clock = system_clock,
    ) -> None:
        self.store = store
        self.settings = settings
        self.secret = secret  # core.signing.shared_keys: the same on every instance of the store
        self.clock = clock

    @property
    def minutes(self) -> int:
        """The lifetime as a message states it."""
        return max(1, math.ceil(self.settings.code_ttl / 60))

    def new_code(self) -> str:
        return "".join(secrets.choice("0123456789") for _ in range(self.settings.code_length))

    async def check_send_limits(self, target: str, client: str) -> None:
        """429 once `target` (an address) or `client` (an address key) asked for more codes
        this hour than allowed; counted before anything is sent. The count is keyed by the
        address's pseudonym, not by an account: deleting the account and registering the
        address again does not reset it."""
        now = self.clock()
        pseudonym = identifier_hash(target)
        for key, limit, pseudonymous in (
            (f"code:to:{pseudonym}", self.settings.code_sends_per_hour, pseudonym),
            (f"code:from:{client}", self.settings.code_sends_per_client_per_hour, None),
        ):
            hits, ends = await self.store.hit_counter(key, SEND_WINDOW_SECONDS, now)
            if hits > limit:
                if hits == limit + 1:
                    security_event(
                        EventType.CODE_SENDS_LIMITED,
                        identifier=pseudonymous,
                        limit="address" if pseudonymous else "client",
                    )
                raise rate_limited(ends - now)

    async def issue(self, key: str, user_id: str, to: str, code: str | None = None) -> str:
        """A new code under `key`, bound to `to` (recipient()): it proves only that address.
        `code` when it went out before it was stored. Any earlier code under `key` stops
        working."""
        code = code or self.new_code()
        now = self.clock()
        await self.store.put_code(
            OneTimeCode(
                key=key,
                code_hash=code_hash(self.secret, key, code, to),
                user_id=user_id,
                expires_at=now + self.settings.code_ttl,
                created_at=now,
            )
        )
        return code

    async def withdraw(self, key: str) -> None:
        """Forget the code under `key` (it was never delivered)."""
        await self.store.delete_code(key)

    async def confirm(self, key: str, code: str, to: str) -> OneTimeCode:
        """Use the code under `key` once; 400 invalid_code for anything but the right one
        named with the address it was sent to (`to`, recipient()): a code sent by email
        confirmed with the phone number is a wrong try, and verifies nothing.

        The attempt is counted before the comparison, atomically, so at most
        code_max_attempts comparisons happen however many requests race; of concurrent
        right answers exactly one consumes it."""
        limit = self.settings.code_max_attempts
        counted = await self.store.try_code(key, self.clock(), limit)
        if counted is None:
            raise invalid_code()
        given = code_hash(self.secret, key, code[:MAX_CODE_INPUT], to)
        if not hmac.compare_digest(given, counted.code_hash):
            if counted.attempts >= limit:
                await self.store.delete_code(key)
                # A stand-in code (core.domain.reset_work) has no user.
                user = counted.user_id or None
                security_event(EventType.CODE_VOIDED, user=user, purpose=key.split(":")[0])
            raise invalid_code()
        if not await self.store.consume_code(key, counted.code_hash):
            raise invalid_code()  # a concurrent confirmation used it first
        return counted
