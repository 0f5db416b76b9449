"""Defects of the second independent attack (issue 21), end to end over real HTTP on SQLite
and on the MongoDB wire server: codes bound to their address, disabled accounts, code
limits that outlive a deletion, and sessions of unverified accounts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from tornado.httpclient import AsyncHTTPClient

from core.domain.admin import new_admin_key
from core.domain.errors import ApiError
from tests.fakes.channels import SmsInbox, SmtpInbox
from tests.storage_fixtures import Running, running_app

KEY, KEY_HASH = new_admin_key()
EMAIL, PHONE, PASSWORD = "ann@example.com", "+79161234567", "correct horse"
USER = {"email": EMAIL, "phone_number": PHONE, "hash_password": PASSWORD}
NEW_PASSWORD = "a brand new secret"
RESET = "/authorization/password/reset"
RESET_CONFIRM = "/authorization/password/reset/confirm"
CHANGE = "/authorization/password/change"
REFRESH = "/validate/jwt/refresh"


@dataclass
class Client:
    """JSON calls to a served app; each waits for the codes its request sends afterwards
    (a reset's), so the inboxes hold them when the call returns."""

    app: Running

    async def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        access: str | None = None,
        admin: bool = False,
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if access is not None:
            headers["Authorization"] = f"Bearer {access}"
        if admin:
            headers["Authorization"] = f"Bearer {KEY}"
        response = await AsyncHTTPClient().fetch(
            self.app.url(path),
            method=method,
            body=json.dumps(body or {}) if method == "POST" else None,
            headers=headers,
            raise_error=False,
            request_timeout=60,
        )
        await self.app.services.lifecycle.drain(30)
        return response.code, json.loads(response.body or b"null")

    async def post(self, path: str, body: dict[str, Any] | None = None, **kw: Any) -> Any:
        return await self.call("POST", path, body, **kw)

    async def register(self, user: dict[str, str] = USER) -> dict[str, str]:
        status, pair = await self.post("/authorization/registration", user)
        assert status == 200, pair
        return pair

    async def login(self, password: str = PASSWORD, email: str = EMAIL) -> tuple[int, Any]:
        return await self.post(
            "/authorization/login/email", {"email": email, "hash_password": password}
        )

    async def user_id(self, email: str = EMAIL) -> str:
        status, found = await self.call("GET", f"/admin/users?query={email}", admin=True)
        assert status == 200, found
        return str(found["users"][0]["id"])


@asynccontextmanager
async def served(
    tmp_path: Path, backend_url: str, smtp: SmtpInbox, sms: SmsInbox, **overrides: Any
) -> AsyncIterator[Client]:
    settings = {
        **smtp.config(),
        **sms.config(),
        "admin.keys": {"ops": KEY_HASH},
        "admin.per_ip_per_minute": 10_000,
        "limits.per_ip_per_minute": 10_000,
        **overrides,
    }
    async with running_app(tmp_path, backend_url, **settings) as app:
        yield Client(app)


def claims(access: str) -> dict[str, Any]:
    return dict(jwt.decode(access, options={"verify_signature": False}))


def error(answer: tuple[int, Any]) -> tuple[int, str]:
    status, body = answer
    return status, body["error"] if isinstance(body, dict) else body


# 1. A code proves only the address it was sent to.


async def test_a_reset_code_confirms_only_with_the_address_it_went_to(
    tmp_path, backend_url, smtp_inbox, sms_inbox
):
    async with served(tmp_path, backend_url, smtp_inbox, sms_inbox) as api:
        await api.register()
        # By SMS, confirmed naming the email: nothing is verified, no tokens.
        assert await api.post(RESET, {"phone_number": PHONE}) == (200, True)
        sms_code = sms_inbox.code_for(PHONE)
        swapped = {"email": EMAIL, "code": sms_code, "new_password": NEW_PASSWORD}
        assert error(await api.post(RESET_CONFIRM, swapped)) == (400, "invalid_code")
        # By email, confirmed naming the phone: the same.
        assert await api.post(RESET, {"email": EMAIL}) == (200, True)
        mail_code = smtp_inbox.code_for(EMAIL)
        swapped = {"phone_number": PHONE, "code": mail_code, "new_password": NEW_PASSWORD}
        assert error(await api.post(RESET_CONFIRM, swapped)) == (400, "invalid_code")
        status, pair = await api.login()  # the password did not change
        assert status == 200, pair
        said = claims(pair["access"])
        assert (said["email_verified"], said["phone_verified"]) == (False, False)
        # The code with its own address still works, and verifies that address only.
        right = {"email": EMAIL, "code": mail_code, "new_password": NEW_PASSWORD}
        status, pair = await api.post(RESET_CONFIRM, right)
        assert status == 200, pair
        assert claims(pair["access"])["email_verified"] is True
        assert claims(pair["access"])["phone_verified"] is False


# 2. A disabled account gets no tokens from any route.


async def test_a_disabled_account_gets_no_session_from_any_route(
    tmp_path, backend_url, smtp_inbox, sms_inbox
):
    async with served(tmp_path, backend_url, smtp_inbox, sms_inbox) as api:
        earlier = await api.register()
        user_id = await api.user_id()
        status, body = await api.post(f"/admin/users/{user_id}/disable", admin=True)
        assert (status, body["disabled"]) == (200, True)
        # Disabling ended the earlier session: its refresh token renews nothing.
        assert error(await api.post(REFRESH, {"refresh": earlier["refresh"]})) == (
            403,
            "account_disabled",
        )
        # A reset still answers true (it tells nobody anything), but its code gives no pair
        # and changes no password.
        assert await api.post(RESET, {"email": EMAIL}) == (200, True)
        body = {"email": EMAIL, "code": smtp_inbox.code_for(EMAIL), "new_password": NEW_PASSWORD}
        assert error(await api.post(RESET_CONFIRM, body)) == (403, "account_disabled")
        assert error(await api.login(NEW_PASSWORD)) == (401, "invalid_credentials")
        # The earlier access token acts for nothing: change, verification, deletion code,
        # sessions, deletion.
        access = earlier["access"]
        change = {"hash_password": PASSWORD, "new_password": NEW_PASSWORD}
        for path, payload in (
            (CHANGE, change),
            ("/authorization/verify/email", None),
            ("/authorization/verify/email/confirm", {"code": "123456"}),
            ("/authorization/verify/phone", None),
            ("/authorization/account/delete/code", None),
            ("/authorization/sessions", None),
            ("/authorization/sessions/revoke", {"all_others": True}),
            ("/authorization/account/delete", {"hash_password": PASSWORD}),
        ):
            answer = await api.post(path, payload, access=access)
            assert error(answer) == (403, "account_disabled"), path
        assert error(await api.login()) == (403, "account_disabled")
        # No verification or deletion code went out: only the reset's mail.
        assert (len(smtp_inbox.to(EMAIL)), sms_inbox.to(PHONE)) == (1, [])
        # Enabled again: the old password works; no session of the disabled time survived.
        assert (await api.post(f"/admin/users/{user_id}/enable", admin=True))[0] == 200
        assert error(await api.post(REFRESH, {"refresh": earlier["refresh"]})) == (
            401,
            "invalid_token",
        )
        status, pair = await api.login()
        assert status == 200, pair


async def test_a_session_made_before_disabling_cannot_mint_pairs_by_password_change(
    tmp_path, backend_url, smtp_inbox, sms_inbox
):
    async with served(tmp_path, backend_url, smtp_inbox, sms_inbox) as api:
        await api.register()
        status, pair = await api.login()
        assert status == 200, pair
        user_id = await api.user_id()
        assert (await api.post(f"/admin/users/{user_id}/disable", admin=True))[0] == 200
        change = {"hash_password": PASSWORD, "new_password": NEW_PASSWORD}
        for _ in range(2):
            answer = await api.post(CHANGE, change, access=pair["access"])
            assert error(answer) == (403, "account_disabled")
        assert error(await api.post(REFRESH, {"refresh": pair["refresh"]})) == (
            403,
            "account_disabled",
        )


async def test_a_change_that_raced_the_disabling_issues_no_session(services):
    # The caller was read before an operator disabled the account; the change that goes on
    # regardless stores no session for it.
    pair = await services.accounts.register(PHONE, EMAIL, PASSWORD)
    caller = await services.lifecycle.authenticate(pair["access"], live_session=True)
    await services.admin.disable(caller.user.id, "ops")
    with pytest.raises(ApiError) as refused:
        await services.lifecycle.change_password(caller, PASSWORD, NEW_PASSWORD)
    assert (refused.value.status, refused.value.code) == (403, "account_disabled")
    assert await services.store.list_live_tokens(caller.user.id, services.accounts.clock()) == []


# 7. Deleting an account does not reset its addresses' code limits.


async def test_deleting_and_registering_again_sends_no_more_codes_to_an_address(
    tmp_path, backend_url, smtp_inbox, sms_inbox
):
    async with served(tmp_path, backend_url, smtp_inbox, sms_inbox) as api:
        for _ in range(3):
            pair = await api.register()
            answers = [
                (await api.post("/authorization/verify/email", access=pair["access"]))[0]
                for _ in range(6)
            ]
            assert answers[-1] == 429, answers
            deleted = await api.post(
                "/authorization/account/delete", {"hash_password": PASSWORD}, access=pair["access"]
            )
            assert deleted == (200, True)
        assert len(smtp_inbox.to(EMAIL)) == 5  # accounts.code_sends_per_hour, all rounds


async def test_the_code_sent_at_registration_counts_against_the_address(
    tmp_path, backend_url, smtp_inbox, sms_inbox
):
    limits = {"accounts.require_verified_email": True, "accounts.code_sends_per_hour": 1}
    async with served(tmp_path, backend_url, smtp_inbox, sms_inbox, **limits) as api:
        pair = await api.register()
        assert smtp_inbox.code_for(EMAIL)
        again = await api.post("/authorization/verify/email", access=pair["access"])
        assert error(again) == (429, "rate_limited")
        assert len(smtp_inbox.to(EMAIL)) == 1


# 10. With accounts.require_verified_email, an unverified account's sessions only confirm
# the address.


async def test_an_unverified_account_has_sessions_that_only_confirm_the_email(
    tmp_path, backend_url, smtp_inbox, sms_inbox
):
    setting = {"accounts.require_verified_email": True}
    async with served(tmp_path, backend_url, smtp_inbox, sms_inbox, **setting) as api:
        pair = await api.register()
        code = smtp_inbox.code_for(EMAIL)
        # The registration's refresh token renews nothing while the email waits.
        refused = (403, "unverified_email")
        assert error(await api.post(REFRESH, {"refresh": pair["refresh"]})) == refused
        # Its access token confirms the email and is no sign-in anywhere else.
        assert claims(pair["access"])["scope"] == "verify_email"
        assert await api.post("/validate/jwt/access", {"access": pair["access"]}) == (200, False)
        change = {"hash_password": PASSWORD, "new_password": NEW_PASSWORD}
        for path, payload in (
            (CHANGE, change),
            ("/authorization/sessions", None),
            ("/authorization/sessions/revoke", {"all_others": True}),
            ("/authorization/verify/phone", None),
            ("/authorization/account/delete/code", None),
            ("/authorization/account/delete", {"hash_password": PASSWORD}),
        ):
            answer = await api.post(path, payload, access=pair["access"])
            assert error(answer) == refused, path
        assert error(await api.login()) == refused
        # A reset by SMS proves the phone, not the email: its pair is held the same way.
        assert await api.post(RESET, {"phone_number": PHONE}) == (200, True)
        body = {
            "phone_number": PHONE,
            "code": sms_inbox.code_for(PHONE),
            "new_password": NEW_PASSWORD,
        }
        status, by_phone = await api.post(RESET_CONFIRM, body)
        assert status == 200, by_phone
        assert claims(by_phone["access"])["scope"] == "verify_email"
        assert error(await api.post(REFRESH, {"refresh": by_phone["refresh"]})) == refused
        # Confirming the email is what the session may do; then it renews into a full one.
        confirmed = await api.post(
            "/authorization/verify/email/confirm", {"code": code}, access=by_phone["access"]
        )
        assert confirmed == (200, True)
        status, renewed = await api.post(REFRESH, {"refresh": by_phone["refresh"]})
        assert status == 200, renewed
        assert "scope" not in claims(renewed["access"])
        assert claims(renewed["access"])["email_verified"] is True
        assert await api.post("/validate/jwt/access", {"access": renewed["access"]}) == (200, True)
        assert (await api.post("/authorization/sessions", access=renewed["access"]))[0] == 200
