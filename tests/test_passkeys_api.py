"""Passkeys end to end over HTTP: two vhod processes on one store (SQLite file, MongoDB wire),
the software authenticator of tests/fakes/webauthn.py as the browser. Every ceremony starts
on one instance and ends on the other."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from core.domain.admin import new_admin_key
from tests.fakes.webauthn import SoftAuthenticator, b64url
from tests.processes import ROOT, Pair, Server, setting_env
from tests.processes import call_json as call
from tests.storage_fixtures import instances_on_one_store

SECRET = "one-secret-for-every-instance-of-the-passkey-tests"
ORIGIN = "http://localhost:3000"
KEY, KEY_HASH = new_admin_key()
USER = {
    "email": "ann@example.com",
    "phone_number": "+79161234567",
    "hash_password": "correct horse 1",
}
BASE = "/authorization/passkeys"


@pytest.fixture(params=["sqlite", "mongo-wire"])
def instances(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    env = {"VHOD_PASSWORDS__BCRYPT_ROUNDS": "4", "VHOD_LIMITS__HASH_WORKERS": "1"}
    env.update(
        setting_env(
            {
                "webauthn.rp_id": "localhost",
                "webauthn.origins": ORIGIN,
                "admin.keys": json.dumps({"ops": KEY_HASH}),
            }
        )
    )
    yield from instances_on_one_store(request, tmp_path, env, SECRET)


def claims(access: str) -> dict[str, Any]:
    return jwt.decode(access, options={"verify_signature": False})


async def signed_up(instance: Server) -> dict[str, Any]:
    status, pair = await call(instance, "/authorization/registration", USER)
    assert status == 200, pair
    return pair


async def register(
    start: Server, finish: Server, access: str, authenticator: SoftAuthenticator, **extra: Any
) -> dict[str, Any]:
    status, options = await call(start, f"{BASE}/register/options", access=access)
    assert status == 200, options
    credential = authenticator.create(options)
    status, passkey = await call(
        finish, f"{BASE}/register", {"credential": credential, **extra}, access
    )
    assert status == 200, passkey
    return passkey


async def assertion(instance: Server, authenticator: SoftAuthenticator, **forge: Any) -> Any:
    status, options = await call(instance, f"{BASE}/login/options")
    assert status == 200, options
    return authenticator.get(options, **forge)


async def test_a_passkey_registers_and_signs_in_across_instances(instances):
    a, b = instances.a, instances.b
    pair = await signed_up(a)
    authenticator = SoftAuthenticator(ORIGIN)
    passkey = await register(a, b, pair["access"], authenticator, name="  My   phone ")
    assert set(passkey) == {"id", "name", "created", "last_used", "transports", "synced"}
    assert passkey["name"] == "My phone" and passkey["last_used"] is None
    assert passkey["transports"] == ["internal", "hybrid"] and passkey["synced"] is False
    # Username-less: the options name no credential; the assertion goes to the other instance.
    status, options = await call(b, f"{BASE}/login/options")
    assert status == 200 and options["allowCredentials"] == [] and options["rpId"] == "localhost"
    status, tokens = await call(a, f"{BASE}/login", {"credential": authenticator.get(options)})
    assert status == 200, tokens
    assert set(tokens) >= {"access", "refresh"}
    token = claims(tokens["access"])
    assert token["sub"] == claims(pair["access"])["sub"]
    assert token["amr"] == ["hwk", "mfa"]
    assert (await call(b, "/validate/jwt/refresh", {"refresh": tokens["refresh"]}))[0] == 200
    status, listed = await call(b, BASE, access=tokens["access"], method="GET")
    assert status == 200 and [p["id"] for p in listed["passkeys"]] == [passkey["id"]]
    assert listed["passkeys"][0]["last_used"] is not None
    # A synced passkey without user verification: swk, no mfa.
    synced = SoftAuthenticator(ORIGIN, backup_eligible=True, user_verified=False)
    second = await register(b, a, pair["access"], synced)
    assert second["synced"] is True and second["name"] == "Passkey"
    status, tokens = await call(b, f"{BASE}/login", {"credential": await assertion(a, synced)})
    assert status == 200 and claims(tokens["access"])["amr"] == ["swk"]
    # Renamed and removed on either instance; a removed passkey signs in no more.
    status, renamed = await call(
        a, f"{BASE}/rename", {"id": second["id"], "name": "Laptop"}, pair["access"]
    )
    assert (status, renamed["name"]) == (200, "Laptop")
    assert await call(b, f"{BASE}/delete", {"id": second["id"]}, pair["access"]) == (200, True)
    status, error = await call(a, f"{BASE}/login", {"credential": await assertion(b, synced)})
    assert (status, error["error"]) == (401, "unknown_passkey")
    # The account has a password: its last passkey can go too.
    assert await call(a, f"{BASE}/delete", {"id": passkey["id"]}, pair["access"]) == (200, True)
    status, error = await call(b, f"{BASE}/delete", {"id": passkey["id"]}, pair["access"])
    assert (status, error["error"]) == (404, "passkey_not_found")


async def test_bad_input_answers_a_json_error_never_a_500(instances):
    a, b = instances.a, instances.b
    pair = await signed_up(a)
    authenticator = SoftAuthenticator(ORIGIN)
    await register(a, b, pair["access"], authenticator)
    login = f"{BASE}/login"

    async def refused(instance: Server, body: Any = None, raw: bytes | None = None) -> Any:
        status, error = await call(instance, login, body, raw=raw)
        assert status in (400, 401), (status, error)
        assert set(error) == {"error", "error_description"}
        return status, error["error"]

    assert await refused(a, raw=b'{"credential": {') == (400, "invalid_request")
    assert await refused(a, {}) == (400, "invalid_credential")
    assert await refused(a, {"credential": "a string"}) == (400, "invalid_credential")
    assert await refused(a, {"credential": {"id": [1]}}) == (400, "invalid_credential")
    good = await assertion(a, authenticator)
    broken = {**good, "response": {**good["response"], "authenticatorData": "%%%"}}
    assert (await refused(b, {"credential": broken}))[0] in (400, 401)
    # A challenge vhod never gave; a challenge used already (on the other instance).
    options = {"rpId": "localhost", "challenge": b64url(bytes(32))}
    assert await refused(a, {"credential": authenticator.get(options)}) == (
        400,
        "invalid_challenge",
    )
    used = await assertion(a, authenticator)
    assert (await call(b, login, {"credential": used}))[0] == 200
    assert await refused(a, {"credential": used}) == (400, "invalid_challenge")
    # Another origin, an unknown credential, a wrong signature, a counter gone back.
    wrong_origin = await assertion(b, authenticator, origin="http://localhost:4000")
    assert await refused(a, {"credential": wrong_origin}) == (401, "passkey_rejected")
    stranger = SoftAuthenticator(ORIGIN)
    status, options = await call(a, f"{BASE}/register/options", access=pair["access"])
    stranger.create(options)  # made but never registered
    assert await refused(b, {"credential": await assertion(a, stranger)}) == (
        401,
        "unknown_passkey",
    )
    forged = await assertion(a, authenticator, sign_with=ec.generate_private_key(ec.SECP256R1()))
    assert await refused(b, {"credential": forged}) == (401, "passkey_rejected")
    clone = await assertion(b, authenticator, counter=1)
    assert await refused(a, {"credential": clone}) == (401, "passkey_rejected")
    a.wait_until(lambda: "passkey_counter_regressed" in a.log(), 10, "the security event")
    # Registration: no access token, a credential that is no object, another origin.
    assert (await call(a, f"{BASE}/register/options"))[0] == 400  # no token, as elsewhere
    assert (await call(a, f"{BASE}/register/options", access="nope"))[0] == 401
    status, error = await call(b, f"{BASE}/register", {"credential": []}, pair["access"])
    assert (status, error["error"]) == (400, "invalid_credential")
    status, options = await call(a, f"{BASE}/register/options", access=pair["access"])
    elsewhere = SoftAuthenticator("http://localhost:4000").create(options)
    status, error = await call(b, f"{BASE}/register", {"credential": elsewhere}, pair["access"])
    assert (status, error["error"]) == (400, "invalid_credential")
    for instance in (a, b):
        assert " 500 " not in instance.log() and "Traceback" not in instance.log()


async def test_a_disabled_account_cannot_sign_in_with_its_passkey(instances):
    a, b = instances.a, instances.b
    pair = await signed_up(a)
    authenticator = SoftAuthenticator(ORIGIN)
    await register(a, b, pair["access"], authenticator)
    user_id = claims(pair["access"])["sub"]
    status, _ = await call(
        b, f"/admin/users/{user_id}/disable", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert status == 200
    status, error = await call(
        a, f"{BASE}/login", {"credential": await assertion(b, authenticator)}
    )
    assert (status, error["error"]) == (403, "account_disabled")


@pytest.fixture
def throttled(tmp_path: Path) -> Iterator[Server]:
    env = setting_env(
        {
            "limits.per_ip_per_minute": 3,
            "webauthn.rp_id": "localhost",
            "webauthn.origins": ORIGIN,
            "storage.url": f"sqlite:///{tmp_path / 'vhod.db'}",
            "server.data_dir": str(tmp_path / "data"),
        }
    )
    server = Server(tmp_path, **env)
    try:
        server.wait_started()
        yield server
    finally:
        server.stop()


async def test_passkey_sign_in_counts_against_the_client_limit(throttled):
    statuses = [(await call(throttled, f"{BASE}/login/options"))[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    status, error = await call(throttled, f"{BASE}/login", {"credential": {}})
    assert (status, error["error"]) == (429, "rate_limited")


@pytest.mark.slow
def test_the_passkey_benchmark_runs_and_every_sign_in_succeeds():
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "passkeys.py"),
            *("--users", "2", "--assertions", "20", "--duration", "0.5", "--connections", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    rows = [line.split("|") for line in done.stdout.splitlines() if "| passkeys/" in line]
    assert [row[1].strip() for row in rows] == ["passkeys/login/options", "passkeys/login"]
    assert rows[1][2].strip() == "20" and [row[6].strip() for row in rows] == ["0", "0"]
