"""Second-factor routes under /authorization/mfa: the signed-in user's factors (enrolment,
removal, recovery codes) and the second step of a sign-in. Each parses, calls core.domain.mfa or
core.domain.mfa_account, renders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.domain.errors import invalid_request
from core.domain.mfa_account import SecondFactorAccount
from handlers.account import AccountHandler
from handlers.base import JsonHandler

MAX_PASSKEY_KEYS = 16  # a WebAuthn assertion has a handful of members


class MfaAccountHandler(AccountHandler):
    """A route of the caller's own factors: allowed to a session held to enrolling one."""

    enrols_mfa = True

    @property
    def mfa(self) -> SecondFactorAccount:
        return self.services.mfa_account


class MfaHandler(MfaAccountHandler):
    async def get(self) -> None:
        caller = await self.current_user()
        self.write_json(await self.mfa.describe(caller.user))


class TotpSetupHandler(MfaAccountHandler):
    needs_live_session = True

    async def post(self) -> None:
        caller = await self.current_user()
        self.write_json(await self.mfa.setup_totp(caller.user), token=True)


class TotpConfirmHandler(MfaAccountHandler):
    needs_live_session = True

    async def post(self) -> None:
        caller = await self.current_user()
        codes = await self.mfa.confirm_totp(caller.user, self.param("code"))
        self.write_json(codes, token=True)


class TotpDisableHandler(MfaAccountHandler):
    address_limited = True  # it may check a password (LG4)
    needs_live_session = True
    enrols_mfa = False  # an account held to enrolling has nothing to disable

    async def post(self) -> None:
        caller = await self.current_user()
        await self.mfa.disable_totp(
            caller.user,
            self.param("hash_password", required=False),
            self.param("code", required=False),
        )
        self.write_json(True)


class RecoveryCodesHandler(MfaAccountHandler):
    address_limited = True
    needs_live_session = True
    enrols_mfa = False

    async def post(self) -> None:
        caller = await self.current_user()
        codes = await self.mfa.regenerate_recovery_codes(
            caller.user,
            self.param("hash_password", required=False),
            self.param("code", required=False),
        )
        self.write_json(codes, token=True)


class MfaVerifyHandler(JsonHandler):
    """The second step of a sign-in: the mfa_token and one second factor → tokens."""

    address_limited = True

    async def post(self) -> None:
        pair = await self.services.second_factors.verify(
            self.param("mfa_token"),
            code=self.param("code", required=False),
            recovery_code=self.param("recovery_code", required=False),
            passkey=self.passkey_param(),
        )
        self.write_json(pair, token=True)

    def passkey_param(self) -> Mapping[str, Any] | None:
        value = self.params.get("passkey")
        if value is None:
            return None
        if not isinstance(value, dict) or len(value) > MAX_PASSKEY_KEYS:
            raise invalid_request("The parameter 'passkey' must be a WebAuthn credential object.")
        return value


def mfa_routes() -> list[tuple[str, type]]:
    return [
        (r"/authorization/mfa", MfaHandler),
        (r"/authorization/mfa/totp/setup", TotpSetupHandler),
        (r"/authorization/mfa/totp/confirm", TotpConfirmHandler),
        (r"/authorization/mfa/totp/disable", TotpDisableHandler),
        (r"/authorization/mfa/recovery_codes/regenerate", RecoveryCodesHandler),
        (r"/authorization/mfa/verify", MfaVerifyHandler),
    ]
