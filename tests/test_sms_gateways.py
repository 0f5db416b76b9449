"""The phone-code channels against strict fakes of their gateways, over real HTTP."""

from __future__ import annotations

import pytest

from core.infra.phone_channels import ChannelChain, build_channels
from core.infra.senders import DeliveryError
from core.infra.sms_gateways import Refused, Smsc, SmsRu, TelegramGateway, Unreachable
from tests.fakes.sms_gateways import SMSC_LOGIN, TELEGRAM_TOKEN

PHONE = "+79161234567"
TEXT = "Код входа: 482913. Он действует 15 минут."


def channels(*fakes, timeout: float = 5.0) -> list:
    return build_channels(
        [fake.config() for fake in fakes], timeout=timeout, foreign_messengers=True
    )


async def test_telegram_gateway_checks_then_sends_our_code_with_a_refund_ttl(telegram_gateway):
    [channel] = channels(telegram_gateway)
    await channel.send_code(PHONE, "482913", TEXT, ttl=900)
    assert telegram_gateway.to(PHONE) == ["482913"]
    check, send = telegram_gateway.requests
    assert check["path"] == "/checkSendAbility"
    assert send["path"] == "/sendVerificationMessage"
    # The send names the check's request_id (so it costs no second fee) and a ttl.
    assert send["params"]["request_id"] == "req-1"
    assert send["params"]["ttl"] == 900


async def test_telegram_gateway_ttl_is_kept_within_what_telegram_accepts(telegram_gateway):
    [channel] = channels(telegram_gateway)
    await channel.send_code(PHONE, "482913", TEXT, ttl=86_400)
    assert telegram_gateway.requests[-1]["params"]["ttl"] == 3600


async def test_a_number_without_telegram_is_unreachable_there(telegram_gateway):
    telegram_gateway.unreachable.add(PHONE)
    [channel] = channels(telegram_gateway)
    with pytest.raises(Unreachable):
        await channel.send_code(PHONE, "482913", TEXT, ttl=900)
    assert [r["path"] for r in telegram_gateway.requests] == ["/checkSendAbility"]


async def test_a_wrong_telegram_token_is_refused(telegram_gateway):
    channel = TelegramGateway(token=TELEGRAM_TOKEN + "x", url=telegram_gateway.url, timeout=5)
    with pytest.raises(Refused, match="ACCESS_TOKEN_INVALID"):
        await channel.send_code(PHONE, "482913", TEXT, ttl=900)
    assert telegram_gateway.delivered == []


async def test_smsru_sends_the_text_and_reads_the_numbers_own_status(smsru):
    [channel] = channels(smsru)
    await channel.send_code(PHONE, "482913", TEXT, ttl=900)
    assert smsru.to(PHONE) == [TEXT]
    params = smsru.requests[-1]["params"]
    assert params["to"] == "79161234567" and params["json"] == "1" and params["ttl"] == "15"


async def test_smsru_no_route_is_unreachable_and_a_bad_key_refused(smsru):
    smsru.no_route.add(PHONE)
    [channel] = channels(smsru)
    with pytest.raises(Unreachable, match="207"):
        await channel.send_code(PHONE, "482913", TEXT, ttl=900)
    wrong = SmsRu(api_id="not-the-key", url=smsru.url, timeout=5)
    with pytest.raises(Refused, match="200"):
        await wrong.send_code("+79161234568", "482913", TEXT, ttl=900)
    assert smsru.delivered == []


async def test_smsc_sends_with_login_and_refuses_a_wrong_password(smsc):
    [channel] = channels(smsc)
    await channel.send_code(PHONE, "482913", TEXT, ttl=900)
    assert smsc.to(PHONE) == [TEXT]
    assert smsc.requests[-1]["params"]["charset"] == "utf-8"
    wrong = Smsc(login=SMSC_LOGIN, password="wrong", url=smsc.url, timeout=5)
    with pytest.raises(Refused, match="error_code 2"):
        await wrong.send_code(PHONE, "482913", TEXT, ttl=900)


async def test_a_gateway_that_is_down_fails(smsc):
    smsc.mode = "down"
    [channel] = channels(smsc)
    with pytest.raises(DeliveryError, match="HTTP 503") as caught:
        await channel.send_code(PHONE, "482913", TEXT, ttl=900)
    assert not isinstance(caught.value, Refused | Unreachable)


async def test_the_chain_falls_through_telegram_then_smsru_to_smsc(telegram_gateway, smsru, smsc):
    heard = []
    chain = ChannelChain(
        channels(telegram_gateway, smsru, smsc), report=lambda *event: heard.append(event)
    )
    # Telegram has the number: the first channel takes it.
    assert await chain.send_code(PHONE, "111111", TEXT, ttl=900) == "telegram_gateway"
    # No Telegram: SMS.ru takes it.
    telegram_gateway.unreachable.add(PHONE)
    assert await chain.send_code(PHONE, "222222", TEXT, ttl=900) == "smsru"
    # SMS.ru down too: SMSC.ru takes it.
    smsru.mode = "down"
    assert await chain.send_code(PHONE, "333333", TEXT, ttl=900) == "smsc"
    assert heard == [
        ("telegram_gateway", "sent", None),
        ("telegram_gateway", "unreachable", "telegram: PHONE_NUMBER_NOT_AVAILABLE"),
        ("smsru", "sent", None),
        ("telegram_gateway", "unreachable", "telegram: PHONE_NUMBER_NOT_AVAILABLE"),
        ("smsru", "failed", "HTTP 503"),
        ("smsc", "sent", None),
    ]
    # No reason, no report carries the code or the text.
    assert not any("333333" in str(event) or "Код" in str(event) for event in heard)


async def test_the_chain_raises_when_no_channel_takes_it(smsru, smsc):
    smsru.mode = smsc.mode = "down"
    chain = ChannelChain(channels(smsru, smsc))
    with pytest.raises(DeliveryError):
        await chain.send_code(PHONE, "482913", TEXT, ttl=900)


async def test_the_chain_stops_at_its_deadline():
    class Hanging:
        name = "hanging"

        async def send_code(self, phone, code, text, ttl):
            import asyncio

            await asyncio.sleep(30)

    heard = []
    chain = ChannelChain([Hanging()], deadline=0.2, report=lambda *event: heard.append(event))
    with pytest.raises(DeliveryError, match="deadline"):
        await chain.send_code(PHONE, "482913", TEXT, ttl=900)
    assert heard == [("hanging", "failed", "deadline")]


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([{"type": "carrier-pigeon"}], r"sms.channels\[0\].type: must be one of"),
        ([{"type": "smsru"}], r"sms.channels\[0\].api_id: required"),
        ([{"type": "smsc", "login": "a"}], r"smsc needs apikey, or login and password"),
        ([{"type": "smsru", "api_id": "k", "token": "t"}], r"unknown key 'token'"),
        ([{"type": "smsru", "api_id": "k", "url": "ftp://x"}], r"url: must be an http"),
        ([{"type": "smsru", "api_id": "k", "timeout": 0}], r"timeout: must be a number"),
        ([{"type": "smsru", "api_id": "a"}, {"type": "smsru", "api_id": "b"}], r"used twice"),
        (["smsru"], r"must be a mapping"),
    ],
)
def test_channel_settings_are_refused_with_one_line(specs, message):
    with pytest.raises(ValueError, match=message):
        build_channels(specs, timeout=5, foreign_messengers=True)


def test_foreign_messengers_off_refuses_telegram():
    spec = {"type": "telegram_gateway", "token": "t"}
    with pytest.raises(ValueError, match=r"sms\.foreign_messengers: false"):
        build_channels([spec], timeout=5, foreign_messengers=False)
    assert build_channels([{"type": "smsru", "api_id": "k"}], timeout=5, foreign_messengers=False)
