"""Account routes under /authorization/: password reset and change, verification, sessions,
deletion. Each parses, calls core.domain.lifecycle, renders."""

from __future__ import annotations

from typing import Any

from core.domain.errors import invalid_request
from core.domain.lifecycle import Caller
from handlers.base import JsonHandler

MAX_SESSION_ID = 128


class AccountHandler(JsonHandler):
    """A route whose caller is the user of a Bearer access token (or the `access` param)."""

    # Whether the token's session must still be live: true where the route acts for the
    # whole account (password change, session revocation, deletion).
    needs_live_session = False
    # Whether the route confirms the email: the only thing an account that
    # accounts.require_verified_email holds may do.
    verifies_email = False
    # Whether the route enrols a second factor: the only thing a session that
    # accounts.require_mfa holds may do.
    enrols_mfa = False

    async def current_user(self) -> Caller:
        return await self.services.lifecycle.authenticate(
            self.token_param("access"),
            live_session=self.needs_live_session,
            verifying_email=self.verifies_email,
            enrolling_mfa=self.enrols_mfa,
        )

    @property
    def accept_language(self) -> str | None:
        return self.request.headers.get("Accept-Language")

    def identifier_params(self) -> dict[str, Any]:
        return {
            "email": self.param("email", required=False),
            "phone": self.param("phone_number", required=False),
        }


class PasswordResetHandler(AccountHandler):
    address_limited = True

    async def post(self) -> None:
        lifecycle = self.services.lifecycle
        await lifecycle.request_reset(
            **self.identifier_params(), accept_language=self.accept_language
        )
        self.write_json(True)


class PasswordResetConfirmHandler(AccountHandler):
    address_limited = True

    async def post(self) -> None:
        pair = await self.services.lifecycle.confirm_reset(
            **self.identifier_params(),
            code=self.param("code"),
            new_password=self.param("new_password"),
        )
        self.write_json(pair, token=True)


class PasswordChangeHandler(AccountHandler):
    address_limited = True  # it checks and hashes a password, like login (LG4)
    needs_live_session = True

    async def post(self) -> None:
        caller = await self.current_user()
        pair = await self.services.lifecycle.change_password(
            caller, self.param("hash_password"), self.param("new_password")
        )
        self.write_json(pair, token=True)


class VerifyHandler(AccountHandler):
    """POST /authorization/verify/{email,phone}: send a code to the caller's address."""

    address_limited = True
    channel = "email"

    async def post(self) -> None:
        caller = await self.current_user()
        await self.services.lifecycle.send_verification(caller, self.channel, self.accept_language)
        self.write_json(True)


class VerifyEmailHandler(VerifyHandler):
    channel = "email"
    verifies_email = True


class VerifyPhoneHandler(VerifyHandler):
    channel = "phone"


class VerifyConfirmHandler(AccountHandler):
    channel = "email"

    async def post(self) -> None:
        caller = await self.current_user()
        code = self.param("code")
        await self.services.lifecycle.confirm_verification(caller, self.channel, code)
        self.write_json(True)


class VerifyEmailConfirmHandler(VerifyConfirmHandler):
    channel = "email"
    verifies_email = True


class VerifyPhoneConfirmHandler(VerifyConfirmHandler):
    channel = "phone"


class SessionsHandler(AccountHandler):
    async def get(self) -> None:
        caller = await self.current_user()
        sessions = await self.services.lifecycle.list_sessions(caller.user.id, caller.session)
        self.set_header("Cache-Control", "no-store")
        self.write_json({"sessions": sessions})

    post = get


class SessionsRevokeHandler(AccountHandler):
    needs_live_session = True

    async def post(self) -> None:
        caller = await self.current_user()
        lifecycle = self.services.lifecycle
        if self.flag_param("all_others"):
            await lifecycle.revoke_other_sessions(caller.user.id, keep=caller.session)
        else:
            session = self.param("session")
            if len(session) > MAX_SESSION_ID:
                raise invalid_request("The parameter 'session' is too long.")
            await lifecycle.revoke_session(caller.user.id, session)
        self.write_json(True)


class DeletionCodeHandler(AccountHandler):
    address_limited = True
    needs_live_session = True

    async def post(self) -> None:
        caller = await self.current_user()
        await self.services.lifecycle.send_deletion_code(caller, self.accept_language)
        self.write_json(True)


class AccountDeleteHandler(AccountHandler):
    address_limited = True  # it checks a password, like login (LG4)
    needs_live_session = True

    async def post(self) -> None:
        caller = await self.current_user()
        await self.services.lifecycle.delete_own_account(
            caller,
            password=self.param("hash_password", required=False),
            code=self.param("code", required=False),
        )
        self.write_json(True)
