"""The admin API end to end on the app: keys, users, blocking, sign-out, the audit log."""

from __future__ import annotations

import json
import logging

import pytest

from core.domain.admin import new_admin_key
from core.domain.audit import FOLD_SECONDS
from storage import StorageUnavailable

KEY, KEY_HASH = new_admin_key()
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def config_overrides():
    return {
        "limits.login_failures": 3,
        "admin.keys": {"ops": KEY_HASH},
        "server.cors_origins": ["https://app.example"],
        "admin.per_ip_per_minute": 1000,
    }


async def register(api, user) -> dict:
    response = await api.post("/authorization/registration", json_body=user)
    assert response.status == 200, response.body
    return response.body


async def find_one(api, query: str) -> dict:
    response = await api.get("/admin/users", query={"query": query}, headers=AUTH)
    assert response.status == 200, response.body
    assert len(response.body["users"]) == 1, response.body
    return response.body["users"][0]


async def events_of(api, user_id: str, **query: str) -> list[dict]:
    response = await api.get("/admin/events", query={"user": user_id, **query}, headers=AUTH)
    assert response.status == 200, response.body
    return response.body["events"]


async def test_a_missing_or_wrong_key_is_401(api):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEY}"}):
        response = await api.get("/admin/users", headers=headers)
        assert response.status == 401, headers
        assert response.body["error"] == "invalid_admin_key"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_find_by_email_phone_and_identity_normalised_as_sign_in(api, user):
    await register(api, user)
    by_email = await find_one(api, "  ANN@Example.COM ")
    by_phone = await find_one(api, "8 (916) 123-45-67")
    assert by_email == by_phone
    assert by_email["email"] == "ann@example.com"
    assert by_email["phone"] == "+79161234567"
    assert by_email["disabled"] is False and by_email["has_password"] is True
    assert by_email["last_sign_in_at"] == by_email["created_at"]  # registration signs in
    assert "password_hash" not in json.dumps(by_email)
    missing = await api.get("/admin/users", query={"query": "bob@example.com"}, headers=AUTH)
    assert missing.body == {"users": [], "next_cursor": None}
    bad = await api.get("/admin/users", query={"query": "not an email@"}, headers=AUTH)
    assert bad.status == 400


async def test_every_user_in_pages_and_a_bad_cursor_is_400(api, user, clock):
    ids = []
    for i in range(5):
        clock.advance(1)
        body = {**user, "email": f"u{i}@example.com", "phone_number": f"+7916123450{i}"}
        await register(api, body)
        ids.append((await find_one(api, f"u{i}@example.com"))["id"])
    seen, cursor = [], None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await api.get("/admin/users", query=query, headers=AUTH)
        assert page.status == 200, page.body
        seen += [u["id"] for u in page.body["users"]]
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    first = await api.get("/admin/users", query={"limit": "2"}, headers=AUTH)
    good = first.body["next_cursor"]
    body, mac = good.split(".")
    tampered = ("A" if body[0] != "A" else "B") + body[1:] + "." + mac
    events_cursor = (await api.get("/admin/events", query={"limit": "1"}, headers=AUTH)).body[
        "next_cursor"
    ]
    for cursor in (tampered, "garbage", good + "x", events_cursor):
        response = await api.get("/admin/users", query={"cursor": cursor}, headers=AUTH)
        assert response.status == 400, cursor
        assert response.body["error"] == "invalid_cursor"
    for limit in ("0", "201", "-1", "ten"):
        response = await api.get("/admin/users", query={"limit": limit}, headers=AUTH)
        assert response.status == 400, limit


async def test_disable_blocks_sign_in_and_refresh_and_enable_restores(api, user):
    pair = await register(api, user)
    user_id = (await find_one(api, user["email"]))["id"]
    disabled = await api.post(f"/admin/users/{user_id}/disable", headers=AUTH)
    assert disabled.status == 200 and disabled.body["disabled"] is True
    login = await api.post("/authorization/login/email", json_body=user)
    assert (login.status, login.body["error"]) == (403, "account_disabled")
    for path in ("/validate/jwt/refresh",):
        refreshed = await api.get(path, query={"refresh": pair["refresh"]})
        assert (refreshed.status, refreshed.body["error"]) == (403, "account_disabled")
    # A wrong password still says only that the credentials are wrong.
    wrong = await api.post(
        "/authorization/login/email", json_body={**user, "hash_password": "x" * 9}
    )
    assert wrong.status == 401
    enabled = await api.post(f"/admin/users/{user_id}/enable", headers=AUTH)
    assert enabled.body["disabled"] is False
    again = await api.post("/authorization/login/email", json_body=user)
    assert again.status == 200
    # Disabling ended the session it had: enabling does not bring it back.
    old = await api.get("/validate/jwt/refresh", query={"refresh": pair["refresh"]})
    assert (old.status, old.body["error"]) == (401, "invalid_token")
    types = [e["type"] for e in await events_of(api, user_id)]
    assert types == [
        "login_succeeded",
        "admin_user_enabled",
        "login_failed",
        "disabled_sign_in",  # the refresh
        "disabled_sign_in",  # the login
        "admin_user_disabled",
        "registered",
    ]


async def test_revoke_signs_the_user_out_everywhere(api, user):
    first = await register(api, user)
    second = (await api.post("/authorization/login/email", json_body=user)).body
    user_id = (await find_one(api, user["email"]))["id"]
    revoked = await api.post(f"/admin/users/{user_id}/sessions/revoke", headers=AUTH)
    assert revoked.status == 200 and revoked.body == {"revoked": True}
    for pair in (first, second):
        refreshed = await api.get("/validate/jwt/refresh", query={"refresh": pair["refresh"]})
        assert refreshed.status == 401
    assert (await api.post("/authorization/login/email", json_body=user)).status == 200
    [event] = await events_of(api, user_id, type="admin_sessions_revoked")
    assert event["details"] == {"admin": "ops"}
    assert event["ip"] == "127.0.0.1" and len(event["request_id"]) == 32


async def test_unknown_users_are_404(api):
    for method, path in (
        ("GET", "/admin/users/nobody"),
        ("POST", "/admin/users/nobody/disable"),
        ("POST", "/admin/users/nobody/enable"),
        ("POST", "/admin/users/nobody/sessions/revoke"),
    ):
        response = await api.call(method, path, headers=AUTH)
        assert (response.status, response.body["error"]) == (404, "user_not_found"), path


async def test_the_audit_log_has_the_sign_in_story_without_secrets(api, user, clock):
    pair = await register(api, user)
    await api.post("/authorization/login/email", json_body={**user, "hash_password": "wrong pw!"})
    await api.post("/authorization/login/email", json_body={**user, "email": "bob@example.com"})
    clock.advance(10)
    await api.post("/authorization/logout", json_body={"refresh": pair["refresh"]})
    page = await api.get("/admin/events", headers=AUTH)
    assert page.status == 200
    events = page.body["events"]
    assert [e["type"] for e in events] == ["logout", "login_failed", "login_failed", "registered"]
    unknown = events[1]
    assert unknown["user_id"] is None and len(unknown["identifier"]) == 24
    text = json.dumps(events)
    for secret in (user["hash_password"], "wrong pw!", pair["refresh"], pair["access"]):
        assert secret not in text
    assert "bob@example.com" not in text and user["email"] not in text
    failed = await api.get("/admin/events", query={"type": "login_failed"}, headers=AUTH)
    assert len(failed.body["events"]) == 2
    since = events[0]["time"]
    recent = await api.get("/admin/events", query={"since": str(since)}, headers=AUTH)
    assert [e["type"] for e in recent.body["events"]] == ["logout"]
    for bad in ({"type": "made_up"}, {"since": "yesterday"}, {"user": "a/b"}):
        assert (await api.get("/admin/events", query=bad, headers=AUTH)).status == 400


async def test_export_streams_json_lines_oldest_first(api, user, http_server_client):
    await register(api, user)
    await api.post("/authorization/login/email", json_body=user)
    response = await http_server_client.fetch(
        "/admin/events/export?since=2000-01-01T00:00:00Z", headers=AUTH, raise_error=False
    )
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.body.decode().splitlines()]
    assert [e["type"] for e in lines] == ["registered", "login_succeeded"]
    # The same lines as text for a client that asks for text (openapi.yaml has both).
    as_text = await http_server_client.fetch(
        "/admin/events/export", headers={**AUTH, "Accept": "text/plain"}, raise_error=False
    )
    assert as_text.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert as_text.body == response.body
    future = await http_server_client.fetch(
        "/admin/events/export?since=2999-01-01T00:00:00Z", headers=AUTH, raise_error=False
    )
    assert future.code == 200 and future.body == b""


async def test_a_token_check_queues_no_event(api, user, services):
    pair = await register(api, user)
    await services.audit.flush()
    before = len(services.audit._pending), services.audit.dropped
    response = await api.get("/validate/jwt/access", query={"access": pair["access"]})
    assert response.body is True
    assert (len(services.audit._pending), services.audit.dropped) == before == (0, 0)


async def test_a_store_that_refuses_events_fails_no_request(
    api, user, services, caplog, monkeypatch
):
    async def refuse(events):
        raise StorageUnavailable("the audit table is gone")

    monkeypatch.setattr(services.store, "add_events", refuse)
    with caplog.at_level(logging.WARNING, logger="vhod.audit"):
        assert (await api.post("/authorization/registration", json_body=user)).status == 200
        await services.audit.flush()
    [warning] = [r for r in caplog.records if r.name == "vhod.audit"]
    assert "refused 1 events" in warning.getMessage()
    assert '"type": "registered"' in warning.getMessage()
    assert user["hash_password"] not in warning.getMessage()


async def test_admin_answers_carry_no_cors_headers(api):
    headers = {**AUTH, "Origin": "https://app.example"}
    response = await api.get("/admin/events", headers=headers)
    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = await api.call(
        "OPTIONS", "/admin/events", headers={"Origin": "https://app.example"}
    )
    assert preflight.status == 401
    assert "Access-Control-Allow-Methods" not in preflight.headers
    public = await api.get("/healthz", headers={"Origin": "https://app.example"})
    assert public.headers["Access-Control-Allow-Origin"] == "https://app.example"


async def test_the_access_log_shows_no_searched_email(api, user, caplog):
    await register(api, user)
    with caplog.at_level(logging.INFO, logger="vhod.access"):
        await find_one(api, user["email"])
    lines = [r.getMessage() for r in caplog.records if r.name == "vhod.access"]
    assert any("/admin/users?query=***" in line for line in lines), lines
    assert not any("ann" in line for line in lines)


async def test_a_lockout_is_found_by_the_user_it_locked(api, user):
    await register(api, user)
    user_id = (await find_one(api, user["email"]))["id"]
    wrong = {**user, "hash_password": "not the one"}
    for _ in range(3):
        await api.post("/authorization/login/email", json_body=wrong)
    [locked] = await events_of(api, user_id, type="login_locked")
    assert locked["details"] == {"failures": 3}


async def test_find_by_provider_identity_and_its_sign_ins_are_audited(api, services):
    from types import SimpleNamespace

    from core.domain.events import audit_sink_var

    profile = SimpleNamespace(
        provider="vk",
        subject="100500",
        email="Vk.User@example.com",
        phone=None,
        first_name="Anna",
        last_name=None,
        avatar=None,
        email_verified=True,
        phone_verified=False,
    )
    token = audit_sink_var.set(services.audit)
    try:
        await services.accounts.register_with_provider(profile)
        await services.accounts.login_with_provider(profile)
    finally:
        audit_sink_var.reset(token)
    found = await find_one(api, "VK:100500")
    assert found["identities"] == [{"provider": "vk", "subject": "100500"}]
    assert found["email"] == "vk.user@example.com" and found["profile"] == {"first_name": "Anna"}
    assert found["has_password"] is False
    events = await events_of(api, found["id"])
    assert [(e["type"], e["details"]) for e in events] == [
        ("login_succeeded", {"provider": "vk"}),
        ("registered", {"provider": "vk"}),
    ]
    assert (await api.get("/admin/users", query={"query": "vk:1005"}, headers=AUTH)).body[
        "users"
    ] == []


async def test_export_pages_through_the_whole_log(
    api, user, http_server_client, monkeypatch, clock
):
    from core.domain import admin

    monkeypatch.setattr(admin, "EXPORT_PAGE", 2)
    await register(api, user)
    for _ in range(4):
        clock.advance(FOLD_SECONDS)  # else the same sign-in again is one event, counted
        await api.post("/authorization/login/email", json_body=user)
    response = await http_server_client.fetch("/admin/events/export", headers=AUTH)
    lines = [json.loads(line) for line in response.body.decode().splitlines()]
    assert [e["type"] for e in lines] == ["registered"] + ["login_succeeded"] * 4
    assert len({e["id"] for e in lines}) == 5


async def test_metrics_label_admin_routes_by_pattern_not_by_user(api, user):
    await register(api, user)
    user_id = (await find_one(api, user["email"]))["id"]
    await api.get(f"/admin/users/{user_id}", headers=AUTH)
    metrics = (await api.client.fetch("/metrics")).body.decode()
    assert 'route="/admin/users/{id}"' in metrics
    assert user_id not in metrics


async def test_an_operator_deletes_a_user_and_reads_it_back(api, user):
    """The same deletion as the user's own: the user, its sessions and its identifiers go,
    the email can be registered again, and the log names only a pseudonym."""
    pair = await register(api, user)
    found = await find_one(api, user["email"])
    detail = (await api.get(f"/admin/users/{found['id']}", headers=AUTH)).body
    assert len(detail["sessions"]) == 1 and detail["email_verified"] is False
    deleted = await api.call("DELETE", f"/admin/users/{found['id']}", headers=AUTH)
    assert (deleted.status, deleted.body) == (200, {"deleted": True})
    again = await api.call("DELETE", f"/admin/users/{found['id']}", headers=AUTH)
    assert again.status == 404
    refresh = await api.get("/validate/jwt/refresh", query={"refresh": pair["refresh"]})
    assert refresh.status == 401
    assert await events_of(api, found["id"]) == []  # the user id is gone from the log
    log = await api.get("/admin/events", query={"type": "admin_user_deleted"}, headers=AUTH)
    (event,) = log.body["events"]
    assert event["details"]["admin"] == "ops" and found["id"] not in json.dumps(event)
    assert event["identifier"]  # the pseudonym the earlier events now name too
    assert (await api.post("/authorization/registration", json_body=user)).status == 200
