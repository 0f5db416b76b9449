"""Two vhod processes with data folders of their own on one store agree on every key they
must share besides the signing keys (issue 21, item 4): per-address code-send counts and
the login throttle of unknown identifiers are one count, and an admin cursor one instance
gave out is good on the other. On MongoDB only the key-encryption key is configured; on
SQLite nothing is (the keys are generated beside the shared database file)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from core.domain.admin import new_admin_key
from tests.fakes.channels import SmtpInbox
from tests.processes import Pair, Server, setting_env, two_instances
from tests.storage_fixtures import with_database

KEK = "one-key-encryption-key-for-every-instance-of-this-test"
KEY, KEY_HASH = new_admin_key()
CODE_SENDS = 5
LOGIN_FAILURES = 3


@pytest.fixture(params=["sqlite", "mongo-wire"])
def instances(
    request: pytest.FixtureRequest, tmp_path: Path, smtp_inbox: SmtpInbox
) -> Iterator[Pair]:
    mongo_url = None
    shared: dict[str, str] = {}
    if request.param == "sqlite":
        storage_url = f"sqlite:///{tmp_path / 'shared' / 'vhod.db'}"
    else:
        base = request.getfixturevalue("mongo_url")
        mongo_url = storage_url = with_database(base, f"vhod_keys_{uuid.uuid4().hex[:12]}")
        shared = {"VHOD_JWT__KEY_ENCRYPTION_KEY": KEK}
    env = {
        **shared,
        "VHOD_STORAGE__URL": storage_url,
        "VHOD_PASSWORDS__BCRYPT_ROUNDS": "4",
        "VHOD_LIMITS__HASH_WORKERS": "1",
        "VHOD_LIMITS__PER_IP_PER_MINUTE": "1000",
        "VHOD_ADMIN__KEYS__OPS": KEY_HASH,
    }
    env.update(
        setting_env(
            {
                **smtp_inbox.config(),
                "accounts.code_sends_per_hour": CODE_SENDS,
                "accounts.code_sends_per_client_per_hour": 1000,
                "limits.login_failures": LOGIN_FAILURES,
            }
        )
    )
    with two_instances(tmp_path, env, mongo_url=mongo_url) as pair:
        yield pair


async def call(
    instance: Server, path: str, body: dict[str, Any] | None = None, *, admin: bool = False
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if admin:
        headers["Authorization"] = f"Bearer {KEY}"
    response = await AsyncHTTPClient().fetch(
        instance.url(path),
        method="POST" if body is not None else "GET",
        body=None if body is None else json.dumps(body),
        headers=headers,
        raise_error=False,
    )
    return response.code, json.loads(response.body or b"null")


async def test_instances_with_their_own_data_dirs_share_limits_and_cursors(instances):
    a, b = instances.a, instances.b
    # Code sends to one address, alternating instances: the limit counts them all.
    address = {"email": "nobody@example.com"}
    sends = [
        (await call((a, b)[i % 2], "/authorization/password/reset", address))[0]
        for i in range(CODE_SENDS + 1)
    ]
    assert sends == [200] * CODE_SENDS + [429]
    # Failed logins of an identifier nobody has, alternating: one throttle.
    wrong = {"email": "ghost@example.com", "hash_password": "wrong password"}
    logins = [
        (await call((a, b)[i % 2], "/authorization/login/email", wrong))[0]
        for i in range(LOGIN_FAILURES + 1)
    ]
    assert logins == [401] * LOGIN_FAILURES + [429]
    # A cursor A gave out reads the next page on B.
    for n in range(3):
        user = {
            "email": f"u{n}@example.com",
            "phone_number": f"+7916123456{n}",
            "hash_password": "correct horse 1",
        }
        assert (await call(a, "/authorization/registration", user))[0] == 200
    status, page = await call(a, "/admin/users?limit=2", admin=True)
    assert status == 200 and page["next_cursor"], page
    status, rest = await call(b, f"/admin/users?limit=2&cursor={page['next_cursor']}", admin=True)
    assert status == 200, rest
    emails = [u["email"] for u in page["users"] + rest["users"]]
    assert sorted(emails) == [f"u{n}@example.com" for n in range(3)]
