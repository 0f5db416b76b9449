"""The account lifecycle end to end: codes read from a real SMTP server and an HTTP SMS
receiver on 127.0.0.1, password reset and change, verification, sessions and deletion."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import jwt
import pytest

from tests.conftest import USER, Api

RESET = "/authorization/password/reset"
RESET_CONFIRM = "/authorization/password/reset/confirm"
CHANGE = "/authorization/password/change"
SESSIONS = "/authorization/sessions"
REVOKE = "/authorization/sessions/revoke"
DELETE = "/authorization/account/delete"
DELETE_CODE = "/authorization/account/delete/code"
NEW_PASSWORD = "a brand new secret"
EMAIL, PHONE, PASSWORD = USER["email"], USER["phone_number"], USER["hash_password"]


@pytest.fixture
def config_overrides(smtp_inbox, sms_inbox):
    return {**smtp_inbox.config(), **sms_inbox.config()}


def bearer(pair: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access']}"}


def claims(access: str) -> dict:
    return jwt.decode(access, options={"verify_signature": False})


async def register(api, user=USER) -> dict[str, str]:
    response = await api.post("/authorization/registration", json_body=user)
    assert response.status == 200, response.body
    return response.body


async def login(api, password=PASSWORD, email=EMAIL):
    body = {"email": email, "hash_password": password}
    return await api.post("/authorization/login/email", json_body=body)


async def refresh_status(api, pair) -> int:
    return (await api.post("/validate/jwt/refresh", json_body={"refresh": pair["refresh"]})).status


async def reset_password(api, smtp_inbox, new_password=NEW_PASSWORD):
    assert (await api.post(RESET, json_body={"email": EMAIL})).body is True
    code = smtp_inbox.code_for(EMAIL)
    body = {"email": EMAIL, "code": code, "new_password": new_password}
    return await api.post(RESET_CONFIRM, json_body=body)


async def test_the_whole_lifecycle_of_an_account(api, smtp_inbox, sms_inbox):
    first = await register(api)
    second = (await login(api)).body
    # Reset with the code that reached the mailbox: a new pair, the old sessions are over.
    reset = await reset_password(api, smtp_inbox)
    assert reset.status == 200, reset.body
    assert await refresh_status(api, first) == 401
    assert await refresh_status(api, second) == 401
    assert (await login(api)).status == 401
    body = {"email": EMAIL, "hash_password": NEW_PASSWORD}
    agent = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}
    signed_in = await api.post("/authorization/login/email", json_body=body, headers=agent)
    assert signed_in.status == 200
    current = signed_in.body
    # Two live sessions: the reset's and this sign-in; the caller's is marked.
    listed = await api.get(SESSIONS, headers=bearer(current))
    assert listed.status == 200, listed.body
    sessions = listed.body["sessions"]
    assert [s["current"] for s in sessions] == [False, True]
    assert sessions[1]["id"] == claims(current["access"])["sid"]
    assert sessions[1]["client_ip"] == "127.0.0.1" and sessions[1]["created"] > 0
    assert sessions[1]["user_agent"] == agent["User-Agent"]
    revoked = await api.post(
        REVOKE, json_body={"session": sessions[0]["id"]}, headers=bearer(current)
    )
    assert revoked.body is True
    assert await refresh_status(api, reset.body) == 401
    assert len((await api.get(SESSIONS, headers=bearer(current))).body["sessions"]) == 1
    # Verify the email and the phone; the next access token says so.
    assert claims(current["access"])["email_verified"] is True  # the reset's code proved it
    assert claims(current["access"])["phone_verified"] is False
    sent = await api.post("/authorization/verify/phone", headers=bearer(current))
    assert sent.body is True, sent.body
    code = sms_inbox.code_for(PHONE)
    confirmed = await api.post(
        "/authorization/verify/phone/confirm", json_body={"code": code}, headers=bearer(current)
    )
    assert confirmed.body is True, confirmed.body
    refreshed = await api.post("/validate/jwt/refresh", json_body={"refresh": current["refresh"]})
    assert claims(refreshed.body["access"])["phone_verified"] is True
    # Delete the account: every token dies and the email and phone are free again.
    deleted = await api.post(
        DELETE, json_body={"hash_password": NEW_PASSWORD}, headers=bearer(current)
    )
    assert deleted.body is True, deleted.body
    assert await refresh_status(api, current) == 401
    assert (await login(api, NEW_PASSWORD)).status == 401
    again = await api.post("/authorization/registration", json_body=USER)
    assert again.status == 200, again.body


async def test_verify_an_email_with_a_code(api, smtp_inbox):
    pair = await register(api)
    assert claims(pair["access"])["email_verified"] is False
    sent = await api.post("/authorization/verify/email", headers=bearer(pair))
    assert sent.body is True
    message = smtp_inbox.to(EMAIL)[-1]
    assert message["From"] == "vhod@example.com" and message["Subject"]
    code = smtp_inbox.code_for(EMAIL)
    path = "/authorization/verify/email/confirm"
    wrong = await api.post(
        path, json_body={"code": "000000" if code != "000000" else "111111"}, headers=bearer(pair)
    )
    assert (wrong.status, wrong.body["error"]) == (400, "invalid_code")
    right = await api.post(path, json_body={"code": code}, headers=bearer(pair))
    assert right.body is True
    reused = await api.post(path, json_body={"code": code}, headers=bearer(pair))
    assert reused.body == wrong.body
    refreshed = await api.post("/validate/jwt/refresh", json_body={"refresh": pair["refresh"]})
    assert claims(refreshed.body["access"])["email_verified"] is True


async def test_messages_follow_accept_language(api, smtp_inbox):
    await register(api)
    await api.post(RESET, json_body={"email": EMAIL}, headers={"Accept-Language": "en-GB,en"})
    await api.post(RESET, json_body={"email": EMAIL})  # the default: Russian
    english, russian = smtp_inbox.to(EMAIL)[-2:]
    assert "password reset code" in english["Subject"]
    assert "сброса пароля" in russian["Subject"]


class GatedSends:
    """Stands in for Delivery.send_code: each send waits until the test opens the gate."""

    def __init__(self, send_code) -> None:
        self.send_code = send_code
        self.gate = asyncio.Event()
        self.waiting = 0

    async def __call__(self, *args, **kwargs) -> None:
        self.waiting += 1
        await self.gate.wait()
        await self.send_code(*args, **kwargs)


async def test_reset_answers_before_its_code_goes_out(
    http_server_client, services, smtp_inbox, monkeypatch
):
    # So that an existing account does not answer later than an unknown one: the answer
    # never waits on the mail server.
    gated = GatedSends(services.lifecycle.delivery.send_code)
    monkeypatch.setattr(services.lifecycle.delivery, "send_code", gated)
    raw = Api(http_server_client)  # no settling: the test sees the answer as a client does
    await register(raw)
    answer = await raw.post(RESET, json_body={"email": EMAIL})
    assert (answer.status, answer.body) == (200, True)
    assert smtp_inbox.messages == []  # the gate holds every send: the answer came first
    gated.gate.set()
    await services.lifecycle.drain(30)
    assert gated.waiting == 1
    assert smtp_inbox.code_for(EMAIL).isdigit()


async def test_resets_beyond_the_pending_limit_send_nothing_and_still_answer_true(
    http_server_client, services, smtp_inbox, monkeypatch, caplog
):
    monkeypatch.setattr("core.domain.after_answer.MAX_PENDING_SENDS", 1)
    gated = GatedSends(services.lifecycle.delivery.send_code)
    monkeypatch.setattr(services.lifecycle.delivery, "send_code", gated)
    raw = Api(http_server_client)
    await register(raw)
    for _ in range(2):
        assert (await raw.post(RESET, json_body={"email": EMAIL})).body is True
    busy = [r for r in caplog.records if getattr(r, "event", "") == "password_reset_not_sent"]
    assert [r.reason for r in busy] == ["busy"]
    gated.gate.set()
    await services.lifecycle.drain(30)
    assert len(smtp_inbox.to(EMAIL)) == 1


async def test_shutdown_cancels_a_send_that_outlives_the_grace(
    http_server_client, services, monkeypatch, caplog
):
    gated = GatedSends(services.lifecycle.delivery.send_code)  # the gate never opens
    monkeypatch.setattr(services.lifecycle.delivery, "send_code", gated)
    raw = Api(http_server_client)
    await register(raw)
    assert (await raw.post(RESET, json_body={"email": EMAIL})).body is True
    await services.lifecycle.drain(0.01)
    assert "1 reset codes were not sent in time" in caplog.text
    # The cancelled send withdrew its code before drain returned (and the store closed):
    # none stays valid that the user never received.
    user = await services.store.find_user_by_email(EMAIL)
    assert await services.store.try_code(f"reset:{user.id}", services.accounts.clock(), 5) is None


async def test_reset_answers_true_for_an_unknown_account_and_sends_nothing(api, smtp_inbox):
    response = await api.post(RESET, json_body={"email": "nobody@example.com"})
    assert (response.status, response.body) == (200, True)
    assert smtp_inbox.messages == []
    body = {"email": "nobody@example.com", "code": "123456", "new_password": NEW_PASSWORD}
    confirm = await api.post(RESET_CONFIRM, json_body=body)
    assert (confirm.status, confirm.body["error"]) == (400, "invalid_code")


async def test_a_code_is_void_after_five_wrong_tries(api, smtp_inbox):
    await register(api)
    await api.post(RESET, json_body={"email": EMAIL})
    code = smtp_inbox.code_for(EMAIL)
    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    for _ in range(5):
        body = {"email": EMAIL, "code": wrong, "new_password": NEW_PASSWORD}
        assert (await api.post(RESET_CONFIRM, json_body=body)).body["error"] == "invalid_code"
    body = {"email": EMAIL, "code": code, "new_password": NEW_PASSWORD}
    voided = await api.post(RESET_CONFIRM, json_body=body)
    assert (voided.status, voided.body["error"]) == (400, "invalid_code")


async def test_a_code_expires_after_fifteen_minutes(api, smtp_inbox, clock):
    await register(api)
    await api.post(RESET, json_body={"email": EMAIL})
    code = smtp_inbox.code_for(EMAIL)
    clock.advance(15 * 60 + 1)
    body = {"email": EMAIL, "code": code, "new_password": NEW_PASSWORD}
    expired = await api.post(RESET_CONFIRM, json_body=body)
    assert (expired.status, expired.body["error"]) == (400, "invalid_code")


async def test_a_new_code_replaces_the_old_one(api, smtp_inbox):
    await register(api)
    await api.post(RESET, json_body={"email": EMAIL})
    old = smtp_inbox.code_for(EMAIL)
    await api.post(RESET, json_body={"email": EMAIL})
    new = smtp_inbox.code_for(EMAIL)
    if old != new:
        body = {"email": EMAIL, "code": old, "new_password": NEW_PASSWORD}
        assert (await api.post(RESET_CONFIRM, json_body=body)).body["error"] == "invalid_code"
    body = {"email": EMAIL, "code": new, "new_password": NEW_PASSWORD}
    assert (await api.post(RESET_CONFIRM, json_body=body)).status == 200


async def test_concurrent_confirms_of_one_code_exactly_one_succeeds(api, smtp_inbox):
    await register(api)
    await api.post(RESET, json_body={"email": EMAIL})
    body = {"email": EMAIL, "code": smtp_inbox.code_for(EMAIL), "new_password": NEW_PASSWORD}
    results = await asyncio.gather(*(api.post(RESET_CONFIRM, json_body=body) for _ in range(6)))
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 400, 400, 400, 400, 400]


async def test_sends_are_limited_per_address(api, smtp_inbox):
    await register(api)
    for _ in range(5):
        assert (await api.post(RESET, json_body={"email": EMAIL})).status == 200
    limited = await api.post(RESET, json_body={"email": EMAIL})
    assert (limited.status, limited.body["error"]) == (429, "rate_limited")
    assert limited.headers["Retry-After"]
    assert len(smtp_inbox.to(EMAIL)) == 5
    # An unknown address counts the same, so the limit tells nothing about accounts.
    for _ in range(5):
        await api.post(RESET, json_body={"email": "nobody@example.com"})
    assert (await api.post(RESET, json_body={"email": "nobody@example.com"})).status == 429


async def test_a_weak_new_password_is_refused_and_keeps_the_code(api, smtp_inbox):
    await register(api)
    await api.post(RESET, json_body={"email": EMAIL})
    code = smtp_inbox.code_for(EMAIL)
    weak = await api.post(
        RESET_CONFIRM, json_body={"email": EMAIL, "code": code, "new_password": "short"}
    )
    assert (weak.status, weak.body["error"]) == (400, "weak_password")
    body = {"email": EMAIL, "code": code, "new_password": NEW_PASSWORD}
    assert (await api.post(RESET_CONFIRM, json_body=body)).status == 200


async def test_reset_by_phone_goes_by_sms(api, sms_inbox):
    await register(api)
    assert (await api.post(RESET, json_body={"phone_number": "8 916 123-45-67"})).body is True
    code = sms_inbox.code_for(PHONE)
    body = {"phone_number": PHONE, "code": code, "new_password": NEW_PASSWORD}
    assert (await api.post(RESET_CONFIRM, json_body=body)).status == 200
    assert sms_inbox.requests[-1]["headers"]["Content-Type"] == "application/json"


async def test_password_change_needs_the_current_password_and_ends_other_sessions(api):
    first = await register(api)
    second = (await login(api)).body
    wrong = await api.post(
        CHANGE,
        json_body={"hash_password": "not it", "new_password": NEW_PASSWORD},
        headers=bearer(second),
    )
    assert (wrong.status, wrong.body["error"]) == (401, "invalid_credentials")
    weak = await api.post(
        CHANGE,
        json_body={"hash_password": PASSWORD, "new_password": "short"},
        headers=bearer(second),
    )
    assert (weak.status, weak.body["error"]) == (400, "weak_password")
    changed = await api.post(
        CHANGE,
        json_body={"hash_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(second),
    )
    assert changed.status == 200, changed.body
    assert changed.headers["Cache-Control"] == "no-store"
    assert await refresh_status(api, first) == 401
    assert await refresh_status(api, second) == 401
    assert await refresh_status(api, changed.body) == 200
    assert (await login(api, NEW_PASSWORD)).status == 200
    # The ended session's access token still checks out, but cannot act for the account.
    again = await api.post(
        CHANGE,
        json_body={"hash_password": NEW_PASSWORD, "new_password": PASSWORD},
        headers=bearer(second),
    )
    assert (again.status, again.body["error"]) == (401, "invalid_token")


async def test_sessions_need_a_valid_access_token(api):
    pair = await register(api)
    for headers in (
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {pair['refresh']}"},
    ):
        response = await api.get(SESSIONS, headers=headers)
        assert response.status in (400, 401), response.body
    assert (await api.get(SESSIONS, headers={"Authorization": "Bearer x"})).body[
        "error"
    ] == "invalid_token"
    # The token may also come as the `access` parameter of a JSON body.
    listed = await api.post(SESSIONS, json_body={"access": pair["access"]})
    assert len(listed.body["sessions"]) == 1


async def test_revoking_all_other_sessions_keeps_the_callers(api):
    first = await register(api)
    second = (await login(api)).body
    third = (await login(api)).body
    done = await api.post(REVOKE, json_body={"all_others": True}, headers=bearer(second))
    assert done.body is True
    assert [await refresh_status(api, p) for p in (first, second, third)] == [401, 200, 401]
    other_user = await register(
        api, {"email": "bob@example.com", "phone_number": "+79161234568", "hash_password": PASSWORD}
    )
    foreign = await api.post(
        REVOKE, json_body={"session": claims(other_user["access"])["sid"]}, headers=bearer(second)
    )
    assert (foreign.status, foreign.body["error"]) == (404, "session_not_found")
    assert await refresh_status(api, other_user) == 200


async def test_delete_needs_the_password(api):
    pair = await register(api)
    missing = await api.post(DELETE, headers=bearer(pair))
    assert (missing.status, missing.body["error"]) == (400, "invalid_request")
    wrong = await api.post(DELETE, json_body={"hash_password": "not it"}, headers=bearer(pair))
    assert (wrong.status, wrong.body["error"]) == (401, "invalid_credentials")
    assert await refresh_status(api, pair) == 200


async def test_deletion_leaves_nothing_of_the_person_in_the_store(api, services, smtp_inbox):
    pair = await register(api)
    await api.post("/authorization/verify/email", headers=bearer(pair))  # a code is pending
    user = await services.store.find_user_by_email(EMAIL)
    assert (
        await api.post(DELETE, json_body={"hash_password": PASSWORD}, headers=bearer(pair))
    ).body is True
    database = services.config.storage.url.removeprefix("sqlite:///")
    raw = b""
    for path in (database, database + "-wal"):
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as file:
            raw += file.read()
    for trace in (EMAIL.encode(), PHONE.encode(), user.id.encode()):
        assert trace not in raw
    import sqlite3

    with sqlite3.connect(database) as db:
        for table in ("users", "identities", "refresh_tokens", "one_time_codes"):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
        # Counters keyed by the user's id are gone too; what is left counts the client
        # address's requests and, under a pseudonym, the codes sent to each address (so that
        # a deletion does not reset that limit).
        keys = [key for (key,) in db.execute("SELECT key FROM counters")]
        assert all(key.startswith(("ip:", "code:from:", "code:to:")) for key in keys), keys


async def test_no_code_address_or_token_in_any_log_line(api, smtp_inbox, sms_inbox, caplog):
    caplog.set_level(logging.DEBUG)
    pair = await register(api)
    await api.post(RESET, json_body={"email": EMAIL})
    code = smtp_inbox.code_for(EMAIL)
    await api.post(
        RESET_CONFIRM, json_body={"email": EMAIL, "code": code, "new_password": NEW_PASSWORD}
    )
    await api.post("/authorization/verify/phone", headers=bearer(pair))
    sms_inbox.mode = "down"
    await api.post(RESET, json_body={"phone_number": PHONE})
    # Every line but the test SMTP server's own (its log is the mailbox's, not vhod's).
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    text = "\n".join(record.getMessage() for record in ours)
    assert "reset_requested" in text
    for secret in (code, EMAIL, PHONE, pair["access"], pair["refresh"], NEW_PASSWORD):
        assert secret not in text


async def test_the_sms_gateway_down_is_a_502_and_leaves_no_code(api, services, sms_inbox):
    pair = await register(api)
    sms_inbox.mode = "down"
    failed = await api.post("/authorization/verify/phone", headers=bearer(pair))
    assert (failed.status, failed.body["error"]) == (502, "delivery_failed")
    user = await services.store.find_user_by_phone(PHONE)
    assert (
        await services.store.try_code(f"verify_phone:{user.id}", services.accounts.clock(), 5)
        is None
    )


class TestWithTheMailServerDown:
    @pytest.fixture
    def config_overrides(self):
        from tests.processes import free_port

        return {
            "email.smtp_url": f"smtp://127.0.0.1:{free_port()}",
            "email.from": "vhod@example.com",
        }

    async def test_reset_answers_as_for_an_unknown_account_and_leaves_no_code(
        self, api, services, caplog
    ):
        await register(api)
        unknown = await api.post(RESET, json_body={"email": "nobody@example.com"})
        known = await api.post(RESET, json_body={"email": EMAIL})
        assert (known.status, known.body) == (unknown.status, unknown.body) == (200, True)
        user = await services.store.find_user_by_email(EMAIL)
        assert (
            await services.store.try_code(f"reset:{user.id}", services.accounts.clock(), 5) is None
        )
        events = [r for r in caplog.records if getattr(r, "event", "") == "password_reset_not_sent"]
        assert [(e.user, e.reason) for e in events] == [(user.id, "delivery_failed")]

    async def test_a_verification_code_that_cannot_go_out_is_a_502(self, api, services):
        # The caller proved who they are: telling them the mail failed reveals nothing.
        pair = await register(api)
        failed = await api.post("/authorization/verify/email", headers=bearer(pair))
        assert (failed.status, failed.body["error"]) == (502, "delivery_failed")
        user = await services.store.find_user_by_email(EMAIL)
        clock = services.accounts.clock()
        assert await services.store.try_code(f"verify_email:{user.id}", clock, 5) is None


class TestWithoutChannels:
    @pytest.fixture
    def config_overrides(self):
        return {}

    async def test_code_routes_answer_503_and_the_rest_works(self, api):
        pair = await register(api)
        for path, body, headers in (
            (RESET, {"email": EMAIL}, {}),
            (RESET, {"phone_number": PHONE}, {}),
            ("/authorization/verify/email", None, bearer(pair)),
            ("/authorization/verify/phone", None, bearer(pair)),
        ):
            response = await api.post(path, json_body=body, headers=headers)
            assert (response.status, response.body["error"]) == (503, "delivery_not_configured"), (
                path
            )
        assert (await api.get(SESSIONS, headers=bearer(pair))).status == 200
        assert (await login(api)).status == 200


class TestRequireVerifiedEmail:
    @pytest.fixture
    def config_overrides(self, smtp_inbox):
        return {**smtp_inbox.config(), "accounts.require_verified_email": True}

    async def test_login_waits_for_the_code_sent_at_registration(self, api, smtp_inbox):
        pair = await register(api)
        code = smtp_inbox.code_for(EMAIL)
        refused = await login(api)
        assert (refused.status, refused.body["error"]) == (403, "unverified_email")
        wrong = await login(api, "not the password")
        assert wrong.status == 401  # a stranger learns nothing
        confirmed = await api.post(
            "/authorization/verify/email/confirm", json_body={"code": code}, headers=bearer(pair)
        )
        assert confirmed.body is True
        assert (await login(api)).status == 200


class TestWithSmtpAuth:
    @pytest.fixture
    def smtp_inbox(self):
        from tests.fakes.channels import SmtpInbox

        inbox = SmtpInbox(require_auth=True).start()
        yield inbox
        inbox.stop()

    @pytest.fixture
    def config_overrides(self, smtp_inbox):
        return smtp_inbox.config(with_auth=True)

    async def test_the_code_goes_through_an_authenticated_server(self, api, smtp_inbox):
        await register(api)
        assert (await api.post(RESET, json_body={"email": EMAIL})).body is True
        assert smtp_inbox.code_for(EMAIL)


@pytest.fixture
def silent_port():
    """A port that accepts connections and never says a word (a hung server)."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    yield listener.getsockname()[1]
    listener.close()


class TestWithHungChannels:
    @pytest.fixture
    def config_overrides(self, silent_port):
        return {
            "email.smtp_url": f"smtp://127.0.0.1:{silent_port}",
            "email.from": "vhod@example.com",
            "email.timeout": 0.5,
            "sms.sender": "http",
            "sms.url": f"http://127.0.0.1:{silent_port}/send",
            "sms.timeout": 0.5,
        }

    async def test_a_hung_server_is_a_502_after_the_timeout(self, api):
        pair = await register(api)
        for path in ("/authorization/verify/email", "/authorization/verify/phone"):
            response = await api.post(path, headers=bearer(pair))
            assert (response.status, response.body["error"]) == (502, "delivery_failed"), path


class TestStartTlsRequired:
    @pytest.fixture
    def config_overrides(self, smtp_inbox):
        # The test server offers no STARTTLS: a required upgrade must refuse to send.
        url = smtp_inbox.config()["email.smtp_url"].replace("smtp://", "smtp+starttls://")
        return {**smtp_inbox.config(), "email.smtp_url": url}

    async def test_no_message_goes_out_in_the_clear(self, api, smtp_inbox):
        pair = await register(api)
        refused = await api.post("/authorization/verify/email", headers=bearer(pair))
        assert (refused.status, refused.body["error"]) == (502, "delivery_failed")
        assert (await api.post(RESET, json_body={"email": EMAIL})).body is True
        assert smtp_inbox.messages == []


class TestSendsPerClient:
    @pytest.fixture
    def config_overrides(self, smtp_inbox):
        return {**smtp_inbox.config(), "accounts.code_sends_per_client_per_hour": 2}

    async def test_one_client_asks_for_a_bounded_number_of_codes(self, api, smtp_inbox):
        for n in range(2):
            assert (await api.post(RESET, json_body={"email": f"u{n}@example.com"})).body is True
        limited = await api.post(RESET, json_body={"email": "u9@example.com"})
        assert (limited.status, limited.body["error"]) == (429, "rate_limited")
