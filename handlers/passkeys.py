"""Passkeys under /authorization/passkeys/: registering one to the signed-in account, listing,
renaming and removing them, and signing in with one. Each parses, calls core.domain.passkeys,
renders."""

from __future__ import annotations

from typing import Any

from core.domain.passkeys import check_credential_param
from handlers.account import AccountHandler


class PasskeyHandler(AccountHandler):
    def credential(self) -> Any:
        return check_credential_param(self.params.get("credential"))


class RegisterOptionsHandler(PasskeyHandler):
    """POST /authorization/passkeys/register/options: creation options (a challenge)."""

    async def post(self) -> None:
        caller = await self.current_user()
        self.write_json(await self.services.passkeys.registration_options(caller.user))


class RegisterHandler(PasskeyHandler):
    """POST /authorization/passkeys/register: the browser's new credential → the passkey."""

    needs_live_session = True

    async def post(self) -> None:
        caller = await self.current_user()
        passkey = await self.services.passkeys.register(
            caller.user, self.credential(), self.param("name", required=False)
        )
        self.write_json(passkey)


class ListHandler(PasskeyHandler):
    """GET /authorization/passkeys: the account's passkeys."""

    async def get(self) -> None:
        caller = await self.current_user()
        self.write_json({"passkeys": await self.services.passkeys.list(caller.user.id)})


class RenameHandler(PasskeyHandler):
    """POST /authorization/passkeys/rename: {id, name} → the passkey."""

    async def post(self) -> None:
        caller = await self.current_user()
        renamed = await self.services.passkeys.rename(
            caller.user.id, self.param("id"), self.param("name")
        )
        self.write_json(renamed)


class DeleteHandler(PasskeyHandler):
    """POST /authorization/passkeys/delete: {id} → true, unless it is the last way in."""

    needs_live_session = True

    async def post(self) -> None:
        caller = await self.current_user()
        self.write_json(await self.services.passkeys.delete(caller.user, self.param("id")))


class LoginOptionsHandler(PasskeyHandler):
    """POST /authorization/passkeys/login/options: request options, no allowCredentials."""

    address_limited = True  # each answer stores a challenge

    async def post(self) -> None:
        self.write_json(await self.services.passkeys.request_options(None))


class LoginHandler(PasskeyHandler):
    """POST /authorization/passkeys/login: an assertion → {access, refresh}."""

    address_limited = True

    async def post(self) -> None:
        pair = await self.services.passkeys.login(self.credential())
        self.write_json(pair, token=True)
