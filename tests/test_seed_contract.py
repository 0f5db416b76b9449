"""The seed's HTTP contract (docs/api.md), part 1: Conventions, Identifiers and
Password sign-in (`/authorization/`), route by route, through real HTTP.

This file and test_seed_contract_tokens.py / test_seed_contract_social.py are the map of
api.md: each test is named after the section it checks and quotes the sentence it checks.
Tokens, token checks, operations and configuration are in _tokens; social sign-in in _social.
"""

import asyncio
import logging
import threading

import pytest

import core.domain.passwords
from tests.seed_contract import (
    ACCESS,
    JSON_UTF8,
    LOGIN_EMAIL,
    LOGIN_PHONE,
    LOGOUT,
    REFRESH,
    REGISTER,
    SOURCES,
    STORES,
    assert_error,
    assert_pair,
    claims,
    login_params,
    register,
    send,
    store_settings,
)


@pytest.fixture
def store():
    return "sqlite"


@pytest.fixture
def settings():
    return {}


@pytest.fixture
def config_overrides(request, store, settings):
    return {"limits.per_ip_per_minute": 10_000, **store_settings(request, store), **settings}


# ---- Conventions ----------------------------------------------------------------------


async def test_conventions_success_bodies_are_json_utf8(api, user):
    """api.md: "Success bodies are JSON (`Content-Type: application/json; charset=UTF-8`).\""""
    tokens = await register(api, user)
    for response in (
        await api.get(ACCESS, query={"access": tokens["access"]}),
        await api.get(REFRESH, query={"refresh": tokens["refresh"]}),
        await api.get("/healthz"),
    ):
        assert response.status == 200
        assert response.headers["Content-Type"] == JSON_UTF8


async def test_conventions_errors_are_oauth_json_never_html(api):
    """api.md: "Errors are JSON objects in the OAuth 2.0 style, never HTML, never a traceback:
    {"error": "<machine_code>", "error_description": "<one human sentence>"}"; 404
    `not_found` for an unknown path, 405 `method_not_allowed` for a wrong method."""
    for method in ("GET", "POST"):
        assert_error(await api.call(method, "/no/such/path"), 404, "not_found")
    assert_error(await api.get(REGISTER), 405, "method_not_allowed")
    assert_error(await api.call("DELETE", ACCESS), 405, "method_not_allowed")
    assert_error(await api.get("/no-such-provider/link"), 404, "not_found")


@pytest.mark.parametrize(
    "body", ["{not json", "[1, 2]", '"text"'], ids=["not-json", "array", "string"]
)
async def test_conventions_invalid_request_for_a_body_not_a_json_object(api, body):
    """400 `invalid_request`: "a body is not valid JSON / not an object\""""
    response = await api.post(
        REGISTER, body=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_request")


async def test_conventions_invalid_request_for_a_value_not_a_string(api, user):
    """400 `invalid_request`: "a value is not a string\""""
    for value in (12345, None, ["a"], {"a": 1}):
        response = await api.post(REGISTER, json_body={**user, "email": value})
        assert_error(response, 400, "invalid_request")


async def test_conventions_json_body_then_form_body_then_query_string(api, user):
    """api.md: "Parameters of the POST endpoints are read from, in this order: a JSON object body
    (`application/json`), a form body (`application/x-www-form-urlencoded`), the query
    string.\""""
    await register(api, user)
    wrong = {**login_params(LOGIN_EMAIL, user), "hash_password": "wrong password!"}
    right = login_params(LOGIN_EMAIL, user)
    assert_pair(await api.post(LOGIN_EMAIL, json_body=right, query=wrong))
    assert_pair(await api.post(LOGIN_EMAIL, form=right, query=wrong))
    assert_error(
        await api.post(LOGIN_EMAIL, json_body=wrong, query=right), 401, "invalid_credentials"
    )


async def test_conventions_payload_too_large(api, config):
    """413 `payload_too_large`: "body over the configured limit (default 64 KiB)\""""
    assert config.server.max_body_bytes == 65536
    json_type = {"Content-Type": "application/json"}
    exactly = b'{"pad": "' + b"x" * (65536 - 11) + b'"}'  # read: only the fields are missing
    assert_error(await api.post(REGISTER, body=exactly, headers=json_type), 400, "invalid_request")
    over = await api.post(REGISTER, body=exactly + b" ", headers=json_type)
    assert_error(over, 413, "payload_too_large")


@pytest.mark.parametrize("settings", [{"limits.login_failures": 2}])
async def test_conventions_rate_limited_with_retry_after(api, user, settings):
    """429 `rate_limited`: "too many attempts; carries `Retry-After` (seconds)"; the
    threshold is `limits.login_failures` per identifier."""
    await register(api, user)
    wrong = {"email": user["email"], "hash_password": "wrong password!"}
    for _ in range(2):
        assert_error(await api.post(LOGIN_EMAIL, json_body=wrong), 401, "invalid_credentials")
    limited = await api.post(LOGIN_EMAIL, json_body=wrong)
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) > 0


@pytest.mark.parametrize("settings", [{"limits.per_ip_per_minute": 3}])
async def test_conventions_rate_limited_per_client_ip(api, user, settings):
    """429 `rate_limited` with `Retry-After`; `limits.per_ip_per_minute`: "login,
    registration and provider routes, per client IP\""""
    for i in range(3):
        other = {"email": f"u{i}@example.com", "phone_number": f"+791600000{i:02d}"}
        await register(api, {**user, **other})
    limited = await api.post(LOGIN_EMAIL, json_body=login_params(LOGIN_EMAIL, user))
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) > 0


@pytest.mark.parametrize("settings", [{"limits.hash_workers": 1, "limits.hash_queue": 0}])
async def test_conventions_overloaded_with_retry_after_changes_nothing(
    api, user, services, settings, monkeypatch
):
    """503 `overloaded`: "the password-hashing queue is full; carries `Retry-After`;
    nothing was changed\""""
    entered, release = threading.Event(), threading.Event()
    original = core.domain.passwords.check_password

    def held(secret: bytes, hashed: str) -> bool:
        entered.set()
        release.wait(10)
        return original(secret, hashed)

    monkeypatch.setattr(core.domain.passwords, "check_password", held)
    # One login holds the only hashing worker; the queue takes no one else.
    busy = asyncio.ensure_future(api.post(LOGIN_EMAIL, json_body=login_params(LOGIN_EMAIL)))
    await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
    try:
        refused = await api.post(REGISTER, json_body=user)
    finally:
        release.set()
    assert_error(refused, 503, "overloaded")
    assert int(refused.headers["Retry-After"]) > 0
    assert_error(await busy, 401, "invalid_credentials")
    await register(api, user)  # the refused registration created nothing


# ---- Identifiers ----------------------------------------------------------------------


@pytest.mark.parametrize("store", STORES)
async def test_identifiers_email_normal_form_is_one_user(api, user, store):
    """api.md: "email: trimmed, ... domain lower-cased and IDNA-encoded, local part lower-cased;
    stored and compared in that normal form (so `Ann@Example.COM` and `ann@example.com`
    are one user).\""""
    tokens = await register(api, {**user, "email": "  Ann@Example.COM "})
    refreshed = await api.get(REFRESH, query={"refresh": tokens["refresh"]})
    assert refreshed.body["email"] == "ann@example.com"
    assert_pair(await api.post(LOGIN_EMAIL, json_body=login_params(LOGIN_EMAIL, user)))
    again = await api.post(REGISTER, json_body={**user, "phone_number": "+79160000000"})
    assert_error(again, 409, "user_exists")
    idna = await register(api, {**user, "email": "Ivan@Пример.РФ", "phone_number": "+79160000001"})
    refreshed = await api.get(REFRESH, query={"refresh": idna["refresh"]})
    assert refreshed.body["email"] == "ivan@xn--e1afmkfd.xn--p1ai"


async def test_identifiers_invalid_email(api, user):
    """400 `invalid_email`: "the value cannot be normalised (see Identifiers)\""""
    for bad in ("not-an-email", "ann@", "@example.com"):
        response = await api.post(REGISTER, json_body={**user, "email": bad})
        assert_error(response, 400, "invalid_email")
    response = await api.post(LOGIN_EMAIL, json_body={"email": "nope", "hash_password": "x" * 8})
    assert_error(response, 400, "invalid_email")


@pytest.mark.parametrize("store", STORES)
async def test_identifiers_phone_spellings_are_one_user(api, user, store):
    """api.md: "phone_number: parsed with a configurable default region (default `RU`), ... stored
    in E.164 (`+79161234567`); `8 (916) 123-45-67`, `+7 916 123 45 67` and `79161234567`
    are one user.\""""
    await register(api, {**user, "phone_number": "8 (916) 123-45-67"})
    for spelling in ("+7 916 123 45 67", "79161234567", "+79161234567"):
        login = {"phone_number": spelling, "hash_password": user["hash_password"]}
        assert_pair(await api.post(LOGIN_PHONE, json_body=login))
    again = await api.post(REGISTER, json_body={**user, "email": "other@example.com"})
    assert_error(again, 409, "user_exists")


@pytest.mark.parametrize("settings", [{"identifiers.default_region": "US"}])
async def test_identifiers_phone_default_region_is_configurable(api, user, settings):
    """api.md: "phone_number: parsed with a configurable default region (default `RU`)\""""
    await register(api, {**user, "phone_number": "(650) 253-0000"})
    login = {"phone_number": "+1 650 253 0000", "hash_password": user["hash_password"]}
    assert_pair(await api.post(LOGIN_PHONE, json_body=login))


async def test_identifiers_invalid_phone_number(api, user):
    """400 `invalid_phone_number`: "must be a valid number\""""
    for bad in ("12", "not a phone", "+7 000 000 00 00"):
        response = await api.post(REGISTER, json_body={**user, "phone_number": bad})
        assert_error(response, 400, "invalid_phone_number")
    login = {"phone_number": "12", "hash_password": "x" * 8}
    assert_error(await api.post(LOGIN_PHONE, json_body=login), 400, "invalid_phone_number")


async def test_identifiers_hash_password_over_72_bytes_is_not_truncated(api, user):
    """api.md: "Secrets longer than bcrypt's 72-byte input are pre-hashed so that no two different
    secrets collide and none is silently truncated.\""""
    long_secret = "s" * 80 + "-one"
    await register(api, {**user, "hash_password": long_secret})
    same_72 = {"email": user["email"], "hash_password": "s" * 80 + "-two"}
    assert_error(await api.post(LOGIN_EMAIL, json_body=same_72), 401, "invalid_credentials")
    exact = {"email": user["email"], "hash_password": long_secret}
    assert_pair(await api.post(LOGIN_EMAIL, json_body=exact))


async def test_identifiers_hash_password_hashed_again(api, user, services):
    """api.md: "The server hashes it again with bcrypt (cost from config, default 12), off
    the event loop." A documented change: new passwords are hashed with Argon2id at OWASP's
    parameters by default (`passwords.algorithm`, docs/configuration.md); bcrypt hashes of
    old still verify and are rehashed at the next login. No client sees the stored hash.
    Off the event loop: tests/test_passwords.py::test_hashing_does_not_block_the_event_loop."""
    subject = claims((await register(api, user))["access"])["sub"]
    stored = (await services.store.get_user(subject)).password_hash
    assert stored.startswith("$argon2id$v=19$")  # at this suite's cheap costs


async def test_identifiers_weak_password(api, user):
    """400 `weak_password`: "password shorter than the configured minimum (default 8
    characters) or longer than 1024 bytes\""""
    for bad in ("1234567", "я" * 513):  # 7 characters; 1026 bytes
        response = await api.post(REGISTER, json_body={**user, "hash_password": bad})
        assert_error(response, 400, "weak_password")
    assert_pair(await api.post(REGISTER, json_body={**user, "hash_password": "12345678"}))


# ---- Password sign-in: /authorization/ --------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("store", STORES)
async def test_post_authorization_registration(api, user, store, source):
    """POST /authorization/registration: "Params: `phone_number`, `email`, `hash_password`
    (all required). 200 → {"access": "<jwt>", "refresh": "<jwt>"}\""""
    assert_pair(await api.post(REGISTER, **send(source, user)))
    ready = await api.get("/readyz")  # and it was the store this test names
    assert ready.body["storage"] == {"sqlite": "sqlite", "mongo-wire": "mongodb"}[store]


@pytest.mark.parametrize("missing", ["phone_number", "email", "hash_password"])
async def test_post_authorization_registration_all_params_required(api, user, missing):
    """api.md: "(all required)"; 400 `invalid_request`: "a required parameter is missing\""""
    params = {k: v for k, v in user.items() if k != missing}
    assert_error(await api.post(REGISTER, json_body=params), 400, "invalid_request")


@pytest.mark.parametrize("store", STORES)
async def test_post_authorization_registration_user_exists(api, user, store):
    """api.md: "409 `user_exists` when the email or the phone number is taken\""""
    await register(api, user)
    email_taken = {**user, "phone_number": "+79160000000"}
    phone_taken = {**user, "email": "other@example.com"}
    for params in (user, email_taken, phone_taken):
        assert_error(await api.post(REGISTER, json_body=params), 409, "user_exists")


@pytest.mark.parametrize("store", STORES)
async def test_post_authorization_registration_concurrent_one_succeeds(api, user, store):
    """api.md: "two concurrent registrations of one email: exactly one succeeds\""""
    answers = await asyncio.gather(
        *(
            api.post(REGISTER, json_body={**user, "phone_number": f"+7916000{i:04d}"})
            for i in range(4)
        )
    )
    assert sorted(a.status for a in answers) == [200, 409, 409, 409]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("route", [LOGIN_EMAIL, LOGIN_PHONE], ids=["email", "phone"])
@pytest.mark.parametrize("store", STORES)
async def test_post_authorization_login(api, user, store, route, source):
    """POST /authorization/login/email: "Params: `email`, `hash_password`. 200 →
    {"access", "refresh"}"; POST /authorization/login/phone/number: "Params:
    `phone_number`, `hash_password`. 200 → {"access", "refresh"}\""""
    await register(api, user)
    assert_pair(await api.post(route, **send(source, login_params(route, user))))


@pytest.mark.parametrize("route", [LOGIN_EMAIL, LOGIN_PHONE], ids=["email", "phone"])
async def test_post_authorization_login_invalid_credentials(api, user, route, verified_hashes):
    """api.md: "401 `invalid_credentials`": "login with an unknown identifier OR a wrong
    password: same status, same body, same timing\" (timing by its mechanism: one password
    check each); a missing parameter is 400 `invalid_request`."""
    await register(api, user)
    wrong = {**login_params(route, user), "hash_password": "wrong password!"}
    unknown_user = {**user, "email": "nobody@example.com", "phone_number": "+79160000009"}
    unknown = login_params(route, unknown_user)
    answers = []
    for params in (wrong, unknown):
        verified_hashes.clear()
        answers.append(await api.post(route, json_body=params))
        assert len(verified_hashes) == 1
        assert_error(answers[-1], 401, "invalid_credentials")
    assert answers[0].raw == answers[1].raw
    only_password = {"hash_password": user["hash_password"]}
    assert_error(await api.post(route, json_body=only_password), 400, "invalid_request")


@pytest.mark.parametrize("store", STORES)
async def test_post_authorization_logout(api, user, store):
    """POST /authorization/logout: "Params: `refresh` (or `Authorization: Bearer
    <refresh>`) ... 200 → `true`. Revoking an already revoked token is not an error.\""""
    first = (await register(api, user))["refresh"]
    second = assert_pair(await api.post(LOGIN_EMAIL, json_body=login_params(LOGIN_EMAIL)))
    response = await api.post(LOGOUT, json_body={"refresh": first})
    assert (response.status, response.body) == (200, True)
    assert_error(await api.get(REFRESH, query={"refresh": first}), 401, "invalid_token")
    assert (await api.get(REFRESH, query={"refresh": second["refresh"]})).status == 200
    bearer = {"Authorization": f"Bearer {first}"}  # the header wins over the query
    again = await api.post(LOGOUT, query={"refresh": "junk"}, headers=bearer)
    assert (again.status, again.body) == (200, True)
    query = await api.post(LOGOUT, query={"refresh": second["refresh"]})  # old clients
    assert (query.status, query.body) == (200, True)
    assert_error(await api.post(LOGOUT), 400, "invalid_request")
    assert_error(await api.post(LOGOUT, json_body={"refresh": "junk"}), 401, "invalid_token")
    bare = await api.post(LOGOUT, json_body={"refresh": second["refresh"]})
    assert bare.raw == b"true"  # a bare JSON boolean


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("store", STORES)
async def test_post_authorization_logout_all(api, user, store, source):
    """api.md: "optional `all` (`true` revokes every refresh token of that user)\""""
    first = (await register(api, user))["refresh"]
    second = assert_pair(await api.post(LOGIN_EMAIL, json_body=login_params(LOGIN_EMAIL)))
    response = await api.post(LOGOUT, **send(source, {"refresh": first, "all": "true"}))
    assert (response.status, response.body) == (200, True)
    for token in (first, second["refresh"]):
        assert_error(await api.get(REFRESH, query={"refresh": token}), 401, "invalid_token")


async def test_conventions_access_log_redacts_secret_parameters(api, user, caplog):
    """api.md: "the access log redacts the values of the query parameters `access`, `refresh`,
    `access_token`, `code`, `hash_password`, `code_verifier`.\""""
    caplog.set_level(logging.DEBUG)
    tokens = assert_pair(await api.post(REGISTER, query=user))
    await api.get(ACCESS, query={"access": tokens["access"]})
    await api.get(REFRESH, query={"refresh": tokens["refresh"]})
    secrets = {"access_token": "tok-0123456789", "code": "code-0123456789"}
    await api.get("/vk/get/token", query={**secrets, "code_verifier": "verifier-0123456789"})
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert REFRESH in text and "/vk/get/token" in text  # the access log did write them
    for secret in (*tokens.values(), user["hash_password"], *secrets.values()):
        assert secret not in text and secret.split(".")[-1] not in text
    assert "verifier-0123456789" not in text
