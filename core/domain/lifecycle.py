"""The account lifecycle: password reset and change, address verification, sessions and
deletion. Plain service functions over the store, the codes and the delivery channels; no
HTTP here, so the handlers and the admin API call the same functions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from core.domain.accounts import Accounts, account_disabled
from core.domain.after_answer import AfterAnswer, reported
from core.domain.claims import ENROL_MFA_SCOPE
from core.domain.codes import Codes, invalid_code, recipient
from core.domain.errors import (
    ApiError,
    invalid_credentials,
    invalid_request,
    mfa_enrolment_required,
    unverified_email,
)
from core.domain.event_types import EventType
from core.domain.events import client_ip_var, identifier_hash, security_event
from core.domain.identifiers import one_identifier
from core.domain.passwords import check_password_policy
from core.domain.reset_work import HoldBack, reset_key, store_stand_in_code
from core.domain.throttle import login_key
from core.domain.token_sessions import REVOCATION_SLACK_SECONDS
from core.domain.user_sessions import UserSessions
from core.infra.clock import Clock, system_clock
from core.infra.delivery import Delivery
from core.infra.net import address_key
from core.signing.tokens import ACCESS, InvalidToken
from storage.base import Store, User, find_user_by_address

FIELDS = {"email": "email", "phone": "phone"}  # channel -> the user field it reaches
VERIFIED = {"email": EventType.EMAIL_VERIFIED, "phone": EventType.PHONE_VERIFIED}
log = logging.getLogger("vhod")


def invalid_access() -> ApiError:
    return ApiError(
        401, "invalid_token", "The access token is invalid, expired or its session has ended."
    )


def no_address(channel: str) -> ApiError:
    what = "email address" if channel == "email" else "phone number"
    return ApiError(400, "invalid_request", f"The account has no {what} to send a code to.")


@dataclass(frozen=True)
class Caller:
    """The user an access token speaks for, and its session (the token's sid)."""

    user: User
    session: str | None


class Lifecycle(UserSessions):
    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        codes: Codes,
        delivery: Delivery,
        *,
        require_verified_email: bool = False,
        clock: Clock = system_clock,
        flush_events: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        # Writes the audit events still queued, so that a deletion can pseudonymise them all.
        self.flush_events = flush_events
        self.store = store
        self.accounts = accounts
        self.codes = codes
        self.delivery = delivery
        self.clock = clock
        self._after = AfterAnswer()  # the reset codes going out after their answers
        self._hold = HoldBack()  # a reset's delivery waits a random while (item 9)
        if require_verified_email:
            accounts.after_registration = self._send_first_verification

    # who is calling

    async def authenticate(
        self,
        access_token: str,
        *,
        live_session: bool = False,
        verifying_email: bool = False,
        enrolling_mfa: bool = False,
    ) -> Caller:
        """The caller of a Bearer access token, checked as /validate/jwt/access checks it;
        with `live_session`, its session must not have ended (logout, revocation). While
        `accounts.require_verified_email` waits for the user's email, only the routes that
        confirm it (`verifying_email`) act for it: 403 unverified_email elsewhere; and while
        `accounts.require_mfa` waits for a second factor, only the routes that enrol one
        (`enrolling_mfa`): 403 mfa_required_enrolment elsewhere."""
        try:
            claims = self.accounts.tokens.decode(access_token, ACCESS)
        except InvalidToken as exc:
            raise invalid_access() from exc
        user = await self.store.get_user(claims["sub"])
        if user is None:
            raise invalid_access()
        # Before the session check, as refresh does: disabling ended every session, and the
        # answer says why. No audit event: this is no sign-in, and a leftover access token
        # must not be a way to fill the audit log.
        if user.disabled:
            raise account_disabled()
        if not verifying_email and self.accounts.awaits_email(user):
            raise unverified_email()
        # A session `accounts.require_mfa` holds to enrolling a second factor does that only.
        if not enrolling_mfa and claims.get("scope") == ENROL_MFA_SCOPE:
            raise mfa_enrolment_required()
        session = claims.get("sid") if isinstance(claims.get("sid"), str) else None
        if live_session and session not in await self._live_families(user.id):
            raise invalid_access()
        return Caller(user, session)

    # password reset

    async def request_reset(
        self, email: str | None, phone: str | None, accept_language: str | None = None
    ) -> bool:
        """True whether or not the account exists, at once; when it exists, a code goes out
        after the answer (a failed delivery is a `reset_not_sent` event, not an error)."""
        channel, address = self._identifier(email, phone)
        self.delivery.require(channel)
        await self.codes.check_send_limits(address, self._client())
        user = await self._find(channel, address)
        if self._after.start(lambda: self._send_reset(channel, address, user, accept_language)):
            return True
        if user is None:  # too many pending: one event either way, nothing sent
            security_event(EventType.PASSWORD_RESET_UNKNOWN, identifier=identifier_hash(address))
        else:
            security_event(EventType.PASSWORD_RESET_NOT_SENT, user=user.id, reason="busy")
        return True

    async def _send_reset(
        self, channel: str, address: str, user: User | None, accept_language: str | None
    ) -> None:
        if user is None:  # the same work as an account's, but the delivery (item 9)
            await store_stand_in_code(self.codes, address, recipient(channel, address))
            await self._hold.wait()
            security_event(EventType.PASSWORD_RESET_UNKNOWN, identifier=identifier_hash(address))
            return
        send = self._send(channel, address, user, "reset", accept_language, held=True)
        if await reported(send, EventType.PASSWORD_RESET_NOT_SENT, "a reset code", user=user.id):
            security_event(EventType.PASSWORD_RESET_REQUESTED, user=user.id, channel=channel)

    async def drain(self, grace: float) -> None:
        """Wait up to `grace` seconds for the codes still going out, then cancel the rest:
        at shutdown, before the store closes."""
        with self._hold.released():  # the held sends go now
            late = await self._after.drain(grace)
        if late:
            log.warning("shutdown: %d reset codes were not sent in time", late)

    async def confirm_reset(
        self, email: str | None, phone: str | None, code: str, new_password: str
    ) -> dict[str, Any]:
        """A new pair for the right code; every earlier session of the user ends."""
        channel, address = self._identifier(email, phone)
        encoded = check_password_policy(new_password, self.accounts.settings.min_password_length)
        user = await self._find(channel, address)
        # The same store calls whether or not the account exists (item 9): an unknown
        # address counts its attempt on its stand-in code, which no answer matches.
        await self.codes.confirm(reset_key(user, address), code, recipient(channel, address))
        if user is None:
            raise invalid_code()
        # Told only after the right code, so it reveals nothing to a guesser; nothing changes.
        self.accounts.refuse_disabled(user, "reset")
        # The code reached the address: it is the user's.
        await self.store.set_verified(user.id, FIELDS[channel], address)
        await self.store.reset_counter(login_key(user.id, address))
        return await self._replace_password(user, encoded, EventType.PASSWORD_RESET)

    # password change

    async def change_password(
        self, caller: Caller, current: str, new_password: str
    ) -> dict[str, Any]:
        encoded = check_password_policy(new_password, self.accounts.settings.min_password_length)
        await self._check_password(caller.user, current)
        checked = caller.user.password_hash
        assert checked is not None  # a user without a password fails the check
        return await self._replace_password(
            caller.user, encoded, EventType.PASSWORD_CHANGED, replacing=checked
        )

    async def _check_password(self, user: User, secret: str) -> None:
        """401 invalid_credentials unless `secret` is the user's password; counted against
        the user's login failures (LG3), so a stolen access token cannot guess at it."""
        key = login_key(user.id, "")
        attempt = await self.accounts.throttle.reserve_login(key)
        encoded = secret.encode("utf-8", "surrogatepass")
        if not await self.accounts.hasher.verify(encoded, user.password_hash):
            self.accounts.throttle.login_failed(key, attempt)
            security_event(EventType.PASSWORD_CHECK_FAILED, user=user.id)
            raise invalid_credentials()
        await self.accounts.throttle.login_succeeded(key)

    async def _replace_password(
        self, user: User, encoded: bytes, event: EventType, *, replacing: str | None = None
    ) -> dict[str, Any]:
        """Set the new password, end every session, start one on the new password.
        `replacing`: the hash the caller's check used; the change happens only over it (a
        concurrent change or reset wins, and this one answers 401)."""
        new_hash = await self.accounts.hasher.hash(encoded)
        if replacing is None:
            await self.store.set_password_hash(user.id, new_hash)
        elif not await self.store.swap_password_hash(user.id, replacing, new_hash):
            security_event(
                EventType.PASSWORD_CHECK_FAILED, user=user.id, reason="password_replaced"
            )
            raise invalid_credentials()
        await self.store.revoke_user_tokens(user.id, until=self._horizon(), now=self.clock())
        security_event(event, user=user.id)
        fresh = await self.store.get_user(user.id)
        if fresh is None:  # deleted meanwhile
            raise invalid_access()
        self.accounts.refuse_disabled(fresh, event)
        # Refused if another change or reset replaced this password meanwhile.
        if event == EventType.PASSWORD_RESET:
            # A reset proves an address, a first factor: a second one is still due.
            return await self.accounts.start_session(fresh, "reset", password_hash=new_hash)
        return await self.accounts.issue_password_pair(fresh, new_hash)

    # verification

    async def send_verification(
        self, caller: Caller, channel: str, accept_language: str | None = None
    ) -> bool:
        """Send a code to the caller's email or phone; nothing when it is verified already."""
        address = self._address(caller.user, channel)
        if self._verified(caller.user, channel):
            return True
        self.delivery.require(channel)
        await self.codes.check_send_limits(address, self._client())
        await self._send(channel, address, caller.user, f"verify_{channel}", accept_language)
        return True

    async def confirm_verification(self, caller: Caller, channel: str, code: str) -> bool:
        address = self._address(caller.user, channel)
        key = f"verify_{channel}:{caller.user.id}"
        await self.codes.confirm(key, code, recipient(channel, address))
        await self.store.set_verified(caller.user.id, FIELDS[channel], address)
        security_event(VERIFIED[channel], user=caller.user.id)
        return True

    async def _send_first_verification(self, user: User) -> None:
        """After a registration: a code to the new email. A failed delivery does not undo
        the registration; the user asks for another code."""
        if user.email is None:
            return
        try:
            # Counted like any other send: registering, deleting and registering again
            # must not mail one address beyond its limit.
            await self.codes.check_send_limits(user.email, self._client())
            await self._send("email", user.email, user, "verify_email", None)
        except ApiError as exc:
            security_event(EventType.VERIFICATION_NOT_SENT, user=user.id, reason=exc.code)

    # deletion

    async def send_deletion_code(self, caller: Caller, accept_language: str | None = None) -> bool:
        """A code for deleting an account without a password, to its email, else phone."""
        channel = self._deletion_channel(caller.user)
        address = self._address(caller.user, channel)
        self.delivery.require(channel)
        await self.codes.check_send_limits(address, self._client())
        await self._send(channel, address, caller.user, "delete", accept_language)
        return True

    async def delete_own_account(
        self, caller: Caller, password: str | None, code: str | None
    ) -> bool:
        """Delete the caller's account: its password proves it, or, for an account that has
        none (provider sign-in only), a fresh code from send_deletion_code."""
        user = caller.user
        if user.password_hash is not None:
            if password is None:
                raise invalid_request("The parameter 'hash_password' is required.")
            await self._check_password(user, password)
        elif code is not None:
            channel = self._deletion_channel(user)
            to = recipient(channel, self._address(user, channel))
            await self.codes.confirm(f"delete:{user.id}", code, to)
        else:
            raise invalid_request("The parameter 'code' is required.")
        return await self.delete_account(user.id)

    async def delete_account(self, user_id: str) -> bool:
        """Remove the user's personal data, identities, tokens and codes, freeing the email,
        phone and provider identities; False when there is no such user. The security event
        names only a pseudonym of the id."""
        user = await self.store.get_user(user_id)
        if user is None:
            return False
        # First the events, so that the deletion's scrubbing (SQLite) covers their old copies.
        pseudonym = identifier_hash(f"user:{user_id}")
        if self.flush_events is not None:
            await self.flush_events()
        await self.store.forget_user_in_events(user_id, pseudonym)
        await self.store.delete_user(user_id, until=self._horizon(), now=self.clock())
        await self.store.reset_counter(login_key(user_id, ""))
        # The code-send counts of its addresses stay (keyed by pseudonyms, gone within the
        # hour): a deletion must not give an address a fresh allowance of mail.
        security_event(EventType.ACCOUNT_DELETED, identifier=pseudonym)
        return True

    # helpers

    def _identifier(self, email: str | None, phone: str | None) -> tuple[str, str]:
        return one_identifier(email, phone, self.accounts.settings.default_region)

    async def _find(self, channel: str, address: str) -> User | None:
        return await find_user_by_address(self.store, channel, address)

    @staticmethod
    def _address(user: User, channel: str) -> str:
        address = user.email if channel == "email" else user.phone
        if address is None:
            raise no_address(channel)
        return address

    @staticmethod
    def _deletion_channel(user: User) -> str:
        return "email" if user.email else "phone"

    @staticmethod
    def _verified(user: User, channel: str) -> bool:
        return user.email_verified if channel == "email" else user.phone_verified

    async def _send(
        self,
        channel: str,
        address: str,
        user: User,
        purpose: str,
        accept_language: str | None,
        *,
        held: bool = False,
    ) -> None:
        """Issue a code for `purpose` and deliver it (`held`: after the reset's hold); a
        code that did not go out is withdrawn, so none stays valid that the user never
        received."""
        key = f"{purpose}:{user.id}"  # a reset's: reset_key(user, address)
        try:
            code = await self.codes.issue(key, user.id, recipient(channel, address))
        except asyncio.CancelledError:  # at shutdown: the store's thread may still write it
            await self.codes.withdraw(key)
            raise
        template = purpose.split("_")[0]  # verify_email and verify_phone share one text
        try:
            if held:
                await self._hold.wait()
            await self.delivery.send_code(
                channel, address, template, code, self.codes.minutes, accept_language
            )
        except (ApiError, asyncio.CancelledError):  # undelivered, or cancelled at shutdown
            await self.codes.withdraw(key)
            raise

    def _client(self) -> str:
        return address_key(client_ip_var.get(), self.accounts.throttle.limits.ipv6_prefix)

    def _horizon(self) -> float:
        return self.clock() + self.accounts.tokens.refresh_ttl + REVOCATION_SLACK_SECONDS
