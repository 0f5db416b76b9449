"""Abuse protection over HTTP: login throttling (LG3), per-address limit (LG4), refresh
rotation (RT2–RT4), rehash on login (PW4), admission control and security events (AP4)."""

import asyncio
import itertools
import json
import logging
import threading
import time

import bcrypt
import pytest

from core.domain.passwords import hash_cost, hash_parameters
from tests.storage_fixtures import running_app

REGISTER = "/authorization/registration"
LOGIN_EMAIL = "/authorization/login/email"
LOGIN_PHONE = "/authorization/login/phone/number"
REFRESH = "/validate/jwt/refresh"
ACCESS = "/validate/jwt/access"
CHANGE = "/authorization/password/change"
DELETE = "/authorization/account/delete"

# The address limit is set high where a test is about something else.
NO_ADDRESS_LIMIT = {"limits.per_ip_per_minute": 10_000}


async def register(api, user):
    response = await api.post(REGISTER, json_body=user)
    assert response.status == 200, response.body
    return response.body


async def login(api, email, password):
    return await api.post(LOGIN_EMAIL, json_body={"email": email, "hash_password": password})


@pytest.mark.parametrize("config_overrides", [NO_ADDRESS_LIMIT])
async def test_lg3_locks_after_ten_failures_even_with_the_right_password(
    api, user, clock, config_overrides
):
    await register(api, user)
    for _ in range(10):
        assert (await login(api, user["email"], "wrong password")).status == 401
    blocked = await login(api, user["email"], "wrong password")
    assert (blocked.status, blocked.body["error"]) == (429, "rate_limited")
    retry_after = blocked.headers["Retry-After"]
    assert retry_after.isdigit() and 0 < int(retry_after) <= 900
    right = await login(api, user["email"], user["hash_password"])
    assert right.status == 429
    clock.advance(901)
    assert (await login(api, user["email"], user["hash_password"])).status == 200


@pytest.mark.parametrize("config_overrides", [NO_ADDRESS_LIMIT])
async def test_lg3_email_and_phone_share_one_count(api, user, config_overrides):
    await register(api, user)
    for attempt in range(10):
        if attempt % 2:
            response = await login(api, user["email"], "wrong password")
        else:
            response = await api.post(
                LOGIN_PHONE,
                json_body={"phone_number": "8 916 123 45 67", "hash_password": "wrong password"},
            )
        assert response.status == 401
    phone = await api.post(
        LOGIN_PHONE,
        json_body={"phone_number": user["phone_number"], "hash_password": user["hash_password"]},
    )
    assert phone.status == 429


@pytest.mark.parametrize("config_overrides", [NO_ADDRESS_LIMIT])
async def test_lg3_unknown_identifiers_are_counted_and_look_the_same(api, user, config_overrides):
    await register(api, user)
    for _ in range(10):
        await login(api, "nobody@example.com", "wrong password")
        await login(api, user["email"], "wrong password")
    unknown = await login(api, "Nobody@Example.com", "wrong password")
    known = await login(api, user["email"], "wrong password")
    assert unknown.status == known.status == 429
    assert unknown.raw == known.raw


@pytest.mark.parametrize("config_overrides", [NO_ADDRESS_LIMIT])
async def test_lg3_success_resets_the_count(api, user, config_overrides):
    await register(api, user)
    for _ in range(9):
        assert (await login(api, user["email"], "wrong password")).status == 401
    assert (await login(api, user["email"], user["hash_password"])).status == 200
    for _ in range(9):
        assert (await login(api, user["email"], "wrong password")).status == 401
    assert (await login(api, user["email"], user["hash_password"])).status == 200


@pytest.mark.parametrize("config_overrides", [{"limits.login_failures": 3, **NO_ADDRESS_LIMIT}])
async def test_lg3_threshold_comes_from_config(api, user, config_overrides):
    await register(api, user)
    for _ in range(3):
        assert (await login(api, user["email"], "wrong password")).status == 401
    assert (await login(api, user["email"], "wrong password")).status == 429


@pytest.mark.parametrize("config_overrides", [{"limits.per_ip_per_minute": 5}])
async def test_lg4_per_address_limit_and_spoofed_header(api, user, clock, config_overrides):
    for index in range(5):
        spoof = {"X-Forwarded-For": f"203.0.113.{index}"}
        response = await api.post(
            LOGIN_EMAIL,
            json_body={"email": f"u{index}@example.com", "hash_password": "x" * 8},
            headers=spoof,
        )
        assert response.status == 401
    sixth = await api.post(REGISTER, json_body=user, headers={"X-Forwarded-For": "198.51.100.7"})
    assert (sixth.status, sixth.body["error"]) == (429, "rate_limited")
    assert sixth.headers["Retry-After"].isdigit()
    # Token checks are not address-limited.
    assert (await api.get(ACCESS, query={"access": "x"})).status == 200
    clock.advance(61)
    assert (await api.post(REGISTER, json_body=user)).status == 200


@pytest.mark.parametrize(
    "config_overrides",
    [{"limits.per_ip_per_minute": 2, "server.trusted_proxies": ["127.0.0.1/32"]}],
)
async def test_lg4_forwarded_for_believed_from_trusted_proxies(api, config_overrides):
    async def attempt(client):
        return await api.post(
            LOGIN_EMAIL,
            json_body={"email": "a@example.com", "hash_password": "x" * 8},
            headers={"X-Forwarded-For": f"6.6.6.6, {client}"},
        )

    assert (await attempt("198.51.100.1")).status == 401
    assert (await attempt("198.51.100.1")).status == 401
    assert (await attempt("198.51.100.1")).status == 429
    # Another client behind the same proxy has its own count; the spoofable left part is ignored.
    assert (await attempt("198.51.100.2")).status == 401


@pytest.mark.parametrize(
    "config_overrides",
    [{"limits.per_ip_per_minute": 3, "server.trusted_proxies": ["127.0.0.1/32"]}],
)
async def test_lg4_password_change_and_deletion_are_limited_per_address(
    api, user, clock, config_overrides
):
    # Both check a password (and a change hashes one): a client looping them would spend
    # the hash workers everyone's login waits on.
    def client(address):
        return {"X-Forwarded-For": address}

    pair = (await api.post(REGISTER, json_body=user, headers=client("198.51.100.9"))).body
    passwords = [user["hash_password"], "second secret", "third secret", "fourth secret"]
    for current, new in itertools.pairwise(passwords):
        changed = await api.post(
            CHANGE,
            json_body={"hash_password": current, "new_password": new},
            headers={"Authorization": f"Bearer {pair['access']}", **client("198.51.100.1")},
        )
        assert changed.status == 200, changed.body
        pair = changed.body
    bearer = {"Authorization": f"Bearer {pair['access']}"}
    body = {"hash_password": passwords[-1], "new_password": "fifth secret"}
    fourth = await api.post(CHANGE, json_body=body, headers={**bearer, **client("198.51.100.1")})
    assert (fourth.status, fourth.body["error"]) == (429, "rate_limited")
    assert fourth.headers["Retry-After"].isdigit() and int(fourth.headers["Retry-After"]) > 0
    # Deleting the account with a password counts on the same limit.
    wrong = {"hash_password": "not the password"}
    for _ in range(3):
        refused = await api.post(
            DELETE, json_body=wrong, headers={**bearer, **client("203.0.113.5")}
        )
        assert refused.status == 401
    deleting = await api.post(DELETE, json_body=wrong, headers={**bearer, **client("203.0.113.5")})
    assert (deleting.status, deleting.body["error"]) == (429, "rate_limited")
    # Another client is not limited by these; the limit ends with its window.
    other = await api.post(CHANGE, json_body=body, headers={**bearer, **client("198.51.100.2")})
    assert other.status == 200, other.body
    clock.advance(61)
    bearer = {"Authorization": f"Bearer {other.body['access']}"}
    again = {"hash_password": "fifth secret", "new_password": "sixth secret"}
    later = await api.post(CHANGE, json_body=again, headers={**bearer, **client("198.51.100.1")})
    assert later.status == 200, later.body


@pytest.mark.parametrize("config_overrides", [{"jwt.rotate_refresh": True}])
async def test_rt2_rt3_rotation_and_reuse_revokes_the_family(api, user, config_overrides, caplog):
    first = (await register(api, user))["refresh"]
    rotated = await api.get(REFRESH, query={"refresh": first})
    assert rotated.status == 200
    assert set(rotated.body) == {"access", "email", "refresh"}
    second = rotated.body["refresh"]
    assert second != first
    third = (await api.get(REFRESH, query={"refresh": second})).body["refresh"]
    caplog.set_level(logging.INFO, logger="vhod.security")
    replay = await api.get(REFRESH, query={"refresh": first})
    assert (replay.status, replay.body["error"]) == (401, "invalid_token")
    assert (await api.get(REFRESH, query={"refresh": third})).status == 401
    events = [r for r in caplog.records if getattr(r, "event", None) == "refresh_reuse"]
    assert len(events) == 1
    assert first not in events[0].getMessage()


@pytest.mark.parametrize("config_overrides", [{"jwt.rotate_refresh": True}])
async def test_rt4_concurrent_refreshes_give_one_successor(api, user, config_overrides, caplog):
    caplog.set_level(logging.INFO, logger="vhod.security")
    token = (await register(api, user))["refresh"]
    responses = await asyncio.gather(
        *(api.get(REFRESH, query={"refresh": token}) for _ in range(10))
    )
    winners = [r for r in responses if r.status == 200]
    assert len(winners) == 1
    assert all(r.status == 401 for r in responses if r.status != 200)
    # A request that reads the token only after the winner retired it is a retired token
    # coming back, and ends the family (RT3); which requests do depends on timing. The
    # successor works exactly when none did.
    replayed = any(getattr(r, "event", None) == "refresh_reuse" for r in caplog.records)
    successor = await api.get(REFRESH, query={"refresh": winners[0].body["refresh"]})
    assert successor.status == (401 if replayed else 200)


async def test_without_rotation_the_original_behaviour_holds(api, user):
    token = (await register(api, user))["refresh"]
    for _ in range(3):
        response = await api.get(REFRESH, query={"refresh": token})
        assert response.status == 200
        assert set(response.body) == {"access", "email"}


@pytest.mark.parametrize("config_overrides", [{"passwords.algorithm": "bcrypt"}])
async def test_pw4_weaker_hash_is_upgraded_at_next_login(api, user, services, config_overrides):
    claims_user = (await register(api, user))["access"]
    import jwt

    user_id = jwt.decode(claims_user, options={"verify_signature": False})["sub"]
    assert hash_cost((await services.store.get_user(user_id)).password_hash) == 4
    services.hasher.rounds = 5  # the operator raised passwords.bcrypt_rounds
    assert (await login(api, user["email"], "wrong password")).status == 401
    assert hash_cost((await services.store.get_user(user_id)).password_hash) == 4
    assert (await login(api, user["email"], user["hash_password"])).status == 200
    upgraded = (await services.store.get_user(user_id)).password_hash
    assert hash_cost(upgraded) == 5
    assert (await login(api, user["email"], user["hash_password"])).status == 200


async def test_pw4_bcrypt_hash_is_rehashed_to_argon2id_at_next_login(tmp_path, backend_url, user):
    """An install that hashed with bcrypt, started again on the default (Argon2id): the old
    hash still verifies, the right password replaces it, a wrong one changes nothing."""
    import jwt

    async with running_app(tmp_path, backend_url, **{"passwords.algorithm": "bcrypt"}) as app:
        status, pair = await app.call("POST", REGISTER, user)
        assert status == 200, pair
        user_id = jwt.decode(pair["access"], options={"verify_signature": False})["sub"]
        legacy = (await app.services.store.get_user(user_id)).password_hash
        assert hash_parameters(legacy) == "$2b$04$"
    async with running_app(tmp_path, backend_url) as app:
        store = app.services.store
        wrong = {"email": user["email"], "hash_password": "wrong password"}
        right = {"email": user["email"], "hash_password": user["hash_password"]}
        assert (await app.call("POST", LOGIN_EMAIL, wrong))[0] == 401
        assert (await store.get_user(user_id)).password_hash == legacy
        assert (await app.call("POST", LOGIN_EMAIL, right))[0] == 200
        upgraded = (await store.get_user(user_id)).password_hash
        assert hash_parameters(upgraded) == "$argon2id$v=19$m=64,t=1,p=1$"
        assert (await app.call("POST", LOGIN_EMAIL, right))[0] == 200
        assert (await store.get_user(user_id)).password_hash == upgraded  # once only
        assert (await app.call("POST", LOGIN_EMAIL, wrong))[0] == 401


@pytest.mark.parametrize(
    "config_overrides",
    [
        {
            "passwords.algorithm": "bcrypt",
            "passwords.bcrypt_rounds": 12,
            "limits.hash_workers": 1,
            "limits.hash_queue": 2,
            **NO_ADDRESS_LIMIT,
        }
    ],
)
async def test_login_flood_is_refused_fast_and_token_checks_stay_fast(
    api, user, services, config_overrides, monkeypatch
):
    """A flood beyond the hashing capacity is refused with 503 before any hashing, and no
    hash ever runs on the event loop: every hash runs on a pool thread, and token checks
    are answered while a hash is running, which a hash holding the loop would rule out.

    An ordering, not a duration: a threshold of wall time (asyncio's slow-callback report
    with a fraction of one hash's time) fired here when another process took the CPU."""
    access = (await register(api, user))["access"]
    hashing_threads: set[int] = set()
    hashing: list[tuple[float, float]] = []  # (start, end) of every hash, monotonic
    original = bcrypt.checkpw

    def recording(secret: bytes, hashed: bytes) -> bool:
        hashing_threads.add(threading.get_ident())
        started = time.monotonic()
        try:
            return original(secret, hashed)
        finally:
            hashing.append((started, time.monotonic()))

    monkeypatch.setattr(bcrypt, "checkpw", recording)
    flood = [
        asyncio.ensure_future(login(api, f"n{i}@example.com", "wrong password")) for i in range(12)
    ]
    checks, answered = [], []
    for _ in range(10):
        checks.append(await api.get(ACCESS, query={"access": access}))
        answered.append(time.monotonic())
    results = await asyncio.gather(*flood)
    overloaded = [r for r in results if r.status == 503]
    assert overloaded, [r.status for r in results]
    assert all(r.body["error"] == "overloaded" for r in overloaded)
    assert all(r.headers["Retry-After"].isdigit() for r in overloaded)
    assert all(r.status == 401 for r in results if r.status != 503)
    assert all(check.body is True for check in checks)
    # Hashing ran, on the pool's threads only, and the loop answered while it ran.
    assert hashing_threads and threading.get_ident() not in hashing_threads
    assert any(start < when < end for when in answered for start, end in hashing)


@pytest.mark.parametrize("config_overrides", [NO_ADDRESS_LIMIT | {"limits.login_failures": 2}])
async def test_ap4_security_events_are_structured_and_secret_free(
    api, user, caplog, config_overrides
):
    caplog.set_level(logging.INFO, logger="vhod.security")
    await register(api, user)
    for _ in range(2):
        await login(api, user["email"], "wrong password 1")
    await login(api, "nobody@example.com", "wrong password 2")
    events = [r for r in caplog.records if r.name == "vhod.security"]
    kinds = [r.event for r in events]
    assert kinds.count("login_failed") == 3
    assert kinds.count("login_locked") == 1
    for record in events:
        assert record.ip == "127.0.0.1"
        message = record.getMessage()
        payload = json.loads(message.split(" ", 1)[1])
        assert payload["event"] == record.event
        for secret in (
            "wrong password",
            user["hash_password"],
            "nobody@example.com",
            user["email"],
        ):
            assert secret not in message
    unknown = [r for r in events if r.event == "login_failed" and hasattr(r, "identifier")]
    assert len(unknown) == 1 and len(unknown[0].identifier) == 24


async def test_expired_rows_are_purged_periodically(services, clock):
    from core.infra.maintenance import purge_expired_periodically
    from storage.base import OAuthState

    await services.store.put_state(OAuthState("old", "vk", expires_at=clock() + 1))
    await services.store.put_state(OAuthState("live", "vk", expires_at=clock() + 600))
    clock.advance(2)
    purged = asyncio.Event()
    original = services.store.purge_expired

    async def purge(now):
        await original(now)
        purged.set()

    services.store.purge_expired = purge
    task = asyncio.ensure_future(
        purge_expired_periodically(
            services.store, services.accounts.clock, services.config.storage.url, interval=600
        )
    )
    await purged.wait()
    task.cancel()
    assert await services.store.find_state("vk", "old", clock() - 10) is None
    assert await services.store.find_state("vk", "live", clock()) is not None


async def test_lg7_parallel_wrong_passwords_are_verified_at_most_the_limit(
    tmp_path, backend_url, verified_hashes, user
):
    overrides = {"passwords.algorithm": "bcrypt", "passwords.bcrypt_rounds": 8, **NO_ADDRESS_LIMIT}
    async with running_app(tmp_path, backend_url, **overrides) as app:
        assert (await app.call("POST", REGISTER, user))[0] == 200
        wrong = {"email": user["email"], "hash_password": "wrong password"}
        verified_hashes.clear()

        results = await asyncio.gather(*(app.call("POST", LOGIN_EMAIL, wrong) for _ in range(30)))

        statuses = sorted(status for status, _ in results)
        limit = app.services.config.limits.login_failures
        assert len(verified_hashes) <= limit, statuses
        assert statuses.count(401) == len(verified_hashes)
        assert statuses.count(429) == 30 - len(verified_hashes)
        # The lock holds for the right password too.
        right = {"email": user["email"], "hash_password": user["hash_password"]}
        assert (await app.call("POST", LOGIN_EMAIL, right))[0] == 429
