"""One-time codes: made by a CSPRNG, stored as a keyed hash, single-use, short-lived, and
void after a few wrong tries. Plain functions over the store; no delivery, no HTTP."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets

from core.clock import Clock, system_clock
from core.errors import ApiError
from core.events import identifier_hash, security_event
from core.events import pseudonym_key as load_pseudonym_key
from core.lifecycle_settings import AccountsConfig
from core.throttle import rate_limited
from storage.base import OneTimeCode, Store

_CODE_KEY_LABEL = b"vhod/one-time-codes/v1"
SEND_WINDOW_SECONDS = 3600
MAX_CODE_INPUT = 32  # longer input is no code of ours: refused before anything is stored


def code_key(
    pseudonym_key: str | None,
    jwt_secret: str | None,
    key_encryption_key: str | None,
    data_dir: str,
) -> bytes:
    """The key of the codes' hashes, which every instance on one store must share: derived
    from the first of `logging.pseudonym_key`, `jwt.secret` and `jwt.key_encryption_key`
    that is set (MongoDB needs one of the last two anyway), else from the pseudonym key
    kept in `data_dir` (one machine)."""
    shared = pseudonym_key or jwt_secret or key_encryption_key
    base = shared.encode() if shared else load_pseudonym_key(None, None, data_dir)
    return hmac.new(base, _CODE_KEY_LABEL, hashlib.sha256).digest()


def invalid_code() -> ApiError:
    # One answer for wrong, expired, reused and voided codes, and for unknown accounts.
    return ApiError(400, "invalid_code", "The code is wrong, expired or already used.")


def code_hash(secret: bytes, key: str, code: str) -> str:
    """The stored form of `code` for `key`, keyed with `secret`: a copy of the database
    alone does not give the codes away to a million guesses."""
    return hmac.new(secret, f"{key}:{code}".encode(), hashlib.sha256).hexdigest()


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
        self.secret = secret  # code_key(): the same on every instance of the store
        self.clock = clock

    @property
    def minutes(self) -> int:
        """The lifetime as a message states it."""
        return max(1, math.ceil(self.settings.code_ttl / 60))

    def new_code(self) -> str:
        return "".join(secrets.choice("0123456789") for _ in range(self.settings.code_length))

    async def check_send_limits(self, target: str, client: str) -> None:
        """429 once `target` (an account or address) or `client` (an address key) asked for
        more codes this hour than allowed; counted before anything is sent."""
        now = self.clock()
        for key, limit in (
            (f"code:to:{identifier_hash(target)}", self.settings.code_sends_per_hour),
            (f"code:from:{client}", self.settings.code_sends_per_client_per_hour),
        ):
            hits, ends = await self.store.hit_counter(key, SEND_WINDOW_SECONDS, now)
            if hits > limit:
                if hits == limit + 1:
                    security_event("code_sends_limited", key=key.split(":")[1])
                raise rate_limited(ends - now)

    async def forget_address(self, address: str) -> None:
        """Drop the send count of `address` (its account is deleted: nothing of it stays)."""
        await self.store.reset_counter(f"code:to:{identifier_hash(address)}")

    async def issue(self, key: str, user_id: str) -> str:
        """A new code under `key`; any earlier one stops working."""
        code = self.new_code()
        now = self.clock()
        await self.store.put_code(
            OneTimeCode(
                key=key,
                code_hash=code_hash(self.secret, key, code),
                user_id=user_id,
                expires_at=now + self.settings.code_ttl,
                created_at=now,
            )
        )
        return code

    async def withdraw(self, key: str) -> None:
        """Forget the code under `key` (it was never delivered)."""
        await self.store.delete_code(key)

    async def confirm(self, key: str, code: str) -> OneTimeCode:
        """Use the code under `key` once; 400 invalid_code for anything but the right one.

        The attempt is counted before the comparison, atomically, so at most
        code_max_attempts comparisons happen however many requests race; of concurrent
        right answers exactly one consumes it."""
        limit = self.settings.code_max_attempts
        counted = await self.store.try_code(key, self.clock(), limit)
        if counted is None:
            raise invalid_code()
        given = code_hash(self.secret, key, code[:MAX_CODE_INPUT])
        if not hmac.compare_digest(given, counted.code_hash):
            if counted.attempts >= limit:
                await self.store.delete_code(key)
                # A stand-in code (core.reset_work) has no user.
                user = counted.user_id or None
                security_event("code_voided", user=user, purpose=key.split(":")[0])
            raise invalid_code()
        if not await self.store.consume_code(key, counted.code_hash):
            raise invalid_code()  # a concurrent confirmation used it first
        return counted
