"""`accounts.require_mfa: true` over HTTP on both stores: an account without a second factor
gets sessions that only enrol one, as `require_verified_email` holds sessions to the email."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_api_mfa import bearer, claims, code, first_factor, verify

MFA = "/authorization/mfa"


@pytest.fixture
def config_overrides(backend_url: str) -> dict[str, Any]:
    return {"storage.url": backend_url, "accounts.require_mfa": True}


async def test_sessions_only_enrol_until_a_second_factor_is_on(api, user, clock):
    pair = (await api.post("/authorization/registration", json_body=user)).body
    assert claims(pair["access"])["scope"] == "enrol_mfa"
    # No sign-in for other services, no other account route, no renewal.
    assert (
        await api.post("/validate/jwt/access", json_body={"access": pair["access"]})
    ).body is False
    sessions = await api.get("/authorization/sessions", headers=bearer(pair))
    assert (sessions.status, sessions.body["error"]) == (403, "mfa_required_enrolment")
    renewed = await api.post("/validate/jwt/refresh", json_body={"refresh": pair["refresh"]})
    assert (renewed.status, renewed.body["error"]) == (403, "mfa_required_enrolment")
    login = {"email": user["email"], "hash_password": user["hash_password"]}
    again = (await api.post("/authorization/login/email", json_body=login)).body
    assert claims(again["access"])["scope"] == "enrol_mfa"

    listed = await api.get(MFA, headers=bearer(pair))
    assert listed.body == {"totp": False, "passkeys": 0, "recovery_codes": 0, "required": True}
    secret = (await api.post(f"{MFA}/totp/setup", headers=bearer(pair))).body["secret"]
    confirm = {"code": code(secret, clock())}
    assert (
        await api.post(f"{MFA}/totp/confirm", json_body=confirm, headers=bearer(pair))
    ).status == 200

    # Enrolled: the refresh renews into a full session, and sign-ins take both factors.
    renewed = await api.post("/validate/jwt/refresh", json_body={"refresh": pair["refresh"]})
    assert renewed.status == 200, renewed.body
    assert "scope" not in claims(renewed.body["access"])
    clock.advance(30)
    done = await verify(
        api, (await first_factor(api, user))["mfa_token"], code=code(secret, clock())
    )
    assert done.status == 200 and "scope" not in claims(done.body["access"])
    assert (await api.get("/authorization/sessions", headers=bearer(done.body))).status == 200
