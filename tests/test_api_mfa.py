"""TOTP as a second factor end to end over HTTP, on SQLite and on the MongoDB wire server:
enrolment, password → TOTP and recovery-code sign-ins, replay, tries, expiry, lockout,
removal with a fresh proof, the operator's reset, and an mfa_token used on a second
instance of the same store. Time moves with the fake clock, never with sleeps."""

from __future__ import annotations

from typing import Any

import jwt
import pyotp
import pytest

from core.domain.admin import new_admin_key
from tests.storage_fixtures import running_app

KEY, KEY_HASH = new_admin_key()
ADMIN = {"Authorization": f"Bearer {KEY}"}
MFA = "/authorization/mfa"
LOGIN = "/authorization/login/email"


@pytest.fixture
def config_overrides(backend_url: str) -> dict[str, Any]:
    return {
        "storage.url": backend_url,
        "admin.keys": {"ops": KEY_HASH},
        "limits.login_failures": 8,
    }


def bearer(pair: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access']}"}


def claims(access: str) -> dict[str, Any]:
    return jwt.decode(access, options={"verify_signature": False})


def code(secret: str, now: float) -> str:
    return pyotp.TOTP(secret).at(now)


async def enrolled(api, user, clock) -> tuple[dict[str, str], str, list[str]]:
    """A registered user with TOTP on: its first pair, the secret, the recovery codes.
    The clock then moves on a step, so that the confirming code is not the next one."""
    pair = (await api.post("/authorization/registration", json_body=user)).body
    setup = await api.post(f"{MFA}/totp/setup", headers=bearer(pair))
    assert setup.status == 200, setup.body
    secret = setup.body["secret"]
    assert f"secret={secret}" in setup.body["otpauth_uri"]
    assert setup.body["qr_svg"].startswith("<svg")
    confirmed = await api.post(
        f"{MFA}/totp/confirm", json_body={"code": code(secret, clock())}, headers=bearer(pair)
    )
    assert confirmed.status == 200, confirmed.body
    codes = confirmed.body["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    clock.advance(30)
    return pair, secret, codes


async def first_factor(api, user) -> dict[str, Any]:
    response = await api.post(
        LOGIN, json_body={"email": user["email"], "hash_password": user["hash_password"]}
    )
    assert response.status == 200, response.body
    assert response.body["mfa_required"] is True
    assert "access" not in response.body and "refresh" not in response.body
    return response.body


async def verify(api, mfa_token: str, **factor: str):
    return await api.post(f"{MFA}/verify", json_body={"mfa_token": mfa_token, **factor})


async def test_password_then_totp_signs_in_with_both_factors(api, user, clock):
    pair, secret, _ = await enrolled(api, user, clock)
    listed = await api.get(MFA, headers=bearer(pair))
    assert listed.body == {"totp": True, "passkeys": 0, "recovery_codes": 10, "required": False}

    asked = await first_factor(api, user)
    assert asked["methods"] == ["totp", "recovery_code"]
    assert asked["expires_in"] == 300
    done = await verify(api, asked["mfa_token"], code=code(secret, clock()))
    assert done.status == 200, done.body
    assert done.headers["Cache-Control"] == "no-store"
    assert claims(done.body["access"])["amr"] == ["pwd", "otp", "mfa"]
    assert (await api.post("/validate/jwt/access", json_body={"access": done.body["access"]})).body
    refreshed = await api.post("/validate/jwt/refresh", json_body={"refresh": done.body["refresh"]})
    assert refreshed.status == 200, refreshed.body
    # The mfa_token is single use, even with another right factor.
    clock.advance(30)
    again = await verify(api, asked["mfa_token"], code=code(secret, clock()))
    assert (again.status, again.body["error"]) == (401, "invalid_mfa_token")


async def test_a_totp_code_is_accepted_once(api, user, clock):
    _, secret, _ = await enrolled(api, user, clock)
    used = code(secret, clock())
    assert (
        await verify(api, (await first_factor(api, user))["mfa_token"], code=used)
    ).status == 200
    replay = await verify(api, (await first_factor(api, user))["mfa_token"], code=used)
    assert (replay.status, replay.body["error"]) == (400, "invalid_code")
    # Nor a code of the step before the one used (within the skew), once a later one was.
    earlier = code(secret, clock() - 30)
    late = await verify(api, (await first_factor(api, user))["mfa_token"], code=earlier)
    assert late.status == 400
    clock.advance(30)
    fresh = await verify(
        api, (await first_factor(api, user))["mfa_token"], code=code(secret, clock())
    )
    assert fresh.status == 200, fresh.body


async def test_one_step_of_skew_either_way_and_no_more(api, user, clock):
    _, secret, _ = await enrolled(api, user, clock)
    ahead = await verify(
        api, (await first_factor(api, user))["mfa_token"], code=code(secret, clock() + 30)
    )
    assert ahead.status == 200, ahead.body
    clock.advance(120)
    for off in (-60, 60, 90):  # two or three steps away, every one unused
        far = await verify(
            api, (await first_factor(api, user))["mfa_token"], code=code(secret, clock() + off)
        )
        assert far.status == 400, (off, far.body)
    behind = await verify(
        api, (await first_factor(api, user))["mfa_token"], code=code(secret, clock() - 30)
    )
    assert behind.status == 200, behind.body


async def test_a_recovery_code_signs_in_once(api, user, clock):
    pair, _, codes = await enrolled(api, user, clock)
    spent = await verify(api, (await first_factor(api, user))["mfa_token"], recovery_code=codes[3])
    assert spent.status == 200, spent.body
    assert claims(spent.body["access"])["amr"] == ["pwd", "otp", "mfa"]
    again = await verify(api, (await first_factor(api, user))["mfa_token"], recovery_code=codes[3])
    assert (again.status, again.body["error"]) == (400, "invalid_code")
    assert (await api.get(MFA, headers=bearer(pair))).body["recovery_codes"] == 9
    # Written with capitals and without the hyphen, another one still works.
    loose = codes[4].replace("-", "").upper()
    other = await verify(api, (await first_factor(api, user))["mfa_token"], recovery_code=loose)
    assert other.status == 200, other.body


async def test_the_sixth_try_on_one_mfa_token_is_refused(api, user, clock):
    _, secret, _ = await enrolled(api, user, clock)
    token = (await first_factor(api, user))["mfa_token"]
    for _ in range(5):
        wrong = await verify(
            api, token, code="000000" if code(secret, clock()) != "000000" else "1"
        )
        assert (wrong.status, wrong.body["error"]) == (400, "invalid_code")
    sixth = await verify(api, token, code=code(secret, clock()))
    assert (sixth.status, sixth.body["error"]) == (401, "invalid_mfa_token")


async def test_an_expired_mfa_token_is_refused(api, user, clock):
    _, secret, _ = await enrolled(api, user, clock)
    token = (await first_factor(api, user))["mfa_token"]
    clock.advance(300)
    late = await verify(api, token, code=code(secret, clock()))
    assert (late.status, late.body["error"]) == (401, "invalid_mfa_token")


async def test_wrong_second_factors_count_towards_the_lockout(api, user, clock):
    # limits.login_failures is 8: the first factor's attempt stays counted while the second
    # is due, so two sign-ins of one right password and three wrong codes each lock it.
    await enrolled(api, user, clock)
    for _ in range(2):
        token = (await first_factor(api, user))["mfa_token"]
        for _ in range(3):
            assert (await verify(api, token, recovery_code="nope-nope")).status == 400
    locked = await api.post(
        LOGIN, json_body={"email": user["email"], "hash_password": user["hash_password"]}
    )
    assert (locked.status, locked.body["error"]) == (429, "rate_limited")
    assert int(locked.headers["Retry-After"]) > 0


async def test_bad_input_answers_json_errors(api, user, clock):
    _, secret, _ = await enrolled(api, user, clock)
    token = (await first_factor(api, user))["mfa_token"]
    for body in (
        {"mfa_token": token},
        {"mfa_token": token, "code": "1", "recovery_code": "2"},
        {"mfa_token": token, "code": {"$ne": None}},
        {"mfa_token": token, "passkey": "not an object"},
        {"code": "123456"},
    ):
        answer = await api.post(f"{MFA}/verify", json_body=body)
        assert answer.status == 400, (body, answer.body)
    unknown = await verify(api, "x" * 10_000, code=code(secret, clock()))
    assert (unknown.status, unknown.body["error"]) == (401, "invalid_mfa_token")
    assert (await api.get(MFA)).status == 400  # no access token
    assert (await api.get(MFA, headers={"Authorization": "Bearer x"})).status == 401


async def test_disabling_takes_a_fresh_proof(api, user, clock):
    pair, _, _ = await enrolled(api, user, clock)
    headers = bearer(pair)
    missing = await api.post(f"{MFA}/totp/disable", json_body={}, headers=headers)
    assert missing.status == 400
    wrong = await api.post(
        f"{MFA}/totp/disable", json_body={"hash_password": "nope"}, headers=headers
    )
    assert (wrong.status, wrong.body["error"]) == (401, "invalid_credentials")
    done = await api.post(
        f"{MFA}/totp/disable", json_body={"hash_password": user["hash_password"]}, headers=headers
    )
    assert (done.status, done.body) == (200, True)
    assert (await api.get(MFA, headers=headers)).body["recovery_codes"] == 0
    plain = await api.post(
        LOGIN, json_body={"email": user["email"], "hash_password": user["hash_password"]}
    )
    assert plain.status == 200 and "access" in plain.body
    assert claims(plain.body["access"])["amr"] == ["pwd"]


async def test_new_recovery_codes_replace_the_old(api, user, clock):
    pair, _, codes = await enrolled(api, user, clock)
    path = f"{MFA}/recovery_codes/regenerate"
    refused = await api.post(path, json_body={"hash_password": "nope"}, headers=bearer(pair))
    assert refused.status == 401
    fresh = await api.post(
        path, json_body={"hash_password": user["hash_password"]}, headers=bearer(pair)
    )
    assert fresh.status == 200 and len(fresh.body["recovery_codes"]) == 10
    old = await verify(api, (await first_factor(api, user))["mfa_token"], recovery_code=codes[0])
    assert old.status == 400
    new = await verify(
        api,
        (await first_factor(api, user))["mfa_token"],
        recovery_code=fresh.body["recovery_codes"][0],
    )
    assert new.status == 200


async def test_set_up_twice_and_confirm_rules(api, user, clock):
    pair = (await api.post("/authorization/registration", json_body=user)).body
    headers = bearer(pair)
    early = await api.post(f"{MFA}/totp/confirm", json_body={"code": "123456"}, headers=headers)
    assert (early.status, early.body["error"]) == (409, "totp_not_set_up")
    first = (await api.post(f"{MFA}/totp/setup", headers=headers)).body["secret"]
    second = (await api.post(f"{MFA}/totp/setup", headers=headers)).body["secret"]
    stale = await api.post(
        f"{MFA}/totp/confirm", json_body={"code": code(first, clock())}, headers=headers
    )
    assert (stale.status, stale.body["error"]) == (400, "invalid_code")
    ok = await api.post(
        f"{MFA}/totp/confirm", json_body={"code": code(second, clock())}, headers=headers
    )
    assert ok.status == 200
    again = await api.post(f"{MFA}/totp/setup", headers=headers)
    assert (again.status, again.body["error"]) == (409, "totp_enabled")


async def test_the_operator_resets_the_factors(api, user, clock):
    pair, _, _ = await enrolled(api, user, clock)
    user_id = claims(pair["access"])["sub"]
    reset = await api.post(f"/admin/users/{user_id}/mfa/reset", headers=ADMIN)
    assert reset.status == 200, reset.body
    assert reset.body == {
        "reset": True,
        "removed": {"totp": True, "recovery_codes": 10, "passkeys": 0},
    }
    plain = await api.post(
        LOGIN, json_body={"email": user["email"], "hash_password": user["hash_password"]}
    )
    assert plain.status == 200 and "access" in plain.body
    query = {"user": user_id, "type": "admin_mfa_reset"}
    events = await api.get("/admin/events", query=query, headers=ADMIN)
    assert [e["details"]["admin"] for e in events.body["events"]] == ["ops"]
    unknown = await api.post(f"/admin/users/{'0' * 32}/mfa/reset", headers=ADMIN)
    assert unknown.status == 404


async def test_an_mfa_token_from_one_instance_works_on_another(
    api, user, clock, tmp_path, backend_url
):
    _, secret, _ = await enrolled(api, user, clock)
    token = (await first_factor(api, user))["mfa_token"]
    now_code = code(secret, clock())
    async with running_app(tmp_path / "second", backend_url) as other:
        # The second instance shares the store, and with it the tries and the steps used.
        status, body = await other.call(
            "POST", f"{MFA}/verify", {"mfa_token": token, "code": now_code}
        )
        assert status == 200, body
        replay_token = (await first_factor(api, user))["mfa_token"]
        status, body = await other.call(
            "POST", f"{MFA}/verify", {"mfa_token": replay_token, "code": now_code}
        )
        assert (status, body["error"]) == (400, "invalid_code")
