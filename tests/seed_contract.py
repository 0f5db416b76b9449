"""Helpers the seed-contract suite shares (tests/test_seed_contract*.py).

Those files map docs/api.md route by route to a test, as an outside client
would check it: real HTTP, the documented paths, parameters, statuses and shapes.
"""

from __future__ import annotations

import uuid
from typing import Any

import jwt
import pytest

from tests.conftest import TEST_SECRET, USER
from tests.storage_fixtures import with_database

# The stores where the store matters; pure HTTP-shape checks run on SQLite only.
STORES = ["sqlite", "mongo-wire"]
JSON_UTF8 = "application/json; charset=UTF-8"
REGISTER = "/authorization/registration"
LOGIN_EMAIL = "/authorization/login/email"
LOGIN_PHONE = "/authorization/login/phone/number"
LOGOUT = "/authorization/logout"
REFRESH = "/validate/jwt/refresh"
ACCESS = "/validate/jwt/access"
# "Parameters of the POST endpoints are read from ... a JSON object body, a form body, the
# query string": each test that names a source sends its parameters there.
SOURCES = ["json", "form", "query"]

# The YAML block of api.md's "Configuration the tests and operators rely on", verbatim but
# for the data folder and the database file (put in the test's folder) and comments.
CONTRACT_YAML = """\
server:
  host: 127.0.0.1
  port: 8888
  public_url: http://127.0.0.1:8888
  data_dir: {data}
  max_body_bytes: 65536
  trusted_proxies: []
  cors_origins: []
storage:
  url: sqlite:///{data}/vhod.db
jwt:
  secret: null
  algorithm: HS256
  issuer: vhod
  access_ttl: 900
  refresh_ttl: 2592000
  rotate_refresh: false
passwords:
  bcrypt_rounds: 12
  min_length: 8
identifiers:
  default_region: RU
limits:
  login_failures: 10
  login_window: 900
  per_ip_per_minute: 30
  hash_workers: null
  hash_queue: 64
  provider_connect_timeout: 5
  provider_timeout: 10
logging:
  level: info
  format: text
metrics:
  enabled: true
providers:
  vk:
    client_id: ""
    client_secret: ""
    redirect_uri: null
    frontend_redirect: null
    scope: "email phone"
    authorize_url: https://id.vk.ru/authorize
    token_url: https://id.vk.ru/oauth2/auth
    userinfo_url: https://id.vk.ru/oauth2/user_info
  mailru:
    client_id: ""
    client_secret: ""
    scope: userinfo
    authorize_url: https://oauth.mail.ru/login
    token_url: https://oauth.mail.ru/token
    userinfo_url: https://oauth.mail.ru/userinfo
  yandex:
    client_id: ""
    client_secret: ""
    scope: ""
    authorize_url: https://oauth.yandex.ru/authorize
    token_url: https://oauth.yandex.ru/token
    userinfo_url: https://login.yandex.ru/info
"""


def store_settings(request: pytest.FixtureRequest, store: str) -> dict[str, Any]:
    """The storage.url of a test on `store`: SQLite in tmp_path (the default), or a
    database of its own on the session's MongoDB wire server."""
    if store == "sqlite":
        return {}
    base = request.getfixturevalue("mongo_url")
    return {"storage.url": with_database(base, f"vhod_contract_{uuid.uuid4().hex[:12]}")}


def send(source: str, params: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `Api.post` that carry `params` in `source`."""
    return {{"json": "json_body", "form": "form", "query": "query"}[source]: params}


def login_params(route: str, user: dict[str, str] = USER) -> dict[str, str]:
    key = "email" if route == LOGIN_EMAIL else "phone_number"
    return {key: user[key], "hash_password": user["hash_password"]}


def assert_pair(response: Any) -> dict[str, str]:
    """200 → `{"access": "<jwt>", "refresh": "<jwt>"}`, not cacheable, and nothing else."""
    assert response.status == 200, response.body
    assert set(response.body) == {"access", "refresh"}, response.body
    assert all(isinstance(v, str) and v.count(".") == 2 for v in response.body.values())
    assert_no_store(response)
    return dict(response.body)


def assert_error(response: Any, status: int, code: str) -> None:
    """`{"error": code, "error_description": sentence}` (Api checks the exact keys)."""
    assert (response.status, response.body["error"]) == (status, code), response.body
    assert isinstance(response.body["error_description"], str)
    assert response.body["error_description"]


def assert_no_store(response: Any) -> None:
    assert response.headers["Content-Type"] == JSON_UTF8
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def claims(token: str, *, verify: bool = True) -> dict[str, Any]:
    """The claims of one of our tokens, its signature checked with the tests' secret
    (`verify=False` for refresh tokens: see test_tokens_refresh_signed_with_the_secret)."""
    if not verify:
        return jwt.decode(token, options={"verify_signature": False})
    return jwt.decode(
        token, TEST_SECRET, algorithms=["HS256"], issuer="vhod", options={"require": ["exp"]}
    )


def resign(token: str, key: str = TEST_SECRET, algorithm: str = "HS256", **changes: Any) -> str:
    found = jwt.decode(token, options={"verify_signature": False})
    found.update(changes)
    return jwt.encode({k: v for k, v in found.items() if v is not None}, key, algorithm=algorithm)


async def register(api: Any, user: dict[str, str] = USER) -> dict[str, str]:
    return assert_pair(await api.post(REGISTER, json_body=user))
