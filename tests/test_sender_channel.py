"""The one adapter of an `sms.sender` (the http sender or a vhod.senders plugin) to a phone
channel, core.infra.phone_channels.SenderChannel, as Delivery uses it: alone or in a chain,
a plugin's failure of any kind is a delivery that failed, within `sms.fallback_deadline`,
counted by its kind, and told to logs and events without the code or the number."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.config.lifecycle_settings import EmailConfig, SmsConfig
from core.domain.errors import ApiError
from core.infra.delivery import Delivery
from core.infra.senders import DeliveryError
from core.infra.sms_gateways import Unreachable

PHONE = "+79161234567"
CODE = "482913"


class Failing:
    """A plugin whose send raises what `fail` makes of the number and the text."""

    def __init__(self, fail):
        self.fail = fail

    async def send(self, phone: str, text: str) -> None:
        raise self.fail(phone, text)


class Hanging:
    """A plugin with no timeout of its own, whose gateway never answers."""

    async def send(self, phone: str, text: str) -> None:
        await asyncio.Event().wait()


async def refused_send(sender, caplog, **sms) -> tuple[ApiError, list[tuple[str, str]]]:
    caplog.set_level(logging.DEBUG)
    seen: list[tuple[str, str]] = []
    delivery = Delivery(
        EmailConfig(), SmsConfig(**sms), sms_sender=sender, on_delivery=lambda *c: seen.append(c)
    )
    with pytest.raises(ApiError) as caught:
        # The guard only keeps an adapter without a deadline from hanging the test.
        await asyncio.wait_for(delivery.send_code("phone", PHONE, "signin", CODE, 10, "en"), 10)
    return caught.value, seen


def assert_nothing_secret_logged(caplog) -> None:
    assert CODE not in caplog.text
    assert PHONE.removeprefix("+") not in caplog.text


def failure_events(caplog) -> list[tuple[str, str, str]]:
    return [
        (r.channel, r.outcome, r.reason)
        for r in caplog.records
        if getattr(r, "event", "") == "code_delivery_failed"
    ]


async def test_any_exception_a_plugin_raises_is_a_failed_delivery(caplog):
    # Before: a RuntimeError went past the delivery: a 500, uncounted, and code sign-in
    # left the code valid that nobody received.
    error, seen = await refused_send(
        Failing(lambda phone, text: RuntimeError(f"no route to {phone}: {text}")), caplog
    )
    assert (error.status, error.code) == (502, "delivery_failed")
    assert error.description == "The SMS gateway did not take the message; no code was sent."
    assert seen == [("sender", "failed")]
    assert failure_events(caplog) == [("sender", "failed", "RuntimeError")]
    assert_nothing_secret_logged(caplog)


async def test_a_plugin_that_never_answers_fails_at_the_fallback_deadline(caplog):
    # Before: alone (not in sms.channels), a sender had no deadline: the request hung.
    error, seen = await refused_send(Hanging(), caplog, fallback_deadline=0.05)
    assert error.code == "delivery_failed"
    assert seen == [("sender", "failed")]
    assert failure_events(caplog) == [("sender", "failed", "deadline")]


async def test_a_plugins_error_text_is_logged_without_the_code_or_the_number(caplog):
    # Before: the text went to the log as the plugin wrote it, and no event told of it.
    def refusal(phone: str, text: str) -> DeliveryError:
        return DeliveryError(f"HTTP 400 for {phone} ({phone[1:]}): {text}", refused=True)

    error, seen = await refused_send(Failing(refusal), caplog)
    assert error.code == "delivery_failed"
    assert seen == [("sender", "refused")]
    [(channel, outcome, reason)] = failure_events(caplog)
    assert (channel, outcome) == ("sender", "refused")
    assert reason.startswith("HTTP 400 for *** (***): ")
    assert_nothing_secret_logged(caplog)


async def test_a_plugins_unreachable_is_counted_as_unreachable(caplog):
    # Before: alone, a sender's Unreachable was counted as "failed".
    _, seen = await refused_send(Failing(lambda phone, text: Unreachable("no route")), caplog)
    assert seen == [("sender", "unreachable")]
    assert failure_events(caplog) == [("sender", "unreachable", "no route")]
