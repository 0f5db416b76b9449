"""What one client can make the audit log keep is bounded (issue 21, item 5): repeats of one
event are kept once with a count, on both stores, and `audit.retention_days` prunes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import urlencode

import pytest
from tornado.httpclient import AsyncHTTPClient

from core.domain.admin import new_admin_key
from core.domain.audit import FOLD_SECONDS, AuditLog
from core.domain.event_types import EventType
from core.domain.events import audit_sink_var, client_ip_var, security_event
from core.infra.clock import FakeClock
from core.infra.maintenance import purge_expired_periodically
from storage.base import EventQuery
from tests.conftest import USER
from tests.storage_fixtures import Running, running_app

KEY, KEY_HASH = new_admin_key()
REPEATS = 120


async def admin_events(app: Running, **query: str) -> list[dict]:
    response = await AsyncHTTPClient().fetch(
        app.url(f"/admin/events?{urlencode({'limit': '200', **query})}"),
        headers={"Authorization": f"Bearer {KEY}"},
        raise_error=False,
    )
    assert response.code == 200, response.body
    return json.loads(response.body)["events"]


async def test_repeated_logouts_and_replays_keep_a_bounded_number_of_events(tmp_path, backend_url):
    settings = {
        "admin.keys": {"ops": KEY_HASH},
        "admin.per_ip_per_minute": 1000,
        "jwt.rotate_refresh": True,
    }
    async with running_app(tmp_path, backend_url, **settings) as app:
        status, pair = await app.call("POST", "/authorization/registration", USER)
        assert status == 200, pair
        # One revoked refresh token, logged out with again and again.
        for _ in range(REPEATS):
            status, _ = await app.call(
                "POST", "/authorization/logout", {"refresh": pair["refresh"]}
            )
            assert status == 200
        # A retired refresh token, replayed again and again.
        status, second = await app.call("POST", "/authorization/login/email", USER)
        assert status == 200, second
        status, rotated = await app.call(
            "POST", "/validate/jwt/refresh", {"refresh": second["refresh"]}
        )
        assert status == 200 and rotated["refresh"] != second["refresh"]
        for _ in range(REPEATS):
            status, _ = await app.call(
                "POST", "/validate/jwt/refresh", {"refresh": second["refresh"]}
            )
            assert status == 401
        await app.services.audit.flush()
        for kind in ("logout", "refresh_reuse"):
            events = await admin_events(app, type=kind)
            # One event, or two if the run crossed the edge of a fold window.
            assert 1 <= len(events) <= 2, (kind, len(events))
            assert sum(e["repeats"] for e in events) == REPEATS, kind
        # Other events are each kept as before.
        kinds = [e["type"] for e in await admin_events(app)]
        assert kinds.count("registered") == 1 and kinds.count("login_succeeded") == 1


async def test_repeats_fold_per_client_and_window_and_different_ones_are_kept(store):
    # The start of a window, in the present (MongoDB's TTL would purge events dated 1970).
    clock = FakeClock((time.time() // FOLD_SECONDS + 1) * FOLD_SECONDS)
    audit = AuditLog(store, clock=clock)
    token = audit_sink_var.set(audit)
    try:
        for ip in ("203.0.113.7", "203.0.113.7", "2001:db8::1", "2001:db8::2", "203.0.113.8"):
            client_ip_var.set(ip)
            security_event(EventType.LOGOUT, user="u1", scope="one")
        await audit.flush()  # written: the next repeat raises the stored count
        client_ip_var.set("203.0.113.7")
        security_event(EventType.LOGOUT, user="u1", scope="one")
        security_event(EventType.LOGOUT, user="u1", scope="all")  # other details: kept
        security_event(EventType.ADMIN_USER_DISABLED, user="u1", admin="ops")
        security_event(EventType.ADMIN_USER_DISABLED, user="u1", admin="ops")  # each kept
        clock.advance(FOLD_SECONDS)
        security_event(EventType.LOGOUT, user="u1", scope="one")  # a new window
        await audit.flush()
    finally:
        audit_sink_var.reset(token)
    kept = await store.list_events(EventQuery(limit=50))
    seen = sorted((e.type, e.ip, e.details.get("scope"), e.repeats) for e in kept)
    assert seen == sorted(
        [
            ("logout", "203.0.113.7", "one", 3),
            ("logout", "2001:db8::1", "one", 2),  # one IPv6 /64: one client
            ("logout", "203.0.113.8", "one", 1),
            ("logout", "203.0.113.7", "all", 1),
            ("admin_user_disabled", "203.0.113.7", None, 1),
            ("admin_user_disabled", "203.0.113.7", None, 1),
            ("logout", "203.0.113.7", "one", 1),
        ]
    )


async def test_retention_prunes_older_events(store):
    clock = FakeClock(time.time())
    audit = AuditLog(store, retention=2 * 86_400, clock=clock)
    token = audit_sink_var.set(audit)
    try:
        security_event(EventType.LOGIN_FAILED, identifier="old")
        clock.advance(86_400)
        security_event(EventType.LOGIN_FAILED, identifier="young")
        await audit.flush()
    finally:
        audit_sink_var.reset(token)
    clock.advance(86_400)
    await store.purge_expired(clock())  # what the maintenance loop runs every 10 minutes
    assert [e.identifier for e in await store.list_events(EventQuery(limit=10))] == ["young"]
    clock.advance(86_400)
    await store.purge_expired(clock())
    assert await store.list_events(EventQuery(limit=10)) == []


async def test_a_shorter_retention_prunes_events_kept_already(store):
    clock = FakeClock(time.time())
    audit = AuditLog(store, retention=90 * 86_400, clock=clock)  # written under 90 days
    token = audit_sink_var.set(audit)
    try:
        security_event(EventType.LOGIN_FAILED, identifier="old")
        clock.advance(31 * 86_400)
        security_event(EventType.LOGIN_FAILED, identifier="young")
        await audit.flush()
    finally:
        audit_sink_var.reset(token)
    # The maintenance loop, now with audit.retention_days: 30.
    purging = asyncio.ensure_future(
        purge_expired_periodically(store, clock, "sqlite://", 0.01, events_retention=30 * 86_400)
    )
    try:
        for _ in range(500):
            kept = [e.identifier for e in await store.list_events(EventQuery(limit=10))]
            if kept == ["young"]:
                break
            await asyncio.sleep(0.01)
    finally:
        purging.cancel()
    assert kept == ["young"]


@pytest.fixture
def config_overrides():
    return {"audit.retention_days": 2, "admin.keys": {"ops": KEY_HASH}}


async def test_audit_retention_days_reaches_the_purge(api, services, clock, caplog):
    caplog.set_level(logging.INFO)
    assert (await api.post("/authorization/registration", json_body=USER)).status == 200
    await services.audit.flush()
    auth = {"Authorization": f"Bearer {KEY}"}
    assert len((await api.get("/admin/events", headers=auth)).body["events"]) == 1
    clock.advance(2 * 86_400 + 1)
    await services.store.purge_expired(clock())
    assert (await api.get("/admin/events", headers=auth)).body["events"] == []
