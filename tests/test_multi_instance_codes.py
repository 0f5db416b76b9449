"""Two vhod processes on one store (SQLite file, MongoDB wire): a code sent by one is
confirmed on the other, and sessions and deletions made on one hold on the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.channels import SmsInbox, SmtpInbox
from tests.processes import Pair, setting_env
from tests.processes import call_json as call
from tests.storage_fixtures import instances_on_one_store

SECRET = "one-secret-for-every-instance-of-this-test"
USER = {
    "email": "ann@example.com",
    "phone_number": "+79161234567",
    "hash_password": "correct horse 1",
}


@pytest.fixture(params=["sqlite", "mongo-wire"])
def instances(
    request: pytest.FixtureRequest, tmp_path: Path, smtp_inbox: SmtpInbox, sms_inbox: SmsInbox
) -> Iterator[Pair]:
    # HS256 with a shared secret on SQLite; ES256 with only the shared key-encryption key
    # on MongoDB: either one keys the codes' hashes alike on both instances.
    env = {"VHOD_PASSWORDS__BCRYPT_ROUNDS": "4", "VHOD_LIMITS__HASH_WORKERS": "1"}
    env.update(setting_env({**smtp_inbox.config(), **sms_inbox.config()}))
    yield from instances_on_one_store(request, tmp_path, env, SECRET)


async def test_codes_sessions_and_deletion_across_instances(instances, smtp_inbox, sms_inbox):
    a, b = instances.a, instances.b
    status, first = await call(a, "/authorization/registration", USER)
    assert status == 200, first
    # A sends the reset code, B takes it; the session started on A is over everywhere.
    assert await call(a, "/authorization/password/reset", {"email": USER["email"]}) == (200, True)
    code = smtp_inbox.code_for(USER["email"])
    body = {"email": USER["email"], "code": code, "new_password": "horse 2 battery"}
    status, pair = await call(b, "/authorization/password/reset/confirm", body)
    assert status == 200, pair
    assert (await call(a, "/validate/jwt/refresh", {"refresh": first["refresh"]}))[0] == 401
    # Reusing the code on A: one code, one use, whichever instance.
    status, error = await call(a, "/authorization/password/reset/confirm", body)
    assert (status, error["error"]) == (400, "invalid_code")
    # B sends the phone code, A confirms it.
    assert await call(b, "/authorization/verify/phone", access=pair["access"]) == (200, True)
    code = sms_inbox.code_for(USER["phone_number"])
    confirmed = await call(a, "/authorization/verify/phone/confirm", {"code": code}, pair["access"])
    assert confirmed == (200, True)
    status, listed = await call(b, "/authorization/sessions", access=pair["access"])
    assert status == 200 and [s["current"] for s in listed["sessions"]] == [True]
    # Deleted through A, the email registers again through B.
    deleted = await call(
        a, "/authorization/account/delete", {"hash_password": "horse 2 battery"}, pair["access"]
    )
    assert deleted == (200, True)
    assert (await call(b, "/validate/jwt/refresh", {"refresh": pair["refresh"]}))[0] == 401
    status, again = await call(b, "/authorization/registration", USER)
    assert status == 200, again
