"""The identities of an account: its ways in, and explicit linking of provider identities.

A provider identity joins an account only when that account's signed-in user asks for it:
by a provider token (`link`, the same proof of "issued to us" as `/<prefix>/login`) or by
the browser flow (`start`, finished by core.domain.social for the same user). A provider
registration that meets an account through an address the provider vouches for is refused
with 409 account_exists, naming only the kinds of sign-in that account has, so the client
can ask the person to sign in and link; `social.link_verified_email` (default off) links it
instead when both sides verified the email. docs/linking.md says all of it, with the risks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from core.domain.accounts import (
    Accounts,
    ProviderProfile,
    identity_display,
    normal_or_none,
    user_exists,
)
from core.domain.errors import ApiError, invalid_request
from core.domain.event_types import EventType
from core.domain.events import security_event
from core.domain.identifiers import normalize_email, normalize_phone
from core.domain.lifecycle import Lifecycle, invalid_access
from core.domain.social import Provider, SocialSignIn
from core.infra.clock import Clock, system_clock
from core.infra.delivery import Delivery
from storage.base import DuplicateError, Identity, Store, User

log = logging.getLogger("vhod")

MAX_PROVIDER_NAME = 64  # what `provider` may be: a configured name or prefix, or 400

PasskeyCount = Callable[[str], Awaitable[int]]


def identity_in_use() -> ApiError:
    return ApiError(
        409, "identity_in_use", "This provider account is linked to another account already."
    )


def provider_already_linked() -> ApiError:
    return ApiError(
        409,
        "provider_already_linked",
        "The account has an identity at this provider already: unlink it first.",
    )


def last_sign_in_method() -> ApiError:
    return ApiError(
        409,
        "last_sign_in_method",
        "This is the account's last way to sign in: add a password or another one first.",
    )


def identity_not_found() -> ApiError:
    return ApiError(404, "identity_not_found", "The account has no identity at this provider.")


def account_exists(methods: list[str]) -> ApiError:
    return ApiError(
        409,
        "account_exists",
        "An account already holds the email or phone this provider vouches for: sign in to "
        "it and link the provider there.",
        extra={"methods": methods},
    )


def sign_in_methods(user: User, passkeys: int = 0) -> list[str]:
    """The kinds of sign-in an account has ("password", provider names, "passkey"): all
    account_exists tells of it, never its id or addresses."""
    methods = ["password"] if user.password_hash is not None else []
    methods += sorted({identity.provider for identity in user.identities})
    return methods + (["passkey"] if passkeys else [])


class Identities:
    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        social: SocialSignIn,
        lifecycle: Lifecycle,
        delivery: Delivery,
        providers: dict[str, Any],
        *,
        link_verified_email: bool = False,
        passkey_count: PasskeyCount | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.social = social
        self.lifecycle = lifecycle
        self.delivery = delivery
        self.providers = providers
        self.link_verified_email = link_verified_email
        # None until passkeys exist: the count is 0 and never keeps an identity linked.
        self.passkey_count = passkey_count
        self.clock = clock
        social.linker = self
        accounts.before_provider_registration = self.before_registration

    # the account's ways in

    async def view(self, user: User) -> dict[str, Any]:
        return {
            "has_password": user.password_hash is not None,
            "email": {"value": user.email, "verified": bool(user.email and user.email_verified)},
            "phone": {"value": user.phone, "verified": bool(user.phone and user.phone_verified)},
            "providers": [
                {
                    "provider": identity.provider,
                    "display": identity.display,
                    # None for an identity from before linking kept the time (schema 1).
                    "linked_at": int(identity.linked_at) if identity.linked_at else None,
                }
                for identity in user.identities
            ],
            "passkeys": await self._passkeys(user.id),
        }

    # linking

    async def link_with_token(
        self, user: User, provider_name: str, access_token: str, accept_language: str | None
    ) -> dict[str, Any]:
        provider = self.provider(provider_name)
        profile = await self.social.profile_of(provider, access_token)
        return await self._attach(user.id, profile, accept_language, "token")

    async def start(self, user: User, provider_name: str) -> dict[str, str]:
        """The authorization URL of a link flow for `user`; the state keeps the user, in
        the store, so any instance finishes it."""
        provider = self.provider(provider_name)
        if provider.configured and not provider.settings.frontend_redirect:
            raise invalid_request(
                "Linking by the browser needs this provider's frontend_redirect; link with "
                "a provider token instead."
            )
        link = await self.social.link(provider, link_user=user.id)
        return {"url": link.url}

    async def caller_id(self, access_token: str) -> str:
        """Linker: the user of a vhod access token, checked as the account routes check it
        (a disabled account: 403)."""
        return (await self.lifecycle.authenticate(access_token)).user.id

    async def attach(self, user_id: str, profile: ProviderProfile) -> dict[str, Any]:
        """Linker: the end of a browser link flow."""
        return await self._attach(user_id, profile, None, "browser")

    async def _attach(
        self, user_id: str, profile: ProviderProfile, accept_language: str | None, method: str
    ) -> dict[str, Any]:
        user = await self.store.get_user(user_id)
        if user is None:
            raise invalid_access()
        self.accounts.refuse_disabled(user, "link")
        identity = Identity(
            profile.provider, profile.subject, self.clock(), identity_display(profile)
        )
        try:
            linked = await self.store.link_identity(user.id, identity)
        except DuplicateError as exc:
            if exc.field == "provider":
                raise provider_already_linked() from exc
            holder = await self.store.find_user_by_identity(profile.provider, profile.subject)
            if holder is not None and holder.id == user.id:
                return await self.view(holder)  # linked already: nothing to do
            security_event(EventType.IDENTITY_IN_USE, user=user.id, provider=profile.provider)
            raise identity_in_use() from exc
        if not linked:
            raise invalid_access()  # deleted meanwhile
        security_event(
            EventType.IDENTITY_LINKED, user=user.id, provider=profile.provider, method=method
        )
        await self._notify(user, "linked", profile.provider, accept_language)
        return await self.view(await self._reread(user))

    # unlinking

    async def unlink(self, user: User, provider: str, accept_language: str | None) -> bool:
        """Remove the identity at `provider`, a configured one or not (an operator may have
        removed it); 409 last_sign_in_method when nothing else would let the user in."""
        if not provider or len(provider) > MAX_PROVIDER_NAME:
            raise invalid_request("The parameter 'provider' is not a provider name.")
        name = self._name(provider)
        keep_a_way_in = await self._passkeys(user.id) == 0
        outcome = await self.store.unlink_identity(user.id, name, keep_a_way_in=keep_a_way_in)
        if outcome == "not_linked":
            raise identity_not_found()
        if outcome == "last":
            raise last_sign_in_method()
        security_event(EventType.IDENTITY_UNLINKED, user=user.id, provider=name)
        await self._notify(user, "unlinked", name, accept_language)
        return True

    # registration through a provider

    async def before_registration(self, profile: ProviderProfile) -> User | None:
        """Accounts' hook: None when nobody holds what the provider vouches for; the
        account the identity was linked to (link_verified_email); else account_exists."""
        if await self.store.find_user_by_identity(profile.provider, profile.subject):
            raise user_exists("This provider account is already registered.")
        by_email = by_phone = None
        email = normal_or_none(normalize_email, profile.email) if profile.email_verified else None
        if email:
            by_email = await self.store.find_user_by_email(email)
        if profile.phone_verified:
            region = self.accounts.settings.default_region
            phone = normal_or_none(lambda p: normalize_phone(p, region), profile.phone)
            if phone:
                by_phone = await self.store.find_user_by_phone(phone)
        holder = by_email or by_phone
        if holder is None:
            return None
        if by_email is not None and self.link_verified_email and by_email.email_verified:
            linked = await self._link_by_email(by_email, profile)
            if linked is not None:
                return linked
        security_event(
            EventType.ACCOUNT_EXISTS,
            user=holder.id,
            provider=profile.provider,
            channel="email" if holder is by_email else "phone",
        )
        raise account_exists(sign_in_methods(holder, await self._passkeys(holder.id)))

    async def _link_by_email(self, user: User, profile: ProviderProfile) -> User | None:
        """social.link_verified_email: both the provider and the account verified the email;
        None when the account cannot take it (an identity at that provider already)."""
        identity = Identity(
            profile.provider, profile.subject, self.clock(), identity_display(profile)
        )
        try:
            if not await self.store.link_identity(user.id, identity):
                return None
        except DuplicateError as exc:
            if exc.field == "identity":  # registered meanwhile: as a second registration
                raise user_exists("This provider account is already registered.") from exc
            return None
        security_event(
            EventType.IDENTITY_LINKED,
            user=user.id,
            provider=profile.provider,
            method="verified_email",
        )
        await self._notify(user, "linked", profile.provider, None)
        return user

    # helpers

    def provider(self, name: str) -> Provider:
        """A configured provider by its name or its prefix; 400 for any other."""
        if not name or len(name) > MAX_PROVIDER_NAME:
            raise invalid_request("The parameter 'provider' is not a provider name.")
        found = self.providers.get(name)
        if found is None:
            found = next((p for p in self.providers.values() if p.prefix == name), None)
        if found is None:
            raise invalid_request(f"There is no provider '{name}' on this server.")
        return found  # type: ignore[no-any-return]

    def _name(self, provider: str) -> str:
        """The name identities are stored under: a prefix stands for its provider."""
        if provider in self.providers:
            return provider
        by_prefix = next((n for n, p in self.providers.items() if p.prefix == provider), None)
        return by_prefix or provider

    async def _passkeys(self, user_id: str) -> int:
        return 0 if self.passkey_count is None else await self.passkey_count(user_id)

    async def _reread(self, user: User) -> User:
        return await self.store.get_user(user.id) or user

    async def _notify(
        self, user: User, purpose: str, provider: str, accept_language: str | None
    ) -> None:
        """A notice to the account's verified email; an account without one gets none."""
        if not (user.email and user.email_verified):
            return
        configured = self.providers.get(provider)
        title = getattr(configured, "title", None) or provider
        await self.delivery.send_notice(user.email, purpose, accept_language, provider=str(title))
