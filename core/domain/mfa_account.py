"""A signed-in user's second factors: the list, TOTP set-up, confirmation and removal, new
recovery codes; and the operator's reset. The sign-in side is core.domain.mfa."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from core.config.lifecycle_settings import AccountsConfig
from core.domain.claims import user_name
from core.domain.codes import invalid_code
from core.domain.errors import ApiError, invalid_credentials, invalid_request
from core.domain.event_types import EventType
from core.domain.events import security_event
from core.domain.mfa import PasskeyFactor, SecondFactors, SecondFactorSettings
from core.domain.throttle import login_key
from core.domain.totp import (
    SecretSeal,
    matching_step,
    new_recovery_codes,
    new_secret,
    otpauth_uri,
    qr_svg,
    recovery_code_hash,
    recovery_key,
)
from core.infra.clock import Clock
from core.signing.kek import KeyEncryptionKey
from core.signing.keys import KeyRing
from storage.base import Store, TotpFactor, User

if TYPE_CHECKING:
    from core.domain.accounts import Accounts


def totp_enabled() -> ApiError:
    return ApiError(409, "totp_enabled", "TOTP is on already: disable it before a new set-up.")


def totp_not_set_up() -> ApiError:
    return ApiError(
        409, "totp_not_set_up", "No TOTP set-up waits for a code: call totp/setup first."
    )


def totp_not_enabled() -> ApiError:
    return ApiError(409, "totp_not_enabled", "TOTP is not on for this account.")


class SecondFactorAccount:
    """What /authorization/mfa/… and the admin reset call; every check is in the store,
    so any instance serves any step."""

    def __init__(self, factors: SecondFactors, issuer: str) -> None:
        self.factors = factors
        self.store = factors.store
        self.accounts = factors.accounts
        self.issuer = issuer  # the name an authenticator app shows beside the account
        # Removes the user's passkeys at an operator's reset (the passkey store, when
        # passkeys are configured); returns how many went. None: there are none to remove.
        self.passkeys_reset_hook: Callable[[str], Awaitable[int]] | None = None

    async def describe(self, user: User) -> dict[str, Any]:
        # What the sign-in gate reads (SecondFactors.methods), in the same one call.
        factors = await self.store.second_factors(user.id)
        return {
            "totp": factors.totp_confirmed,
            "passkeys": factors.passkeys if self.factors.passkeys is not None else 0,
            "recovery_codes": await self.store.count_recovery_codes(user.id),
            "required": self.factors.require_mfa,
        }

    async def setup_totp(self, user: User) -> dict[str, str]:
        """A new secret, not active until confirmed; a set-up not confirmed is replaced."""
        secret = new_secret()
        sealed = self.factors.seal.seal(secret, user.id)
        factor = TotpFactor(user.id, sealed, created_at=self.factors.clock())
        if not await self.store.put_totp(factor):
            raise totp_enabled()
        uri = otpauth_uri(secret, user_name(user), self.issuer)
        return {"secret": secret, "otpauth_uri": uri, "qr_svg": qr_svg(uri)}

    async def confirm_totp(self, user: User, code: str) -> dict[str, list[str]]:
        """Turn TOTP on with a right code of the secret set up; ten new recovery codes,
        shown this once (only their keyed hashes are stored). Wrong codes count towards
        the user's lockout, as a password check does."""
        factor = await self.store.get_totp(user.id)
        if factor is None:
            raise totp_not_set_up()
        if factor.confirmed:
            raise totp_enabled()
        secret = self.factors.seal.open(factor.secret, user.id)
        if secret is None:
            raise totp_not_set_up()  # sealed under a key this server no longer has
        key = login_key(user.id, "")
        throttle = self.accounts.throttle
        attempt = await throttle.reserve_login(key)
        step = matching_step(secret, code, self.factors.clock())
        if step is None or not await self.store.confirm_totp(user.id, factor.secret, step):
            throttle.login_failed(key, attempt)
            raise invalid_code()
        await throttle.login_succeeded(key)
        codes = await self._new_recovery_codes(user.id)
        security_event(EventType.TOTP_ENABLED, user=user.id)
        return {"recovery_codes": codes}

    async def disable_totp(self, user: User, password: str | None, code: str | None) -> bool:
        """TOTP and its recovery codes off, after a fresh proof (see `prove`)."""
        totp = await self.store.get_totp(user.id)
        if totp is None:
            raise totp_not_enabled()
        await self.prove(user, password, code)
        await self.store.delete_totp(user.id)
        await self.store.set_recovery_codes(user.id, [])
        security_event(EventType.TOTP_DISABLED, user=user.id)
        return True

    async def regenerate_recovery_codes(
        self, user: User, password: str | None, code: str | None
    ) -> dict[str, list[str]]:
        """Ten new recovery codes in place of the old ones, after a fresh proof."""
        totp = await self.store.get_totp(user.id)
        if totp is None or not totp.confirmed:
            raise totp_not_enabled()
        await self.prove(user, password, code)
        codes = await self._new_recovery_codes(user.id)
        security_event(EventType.RECOVERY_CODES_REGENERATED, user=user.id)
        return {"recovery_codes": codes}

    async def prove(self, user: User, password: str | None, code: str | None) -> None:
        """A fresh proof that the caller is the user, not only a holder of its access
        token: the password; for an account without one, a current TOTP code (spent).
        Counted against the user's lockout either way."""
        if user.password_hash is not None:
            if password is None:
                raise invalid_request("The parameter 'hash_password' is required.")
        elif code is None:
            raise invalid_request("The parameter 'code' (a current TOTP code) is required.")
        key = login_key(user.id, "")
        throttle = self.accounts.throttle
        attempt = await throttle.reserve_login(key)
        if password is not None and user.password_hash is not None:
            encoded = password.encode("utf-8", "surrogatepass")
            if not await self.accounts.hasher.verify(encoded, user.password_hash):
                throttle.login_failed(key, attempt)
                security_event(EventType.PASSWORD_CHECK_FAILED, user=user.id)
                raise invalid_credentials()
        elif code is None or not await self.factors.use_totp_code(user.id, code):
            throttle.login_failed(key, attempt)
            security_event(EventType.MFA_FAILED, user=user.id, method="code")
            raise invalid_code()
        await throttle.login_succeeded(key)

    async def reset(self, user_id: str) -> dict[str, Any]:
        """An operator's reset: the user's TOTP, recovery codes and (through the hook)
        passkeys go; sessions stay. The caller audits it."""
        removed = await self.store.delete_totp(user_id)
        codes = await self.store.count_recovery_codes(user_id)
        await self.store.set_recovery_codes(user_id, [])
        passkeys = 0
        if self.passkeys_reset_hook is not None:
            passkeys = await self.passkeys_reset_hook(user_id)
        return {"totp": removed, "recovery_codes": codes, "passkeys": passkeys}

    async def _new_recovery_codes(self, user_id: str) -> list[str]:
        codes = new_recovery_codes()
        key = self.factors.recovery_key
        await self.store.set_recovery_codes(
            user_id, [recovery_code_hash(key, user_id, code) for code in codes]
        )
        return codes


def seal_roots(kek: KeyEncryptionKey | None, ring: KeyRing) -> list[bytes]:
    """What TOTP secrets are sealed under: the key-encryption key where there is one, else
    the HMAC signing secret (every instance on the store has one or the other); both open
    them, so moving from an HMAC secret to a key pair keeps the users' authenticators."""
    roots = [kek.totp_root()] if kek is not None else []
    if ring.hmac is not None:
        roots.append(ring.hmac.signing)
    return roots


def second_factors_from(
    settings: AccountsConfig,
    store: Store,
    accounts: Accounts,
    roots: list[bytes],
    codes_key: bytes,
    passkeys: PasskeyFactor | None,
    clock: Clock,
) -> tuple[SecondFactors, SecondFactorAccount]:
    """The sign-in gate (installed on `accounts`) and the account side, built at start."""
    factors = SecondFactors(
        store,
        accounts,
        SecretSeal(roots),
        recovery_key(codes_key),
        SecondFactorSettings(require_mfa=settings.require_mfa),
        passkeys=passkeys,
        clock=clock,
    )
    accounts.second_factors = factors
    return factors, SecondFactorAccount(factors, settings.totp_issuer)
