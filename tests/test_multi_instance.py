"""Two vhod processes on one store: a sign-in started on one finishes on the other, and
revocations and throttle counts made on one hold on the other (SQLite file, MongoDB wire)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.fakes.providers import FakeVK, consent_redirect
from tests.processes import Pair, Server, free_port, two_instances
from tests.storage_fixtures import with_database

SECRET = "one-secret-for-every-instance-of-this-test"
LOGIN_FAILURES = 3


@pytest.fixture(params=["sqlite", "mongo-wire"])
def instances(request: pytest.FixtureRequest, tmp_path: Path, fake_vk: FakeVK) -> Iterator[Pair]:
    """Instances A and B on one store, one JWT secret, one provider config, one public URL."""
    mongo_url = None
    if request.param == "sqlite":
        storage_url = f"sqlite:///{tmp_path / 'shared' / 'vhod.db'}"
    else:
        mongo_url = with_database(
            request.getfixturevalue("mongo_url"), f"vhod_multi_{uuid.uuid4().hex[:12]}"
        )
        storage_url = mongo_url
    port_a, port_b = free_port(), free_port()
    vk = fake_vk.section()
    env = {
        "VHOD_JWT__SECRET": SECRET,
        "VHOD_STORAGE__URL": storage_url,
        # Behind one load balancer every instance has the same public URL, so the redirect
        # URI the flow started with is the one the other instance exchanges the code with.
        "VHOD_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port_a}",
        "VHOD_PASSWORDS__ALGORITHM": "bcrypt",
        "VHOD_PASSWORDS__BCRYPT_ROUNDS": "4",
        "VHOD_LIMITS__LOGIN_FAILURES": str(LOGIN_FAILURES),
        "VHOD_LIMITS__PER_IP_PER_MINUTE": "1000",
        "VHOD_LIMITS__HASH_WORKERS": "1",
        "VHOD_PROVIDERS__VK__CLIENT_ID": vk["client_id"],
        "VHOD_PROVIDERS__VK__AUTHORIZE_URL": vk["authorize_url"],
        "VHOD_PROVIDERS__VK__TOKEN_URL": vk["token_url"],
        "VHOD_PROVIDERS__VK__USERINFO_URL": vk["userinfo_url"],
    }
    with two_instances(tmp_path, env, ports=(port_a, port_b), mongo_url=mongo_url) as pair:
        yield pair


async def call(url: str, *, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    response = await AsyncHTTPClient().fetch(
        url,
        method="GET" if body is None else "POST",
        body=None if body is None else json.dumps(body),
        headers={"Content-Type": "application/json"},
        raise_error=False,
        follow_redirects=False,
    )
    return response.code, json.loads(response.body or b"null")


async def register(instance: Server, email: str, phone: str) -> dict[str, str]:
    status, pair = await call(
        instance.url("/authorization/registration"),
        body={"phone_number": phone, "email": email, "hash_password": "correct horse"},
    )
    assert status == 200, pair
    return pair


async def test_an_oauth_flow_started_on_one_instance_finishes_on_the_other(instances, fake_vk):
    a, b = instances.a, instances.b
    # Through the callback: A made the state and PKCE verifier, B checks and exchanges them.
    status, link = await call(a.url("/vk/link"))
    assert status == 200, link
    back = urlsplit(await consent_redirect(link))
    assert back.path == "/vk/callback"
    status, tokens = await call(b.url(f"/vk/callback?{back.query}"))
    assert status == 200, tokens
    assert set(tokens) == {"access_token", "refresh_token", "expire_in"}
    assert tokens["access_token"] in fake_vk.tokens
    # Through get/token, as the original front ends call it.
    status, link = await call(a.url("/vk/link"))
    params = dict(parse_qsl(urlsplit(await consent_redirect(link)).query))
    query = urlencode({k: params[k] for k in ("code", "device_id", "state")})
    status, tokens = await call(b.url(f"/vk/get/token?{query}"))
    assert status == 200, tokens
    # The state is used up everywhere: the same exchange on A is refused.
    status, error = await call(a.url(f"/vk/get/token?{query}"))
    assert (status, error["error"]) == (400, "invalid_state")
    # A provider account registered through B signs in through A.
    provider_token = tokens["access_token"]
    status, ours = await call(b.url(f"/vk/registration?access_token={provider_token}"))
    assert status == 200, ours
    status, ours = await call(a.url(f"/vk/login?access_token={provider_token}"))
    assert status == 200 and set(ours) == {"access", "refresh"}, ours


async def test_a_refresh_token_revoked_on_one_instance_is_refused_by_the_other(instances):
    a, b = instances.a, instances.b
    pair = await register(a, "ann@example.com", "+79161234567")
    refresh = {"refresh": pair["refresh"]}
    status, answer = await call(b.url("/validate/jwt/refresh"), body=refresh)
    assert status == 200 and answer["email"] == "ann@example.com"
    status, access_ok = await call(b.url("/validate/jwt/access"), body={"access": pair["access"]})
    assert (status, access_ok) == (200, True)
    assert await call(a.url("/authorization/logout"), body=refresh) == (200, True)
    status, error = await call(b.url("/validate/jwt/refresh"), body=refresh)
    assert (status, error["error"]) == (401, "invalid_token")


async def test_login_failures_on_one_instance_count_on_the_other(instances):
    a, b = instances.a, instances.b
    await register(b, "bob@example.com", "+79161234568")
    wrong = {"email": "bob@example.com", "hash_password": "wrong password"}
    for _ in range(LOGIN_FAILURES):
        status, _ = await call(a.url("/authorization/login/email"), body=wrong)
        assert status == 401
    right = {"email": "bob@example.com", "hash_password": "correct horse"}
    status, error = await call(b.url("/authorization/login/email"), body=right)
    assert (status, error["error"]) == (429, "rate_limited")
    # By phone too: the count is per user, in the shared store.
    by_phone = {"phone_number": "+7 916 123-45-68", "hash_password": "correct horse"}
    status, error = await call(b.url("/authorization/login/phone/number"), body=by_phone)
    assert status == 429
