"""Linking with the Telegram preset itself (its strict fake: OpenID Connect, no user-info
endpoint), over real HTTP on SQLite and the MongoDB wire server: a password account links
Yandex and Telegram, signs in with each and unlinks one; a Telegram-only account cannot
unlink its last way in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from tornado.ioloop import IOLoop

from tests.fakes.providers import consent
from tests.fakes.providers_2026 import FakeTelegram
from tests.storage_fixtures import Running, running_app
from tests.test_api_identities import (
    ANN,
    FRONT_END,
    UNLINK,
    browser_link,
    call,
    provider_login,
    register,
    sub,
)
from tests.test_providers_2026 import started


@pytest.fixture
def telegram(io_loop: IOLoop) -> Iterator[FakeTelegram]:
    fake = started(FakeTelegram(), io_loop, "telegram")
    yield fake
    io_loop.run_sync(fake.aclose, timeout=5)


@pytest.fixture
def settings(fake_providers, telegram: FakeTelegram) -> dict[str, Any]:
    sections = fake_providers.sections(yandex={"frontend_redirect": FRONT_END})
    sections["telegram"] = telegram.section(frontend_redirect=FRONT_END)
    return {"providers": sections, "limits.per_ip_per_minute": 1000}


async def telegram_token(app: Running) -> str:
    """A Telegram access token this vhod obtained itself (the only kind it accepts)."""
    status, url, _ = await call(app, "GET", "/telegram/link")
    assert status == 200, url
    status, _, headers = await call(app, "GET", "/telegram/callback", query=await consent(url))
    assert status == 302
    forwarded = dict(parse_qsl(urlsplit(headers["Location"]).query))
    query = {"code": forwarded["code"], "state": forwarded["state"]}
    status, tokens, _ = await call(app, "GET", "/telegram/get/token", query=query)
    assert status == 200, tokens
    token: str = tokens["access_token"]
    return token


async def test_a_password_account_links_yandex_and_telegram_and_unlinks_one(
    tmp_path, backend_url, settings, fake_yandex
):
    async with running_app(tmp_path, backend_url, **settings) as app:
        pair = await register(app, ANN)
        yandex_token = fake_yandex.mint_token()
        body = {"provider": "yandex", "access_token": yandex_token}
        status, _, _ = await call(
            app, "POST", "/authorization/identities/link", body=body, access=pair["access"]
        )
        assert status == 200
        status, view = await browser_link(app, app, pair["access"], "telegram", "telegram")
        assert status == 200, view
        assert [p["provider"] for p in view["providers"]] == ["yandex", "telegram"]

        ann = sub(pair["access"])
        status, by_yandex = await provider_login(app, "yandex", yandex_token)
        assert status == 200 and sub(by_yandex["access"]) == ann
        status, by_telegram = await provider_login(app, "telegram", await telegram_token(app))
        assert status == 200 and sub(by_telegram["access"]) == ann

        unlinked = await call(
            app, "POST", UNLINK, body={"provider": "yandex"}, access=pair["access"]
        )
        assert unlinked[1] is True
        assert (await provider_login(app, "yandex", yandex_token))[0] == 404
        status, again = await provider_login(app, "telegram", await telegram_token(app))
        assert status == 200 and sub(again["access"]) == ann


async def test_a_telegram_only_account_cannot_unlink_its_last_way_in(
    tmp_path, backend_url, settings
):
    async with running_app(tmp_path, backend_url, **settings) as app:
        token = await telegram_token(app)
        status, pair, _ = await call(
            app, "GET", "/telegram/registration", query={"access_token": token}
        )
        assert status == 200, pair
        status, refused, _ = await call(
            app, "POST", UNLINK, body={"provider": "telegram"}, access=pair["access"]
        )
        assert (status, refused["error"]) == (409, "last_sign_in_method")
        assert (await provider_login(app, "telegram", await telegram_token(app)))[0] == 200
