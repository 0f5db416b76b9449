"""Registration and password sign-in over HTTP: /authorization/, PW1–PW4, LG1, LG2, LG5, LG6."""

import asyncio
import uuid

import jwt
import pytest
from pymongo.errors import AutoReconnect

from core.domain.passwords import hash_parameters
from storage import SQLiteStore, StorageUnavailable
from tests.conftest import TEST_SECRET
from tests.storage_fixtures import running_app, with_database

REGISTER = "/authorization/registration"
LOGIN_EMAIL = "/authorization/login/email"
LOGIN_PHONE = "/authorization/login/phone/number"


def assert_token_pair(response):
    assert response.status == 200, response.body
    assert set(response.body) == {"access", "refresh"}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    access = jwt.decode(response.body["access"], TEST_SECRET, algorithms=["HS256"])
    # The refresh token is no token the shared secret verifies (tests/test_refresh_keys.py).
    refresh = jwt.decode(response.body["refresh"], options={"verify_signature": False})
    assert access["mode"] == "access_token" and refresh["mode"] == "refresh_token"
    assert access["sub"] == refresh["sub"]
    return access


async def test_registration_returns_a_token_pair(api, user):
    claims = assert_token_pair(await api.post(REGISTER, json_body=user))
    assert claims["user_name"] == "ann@example.com"
    assert claims["iss"] == "vhod"


@pytest.mark.parametrize("source", ["json_body", "form", "query"])
async def test_parameters_come_from_json_form_or_query(api, user, source):
    assert_token_pair(await api.post(REGISTER, **{source: user}))
    login = {"email": user["email"], "hash_password": user["hash_password"]}
    assert_token_pair(await api.post(LOGIN_EMAIL, **{source: login}))


async def test_json_body_wins_over_query(api, user):
    response = await api.post(REGISTER, json_body=user, query={"email": "other@example.com"})
    assert assert_token_pair(response)["user_name"] == "ann@example.com"


async def test_form_body_wins_over_query(api, user):
    # api.md: a JSON body, then a form body, then the query string.
    response = await api.post(REGISTER, form=user, query={"email": "other@example.com"})
    assert assert_token_pair(response)["user_name"] == "ann@example.com"


@pytest.mark.parametrize("missing", ["phone_number", "email", "hash_password"])
async def test_missing_parameter_is_invalid_request(api, user, missing):
    del user[missing]
    response = await api.post(REGISTER, json_body=user)
    assert (response.status, response.body["error"]) == (400, "invalid_request")
    assert missing in response.body["error_description"]


@pytest.mark.parametrize("value", [{"$ne": None}, {"$gt": ""}, ["ann@example.com"], 42, True])
async def test_non_string_values_are_refused_never_queries(api, user, value):
    """LG6: an operator object is a 400, never a database query."""
    await api.post(REGISTER, json_body=user)
    response = await api.post(
        LOGIN_EMAIL, json_body={"email": value, "hash_password": {"$ne": None}}
    )
    assert (response.status, response.body["error"]) == (400, "invalid_request")
    response = await api.post(REGISTER, json_body={**user, "email": value})
    assert (response.status, response.body["error"]) == (400, "invalid_request")


async def test_extra_fields_are_ignored_and_not_stored(api, user, services):
    extra = {**user, "is_admin": True, "id": "chosen-id", "password_hash": "$2b$04$x"}
    claims = assert_token_pair(await api.post(REGISTER, json_body=extra))
    assert claims["sub"] != "chosen-id"
    stored = await services.store.get_user(claims["sub"])
    assert stored.password_hash != "$2b$04$x"
    assert not hasattr(stored, "is_admin")


@pytest.mark.parametrize(
    "field,value,code",
    [("email", "not-an-email", "invalid_email"), ("phone_number", "12345", "invalid_phone_number")],
)
async def test_bad_identifiers(api, user, field, value, code):
    response = await api.post(REGISTER, json_body={**user, field: value})
    assert (response.status, response.body["error"]) == (400, code)


async def test_pw1_minimum_length(api, user):
    response = await api.post(REGISTER, json_body={**user, "hash_password": "a" * 7})
    assert (response.status, response.body["error"]) == (400, "weak_password")
    assert_token_pair(await api.post(REGISTER, json_body={**user, "hash_password": "abcdefgh"}))


async def test_pw2_any_unicode_registers_and_logs_in(api, user):
    secret = "пароль" * 10 + "ёжик"  # 64 Cyrillic characters
    assert len(secret) == 64
    assert_token_pair(await api.post(REGISTER, json_body={**user, "hash_password": secret}))
    assert_token_pair(
        await api.post(LOGIN_EMAIL, json_body={"email": user["email"], "hash_password": secret})
    )


async def test_pw2_over_cap_is_refused_before_hashing(api, user, services):
    calls = 0
    original = services.hasher.hash

    async def counting(secret):
        nonlocal calls
        calls += 1
        return await original(secret)

    services.hasher.hash = counting
    response = await api.post(REGISTER, json_body={**user, "hash_password": "a" * 1025})
    assert (response.status, response.body["error"]) == (400, "weak_password")
    huge = await api.post(REGISTER, json_body={**user, "hash_password": "a" * 1024 * 1024})
    assert (huge.status, huge.body["error"]) == (413, "payload_too_large")
    assert calls == 0


async def test_pw3_verified_exactly_as_sent(api, user):
    long_secret = "a" * 72 + "1"
    assert_token_pair(await api.post(REGISTER, json_body={**user, "hash_password": long_secret}))
    for wrong in ("a" * 72 + "2", "a" * 72, "A" * 72 + "1"):
        response = await api.post(
            LOGIN_EMAIL, json_body={"email": user["email"], "hash_password": wrong}
        )
        assert (response.status, response.body["error"]) == (401, "invalid_credentials")
    assert_token_pair(
        await api.post(
            LOGIN_EMAIL, json_body={"email": user["email"], "hash_password": long_secret}
        )
    )


async def test_pw4_stored_hash_uses_configured_cost_and_no_plaintext(api, user, services, config):
    """Argon2id by default, at the configured costs (the tests' cheap ones)."""
    claims = assert_token_pair(await api.post(REGISTER, json_body=user))
    stored = await services.store.get_user(claims["sub"])
    assert config.passwords.algorithm == "argon2id"
    assert hash_parameters(stored.password_hash) == "$argon2id$v=19$m=64,t=1,p=1$"
    database = config.storage.url.removeprefix("sqlite:///")
    for path in (database, database + "-wal"):
        try:
            with open(path, "rb") as f:
                assert user["hash_password"].encode() not in f.read()
        except FileNotFoundError:
            pass


async def test_duplicates_are_409_in_any_spelling(api, user):
    assert_token_pair(await api.post(REGISTER, json_body=user))
    same_email = {**user, "email": " ANN@Example.com", "phone_number": "+79990000000"}
    same_phone = {**user, "email": "other@example.com", "phone_number": "8 (916) 123-45-67"}
    for body in (same_email, same_phone):
        response = await api.post(REGISTER, json_body=body)
        assert (response.status, response.body["error"]) == (409, "user_exists")


async def test_lg5_parallel_registrations_exactly_one_wins(api, user):
    responses = await asyncio.gather(
        *(
            api.post(REGISTER, json_body={**user, "phone_number": f"+7916000{i:04d}"})
            for i in range(12)
        )
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] + [409] * 11


async def test_login_by_email_and_phone_reach_one_user(api, user):
    registered = assert_token_pair(await api.post(REGISTER, json_body=user))
    by_email = assert_token_pair(
        await api.post(
            LOGIN_EMAIL,
            json_body={"email": "Ann@EXAMPLE.com", "hash_password": user["hash_password"]},
        )
    )
    by_phone = assert_token_pair(
        await api.post(
            LOGIN_PHONE,
            json_body={"phone_number": "8 916 123-45-67", "hash_password": user["hash_password"]},
        )
    )
    assert registered["sub"] == by_email["sub"] == by_phone["sub"]


async def test_lg1_unknown_user_and_wrong_password_look_the_same(api, user):
    await api.post(REGISTER, json_body=user)
    wrong = await api.post(
        LOGIN_EMAIL, json_body={"email": user["email"], "hash_password": "wrong password"}
    )
    unknown = await api.post(
        LOGIN_EMAIL, json_body={"email": "nobody@example.com", "hash_password": "wrong password"}
    )
    wrong_phone = await api.post(
        LOGIN_PHONE, json_body={"phone_number": user["phone_number"], "hash_password": "nope nope"}
    )
    unknown_phone = await api.post(
        LOGIN_PHONE, json_body={"phone_number": "+79990001122", "hash_password": "nope nope"}
    )
    assert wrong.status == unknown.status == wrong_phone.status == unknown_phone.status == 401
    assert wrong.raw == unknown.raw == wrong_phone.raw == unknown_phone.raw
    assert wrong.body["error"] == "invalid_credentials"


@pytest.mark.parametrize(
    ("config_overrides", "expected"),
    [
        ({}, "$argon2id$v=19$m=64,t=1,p=1$"),
        ({"passwords.algorithm": "bcrypt", "passwords.bcrypt_rounds": 5}, "$2b$05$"),
    ],
    ids=["argon2id", "bcrypt"],
)
async def test_lg2_an_unknown_user_costs_one_check_of_the_same_cost(
    api, user, config_overrides, expected, verified_hashes
):
    """LG2 by its mechanism: every failed login, known user or not, runs exactly one check
    against a hash of the configured algorithm and costs (a dummy one when there is no user)."""
    await api.post(REGISTER, json_body=user)
    checked = verified_hashes
    costs = []
    for email in (user["email"], "nobody@example.com", "Nobody@example.com"):
        checked.clear()
        response = await api.post(
            LOGIN_EMAIL, json_body={"email": email, "hash_password": "wrong password"}
        )
        assert response.status == 401
        assert len(checked) == 1, email
        costs.append(hash_parameters(checked[0]))
    unknown_phone = {"phone_number": "+79990001122", "hash_password": "wrong password"}
    checked.clear()
    assert (await api.post(LOGIN_PHONE, json_body=unknown_phone)).status == 401
    assert len(checked) == 1
    assert costs == [expected] * 3 and hash_parameters(checked[0]) == expected


def fail_refresh_token_writes(store, monkeypatch) -> None:
    """Make the store's next refresh-token writes fail as a lost database would."""
    if isinstance(store, SQLiteStore):

        def failing(db, token):
            raise StorageUnavailable("disk I/O error")

        monkeypatch.setattr(store, "_insert_token", failing)
    else:

        async def failing(*args, **kwargs):
            raise AutoReconnect("connection closed")

        monkeypatch.setattr(store.refresh_tokens, "insert_one", failing)


async def test_d16_a_failure_between_user_and_token_leaves_no_user(
    tmp_path, backend_url, user, monkeypatch
):
    async with running_app(tmp_path, backend_url) as app:
        store = app.services.store
        with monkeypatch.context() as patch:
            fail_refresh_token_writes(store, patch)
            status, body = await app.call("POST", REGISTER, user)
        assert (status, body["error"]) == (503, "storage_unavailable")
        assert "nothing was changed" in body["error_description"]
        # True to its word: nobody holds the email or phone, and registering again works.
        assert await store.find_user_by_email(user["email"]) is None
        assert await store.find_user_by_phone(user["phone_number"]) is None
        status, pair = await app.call("POST", REGISTER, user)
        assert status == 200, pair


async def test_d16_an_undo_that_fails_too_is_reported_truthfully(
    tmp_path, mongo_url, user, monkeypatch
):
    url = with_database(mongo_url, f"vhod_d16_{uuid.uuid4().hex[:12]}")
    async with running_app(tmp_path, url) as app:
        store = app.services.store

        async def failing(*args, **kwargs):
            raise AutoReconnect("connection closed")

        with monkeypatch.context() as patch:
            fail_refresh_token_writes(store, patch)
            patch.setattr(store.users, "delete_one", failing)
            status, body = await app.call("POST", REGISTER, user)
        assert (status, body["error"]) == (503, "storage_unavailable")
        assert "nothing was changed" not in body["error_description"]
        assert "may exist" in body["error_description"]
        # The account that remained signs in with its password.
        login = {"email": user["email"], "hash_password": user["hash_password"]}
        assert (await app.call("POST", LOGIN_EMAIL, login))[0] == 200
        await store.database.client.drop_database(store.database.name)
