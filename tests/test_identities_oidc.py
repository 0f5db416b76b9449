"""Account linking with the generic OpenID Connect provider (panva's oidc-provider, the
stand-in for Telegram's OIDC until its preset lands) and Yandex, over real HTTP on both
stores: a password account links both and signs in with each, unlinks one; an OIDC-only
account keeps its last way in; account_exists where the OP's verified email is taken."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.oidc_provider import OpenIdProvider, install
from tests.storage_fixtures import Running, running_app
from tests.test_api_identities import (
    ANN,
    IDENTITIES,
    LINK,
    START,
    UNLINK,
    call,
    provider_login,
    register,
    sub,
)

pytestmark = pytest.mark.slow

PUBLIC_URL = "http://127.0.0.1:8888"  # make_config's default public_url
FRONT_END = "https://app.example.com/linked"
CLIENT_ID, CLIENT_SECRET = "link-client", "link-client-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIdProvider]:
    install()
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "token_endpoint_auth_method": "client_secret_basic",
        "redirect_uris": [f"{PUBLIC_URL}/op/callback"],
        "response_types": ["code"],
        "grant_types": ["authorization_code"],
    }
    server = OpenIdProvider(tmp_path_factory.mktemp("oidc-provider"), [client])
    yield server
    server.stop()


@pytest.fixture
def settings(op: OpenIdProvider, fake_providers: Any) -> dict[str, Any]:
    sections = fake_providers.sections()
    sections["op"] = {
        "type": "oidc",
        "issuer": op.issuer,
        "prefix": "op",
        "title": "Test OP",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "client_auth": "client_secret_basic",
        "frontend_redirect": FRONT_END,
    }
    return {"providers": sections, "limits.per_ip_per_minute": 1000}


async def front_end_query(app: Running, op: OpenIdProvider, url: str, login: str) -> dict[str, str]:
    """Sign in at the OP as `login`; the query the callback forwards to the front end."""
    back = await op.sign_in(url, login=login)
    status, _, headers = await call(app, "GET", "/op/callback", query=back)
    assert status == 302
    return dict(parse_qsl(urlsplit(headers["Location"]).query))


async def op_token(app: Running, op: OpenIdProvider, login: str) -> str:
    """An OP access token the way a client gets one: link, sign-in, callback, get/token."""
    status, url, _ = await call(app, "GET", "/op/link")
    assert status == 200
    front = await front_end_query(app, op, url, login)
    query = {"code": front["code"], "state": front["state"]}
    status, tokens, _ = await call(app, "GET", "/op/get/token", query=query)
    assert status == 200, tokens
    return str(tokens["access_token"])


async def test_a_password_account_links_yandex_and_an_oidc_provider_and_unlinks_one(
    tmp_path, backend_url, settings, op, fake_yandex
):
    async with running_app(tmp_path, backend_url, **settings) as app:
        ann = await register(app, ANN)
        access = ann["access"]
        yandex = {"provider": "yandex", "access_token": fake_yandex.mint_token()}
        assert (await call(app, "POST", LINK, body=yandex, access=access))[0] == 200
        # The OP by the browser flow: PKCE, id_token and the iss parameter all checked.
        status, started, _ = await call(app, "POST", START, body={"provider": "op"}, access=access)
        assert status == 200, started
        front = await front_end_query(app, op, started["url"], "ann-op")
        query = {"code": front["code"], "state": front["state"]}
        status, view, _ = await call(app, "GET", "/op/get/token", query=query, access=access)
        assert status == 200, view
        assert [(p["provider"], p["display"]) for p in view["providers"]] == [
            ("yandex", "Иван Петров"),
            ("op", "Ivan Petrov"),
        ]

        status, by_op = await provider_login(app, "op", await op_token(app, op, "ann-op"))
        assert status == 200 and sub(by_op["access"]) == sub(access)
        status, by_yandex = await provider_login(app, "yandex", yandex["access_token"])
        assert status == 200 and sub(by_yandex["access"]) == sub(access)

        assert (await call(app, "POST", UNLINK, body={"provider": "op"}, access=access))[1] is True
        assert (await provider_login(app, "op", await op_token(app, op, "ann-op")))[0] == 404
        view = (await call(app, "GET", IDENTITIES, access=access))[1]
        assert [p["provider"] for p in view["providers"]] == ["yandex"]


async def test_an_oidc_only_account_cannot_unlink_its_last_way_in(
    tmp_path, backend_url, settings, op
):
    async with running_app(tmp_path, backend_url, **settings) as app:
        token = await op_token(app, op, "carol")
        status, pair, _ = await call(app, "GET", "/op/registration", query={"access_token": token})
        assert status == 200, pair
        refused = await call(app, "POST", UNLINK, body={"provider": "op"}, access=pair["access"])
        assert (refused[0], refused[1]["error"]) == (409, "last_sign_in_method")
        assert (await provider_login(app, "op", token))[0] == 200


async def test_account_exists_for_the_email_the_op_verified(tmp_path, backend_url, settings, op):
    async with running_app(tmp_path, backend_url, **settings) as app:
        # The OP vouches for <login>@example.org (email_verified: true).
        await register(app, {**ANN, "email": "dora@example.org"})
        token = await op_token(app, op, "dora")
        status, body, _ = await call(app, "GET", "/op/registration", query={"access_token": token})
        assert (status, body["error"], body["methods"]) == (409, "account_exists", ["password"])
        assert (await provider_login(app, "op", token))[0] == 404
