"""Code sign-in under /authorization/code/: send a one-time code, trade it for tokens."""

from __future__ import annotations

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
