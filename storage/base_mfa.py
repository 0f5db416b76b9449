"""The second-factor part of the storage interface (storage.base.Store extends it): TOTP
factors, recovery codes and the pending second steps of sign-ins (core.domain.mfa)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass
class TotpFactor:
    """A user's TOTP authenticator (RFC 6238). `secret` is encrypted (core.domain.mfa), never
    plain; it signs nobody in until `confirmed`. `last_step` is the time step of the last
    code accepted: a code of that step or an earlier one is refused (no replay)."""

    user_id: str
    secret: str
    confirmed: bool = False
    last_step: int = 0
    created_at: float = 0.0


@dataclass
class MfaChallenge:
    """A sign-in whose first factor passed and whose second is due, keyed by the hash of
    the opaque `mfa_token` the client holds: single use, short-lived, `tries` counted.

    `amr` is how the first factor was proven (RFC 8176); `bound` a digest of the password
    hash that factor checked (None for other factors): the session is stored only while
    that password is still the user's (RT7)."""

    token_hash: str
    user_id: str
    amr: list[str]
    expires_at: float
    tries: int = 0
    bound: str | None = None


@dataclass(frozen=True)
class SecondFactors:
    """What every sign-in's second-factor gate reads of a user: whether its TOTP factor is
    confirmed, and how many passkeys it has."""

    totp_confirmed: bool
    passkeys: int


class SecondFactorStore(Protocol):
    """What core.domain.mfa needs from a database; every method may raise StorageUnavailable."""

    async def put_totp(self, factor: TotpFactor) -> bool:
        """Store `factor`, unconfirmed, as the user's TOTP secret being set up, replacing
        one being set up; False, and nothing written, when a confirmed one exists."""

    async def get_totp(self, user_id: str) -> TotpFactor | None: ...

    async def second_factors(self, user_id: str) -> SecondFactors:
        """The user's confirmed TOTP factor and passkeys, read together: every sign-in asks,
        so one round trip of waiting, not one for each."""

    async def confirm_totp(self, user_id: str, secret: str, step: int) -> bool:
        """Turn the unconfirmed factor holding `secret` on, recording `step` as used; False
        when it is gone, confirmed already, holds another secret or has used `step`."""

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        """Record `step` as the last one used by the user's confirmed factor, only while
        the recorded one is earlier (compare-and-set): True for exactly one caller of a
        step however many race, False for a replay or without a confirmed factor."""

    async def delete_totp(self, user_id: str) -> bool:
        """Remove the user's TOTP factor, set up or confirmed; False when there was none."""

    async def set_recovery_codes(self, user_id: str, code_hashes: Sequence[str]) -> None:
        """Replace every recovery code of the user with these (keyed hashes); none: remove."""

    async def use_recovery_code(self, user_id: str, code_hash: str) -> bool:
        """Remove the recovery code, True for exactly one caller; False when it is not
        (or no longer) one of the user's."""

    async def count_recovery_codes(self, user_id: str) -> int: ...

    async def put_mfa_challenge(self, challenge: MfaChallenge) -> None: ...

    async def try_mfa_challenge(
        self, token_hash: str, now: float, max_tries: int
    ) -> MfaChallenge | None:
        """Count one try of the challenge, atomically, and return it (its `tries` counting
        this one); None when it is gone, expired at `now`, or had `max_tries` already."""

    async def consume_mfa_challenge(self, token_hash: str) -> bool:
        """Remove the challenge: True for exactly one caller, False once it is gone."""
