"""Sign-in with a one-time code, end to end: two vhod processes on one store (SQLite file,
MongoDB wire) with Telegram Gateway, SMS.ru and SMSC.ru fakes as the phone channels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.fakes.channels import SmtpInbox
from tests.fakes.smartcaptcha import CAPTCHA_SERVER_KEY, SmartCaptchaFake
from tests.fakes.sms_gateways import SmscFake, SmsRuFake, TelegramGatewayFake
from tests.processes import Pair, Server, setting_env
from tests.storage_fixtures import instances_on_one_store

SEND, LOGIN = "/authorization/code/send", "/authorization/code/login"
SECRET = "one-secret-for-every-instance-of-this-test"
PHONE = "+79161234567"


def instances_on(
    request: pytest.FixtureRequest, tmp_path: Path, settings: dict[str, Any]
) -> Iterator[Pair]:
    env = {"VHOD_PASSWORDS__BCRYPT_ROUNDS": "4", "VHOD_LIMITS__HASH_WORKERS": "1"}
    env.update(setting_env(settings))
    yield from instances_on_one_store(request, tmp_path, env, SECRET)


@pytest.fixture
def gateways() -> Iterator[tuple[TelegramGatewayFake, SmsRuFake, SmscFake]]:
    fakes = (TelegramGatewayFake().start(), SmsRuFake().start(), SmscFake().start())
    yield fakes
    for fake in fakes:
        fake.stop()


@pytest.fixture(params=["sqlite", "mongo-wire"])
def instances(request, tmp_path, gateways, smtp_inbox: SmtpInbox) -> Iterator[Pair]:
    channels = json.dumps([fake.config() for fake in gateways])
    yield from instances_on(
        request,
        tmp_path,
        {
            "sms.channels": channels,
            "sms.per_number_per_hour": 4,
            "accounts.code_sign_up": "true",
            "accounts.email_code_sign_in": "true",
            **smtp_inbox.config(),
        },
    )


async def call(instance: Server, path: str, body: dict[str, Any], **headers: str):
    response = await AsyncHTTPClient().fetch(
        instance.url(path),
        method="POST",
        body=json.dumps(body),
        headers={"Content-Type": "application/json", **headers},
        raise_error=False,
    )
    return response.code, json.loads(response.body or b"null"), response.headers


def claims(access: str) -> dict[str, Any]:
    return jwt.decode(access, options={"verify_signature": False})


async def sign_in(send_on: Server, login_on: Server, fake, phone: str = PHONE) -> dict[str, Any]:
    status, body, _ = await call(send_on, SEND, {"phone_number": phone})
    assert (status, body) == (200, True)
    status, pair, _ = await call(
        login_on, LOGIN, {"phone_number": phone, "code": fake.code_for(phone)}
    )
    assert status == 200, pair
    return pair


async def test_a_phone_signs_up_and_in_through_each_channel_in_turn(instances, gateways):
    telegram, smsru, smsc = gateways
    a, b = instances.a, instances.b
    # Telegram has the number: sign-up on A's code, confirmed on B. A messenger code is "otp".
    first = await sign_in(a, b, telegram)
    token = claims(first["access"])
    assert token["amr"] == ["otp"] and token["phone_verified"] is True
    assert token["user_name"] == PHONE
    # Telegram refuses the number: SMS.ru carries the next code, a text message ("sms").
    telegram.unreachable.add(PHONE)
    second = await sign_in(b, a, smsru)
    assert claims(second["access"])["amr"] == ["sms"]
    assert claims(second["access"])["sub"] == token["sub"]  # the same account, signed in
    # SMS.ru is down too: SMSC.ru carries it.
    smsru.mode = "down"
    third = await sign_in(a, b, smsc)
    assert claims(third["access"])["sub"] == token["sub"]
    assert len(telegram.delivered) == 1 and len(smsru.delivered) == 1 and len(smsc.delivered) == 1
    # The refresh token works like any other.
    status, body, _ = await call(b, "/validate/jwt/refresh", {"refresh": third["refresh"]})
    assert status == 200, body
    # Four codes an hour for one number, counted across both instances: the fifth is refused.
    assert (await call(b, SEND, {"phone_number": PHONE}))[0] == 200
    status, error, headers = await call(a, SEND, {"phone_number": PHONE})
    assert (status, error["error"]) == (429, "rate_limited")
    assert int(headers["Retry-After"]) > 0


async def test_a_code_works_once_and_wrong_codes_void_it(instances, gateways):
    telegram = gateways[0]
    a, b = instances.a, instances.b
    assert (await call(a, SEND, {"phone_number": PHONE}))[:2] == (200, True)
    code = telegram.code_for(PHONE)
    wrong = str((int(code) + 1) % 10**6).zfill(6)
    for _ in range(4):
        status, error, _ = await call(b, LOGIN, {"phone_number": PHONE, "code": wrong})
        assert (status, error["error"]) == (400, "invalid_code")
    assert (await call(a, LOGIN, {"phone_number": PHONE, "code": code}))[0] == 200
    status, error, _ = await call(b, LOGIN, {"phone_number": PHONE, "code": code})
    assert (status, error["error"]) == (400, "invalid_code")  # used
    # Five wrong tries void a code: the right one fails after them.
    assert (await call(a, SEND, {"phone_number": PHONE}))[0] == 200
    code = telegram.code_for(PHONE)
    for _ in range(5):
        await call(b, LOGIN, {"phone_number": PHONE, "code": wrong})
    status, error, _ = await call(a, LOGIN, {"phone_number": PHONE, "code": code})
    assert (status, error["error"]) == (400, "invalid_code")


async def test_an_email_signs_up_by_code(instances, smtp_inbox):
    a, b = instances.a, instances.b
    assert (await call(a, SEND, {"email": "Ann@Example.com"}))[:2] == (200, True)
    code = smtp_inbox.code_for("ann@example.com")
    status, pair, _ = await call(b, LOGIN, {"email": "ann@example.com", "code": code})
    assert status == 200, pair
    token = claims(pair["access"])
    assert token["amr"] == ["otp"] and token["email_verified"] is True


async def test_bad_input_answers_json_errors(instances):
    a = instances.a
    cases = [
        ({"phone_number": "12"}, 400, "invalid_phone_number"),
        ({"phone_number": "+1 202 555 0143"}, 400, "region_not_allowed"),
        ({"email": "not an email"}, 400, "invalid_email"),
        ({}, 400, "invalid_request"),
        ({"email": "ann@example.com", "phone_number": PHONE}, 400, "invalid_request"),
        ({"phone_number": {"$ne": None}}, 400, "invalid_request"),
    ]
    for body, status, code in cases:
        answer = await call(a, SEND, body)
        assert (answer[0], answer[1]["error"]) == (status, code), body
    answer = await call(a, LOGIN, {"phone_number": PHONE})
    assert (answer[0], answer[1]["error"]) == (400, "invalid_request")


# Sign-up off (the default): an unknown number gets no code and the same answer.


@pytest.fixture(params=["sqlite"])
def closed_instances(request, tmp_path, gateways) -> Iterator[Pair]:
    yield from instances_on(request, tmp_path, {"sms.channels": json.dumps([gateways[1].config()])})


async def test_without_sign_up_an_unknown_number_gets_the_same_answer_and_no_code(
    closed_instances, gateways
):
    smsru = gateways[1]
    a = closed_instances.a
    assert (await call(a, SEND, {"phone_number": "+79161230000"}))[:2] == (200, True)
    assert (await call(a, SEND, {"phone_number": PHONE}))[:2] == (200, True)
    user = {"phone_number": PHONE, "email": "ann@example.com", "hash_password": "correct horse"}
    assert (await call(a, "/authorization/registration", user))[0] == 200
    assert (await call(a, SEND, {"phone_number": PHONE}))[:2] == (200, True)
    code = smsru.code_for(PHONE)
    assert smsru.to("+79161230000") == []
    assert len(smsru.to(PHONE)) == 1  # only after the account existed
    status, pair, _ = await call(a, LOGIN, {"phone_number": PHONE, "code": code})
    assert status == 200, pair
    assert claims(pair["access"])["amr"] == ["sms"]
    status, error, _ = await call(a, LOGIN, {"phone_number": "+79161230000", "code": code})
    assert (status, error["error"]) == (400, "invalid_code")


# The budgets and the CAPTCHA.


@pytest.fixture
def captcha() -> Iterator[SmartCaptchaFake]:
    fake = SmartCaptchaFake().start()
    yield fake
    fake.stop()


@pytest.fixture(params=["sqlite"])
def guarded(request, tmp_path, gateways, captcha) -> Iterator[Pair]:
    yield from instances_on(
        request,
        tmp_path,
        {
            "sms.channels": json.dumps([gateways[1].config()]),
            "sms.per_client_per_hour": 4,
            "sms.per_prefix_per_hour": 100,
            "sms.daily_limit": 6,
            "sms.allowed_regions": "RU,KZ",
            "accounts.code_sign_up": "true",
            "captcha.provider": "smartcaptcha",
            "captcha.server_key": CAPTCHA_SERVER_KEY,
            "captcha.url": captcha.url,
            "captcha.share": 0.5,
        },
    )


async def test_captcha_is_asked_once_a_client_used_its_share(guarded, captcha, gateways):
    a, b = guarded.a, guarded.b
    numbers = [f"+7916123456{i}" for i in range(6)]
    # Two of four codes an hour from this client go out without a CAPTCHA.
    for number in numbers[:2]:
        assert (await call(a, SEND, {"phone_number": number}))[:2] == (200, True)
    # Past half of its budget the client must solve one; without it: 400, nothing sent.
    status, error, _ = await call(b, SEND, {"phone_number": numbers[2]})
    assert (status, error["error"]) == (400, "captcha_required")
    status, error, _ = await call(b, SEND, {"phone_number": numbers[2], "captcha": "forged"})
    assert (status, error["error"]) == (400, "captcha_required")
    assert gateways[1].to(numbers[2]) == []
    # The two refusals counted: the fourth request was the last the client may make.
    status, error, headers = await call(
        a, SEND, {"phone_number": numbers[3], "captcha": captcha.solve()}
    )
    assert (status, error["error"]) == (429, "rate_limited") and int(headers["Retry-After"]) > 0


async def test_a_foreign_region_is_refused_before_counting(guarded, gateways):
    a = guarded.a
    # Kazakhstan is allowed, the US is not; the refused one counts against nothing.
    for _ in range(20):
        status, error, _ = await call(a, SEND, {"phone_number": "+1 202 555 0143"})
        assert (status, error["error"]) == (400, "region_not_allowed")
    assert (await call(a, SEND, {"phone_number": "+7 701 123 4567"}))[:2] == (200, True)
    assert gateways[1].to("+77011234567")


@pytest.fixture(params=["sqlite"])
def capped(request, tmp_path, gateways) -> Iterator[Pair]:
    yield from instances_on(
        request,
        tmp_path,
        {
            "sms.channels": json.dumps([gateways[1].config()]),
            "sms.daily_limit": 3,
            "accounts.code_sign_up": "true",
        },
    )


async def test_the_daily_cap_is_shared_and_answers_503(capped, gateways):
    numbers = [f"+7916123450{i}" for i in range(4)]
    for number, instance in zip(numbers[:3], (capped.a, capped.b, capped.a), strict=True):
        assert (await call(instance, SEND, {"phone_number": number}))[:2] == (200, True)
    status, error, _ = await call(capped.b, SEND, {"phone_number": numbers[3]})
    assert (status, error["error"]) == (503, "delivery_budget_exhausted")
    assert gateways[1].to(numbers[3]) == []
    metrics = (await AsyncHTTPClient().fetch(capped.b.url("/metrics"))).body.decode()
    assert "vhod_sms_budget_exhausted_total 1.0" in metrics
    assert 'vhod_deliveries_total{channel="smsru",outcome="sent"} 1.0' in metrics


async def test_a_code_account_adds_an_email_and_a_password(instances, gateways, smtp_inbox):
    telegram = gateways[0]
    a, b = instances.a, instances.b
    pair = await sign_in(a, b, telegram)
    bearer = {"Authorization": f"Bearer {pair['access']}"}
    # A password needs a fresh sign-in code to the account's own number, not the token alone.
    body = {"new_password": "correct horse", "code": "000000"}
    status, error, _ = await call(a, "/authorization/password/set", body, **bearer)
    assert (status, error["error"]) == (400, "invalid_code")
    assert (await call(a, SEND, {"phone_number": PHONE}))[:2] == (200, True)
    body["code"] = telegram.code_for(PHONE)
    assert (await call(b, "/authorization/password/set", body, **bearer))[:2] == (200, True)
    status, error, _ = await call(a, "/authorization/password/set", body, **bearer)
    assert (status, error["error"]) == (409, "password_exists")
    # An email joins with a code sent to it; a wrong code or another address does nothing.
    added = await call(a, "/authorization/address/add", {"email": "ann@example.com"}, **bearer)
    assert added[:2] == (200, True)
    code = smtp_inbox.code_for("ann@example.com")
    path = "/authorization/address/add/confirm"
    status, error, _ = await call(b, path, {"email": "bob@example.com", "code": code}, **bearer)
    assert (status, error["error"]) == (400, "invalid_code")
    assert (await call(b, path, {"email": "ann@example.com", "code": code}, **bearer))[:2] == (
        200,
        True,
    )
    status, error, _ = await call(
        a, "/authorization/address/add", {"email": "x@example.com"}, **bearer
    )
    assert (status, error["error"]) == (409, "address_exists")
    # Now the seed's password login by email works for the account.
    login = {"email": "ann@example.com", "hash_password": "correct horse"}
    status, signed_in, _ = await call(a, "/authorization/login/email", login)
    assert status == 200, signed_in
    token = claims(signed_in["access"])
    assert token["sub"] == claims(pair["access"])["sub"] and token["email_verified"] is True


@pytest.fixture(params=["sqlite"])
def tight(request, tmp_path, gateways) -> Iterator[Pair]:
    yield from instances_on(
        request,
        tmp_path,
        {
            "sms.channels": json.dumps([gateways[1].config()]),
            "sms.per_prefix_per_hour": 2,
            "sms.per_number_per_day": 2,
            "limits.login_failures": 3,
            "accounts.code_sign_up": "true",
        },
    )


async def test_a_number_prefix_has_its_budget_across_instances(tight, gateways):
    # Pumping walks a prefix: +7 916 is refused after two codes, +7 926 still gets one.
    assert (await call(tight.a, SEND, {"phone_number": "+79161110001"}))[:2] == (200, True)
    assert (await call(tight.b, SEND, {"phone_number": "+79161110002"}))[:2] == (200, True)
    status, error, headers = await call(tight.a, SEND, {"phone_number": "+79161110003"})
    assert (status, error["error"]) == (429, "rate_limited") and int(headers["Retry-After"]) > 0
    assert gateways[1].to("+79161110003") == []
    assert (await call(tight.b, SEND, {"phone_number": "+79261110003"}))[:2] == (200, True)


async def test_wrong_codes_lock_the_account_like_wrong_passwords(tight, gateways):
    smsru = gateways[1]
    assert (await call(tight.a, SEND, {"phone_number": PHONE}))[:2] == (200, True)
    await call(tight.b, LOGIN, {"phone_number": PHONE, "code": smsru.code_for(PHONE)})
    assert (await call(tight.a, SEND, {"phone_number": PHONE}))[:2] == (200, True)
    code = smsru.code_for(PHONE)
    wrong = str((int(code) + 1) % 10**6).zfill(6)
    for instance in (tight.a, tight.b, tight.a):  # limits.login_failures: 3, on both
        status, error, _ = await call(instance, LOGIN, {"phone_number": PHONE, "code": wrong})
        assert (status, error["error"]) == (400, "invalid_code")
    # Locked: even the right code is refused until the window ends.
    status, error, headers = await call(tight.b, LOGIN, {"phone_number": PHONE, "code": code})
    assert (status, error["error"]) == (429, "rate_limited") and int(headers["Retry-After"]) > 0
    # The number's day budget (2) is spent too.
    status, error, _ = await call(tight.a, SEND, {"phone_number": PHONE})
    assert (status, error["error"]) == (429, "rate_limited")
