"""Every first factor stops at the second one: a code sign-in, a password reset and a
provider sign-in of an account with TOTP answer `mfa_required` and no tokens, and finish
at mfa/verify with both factors in `amr`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.providers import consent
from tests.test_api_mfa import claims, code, enrolled, verify

EMAIL = "ann@example.com"


@pytest.fixture
def config_overrides(smtp_inbox, fake_providers) -> dict[str, Any]:
    return {
        **smtp_inbox.config(),
        "accounts.email_code_sign_in": True,
        "providers": fake_providers.sections(),
        "limits.per_ip_per_minute": 1000,
    }


def asks_for_the_second(response) -> str:
    assert response.status == 200, response.body
    assert response.body["mfa_required"] is True, response.body
    assert "access" not in response.body and "refresh" not in response.body
    return response.body["mfa_token"]


async def test_a_code_sign_in_asks_for_the_second_factor(api, user, clock, smtp_inbox, services):
    _, secret, _ = await enrolled(api, user, clock)
    assert (await api.post("/authorization/code/send", json_body={"email": EMAIL})).body is True
    await services.code_sign_in.drain(30)  # the code goes out after the answer
    body = {"email": EMAIL, "code": smtp_inbox.code_for(EMAIL)}
    token = asks_for_the_second(await api.post("/authorization/code/login", json_body=body))
    done = await verify(api, token, code=code(secret, clock()))
    assert done.status == 200, done.body
    assert claims(done.body["access"])["amr"] == ["otp", "mfa"]


async def test_a_password_reset_asks_for_the_second_factor(api, user, clock, smtp_inbox):
    _, _, codes = await enrolled(api, user, clock)
    assert (await api.post("/authorization/password/reset", json_body={"email": EMAIL})).body
    body = {"email": EMAIL, "code": smtp_inbox.code_for(EMAIL), "new_password": "new horse!"}
    reset = await api.post("/authorization/password/reset/confirm", json_body=body)
    done = await verify(api, asks_for_the_second(reset), recovery_code=codes[0])
    assert done.status == 200, done.body
    # The new password is in force, and it too stops at the second factor.
    login = {"email": EMAIL, "hash_password": "new horse!"}
    asks_for_the_second(await api.post("/authorization/login/email", json_body=login))


async def test_a_provider_sign_in_asks_for_the_second_factor(api, clock, fake_providers):
    params = await consent((await api.get("/yandex/link")).body)
    query = {"code": params["code"], "state": params["state"]}
    provider = (await api.get("/yandex/get/token", query=query)).body["access_token"]
    pair = (await api.get("/yandex/registration", query={"access_token": provider})).body
    headers = {"Authorization": f"Bearer {pair['access']}"}
    secret = (await api.post("/authorization/mfa/totp/setup", headers=headers)).body["secret"]
    confirm = {"code": code(secret, clock())}
    assert (
        await api.post("/authorization/mfa/totp/confirm", json_body=confirm, headers=headers)
    ).status == 200
    clock.advance(30)
    login = await api.get("/yandex/login", query={"access_token": provider})
    done = await verify(api, asks_for_the_second(login), code=code(secret, clock()))
    assert done.status == 200, done.body
    assert claims(done.body["access"])["amr"] == ["otp", "mfa"]


async def test_a_password_changed_meanwhile_ends_the_pending_sign_in(api, user, clock):
    pair, secret, _ = await enrolled(api, user, clock)
    login = {"email": EMAIL, "hash_password": user["hash_password"]}
    token = asks_for_the_second(await api.post("/authorization/login/email", json_body=login))
    change = {"hash_password": user["hash_password"], "new_password": "another horse"}
    headers = {"Authorization": f"Bearer {pair['access']}"}
    assert (
        await api.post("/authorization/password/change", json_body=change, headers=headers)
    ).status == 200
    late = await verify(api, token, code=code(secret, clock()))
    assert (late.status, late.body["error"]) == (401, "invalid_credentials")
