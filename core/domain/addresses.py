"""Growing an account made by a code or a provider: add an email or a phone number (proved
by a code sent to it), and set a first password (proved by a fresh sign-in code to one of
the account's own addresses, not by the access token alone)."""

from __future__ import annotations

from core.domain.accounts import Accounts
from core.domain.code_signin import CodeSignIn
from core.domain.codes import Codes, recipient
from core.domain.errors import ApiError
from core.domain.event_types import EventType
from core.domain.events import client_ip_var, security_event
from core.domain.lifecycle import Caller
from core.domain.passwords import check_password_policy
from core.infra.delivery import Delivery
from core.infra.net import address_key
from storage.base import DuplicateError, Store

FIELDS = {"email": "email", "phone": "phone"}


def address_exists(channel: str) -> ApiError:
    what = "an email address" if channel == "email" else "a phone number"
    return ApiError(409, "address_exists", f"The account has {what} already.")


def password_exists() -> ApiError:
    return ApiError(
        409,
        "password_exists",
        "The account has a password: change it with /authorization/password/change.",
    )


class Addresses:
    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        codes: Codes,
        delivery: Delivery,
        code_sign_in: CodeSignIn,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.codes = codes
        self.delivery = delivery
        self.code_sign_in = code_sign_in

    @staticmethod
    def _key(channel: str, user_id: str, address: str) -> str:
        # The address is in the key: the code proves this address and no other.
        return f"add_{channel}:{user_id}:{address}"

    def _has(self, caller: Caller, channel: str) -> bool:
        return (caller.user.email if channel == "email" else caller.user.phone) is not None

    async def send(
        self,
        caller: Caller,
        email: str | None,
        phone: str | None,
        accept_language: str | None = None,
    ) -> bool:
        """A code to the new address; 409 address_exists when the account has one."""
        channel, address = self.code_sign_in.identifier(email, phone)
        if self._has(caller, channel):
            raise address_exists(channel)
        self.delivery.require(channel)
        client = address_key(client_ip_var.get(), self.accounts.throttle.limits.ipv6_prefix)
        await self.codes.check_send_limits(address, client)
        key = self._key(channel, caller.user.id, address)
        code = await self.codes.issue(key, caller.user.id, recipient(channel, address))
        try:
            await self.delivery.send_code(
                channel, address, "verify", code, self.codes.minutes, accept_language
            )
        except ApiError:
            await self.codes.withdraw(key)
            raise
        return True

    async def confirm(
        self, caller: Caller, email: str | None, phone: str | None, code: str
    ) -> bool:
        """The address joins the account, verified; 409 user_exists when another has it."""
        channel, address = self.code_sign_in.identifier(email, phone)
        if self._has(caller, channel):
            raise address_exists(channel)
        key = self._key(channel, caller.user.id, address)
        await self.codes.confirm(key, code, recipient(channel, address))
        try:
            added = await self.store.add_address(caller.user.id, FIELDS[channel], address)
        except DuplicateError as exc:
            raise ApiError(409, "user_exists", "Another account has this address already.") from exc
        if not added:
            raise address_exists(channel)
        security_event(EventType.ADDRESS_ADDED, user=caller.user.id, channel=channel)
        return True

    async def set_password(self, caller: Caller, new_password: str, code: str) -> bool:
        """A first password for an account without one, with a code just sent by
        /authorization/code/send to one of the account's addresses."""
        user = caller.user
        if user.password_hash is not None:
            raise password_exists()
        encoded = check_password_policy(new_password, self.accounts.settings.min_password_length)
        await self.code_sign_in.confirm_own(user, code)
        await self.store.set_password_hash(user.id, await self.accounts.hasher.hash(encoded))
        security_event(EventType.PASSWORD_SET, user=user.id)
        return True
