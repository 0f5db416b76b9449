"""Code sign-in under /authorization/code/ (send a one-time code, trade it for tokens), and
growing such an account: an address added, a first password set."""

from __future__ import annotations

from handlers.account import AccountHandler
from handlers.base import JsonHandler


class CodeSendHandler(JsonHandler):
    address_limited = True

    async def post(self) -> None:
        sent = await self.services.code_sign_in.send(
            email=self.param("email", required=False),
            phone=self.param("phone_number", required=False),
            captcha_token=self.param("captcha", required=False),
            accept_language=self.request.headers.get("Accept-Language"),
        )
        self.write_json(sent)


class CodeLoginHandler(JsonHandler):
    address_limited = True

    async def post(self) -> None:
        pair = await self.services.code_sign_in.login(
            email=self.param("email", required=False),
            phone=self.param("phone_number", required=False),
            code=self.param("code"),
        )
        self.write_json(pair, token=True)


class AddressAddHandler(AccountHandler):
    """POST /authorization/address/add: a code to an email or phone the account lacks."""

    address_limited = True

    async def post(self) -> None:
        caller = await self.current_user()
        sent = await self.services.addresses.send(
            caller, **self.identifier_params(), accept_language=self.accept_language
        )
        self.write_json(sent)


class AddressAddConfirmHandler(AccountHandler):
    async def post(self) -> None:
        caller = await self.current_user()
        added = await self.services.addresses.confirm(
            caller, **self.identifier_params(), code=self.param("code")
        )
        self.write_json(added)


class PasswordSetHandler(AccountHandler):
    """POST /authorization/password/set: a first password, with a fresh sign-in code."""

    address_limited = True
    needs_live_session = True

    async def post(self) -> None:
        caller = await self.current_user()
        done = await self.services.addresses.set_password(
            caller, self.param("new_password"), self.param("code")
        )
        self.write_json(done)
