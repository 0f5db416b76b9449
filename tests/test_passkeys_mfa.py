"""Passkeys beside the other factors, over HTTP on SQLite and the MongoDB wire server: a
code sign-in finished by a passkey at mfa/verify, a passkey that did not verify the user
asking for TOTP, and an operator's reset removing passkeys with the rest."""

from __future__ import annotations

from typing import Any

import pytest

from core.domain.admin import new_admin_key
from tests.fakes.webauthn import SoftAuthenticator
from tests.test_api_mfa import bearer, claims, code, enrolled, verify

KEY, KEY_HASH = new_admin_key()
ORIGIN = "http://localhost:3000"
PASSKEYS = "/authorization/passkeys"


@pytest.fixture
def config_overrides(backend_url: str, smtp_inbox) -> dict[str, Any]:
    return {
        **smtp_inbox.config(),
        "storage.url": backend_url,
        "accounts.email_code_sign_in": True,
        "webauthn.rp_id": "localhost",
        "webauthn.origins": [ORIGIN],
        "admin.keys": {"ops": KEY_HASH},
        "limits.per_ip_per_minute": 1000,
    }


async def add_passkey(api, pair: dict[str, str], authenticator: SoftAuthenticator) -> None:
    options = await api.post(f"{PASSKEYS}/register/options", headers=bearer(pair))
    assert options.status == 200, options.body
    body = {"credential": authenticator.create(options.body)}
    added = await api.post(f"{PASSKEYS}/register", json_body=body, headers=bearer(pair))
    assert added.status == 200, added.body


async def test_a_code_sign_in_is_finished_by_a_passkey(api, user, smtp_inbox, services):
    pair = (await api.post("/authorization/registration", json_body=user)).body
    authenticator = SoftAuthenticator(ORIGIN)
    await add_passkey(api, pair, authenticator)

    assert (await api.post("/authorization/code/send", json_body={"email": user["email"]})).body
    await services.code_sign_in.drain(30)  # the code goes out after the answer
    body = {"email": user["email"], "code": smtp_inbox.code_for(user["email"])}
    asked = await api.post("/authorization/code/login", json_body=body)
    assert asked.status == 200 and asked.body["mfa_required"] is True, asked.body
    assert asked.body["methods"] == ["passkey"] and "access" not in asked.body
    options = asked.body["passkey_options"]
    assert [c["id"] for c in options["allowCredentials"]]  # this account's passkeys only

    done = await verify(api, asked.body["mfa_token"], passkey=authenticator.get(options))
    assert done.status == 200, done.body
    assert claims(done.body["access"])["amr"][:1] == ["otp"]
    assert {"hwk", "mfa"} <= set(claims(done.body["access"])["amr"])
    # The challenge in the options worked once: the same assertion again is refused.
    again = await verify(api, asked.body["mfa_token"], passkey=authenticator.get(options))
    assert (again.status, again.body["error"]) == (401, "invalid_mfa_token")


async def test_a_passkey_that_did_not_verify_the_user_asks_for_totp(api, user, clock):
    pair, secret, _ = await enrolled(api, user, clock)
    unverified = SoftAuthenticator(ORIGIN, backup_eligible=True, user_verified=False)
    await add_passkey(api, pair, unverified)

    options = (await api.post(f"{PASSKEYS}/login/options")).body
    asked = await api.post(f"{PASSKEYS}/login", json_body={"credential": unverified.get(options)})
    assert asked.status == 200 and asked.body["mfa_required"] is True, asked.body
    # The passkey was the first factor: the second is another kind.
    assert asked.body["methods"] == ["totp", "recovery_code"]
    done = await verify(api, asked.body["mfa_token"], code=code(secret, clock()))
    assert done.status == 200, done.body
    assert claims(done.body["access"])["amr"] == ["swk", "otp", "mfa"]

    verified = SoftAuthenticator(ORIGIN)
    await add_passkey(api, pair, verified)
    options = (await api.post(f"{PASSKEYS}/login/options")).body
    alone = await api.post(f"{PASSKEYS}/login", json_body={"credential": verified.get(options)})
    assert alone.status == 200 and claims(alone.body["access"])["amr"] == ["hwk", "mfa"]


async def test_the_operators_reset_removes_passkeys_too(api, user, clock):
    pair, _, _ = await enrolled(api, user, clock)
    await add_passkey(api, pair, SoftAuthenticator(ORIGIN))
    user_id = claims(pair["access"])["sub"]
    reset = await api.post(
        f"/admin/users/{user_id}/mfa/reset", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert reset.status == 200, reset.body
    assert reset.body["removed"] == {"totp": True, "recovery_codes": 10, "passkeys": 1}
    assert (await api.get(PASSKEYS, headers=bearer(pair))).body == {"passkeys": []}
