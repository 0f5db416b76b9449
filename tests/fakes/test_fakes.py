"""The fakes themselves: they refuse what the real providers refuse, so that a vhod test
passing against them means something. These talk to the fakes directly, not through vhod."""

from __future__ import annotations

from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient

from tests.fakes.providers import FakeVK, FakeYandex
from tests.test_providers import PUBLIC_URL, provider_for, start


async def test_vk_fake_refuses_a_token_request_without_device_id(fake_vk: FakeVK) -> None:
    flow = await start(provider_for(fake_vk))
    form = {
        "grant_type": "authorization_code",
        "code": flow.params["code"],
        "code_verifier": flow.verifier,
        "client_id": fake_vk.client_id,
        "redirect_uri": f"{PUBLIC_URL}/vk/callback",
        "state": flow.state,
    }
    response = await AsyncHTTPClient().fetch(
        fake_vk.url("token"), method="POST", body=urlencode(form), raise_error=False
    )
    assert response.code == 400
    assert b"device_id is missing or invalid" in response.body


async def test_vk_fake_refuses_a_client_secret(fake_vk: FakeVK) -> None:
    flow = await start(provider_for(fake_vk))
    form = {
        "grant_type": "authorization_code",
        "code": flow.params["code"],
        "code_verifier": flow.verifier,
        "client_id": fake_vk.client_id,
        "client_secret": "anything",
        "device_id": flow.params["device_id"],
        "redirect_uri": f"{PUBLIC_URL}/vk/callback",
        "state": flow.state,
    }
    response = await AsyncHTTPClient().fetch(
        fake_vk.url("token"), method="POST", body=urlencode(form), raise_error=False
    )
    assert response.code == 400 and b"client_secret must not be sent" in response.body


async def test_yandex_fake_wants_oauth_not_bearer(fake_yandex: FakeYandex) -> None:
    token = fake_yandex.mint_token()
    url = fake_yandex.url("userinfo") + "?format=json"
    client = AsyncHTTPClient()
    bearer = await client.fetch(
        url, headers={"Authorization": f"Bearer {token}"}, raise_error=False
    )
    assert bearer.code == 401
    oauth = await client.fetch(url, headers={"Authorization": f"OAuth {token}"}, raise_error=False)
    assert oauth.code == 200
