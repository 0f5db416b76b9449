"""Sends after the answer (core.domain.after_answer) as code sign-in uses them: at shutdown,
a send that outlives the grace is cancelled and withdraws its code before drain returns,
as a reset's does (tests/test_api_lifecycle.py), so none stays valid that nobody received."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Api
from tests.test_api_lifecycle import EMAIL, GatedSends, register


@pytest.fixture
def config_overrides(smtp_inbox):
    return {**smtp_inbox.config(), "accounts.email_code_sign_in": True}  # sign-up by code off


async def test_shutdown_cancels_a_sign_in_code_send_and_waits_for_its_withdrawal(
    http_server_client, services, monkeypatch
):
    sign_in = services.code_sign_in
    gated = GatedSends(sign_in.delivery.send_code)  # the gate never opens
    monkeypatch.setattr(sign_in.delivery, "send_code", gated)
    withdrawn: list[str] = []
    withdraw = sign_in.codes.withdraw

    async def recorded(key: str) -> None:
        withdrawn.append(key)
        await withdraw(key)

    monkeypatch.setattr(sign_in.codes, "withdraw", recorded)
    raw = Api(http_server_client)
    await register(raw)
    assert (await raw.post("/authorization/code/send", json_body={"email": EMAIL})).body is True
    for _ in range(1000):  # until the send, its code stored, waits at the gate
        if gated.waiting:
            break
        await asyncio.sleep(0.01)
    assert gated.waiting == 1
    await sign_in.drain(0.01)
    # Before drain returned (and the store closed): before, drain only cancelled.
    key = f"signin:otp:email:{EMAIL}"
    assert key in withdrawn
    assert await services.store.try_code(key, services.accounts.clock(), 5) is None
