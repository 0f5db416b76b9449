"""Password sign-in routes under /authorization/."""

from __future__ import annotations

from handlers.base import JsonHandler


class RegistrationHandler(JsonHandler):
    address_limited = True

    async def post(self) -> None:
        pair = await self.services.accounts.register(
            phone_number=self.param("phone_number"),
            email=self.param("email"),
            secret=self.param("hash_password"),
        )
        self.write_json(pair, token=True)


class EmailLoginHandler(JsonHandler):
    address_limited = True

    async def post(self) -> None:
        pair = await self.services.accounts.login_with_email(
            self.param("email"), self.param("hash_password")
        )
        self.write_json(pair, token=True)


class PhoneLoginHandler(JsonHandler):
    address_limited = True

    async def post(self) -> None:
        pair = await self.services.accounts.login_with_phone(
            self.param("phone_number"), self.param("hash_password")
        )
        self.write_json(pair, token=True)


class LogoutHandler(JsonHandler):
    async def post(self) -> None:
        everywhere = self.flag_param("all")
        await self.services.accounts.logout(self.token_param("refresh"), everywhere)
        self.write_json(True)
