"""SmartCaptcha's server check against a strict fake of its /validate, over real HTTP."""

from __future__ import annotations

from core.infra.captcha import SmartCaptcha
from tests.fakes.smartcaptcha import CAPTCHA_SERVER_KEY


def client(fake, **settings) -> SmartCaptcha:
    return SmartCaptcha(server_key=CAPTCHA_SERVER_KEY, url=fake.url, timeout=1, **settings)


async def test_a_solved_token_passes_once_with_the_client_ip(smartcaptcha):
    token = smartcaptcha.solve()
    captcha = client(smartcaptcha)
    assert await captcha.passes(token, "203.0.113.7")
    assert smartcaptcha.requests[-1] == {
        "secret": CAPTCHA_SERVER_KEY,
        "token": token,
        "ip": "203.0.113.7",
    }
    assert not await captcha.passes(token, "203.0.113.7")  # single use


async def test_missing_unknown_and_oversized_tokens_fail(smartcaptcha):
    captcha = client(smartcaptcha)
    assert not await captcha.passes(None, None)
    assert not await captcha.passes("", None)
    assert not await captcha.passes("made-up", None)
    assert not await captcha.passes("x" * 5000, None)
    # Nothing was sent for the empty and oversized ones.
    assert [r["token"] for r in smartcaptcha.requests] == ["made-up"]


async def test_a_wrong_server_key_fails(smartcaptcha):
    captcha = SmartCaptcha(server_key="wrong", url=smartcaptcha.url, timeout=1)
    assert not await captcha.passes(smartcaptcha.solve(), None)


async def test_an_unavailable_service_fails_closed_unless_the_operator_chose_open(smartcaptcha):
    token = smartcaptcha.solve()
    smartcaptcha.mode = "down"
    assert not await client(smartcaptcha).passes(token, None)
    assert await client(smartcaptcha, fail_open=True).passes(token, None)
    smartcaptcha.mode = "hang"  # slower than the client's 1 s timeout
    assert not await client(smartcaptcha).passes(token, None)
    assert await client(smartcaptcha, fail_open=True).passes(token, None)
