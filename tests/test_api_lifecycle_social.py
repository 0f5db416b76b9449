"""The lifecycle of accounts made through a provider: the provider's verified email counts
as verified, and an account without a password is deleted with a code."""

from __future__ import annotations

import jwt
import pytest

from tests.test_api_social import provider_token

DELETE = "/authorization/account/delete"


@pytest.fixture
def config_overrides(fake_providers, smtp_inbox, sms_inbox):
    return {
        "providers": fake_providers.sections(),
        "limits.per_ip_per_minute": 1000,
        **smtp_inbox.config(),
        **sms_inbox.config(),
    }


def claims(access: str) -> dict:
    return jwt.decode(access, options={"verify_signature": False})


async def test_a_provider_vouched_email_is_verified_and_deletion_takes_a_code(
    api, fake_mailru, smtp_inbox, services
):
    fake_mailru.users["default"]["email"] = "ivan@mail.ru"  # Mail.ru's own mailbox: vouched
    token = await provider_token(api, "mailru")
    registered = await api.get("/mail.ru/registration", query={"access_token": token})
    assert registered.status == 200, registered.body
    pair = registered.body
    assert claims(pair["access"])["email_verified"] is True
    headers = {"Authorization": f"Bearer {pair['access']}"}
    # No password: the route asks for a code, sent to the provider's email.
    missing = await api.post(DELETE, headers=headers)
    assert (missing.status, missing.body["error"]) == (400, "invalid_request")
    assert (await api.post(f"{DELETE}/code", headers=headers)).body is True
    code = smtp_inbox.code_for("ivan@mail.ru")
    wrong = await api.post(DELETE, json_body={"code": "x"}, headers=headers)
    assert (wrong.status, wrong.body["error"]) == (400, "invalid_code")
    assert (await api.post(DELETE, json_body={"code": code}, headers=headers)).body is True
    # The identity is free: the same Mail.ru account registers anew.
    assert (await api.get("/mail.ru/login", query={"access_token": token})).status == 404
    again = await api.get("/mail.ru/registration", query={"access_token": token})
    assert again.status == 200, again.body


async def test_an_email_the_provider_does_not_vouch_for_is_not_verified(api):
    token = await provider_token(api, "vk")  # VK ID vouches for no email
    registered = await api.get("/vk/registration", query={"access_token": token})
    assert claims(registered.body["access"])["email_verified"] is False


async def test_a_disabled_provider_account_gets_no_session_and_no_deletion_code(
    api, fake_mailru, smtp_inbox, services
):
    fake_mailru.users["default"]["email"] = "ivan@mail.ru"
    token = await provider_token(api, "mailru")
    pair = (await api.get("/mail.ru/registration", query={"access_token": token})).body
    await services.admin.disable(claims(pair["access"])["sub"], "ops")
    login = await api.get("/mail.ru/login", query={"access_token": token})
    assert (login.status, login.body["error"]) == (403, "account_disabled")
    again = await api.get("/mail.ru/registration", query={"access_token": token})
    assert (again.status, again.body["error"]) == (409, "user_exists")  # no session either
    headers = {"Authorization": f"Bearer {pair['access']}"}
    code = await api.post(f"{DELETE}/code", headers=headers)
    assert (code.status, code.body["error"]) == (403, "account_disabled")
    assert smtp_inbox.to("ivan@mail.ru") == []
