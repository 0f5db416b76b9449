"""The providers as they are in 2026: VK ID on id.vk.ru, Mail.ru and OK.ru through VK ID
(provider=mail_ru / ok_ru), Mail.ru's legacy OAuth for existing integrations."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fakes.providers import FakeVK, consent

PUBLIC_URL = "http://127.0.0.1:8888"


def through_vk_id(fake_vk: FakeVK, **extra: Any) -> dict[str, Any]:
    """A Mail.ru or OK.ru section in VK ID mode: the VK ID app's client_id, VK ID's URLs."""
    section = fake_vk.section(**extra)
    section.pop("client_secret")  # a VK ID app is a public client
    return section


@pytest.fixture
def config_overrides(fake_providers: Any) -> dict[str, Any]:
    vk = fake_providers.vk
    return {
        "providers": {
            "vk": vk.section(),
            "mailru": through_vk_id(vk),
            "ok": through_vk_id(vk),
            "yandex": fake_providers.yandex.section(),
        },
        "limits.per_ip_per_minute": 1000,
    }


@pytest.mark.parametrize(
    ("prefix", "provider", "name"), [("mail.ru", "mail_ru", "mailru"), ("ok", "ok_ru", "ok")]
)
async def test_mail_ru_and_ok_ru_sign_in_through_vk_id(
    api: Any, fake_vk: FakeVK, prefix: str, provider: str, name: str
) -> None:
    url = (await api.get(f"/{prefix}/link")).body
    assert parse_qs(urlsplit(url).query)["provider"] == [provider]
    params = await consent(url)
    assert fake_vk.grants[-1].vk_id_provider == provider
    query = {"code": params["code"], "state": params["state"], "device_id": params["device_id"]}
    tokens = await api.get(f"/{prefix}/get/token", query=query)
    assert tokens.status == 200, tokens.body
    access = tokens.body["access_token"]
    registered = await api.get(f"/{prefix}/registration", query={"access_token": access})
    assert registered.status == 200, registered.body
    logged_in = await api.get(f"/{prefix}/login", query={"access_token": access})
    assert logged_in.status == 200, logged_in.body
    # Each sign-in is its own provider identity: this user never signed up through /vk/.
    vk_login = await api.get("/vk/login", query={"access_token": access})
    assert (vk_login.status, vk_login.body["error"]) == (404, "user_not_found")


async def test_a_sign_in_the_vk_id_app_has_not_enabled_is_refused_by_vk_id(
    api: Any, fake_vk: FakeVK
) -> None:
    fake_vk.sign_in_methods.discard("mail_ru")
    params = await consent((await api.get("/mail.ru/link")).body)
    assert params["error"] == "invalid_request"
    back = await api.get("/mail.ru/callback", query=params)
    assert (back.status, back.body["error"]) == (400, "invalid_request")


async def test_a_token_of_another_vk_id_app_is_refused_on_every_vk_id_route(
    api: Any, fake_vk: FakeVK
) -> None:
    foreign = fake_vk.mint_token(client_id="another-app")
    for prefix in ("vk", "mail.ru", "ok"):
        for route in ("registration", "login"):
            answer = await api.get(f"/{prefix}/{route}", query={"access_token": foreign})
            assert (answer.status, answer.body["error"]) == (401, "invalid_provider_token")
