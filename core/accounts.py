"""Accounts: registration, password and provider sign-in, refresh and logout."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.clock import Clock, system_clock
from core.errors import ApiError, invalid_credentials, invalid_token
from core.events import identifier_hash, security_event
from core.identifiers import normalize_email, normalize_phone
from core.metrics import LoginCounter, LoginObserver
from core.passwords import Hasher, check_password_policy
from core.sessions import carried_over, needs_touch, started_here
from core.throttle import Throttle, login_key
from core.tokens import ACCESS, REFRESH, InvalidToken, TokenService
from storage.base import (
    DuplicateError,
    Identity,
    PartialWrite,
    RefreshToken,
    Store,
    User,
)

REVOCATION_SLACK_SECONDS = 3600


class ProviderProfile(Protocol):
    """What a provider's user info maps to (providers.base.Profile satisfies it)."""

    provider: str
    subject: str
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    avatar: str | None
    email_verified: bool
    phone_verified: bool


@dataclass(frozen=True)
class AccountSettings:
    min_password_length: int = 8
    default_region: str = "RU"
    rotate_refresh: bool = False
    require_verified_email: bool = False  # password login refuses an unverified email


def verified_claims(user: User) -> dict[str, bool]:
    """The access token's word on which of the user's addresses are the user's own."""
    return {"email_verified": user.email_verified, "phone_verified": user.phone_verified}


def unverified_email() -> ApiError:
    return ApiError(
        403, "unverified_email", "The email address is not verified yet: confirm the code sent."
    )


def user_exists(
    description: str = "A user with this email or phone number already exists.",
) -> ApiError:
    return ApiError(409, "user_exists", description)


def account_disabled() -> ApiError:
    return ApiError(403, "account_disabled", "This account is disabled by an operator.")


def user_name(user: User) -> str:
    """The `user_name` claim of the original tokens: email, else phone, else provider:subject."""
    if user.email:
        return user.email
    if user.phone:
        return user.phone
    if user.identities:
        first = user.identities[0]
        return f"{first.provider}:{first.subject}"
    return user.id


class Accounts:
    """The account rules; handlers call these and render what they return."""

    def __init__(
        self,
        store: Store,
        hasher: Hasher,
        tokens: TokenService,
        throttle: Throttle,
        settings: AccountSettings | None = None,
        clock: Clock = system_clock,
        on_login: LoginObserver | None = None,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.tokens = tokens
        self.throttle = throttle
        self.settings = settings or AccountSettings()
        self.clock = clock
        self.counted_login = LoginCounter(on_login)  # `with counted_login(method): …`
        # Told of each user registered with a password (the lifecycle sends its first
        # verification code); None: nothing happens.
        self.after_registration: Callable[[User], Awaitable[None]] | None = None

    # password accounts

    async def register(self, phone_number: str, email: str, secret: str) -> dict[str, str]:
        normal_email = normalize_email(email)
        normal_phone = normalize_phone(phone_number, self.settings.default_region)
        encoded = check_password_policy(secret, self.settings.min_password_length)
        user = User(
            id=new_user_id(),
            email=normal_email,
            phone=normal_phone,
            password_hash=await self.hasher.hash(encoded),
            created_at=self.clock(),
        )
        record, pair = self._new_session(user)
        try:
            await self._create(user, record)
        except DuplicateError as exc:
            raise user_exists() from exc
        security_event("registered", level=logging.INFO, user=user.id, method="password")
        if self.after_registration is not None:
            await self.after_registration(user)
        return pair

    async def login_with_email(self, email: str, secret: str) -> dict[str, str]:
        with self.counted_login("email"):
            normal = normalize_email(email)
            user = await self.store.find_user_by_email(normal)
            return await self._password_login(user, normal, secret, "email")

    async def login_with_phone(self, phone_number: str, secret: str) -> dict[str, str]:
        with self.counted_login("phone"):
            normal = normalize_phone(phone_number, self.settings.default_region)
            user = await self.store.find_user_by_phone(normal)
            return await self._password_login(user, normal, secret, "phone")

    async def _password_login(
        self, user: User | None, identifier: str, secret: str, method: str
    ) -> dict[str, str]:
        encoded = secret.encode("utf-8", "surrogatepass")
        key = login_key(user.id if user else None, identifier)
        attempt = await self.throttle.reserve_login(key)
        # An unknown user (or one without a password) costs one bcrypt check too (LG2).
        stored = user.password_hash if user else None
        if not await self.hasher.verify(encoded, stored) or user is None or stored is None:
            self.throttle.login_failed(key, attempt)
            security_event(
                "login_failed",
                user=user.id if user else None,
                identifier=None if user else identifier_hash(identifier),
            )
            raise invalid_credentials()
        await self.throttle.login_succeeded(key)
        # Told only after the right password, so it reveals nothing to a guesser.
        self._refuse_disabled(user, "login")
        if self.settings.require_verified_email and user.email and not user.email_verified:
            raise unverified_email()
        if self.hasher.needs_rehash(stored):
            await self.store.set_password_hash(user.id, await self.hasher.hash(encoded))
        security_event("login_succeeded", level=logging.INFO, user=user.id, method=method)
        return await self._issue_pair(user)

    @staticmethod
    def _refuse_disabled(user: User, call: str) -> None:
        if user.disabled:
            security_event("disabled_sign_in", user=user.id, call=call)
            raise account_disabled()

    # provider accounts

    async def register_with_provider(self, profile: ProviderProfile) -> dict[str, str]:
        """A new user holding this provider identity, with the provider's email and phone
        where the provider vouches for them and nobody holds them yet; an unverified one
        stays in the profile only (D14). Never signs into an existing user (OA6)."""
        email = _try(normalize_email, profile.email)
        phone = _try(lambda p: normalize_phone(p, self.settings.default_region), profile.phone)
        user = User(
            id=new_user_id(),
            email=email if profile.email_verified else None,
            phone=phone if profile.phone_verified else None,
            identities=[Identity(profile.provider, profile.subject)],
            profile={
                key: value
                for key, value in (
                    ("first_name", profile.first_name),
                    ("last_name", profile.last_name),
                    ("avatar", profile.avatar),
                    ("email", None if profile.email_verified else email),
                    ("phone", None if profile.phone_verified else phone),
                )
                if value
            },
            created_at=self.clock(),
        )
        while True:
            # Only what the provider vouches for is attached, so what is attached is verified.
            user.email_verified, user.phone_verified = (
                user.email is not None,
                user.phone is not None,
            )
            record, pair = self._new_session(user)
            try:
                await self._create(user, record)
                security_event(
                    "registered", level=logging.INFO, user=user.id, provider=profile.provider
                )
                return pair
            except DuplicateError as exc:
                if exc.field == "email" and user.email is not None:
                    user.email = None  # owned by someone else: not attached
                elif exc.field == "phone" and user.phone is not None:
                    user.phone = None
                else:
                    raise user_exists("This provider account is already registered.") from exc

    async def _create(self, user: User, first_session: RefreshToken) -> None:
        """The user and its first refresh token, written as one unit (D16)."""
        try:
            await self.store.create_user(user, first_session)
        except PartialWrite as exc:
            raise ApiError(
                503,
                "storage_unavailable",
                "The database stopped answering part-way; the account may exist: sign in"
                " to check before registering again.",
            ) from exc

    async def login_with_provider(self, profile: ProviderProfile) -> dict[str, str]:
        user = await self.store.find_user_by_identity(profile.provider, profile.subject)
        if user is None:
            raise ApiError(
                404, "user_not_found", "No user is registered with this provider account."
            )
        self._refuse_disabled(user, "login")
        security_event(
            "login_succeeded", level=logging.INFO, user=user.id, provider=profile.provider
        )
        return await self._issue_pair(user)

    # tokens

    def validate_access(self, token: str) -> bool:
        try:
            self.tokens.check(token, ACCESS)
        except InvalidToken:
            return False
        return True

    async def refresh(self, token: str) -> dict[str, Any]:
        """A new access token for a live refresh token; with rotation, a new refresh token too."""
        record, user = await self._live_refresh(token)
        now = self.clock()
        result: dict[str, Any] = {
            "access": self.tokens.issue(
                ACCESS, user.id, user_name(user), session=record.family, extra=verified_claims(user)
            ).token,
            "email": user.email,
        }
        if self.settings.rotate_refresh:
            issued = self.tokens.issue(REFRESH, user.id, user_name(user))
            successor = RefreshToken(
                jti=issued.jti,
                user_id=user.id,
                family=record.family,
                expires_at=issued.expires_at,
                issued_at=now,
                **carried_over(record, now),
            )
            if not await self.store.rotate_refresh_token(record.jti, successor, now):
                raise invalid_token()  # a concurrent refresh of the same token won
            result["refresh"] = issued.token
        elif needs_touch(record, now):
            await self.store.touch_refresh_token(record.jti, now)
        return result

    async def logout(self, token: str, everywhere: bool = False) -> bool:
        try:
            claims = self.tokens.decode(token, REFRESH)
        except InvalidToken as exc:
            raise invalid_token() from exc
        if everywhere:
            # Ending every session takes a live session: a revoked, retired or expired
            # token (a stolen copy of an old one, say) cannot end the others.
            record, _user = await self._live_refresh(token)
            await self.end_all_sessions(record.user_id)
        else:
            await self.store.revoke_refresh_token(claims["jti"])
        scope = "all" if everywhere else "one"
        security_event("logout", level=logging.INFO, user=claims["sub"], scope=scope)
        return True

    async def end_all_sessions(self, user_id: str) -> None:
        """Revoke every refresh token of the user, and any successor a rotation in flight
        stores afterwards."""
        await self.store.revoke_user_tokens(user_id, until=self._revocation_horizon())

    async def _live_refresh(self, token: str) -> tuple[RefreshToken, User]:
        try:
            claims = self.tokens.decode(token, REFRESH)
        except InvalidToken as exc:
            raise invalid_token() from exc
        found = await self.store.get_refresh_token_and_user(claims["jti"])
        if found is None or found[0].user_id != claims["sub"]:
            raise invalid_token()
        record, user = found
        if record.replaced_by:
            # A retired token came back: someone holds a copy. End the whole chain (RT3).
            await self.store.revoke_family(record.family, until=self._revocation_horizon())
            security_event("refresh_reuse", user=record.user_id, family=record.family)
            raise invalid_token()
        if user is None:
            raise invalid_token()
        # Before the revocation check: blocking revoked every session, and the answer
        # says why the session ended.
        self._refuse_disabled(user, "refresh")
        if record.revoked or record.expires_at <= self.clock():
            raise invalid_token()
        return record, user

    def _revocation_horizon(self) -> float:
        """How long a family revocation is kept: past the expiry of any successor a
        rotation in flight right now could still store (an hour covers clock skew)."""
        return self.clock() + self.tokens.refresh_ttl + REVOCATION_SLACK_SECONDS

    def _new_session(self, user: User) -> tuple[RefreshToken, dict[str, str]]:
        """A new token pair for `user`, and the refresh token's record (not yet stored)."""
        name = user_name(user)
        refresh = self.tokens.issue(REFRESH, user.id, name)
        now = self.clock()
        record = RefreshToken(
            jti=refresh.jti,
            user_id=user.id,
            family=refresh.jti,
            expires_at=refresh.expires_at,
            issued_at=now,
            **started_here(now),
        )
        # sid: the family
        access = self.tokens.issue(
            ACCESS, user.id, name, session=refresh.jti, extra=verified_claims(user)
        )
        pair = {"access": access.token, "refresh": refresh.token}
        return record, pair

    async def issue_pair(self, user: User) -> dict[str, str]:
        """A new session for `user` (after a password reset or change, say)."""
        return await self._issue_pair(user)

    async def _issue_pair(self, user: User) -> dict[str, str]:
        record, pair = self._new_session(user)
        await self.store.add_refresh_token(record)
        return pair


def new_user_id() -> str:
    return uuid.uuid4().hex


def _try(normalize: Callable[[str], str], value: str | None) -> str | None:
    """The normal form of a provider-supplied identifier, or None when it has none."""
    if not value:
        return None
    try:
        return normalize(value)
    except ApiError:
        return None
