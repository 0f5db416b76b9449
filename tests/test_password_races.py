"""A password change or reset against sign-ins still checking the old password, over real
HTTP on two instances sharing one store (SQLite, and MongoDB over the wire).

The sign-ins run on instance A, whose hasher holds each verified password until the test
lets it go: they read the old hash, check it, and store their session only after the change
on instance B has ended every session. Before issue 21 (item 3) those sessions survived.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import USER
from tests.storage_fixtures import Running, running_app

LOGIN = "/authorization/login/email"
REFRESH = "/validate/jwt/refresh"
CHANGE = "/authorization/password/change"
RESET = "/authorization/password/reset"
RESET_CONFIRM = "/authorization/password/reset/confirm"
EMAIL, OLD = USER["email"], USER["hash_password"]
NEW = "the new secret"
LOGINS = 6


class HeldVerify:
    """Wraps a hasher's verify: while `holding`, each check waits for `gate` after its
    result is known (a sign-in still hashing when the change completes)."""

    def __init__(self, verify: Any) -> None:
        self.verify = verify
        self.holding = True
        self.gate = asyncio.Event()
        self.waiting = 0

    async def __call__(self, secret: bytes, password_hash: str | None) -> bool:
        result = bool(await self.verify(secret, password_hash))
        if self.holding:
            self.waiting += 1
            await self.gate.wait()
        return result

    async def until_waiting(self, count: int) -> None:
        for _ in range(1000):
            if self.waiting >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"only {self.waiting} of {count} sign-ins reached the check")


@asynccontextmanager
async def two_instances(
    backend_url: str, tmp_path: Path, smtp_inbox: Any
) -> AsyncIterator[tuple[Running, Running]]:
    """Two instances on one store, each with its own data directory."""
    settings = {**smtp_inbox.config(), "limits.per_ip_per_minute": 1000}
    async with (
        running_app(tmp_path / "a", backend_url, **settings) as first,
        running_app(tmp_path / "b", backend_url, **settings) as second,
    ):
        yield first, second


async def change_on(instance: Running, pair: dict[str, str]) -> tuple[int, Any]:
    body = {"access": pair["access"], "hash_password": OLD, "new_password": NEW}
    return await instance.call("POST", CHANGE, body)


async def reset_on(instance: Running, smtp_inbox: Any) -> tuple[int, Any]:
    assert (await instance.call("POST", RESET, {"email": EMAIL}))[0] == 200
    await instance.services.lifecycle.drain(30)  # the code goes out after the answer
    code = smtp_inbox.code_for(EMAIL)
    return await instance.call(
        "POST", RESET_CONFIRM, {"email": EMAIL, "code": code, "new_password": NEW}
    )


@pytest.mark.parametrize("how", ["change", "reset"])
async def test_no_session_of_the_old_password_outlives_a_change(
    backend_url: str, tmp_path: Path, smtp_inbox: Any, monkeypatch: Any, how: str
) -> None:
    async with two_instances(backend_url, tmp_path, smtp_inbox) as (a, b):
        await race_sign_ins_with_a_change(a, b, smtp_inbox, monkeypatch, how)


async def race_sign_ins_with_a_change(
    a: Running, b: Running, smtp_inbox: Any, monkeypatch: Any, how: str
) -> None:
    status, registered = await b.call("POST", "/authorization/registration", USER)
    assert status == 200, registered
    held = HeldVerify(a.services.hasher.verify)
    monkeypatch.setattr(a.services.hasher, "verify", held)
    logins = [
        asyncio.ensure_future(a.call("POST", LOGIN, {"email": EMAIL, "hash_password": OLD}))
        for _ in range(LOGINS)
    ]
    await held.until_waiting(LOGINS)  # each has checked the old password, right

    status, fresh = await (change_on(b, registered) if how == "change" else reset_on(b, smtp_inbox))
    assert status == 200, fresh
    held.gate.set()
    answers = await asyncio.gather(*logins)

    # However each sign-in ended, none holds a session now, on either instance.
    survivors = 0
    for status, body in answers:
        assert status in (200, 401), body
        if status == 200:
            for instance in (a, b):
                if (await instance.call("POST", REFRESH, {"refresh": body["refresh"]}))[0] != 401:
                    survivors += 1
    assert survivors == 0
    # The change's own session lives, and the new password signs in.
    assert (await b.call("POST", REFRESH, {"refresh": fresh["refresh"]}))[0] == 200
    held.holding = False
    assert (await a.call("POST", LOGIN, {"email": EMAIL, "hash_password": NEW}))[0] == 200
    assert (await a.call("POST", LOGIN, {"email": EMAIL, "hash_password": OLD}))[0] == 401


async def test_a_rehash_at_sign_in_does_not_bring_the_old_password_back(
    backend_url: str, tmp_path: Path, smtp_inbox: Any, monkeypatch: Any
) -> None:
    async with two_instances(backend_url, tmp_path, smtp_inbox) as (a, b):
        await race_a_rehash_with_a_change(a, b, monkeypatch)


async def race_a_rehash_with_a_change(a: Running, b: Running, monkeypatch: Any) -> None:
    # The operator raised the cost on A: its sign-ins rehash the password they checked.
    # One still hashing while B changes the password must not write the old one back.
    status, registered = await b.call("POST", "/authorization/registration", USER)
    assert status == 200, registered
    a.services.hasher.rounds += 1
    held = HeldVerify(a.services.hasher.verify)
    monkeypatch.setattr(a.services.hasher, "verify", held)
    login = asyncio.ensure_future(a.call("POST", LOGIN, {"email": EMAIL, "hash_password": OLD}))
    await held.until_waiting(1)

    status, fresh = await change_on(b, registered)
    assert status == 200, fresh
    held.holding = False
    held.gate.set()
    status, body = await login
    assert status == 401, body
    assert (await b.call("POST", LOGIN, {"email": EMAIL, "hash_password": OLD}))[0] == 401
    assert (await b.call("POST", LOGIN, {"email": EMAIL, "hash_password": NEW}))[0] == 200


async def test_a_change_checked_against_a_replaced_password_does_not_land(
    backend_url: str, tmp_path: Path, smtp_inbox: Any, monkeypatch: Any
) -> None:
    async with two_instances(backend_url, tmp_path, smtp_inbox) as (a, b):
        await race_a_change_with_a_reset(a, b, smtp_inbox, monkeypatch)


async def race_a_change_with_a_reset(
    a: Running, b: Running, smtp_inbox: Any, monkeypatch: Any
) -> None:
    # Someone with the old password and a live session changes it on A while its owner
    # resets it on B: the change checked a password that is gone, so the reset stands.
    status, registered = await b.call("POST", "/authorization/registration", USER)
    assert status == 200, registered
    held = HeldVerify(a.services.hasher.verify)
    monkeypatch.setattr(a.services.hasher, "verify", held)
    body = {"access": registered["access"], "hash_password": OLD, "new_password": "intruder's"}
    change = asyncio.ensure_future(a.call("POST", CHANGE, body))
    await held.until_waiting(1)

    status, reset = await reset_on(b, smtp_inbox)
    assert status == 200, reset
    held.holding = False
    held.gate.set()
    status, changed = await change
    assert (status, changed["error"]) == (401, "invalid_credentials"), changed
    assert (await b.call("POST", LOGIN, {"email": EMAIL, "hash_password": "intruder's"}))[0] == 401
    assert (await b.call("POST", LOGIN, {"email": EMAIL, "hash_password": NEW}))[0] == 200
    assert (await b.call("POST", REFRESH, {"refresh": reset["refresh"]}))[0] == 200
