"""The telegram preset against panva's oidc-provider (certified) configured as Telegram Login
is: RS256 id_tokens carrying the user's claims, PKCE required, a phone_number claim without
"+", client_secret_basic. The preset needs only the issuer pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.oidc_provider import OpenIdProvider, install

pytestmark = pytest.mark.slow

PUBLIC_URL = "http://127.0.0.1:8888"  # make_config's default public_url
FRONT_END = "https://app.example.com/signed-in"
BOT_ID, BOT_SECRET = "123456789", "telegram-bot-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIdProvider]:
    install()
    client = {
        "client_id": BOT_ID,
        "client_secret": BOT_SECRET,
        "token_endpoint_auth_method": "client_secret_basic",
        "id_token_signed_response_alg": "RS256",
        "redirect_uris": [f"{PUBLIC_URL}/telegram/callback"],
        "response_types": ["code"],
        "grant_types": ["authorization_code"],
    }
    server = OpenIdProvider(tmp_path_factory.mktemp("oidc-telegram"), [client], profile="telegram")
    yield server
    server.stop()


@pytest.fixture
def config_overrides(op: OpenIdProvider) -> dict[str, Any]:
    section = {
        "issuer": op.issuer,  # the preset's one is https://oauth.telegram.org
        "client_id": BOT_ID,
        "client_secret": BOT_SECRET,
        "frontend_redirect": FRONT_END,
    }
    return {"providers": {"telegram": section}, "limits.per_ip_per_minute": 1000}


async def test_the_telegram_preset_signs_in_at_a_certified_provider(
    api: Any, services: Any, op: OpenIdProvider
) -> None:
    url = (await api.get("/telegram/link")).body
    assert parse_qs(urlsplit(url).query)["scope"] == ["openid profile phone"]
    back = await op.sign_in(url, login="tg-user-1")
    callback = await api.get("/telegram/callback", query=back)
    assert callback.status == 302, callback.body
    front = {k: v[0] for k, v in parse_qs(urlsplit(callback.headers["Location"]).query).items()}
    tokens = await api.get(
        "/telegram/get/token", query={"code": front["code"], "state": front["state"]}
    )
    assert tokens.status == 200, tokens.body
    access = tokens.body["access_token"]
    registered = await api.get("/telegram/registration", query={"access_token": access})
    assert registered.status == 200, registered.body
    logged_in = await api.get("/telegram/login", query={"access_token": access})
    assert logged_in.status == 200, logged_in.body
    user = await services.store.find_user_by_identity("telegram", "tg-user-1")
    assert user is not None
    assert (user.phone, user.phone_verified) == ("+971501234567", True)
    assert user.profile["first_name"] == "Ivan Petrov"  # from the id_token
