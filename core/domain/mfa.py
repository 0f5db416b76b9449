"""Second factors at sign-in: the gate every first factor passes (a user with a second
factor gets an `mfa_token`, not tokens) and `mfa/verify`, which ends the sign-in with a
TOTP code, a recovery code or a passkey. Passkeys plug in through PasskeyFactor.

RFC 8176 `amr` values: TOTP and recovery codes are both one-time passwords (`otp`); the
passkey implementation names its own (`hwk`/`swk`); a sign-in with two factors adds `mfa`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from core.domain.codes import invalid_code
from core.domain.errors import ApiError, invalid_credentials, invalid_request
from core.domain.event_types import EventType
from core.domain.events import security_event
from core.domain.throttle import login_key
from core.domain.totp import MAX_CODE_INPUT, SecretSeal, matching_step, recovery_code_hash
from core.infra.clock import Clock, system_clock
from storage.base import MfaChallenge, Store, User

if TYPE_CHECKING:
    from core.domain.accounts import Accounts

MFA_TOKEN_SECONDS = 300
MAX_TRIES = 5  # second factors tried with one mfa_token
MAX_TOKEN_INPUT = 128  # ours are 43 characters
OTP = "otp"
MFA = "mfa"


@dataclass(frozen=True)
class PasskeyProof:
    """A passkey assertion that checked out: whose it is and how it proved it (RFC 8176)."""

    user_id: str
    amr: tuple[str, ...]


class PasskeyFactor(Protocol):
    """What the passkey implementation offers the sign-in (Services.passkeys); whether a
    user has passkeys the gate reads from the store (Store.second_factors)."""

    async def request_options(self, user_id: str | None) -> dict[str, Any]: ...

    async def verify_assertion(
        self, credential: Mapping[str, Any], user_id: str | None
    ) -> PasskeyProof: ...


def invalid_mfa_token() -> ApiError:
    return ApiError(
        401,
        "invalid_mfa_token",
        "The mfa_token is unknown, expired, used, or had too many tries: sign in again.",
    )


def mfa_token_hash(token: str) -> str:
    # The token is 256 random bits: a plain hash keeps a copy of the store from using it.
    return hashlib.sha256(token[:MAX_TOKEN_INPUT].encode("utf-8", "surrogatepass")).hexdigest()


def password_digest(password_hash: str) -> str:
    """What a challenge keeps of the password hash its first factor checked (RT7)."""
    return hashlib.sha256(password_hash.encode()).hexdigest()


def combined_amr(*parts: Sequence[str]) -> list[str]:
    """Each method once, in order, and `mfa` last: how RFC 8176 says two factors."""
    seen = dict.fromkeys(value for part in parts for value in part)
    seen.pop(MFA, None)
    return [*seen, MFA]


def asks_second_factor(answer: Mapping[str, Any]) -> bool:
    """Whether a first factor's answer is the mfa_required one (no tokens in it)."""
    return answer.get("mfa_required") is True


@dataclass(frozen=True)
class SecondFactorSettings:
    require_mfa: bool = False  # accounts.require_mfa: tokens of an account without one only enrol


class SecondFactors:
    """The gate (`challenge`) and the second step (`verify`); every instance on one store
    shares the challenges, their tries and the TOTP steps used."""

    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        seal: SecretSeal,
        recovery_key: bytes,
        settings: SecondFactorSettings | None = None,
        *,
        passkeys: PasskeyFactor | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.seal = seal
        self.recovery_key = recovery_key  # core.signing.shared_keys: the same on every instance
        self.settings = settings or SecondFactorSettings()
        self.passkeys = passkeys
        self.clock = clock

    @property
    def require_mfa(self) -> bool:
        return self.settings.require_mfa

    async def methods(self, user_id: str) -> list[str]:
        """The second factors the user can answer with; empty when it has none."""
        factors = await self.store.second_factors(user_id)
        methods = ["totp", "recovery_code"] if factors.totp_confirmed else []
        if self.passkeys is not None and factors.passkeys > 0:
            methods.append("passkey")
        return methods

    async def challenge(
        self, user: User, amr: Sequence[str], password_hash: str | None = None
    ) -> dict[str, Any] | None:
        """For a user whose first factor (`amr`) just passed: None when it has no second
        factor, else the answer that asks for one, its mfa_token stored (single use, five
        minutes, bound to the user, the first factor, and the password it checked)."""
        methods = await self.methods(user.id)
        if {"hwk", "swk"} & set(amr):  # a passkey was the first factor: the second is another
            methods = [method for method in methods if method != "passkey"]
        if not methods:
            return None
        token = secrets.token_urlsafe(32)
        await self.store.put_mfa_challenge(
            MfaChallenge(
                token_hash=mfa_token_hash(token),
                user_id=user.id,
                amr=list(amr),
                expires_at=self.clock() + MFA_TOKEN_SECONDS,
                bound=password_digest(password_hash) if password_hash else None,
            )
        )
        security_event(EventType.MFA_REQUIRED, user=user.id, method=",".join(methods))
        answer: dict[str, Any] = {
            "mfa_required": True,
            "mfa_token": token,
            "methods": methods,
            "expires_in": MFA_TOKEN_SECONDS,
        }
        if self.passkeys is not None and "passkey" in methods:
            answer["passkey_options"] = await self.passkeys.request_options(user.id)
        return answer

    async def verify(
        self,
        mfa_token: str,
        *,
        code: str | None = None,
        recovery_code: str | None = None,
        passkey: Mapping[str, Any] | None = None,
    ) -> dict[str, str]:
        """The session the challenge was for, once one second factor checks out.

        Each try is counted on the challenge (at most MAX_TRIES, atomically) and, as a
        login attempt, on the user's lockout (LG3); a right factor is spent (TOTP step,
        recovery code) before the challenge, which exactly one right answer consumes."""
        offered = {"code": code, "recovery_code": recovery_code, "passkey": passkey}
        given = [name for name, value in offered.items() if value is not None]
        if len(given) != 1:
            raise invalid_request("Give exactly one of code, recovery_code and passkey.")
        if passkey is not None and self.passkeys is None:
            raise invalid_request("This server has no passkeys.")
        token_hash = mfa_token_hash(mfa_token)
        challenge = await self.store.try_mfa_challenge(token_hash, self.clock(), MAX_TRIES)
        if challenge is None:
            raise invalid_mfa_token()
        user_id = challenge.user_id
        throttle = self.accounts.throttle
        key = login_key(user_id, "")
        attempt = await throttle.reserve_login(key)
        try:
            proof = await self._second_factor(user_id, code, recovery_code, passkey)
        except ApiError:
            throttle.login_failed(key, attempt)
            security_event(EventType.MFA_FAILED, user=user_id, method=given[0])
            raise
        if not await self.store.consume_mfa_challenge(token_hash):
            raise invalid_mfa_token()  # a concurrent right answer used it first
        await throttle.login_succeeded(key)
        user = await self.store.get_user(user_id)
        if user is None:
            raise invalid_mfa_token()
        password_hash = None
        if challenge.bound is not None:
            # The password the first factor checked must still be the user's (RT7).
            current = user.password_hash
            if current is None or not hmac.compare_digest(
                password_digest(current), challenge.bound
            ):
                raise invalid_credentials()
            password_hash = current
        self.accounts.refuse_disabled(user, "mfa")
        amr = combined_amr(challenge.amr, proof)
        pair = await self.accounts.open_session(user, amr, password_hash=password_hash)
        security_event(EventType.LOGIN_SUCCEEDED, user=user.id, method=f"mfa_{given[0]}")
        return pair

    async def _second_factor(
        self,
        user_id: str,
        code: str | None,
        recovery_code: str | None,
        passkey: Mapping[str, Any] | None,
    ) -> tuple[str, ...]:
        """The amr of the factor given, spent; invalid_code (or the passkey's own error)."""
        if code is not None:
            if await self.use_totp_code(user_id, code):
                return (OTP,)
            raise invalid_code()
        if recovery_code is not None:
            if await self.use_recovery_code(user_id, recovery_code):
                return (OTP,)
            raise invalid_code()
        assert self.passkeys is not None and passkey is not None  # checked by verify()
        proof = await self.passkeys.verify_assertion(passkey, user_id)
        if proof.user_id != user_id:
            raise invalid_code()  # a passkey of someone else
        return proof.amr

    async def use_totp_code(self, user_id: str, code: str) -> bool:
        """Whether `code` is a current code of the user's confirmed TOTP factor, not used
        before: its step is recorded in the store (compare-and-set), so a code is accepted
        once on every instance, and no earlier one after it."""
        factor = await self.store.get_totp(user_id)
        if factor is None or not factor.confirmed:
            return False
        secret = self.seal.open(factor.secret, user_id)
        if secret is None:
            return False
        step = matching_step(secret, code, self.clock())
        if step is None or step <= factor.last_step:
            return False
        return await self.store.use_totp_step(user_id, step)

    async def use_recovery_code(self, user_id: str, code: str) -> bool:
        """Spend one of the user's recovery codes; False when it is not one (any more)."""
        if len(code) > MAX_CODE_INPUT:
            return False
        return await self.store.use_recovery_code(
            user_id, recovery_code_hash(self.recovery_key, user_id, code)
        )
