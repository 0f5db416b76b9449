"""Accounts: registration, password and provider sign-in (sessions: core.domain.token_sessions)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.domain.claims import awaits_email
from core.domain.errors import ApiError, invalid_credentials, unverified_email
from core.domain.event_types import EventType
from core.domain.events import identifier_hash, security_event
from core.domain.identifiers import normalize_email, normalize_phone
from core.domain.mfa import asks_second_factor
from core.domain.password_upgrade import upgrade_hash
from core.domain.passwords import Hasher, check_password_policy
from core.domain.revocations import RevokedSessions
from core.domain.throttle import Throttle, login_key
from core.domain.token_sessions import TokenSessions
from core.infra.clock import Clock, system_clock
from core.infra.metrics import LoginCounter, LoginObserver
from core.signing.tokens import TokenService
from storage.base import (
    DuplicateError,
    Identity,
    PartialWrite,
    RefreshToken,
    Store,
    User,
)

PASSWORD = "pwd"  # RFC 8176


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
    # An account whose email is not verified gets sessions that only confirm it: password
    # login 403, refresh 403, access tokens scoped to the verification routes.
    require_verified_email: bool = False


def user_exists(
    description: str = "A user with this email or phone number already exists.",
) -> ApiError:
    return ApiError(409, "user_exists", description)


def account_disabled() -> ApiError:
    return ApiError(403, "account_disabled", "This account is disabled by an operator.")


class Accounts(TokenSessions):
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
        revoked: RevokedSessions | None = None,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.tokens = tokens
        self.throttle = throttle
        self.settings = settings or AccountSettings()
        self.clock = clock
        self.counted_login = LoginCounter(on_login)  # `with counted_login(method): …`
        # Sessions ended lately, on any instance: their access tokens check false. Filled by
        # revoked.poll() and revoked.follow() (server.py), never read per check.
        self.revoked = revoked or RevokedSessions(store, access_ttl=tokens.access_ttl, clock=clock)
        # Told of each user registered with a password (the lifecycle sends its first
        # verification code); None: nothing happens.
        self.after_registration: Callable[[User], Awaitable[None]] | None = None
        # Asked before a provider registration, and again when the write collides on an
        # email or phone (core.domain.identities): raises account_exists, or links the identity
        # to an existing account and returns that account (social.link_verified_email);
        # None: register. Without it, a taken address is left out of the new account.
        self.before_provider_registration: (
            Callable[[ProviderProfile], Awaitable[User | None]] | None
        ) = None

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
        record, pair = self._new_session(user, enrol_only=self.enrol_only_when_new)
        try:
            await self._create(user, record)
        except DuplicateError as exc:
            raise user_exists() from exc
        security_event(EventType.REGISTERED, user=user.id, method="password")
        if self.after_registration is not None:
            await self.after_registration(user)
        return pair

    @property
    def enrol_only_when_new(self) -> bool:
        """Whether a new account's first session may only enrol a second factor."""
        return self.second_factors is not None and self.second_factors.require_mfa

    async def login_with_email(self, email: str, secret: str) -> dict[str, Any]:
        with self.counted_login("email"):
            normal = normalize_email(email)
            user = await self.store.find_user_by_email(normal)
            return await self._password_login(user, normal, secret, "email")

    async def login_with_phone(self, phone_number: str, secret: str) -> dict[str, Any]:
        with self.counted_login("phone"):
            normal = normalize_phone(phone_number, self.settings.default_region)
            user = await self.store.find_user_by_phone(normal)
            return await self._password_login(user, normal, secret, "phone")

    async def _password_login(
        self, user: User | None, identifier: str, secret: str, method: str
    ) -> dict[str, Any]:
        encoded = secret.encode("utf-8", "surrogatepass")
        key = login_key(user.id if user else None, identifier)
        attempt = await self.throttle.reserve_login(key)
        # An unknown user (or one without a password) costs one bcrypt check too (LG2).
        stored = user.password_hash if user else None
        if not await self.hasher.verify(encoded, stored) or user is None or stored is None:
            self.throttle.login_failed(key, attempt)
            security_event(
                EventType.LOGIN_FAILED,
                user=user.id if user else None,
                identifier=None if user else identifier_hash(identifier),
            )
            raise invalid_credentials()
        # Told only after the right password, so it reveals nothing to a guesser.
        self.refuse_disabled(user, "login")
        if self.awaits_email(user):
            raise unverified_email()
        checked = await upgrade_hash(self.store, self.hasher, user.id, encoded, stored)
        answer = await self.start_session(user, "login", [PASSWORD], password_hash=checked)
        if asks_second_factor(answer):
            return answer  # the failure count stays until the second factor passes
        await self.throttle.login_succeeded(key)
        security_event(EventType.LOGIN_SUCCEEDED, user=user.id, method=method)
        return answer

    def awaits_email(self, user: User) -> bool:
        """Whether `accounts.require_verified_email` holds the user to confirming the email."""
        return awaits_email(user, self.settings.require_verified_email)

    @staticmethod
    def refuse_disabled(user: User, call: str) -> None:
        """403 account_disabled for a user an operator disabled: no route issues, renews or
        acts for its sessions."""
        if user.disabled:
            security_event(EventType.DISABLED_SIGN_IN, user=user.id, call=call)
            raise account_disabled()

    # provider accounts

    async def register_with_provider(self, profile: ProviderProfile) -> dict[str, str]:
        """A new user holding this provider identity, with the provider's email and phone
        where the provider vouches for them; an unverified one stays in the profile only
        (D14). An address the provider vouches for that an account holds already is 409
        account_exists (before_provider_registration): never signs into an existing user
        (OA6), unless social.link_verified_email links the identity to it explicitly."""
        if self.before_provider_registration is not None:
            existing = await self.before_provider_registration(profile)
            if existing is not None:
                return await self._signed_in_by_link(existing, profile)
        email = normal_or_none(normalize_email, profile.email)
        phone = normal_or_none(
            lambda p: normalize_phone(p, self.settings.default_region), profile.phone
        )
        now = self.clock()
        user = User(
            id=new_user_id(),
            email=email if profile.email_verified else None,
            phone=phone if profile.phone_verified else None,
            identities=[
                Identity(profile.provider, profile.subject, now, identity_display(profile))
            ],
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
            created_at=now,
        )
        retries = 3
        while True:
            # Only what the provider vouches for is attached, so what is attached is verified.
            user.email_verified, user.phone_verified = (
                user.email is not None,
                user.phone is not None,
            )
            record, pair = self._new_session(user, enrol_only=self.enrol_only_when_new)
            try:
                await self._create(user, record)
                security_event(EventType.REGISTERED, user=user.id, provider=profile.provider)
                return pair
            except DuplicateError as exc:
                taken = exc.field in ("email", "phone") and getattr(user, exc.field) is not None
                if not taken:
                    raise user_exists("This provider account is already registered.") from exc
                if self.before_provider_registration is not None and retries:
                    retries -= 1
                    # Registered meanwhile: the same answer as had it been there first.
                    existing = await self.before_provider_registration(profile)
                    if existing is not None:
                        return await self._signed_in_by_link(existing, profile)
                    continue  # its holder is gone again: try once more as it is
                setattr(user, exc.field, None)  # owned by someone else: not attached

    async def _signed_in_by_link(self, user: User, profile: ProviderProfile) -> dict[str, str]:
        self.refuse_disabled(user, "login")
        security_event(EventType.LOGIN_SUCCEEDED, user=user.id, provider=profile.provider)
        return await self._issue_pair(user)

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

    async def login_with_provider(self, profile: ProviderProfile) -> dict[str, Any]:
        user = await self.store.find_user_by_identity(profile.provider, profile.subject)
        if user is None:
            raise ApiError(
                404, "user_not_found", "No user is registered with this provider account."
            )
        answer = await self.start_session(user, "login")
        if not asks_second_factor(answer):
            security_event(EventType.LOGIN_SUCCEEDED, user=user.id, provider=profile.provider)
        return answer


def identity_display(profile: ProviderProfile) -> str | None:
    """How the account's list of ways in shows an identity: the name the provider gives,
    else its email masked (a***@example.com), else nothing."""
    name = " ".join(part for part in (profile.first_name, profile.last_name) if part).strip()
    if name:
        return name[:MAX_DISPLAY]
    if profile.email and "@" in profile.email:
        local, _, domain = profile.email.rpartition("@")
        return f"{local[:1]}***@{domain}"[:MAX_DISPLAY]
    return None


MAX_DISPLAY = 128  # a provider's name is its user's word: bounded before it is stored


def new_user_id() -> str:
    return uuid.uuid4().hex


def normal_or_none(normalize: Callable[[str], str], value: str | None) -> str | None:
    """The normal form of a provider-supplied identifier, or None when it has none."""
    if not value:
        return None
    try:
        return normalize(value)
    except ApiError:
        return None
