"""A session ended on one instance: its access tokens check `false` at /validate/jwt/access
on the other within 5 s (issue 21, item 12), after logout, logout everywhere, ending a
session, a password change and a deletion, on both stores. Sessions that were not ended
keep checking `true`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import Pair, Server
from tests.processes import call_json as call
from tests.storage_fixtures import instances_on_one_store

SHARED = "one-secret-for-every-instance-of-this-test"
PASSWORD = "correct horse 1"
WITHIN_SECONDS = 5.0


@pytest.fixture(params=["sqlite", "mongo-wire"])
def instances(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    env = {
        "VHOD_PASSWORDS__BCRYPT_ROUNDS": "4",
        "VHOD_LIMITS__HASH_WORKERS": "1",
        "VHOD_LIMITS__PER_IP_PER_MINUTE": "1000",
    }
    yield from instances_on_one_store(request, tmp_path, env, SHARED)


async def valid(instance: Server, access: str) -> bool:
    status, answer = await call(instance, "/validate/jwt/access", {"access": access})
    assert status == 200, answer
    return bool(answer)


async def sessions_of(a: Server, n: int, logins: int = 1) -> list[dict[str, str]]:
    """A new user registered on `a`, and `logins` more sessions of it: their token pairs."""
    user = {"email": f"u{n}@example.com", "phone_number": f"+7916123450{n}"}
    status, first = await call(
        a, "/authorization/registration", {**user, "hash_password": PASSWORD}
    )
    assert status == 200, first
    pairs = [first]
    for _ in range(logins):
        body = {"email": user["email"], "hash_password": PASSWORD}
        status, pair = await call(a, "/authorization/login/email", body)
        assert status == 200, pair
        pairs.append(pair)
    return pairs


async def test_sessions_ended_on_one_instance_are_refused_by_the_other(instances):
    a, b = instances.a, instances.b
    logout, kept = await sessions_of(a, 1)
    everywhere = await sessions_of(a, 2)
    revoked, revoker = await sessions_of(a, 3)
    changed = await sessions_of(a, 4)
    (deleted,) = await sessions_of(a, 5, logins=0)
    ended = [logout, *everywhere, revoked, *changed, deleted]
    for pair in [*ended, kept, revoker]:
        assert await valid(b, pair["access"]) is True

    assert await call(a, "/authorization/logout", {"refresh": logout["refresh"]}) == (200, True)
    body = {"refresh": everywhere[0]["refresh"], "all": True}
    assert await call(a, "/authorization/logout", body) == (200, True)
    status, listed = await call(a, "/authorization/sessions", access=revoker["access"])
    assert status == 200, listed
    (other,) = [s["id"] for s in listed["sessions"] if not s["current"]]
    revoke = await call(a, "/authorization/sessions/revoke", {"session": other}, revoker["access"])
    assert revoke == (200, True)
    change = {"hash_password": PASSWORD, "new_password": "horse 2 battery"}
    status, new_pair = await call(a, "/authorization/password/change", change, changed[1]["access"])
    assert status == 200, new_pair
    status, answer = await call(
        a, "/authorization/account/delete", {"hash_password": PASSWORD}, deleted["access"]
    )
    assert (status, answer) == (200, True)

    deadline = time.monotonic() + WITHIN_SECONDS
    waiting = [(instance, pair) for instance in (b, a) for pair in ended]
    while waiting:
        waiting = [(i, pair) for i, pair in waiting if await valid(i, pair["access"])]
        if waiting:
            assert time.monotonic() < deadline, f"{len(waiting)} still valid after 5 s"
            await asyncio.sleep(0.1)
    # Nothing else ended: the other session, the revoker's, the one the change started.
    for pair in (kept, revoker, new_pair):
        assert await valid(b, pair["access"]) is True
        assert await valid(a, pair["access"]) is True
