"""core.domain.admin and core.domain.audit by their mechanisms: key checks, cursors, the
bounded queue."""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest

from core.domain import admin as admin_module
from core.domain.admin import AdminKeys, Cursors, new_admin_key, parse_time
from core.domain.audit import AuditLog, to_audit_event
from core.domain.errors import ApiError
from core.domain.event_types import EventType
from core.domain.events import audit_sink_var, security_event
from storage import AuditEvent, EventQuery


def test_a_new_key_is_random_and_its_line_is_its_sha256():
    key, digest = new_admin_key()
    other, _ = new_admin_key()
    assert key != other and len(key) > 40
    assert digest == hashlib.sha256(key.encode()).hexdigest()


def test_every_key_costs_the_same_comparisons(monkeypatch):
    """No timing oracle: right, wrong or missing, each configured hash is compared once."""
    keys = {f"k{i}": new_admin_key() for i in range(3)}
    checker = AdminKeys({name: digest for name, (_key, digest) in keys.items()})
    compared: list[int] = []
    original = hmac.compare_digest

    def counting(a, b):
        compared.append(1)
        return original(a, b)

    monkeypatch.setattr(admin_module.hmac, "compare_digest", counting)
    for presented, expected in ((keys["k0"][0], "k0"), (keys["k2"][0], "k2"), ("x", None)):
        compared.clear()
        assert checker.name_for(presented) == expected
        assert len(compared) == 3
    compared.clear()
    assert checker.name_for(None) is None and len(compared) == 3
    assert AdminKeys({}).configured is False


def test_cursors_are_opaque_bound_to_their_kind_and_tamper_evident():
    cursors = Cursors(b"k" * 32)
    cursor = cursors.encode("users", (12.5, "abc"))
    assert "abc" not in cursor
    assert cursors.decode("users", cursor) == (12.5, "abc")
    for bad_kind, bad in (
        ("events", cursor),
        ("users", Cursors(b"other" * 8).encode("users", (12.5, "abc"))),
        ("users", cursor[:-2]),
        ("users", "a.b.c"),
        ("users", "é.é"),
        ("users", "x" * 600),
    ):
        with pytest.raises(ApiError) as refused:
            cursors.decode(bad_kind, bad)
        assert refused.value.code == "invalid_cursor"


def test_times_are_posix_seconds_or_iso_8601():
    assert parse_time("since", "1700000000") == 1700000000.0
    assert parse_time("since", "2023-11-14T22:13:20Z") == 1700000000.0
    assert parse_time("since", "2023-11-14T22:13:20") == 1700000000.0  # UTC
    assert parse_time("since", None) is None
    for bad in ("yesterday", "nan", "inf", "-5", "1e300"):
        with pytest.raises(ApiError):
            parse_time("since", bad)


def test_only_known_types_and_keys_are_kept():
    record = {
        "event": "login_failed",
        "identifier": "abc",
        "ip": "10.0.0.1",
        "password": "hunter2",
        "provider": "vk",
    }
    event = to_audit_event(record, now=10.0, request_id="r", retention=5.0)
    assert event is not None
    assert event.details == {"provider": "vk"} and event.expires_at == 15.0
    assert to_audit_event({"event": "whatever"}, now=1, request_id="r", retention=1) is None


class SlowStore:
    def __init__(self) -> None:
        self.written: list[AuditEvent] = []

    async def add_events(self, events):
        self.written += events

    async def list_events(self, query: EventQuery):
        return self.written[: query.limit]


async def test_a_full_queue_drops_new_events_with_a_warning(caplog):
    store = SlowStore()
    audit = AuditLog(store, queue_limit=3)  # type: ignore[arg-type]
    token = audit_sink_var.set(audit)
    try:
        with caplog.at_level(logging.WARNING, logger="vhod.audit"):
            for n in range(5):  # no await in between: the writer has had no turn yet
                security_event(EventType.LOGIN_FAILED, identifier=f"x{n}")
            assert audit.dropped == 2
            await audit.flush()
    finally:
        audit_sink_var.reset(token)
        await audit.close()
    assert len(store.written) == 3
    messages = [r.getMessage() for r in caplog.records if r.name == "vhod.audit"]
    assert any("queue is full" in m for m in messages)
    assert any("2 events were dropped" in m for m in messages)


async def test_an_event_outside_a_request_is_not_stored():
    # No sink set: a core function called directly (a unit test, a tool) only logs.
    assert audit_sink_var.get() is None
    security_event(EventType.LOGIN_FAILED, identifier="x")


def test_admin_settings_are_checked_and_keys_come_from_the_environment(tmp_path):
    from core.config import ConfigError, load_config

    _key, digest = new_admin_key()
    config = load_config(None, environ={"VHOD_ADMIN__KEYS__OPS": digest})
    assert config.admin.keys == {"ops": digest}
    assert load_config(None, environ={}).admin.keys == {}
    for overrides, names in (
        ({"admin.keys": {"ops": "not-a-hash"}}, "admin.keys.ops"),
        ({"admin.keys": {"Ops Team": digest}}, "admin.keys.Ops Team"),
        ({"admin.keys": {"ops": 5}}, "admin.keys"),
        ({"admin.port": 8888}, "admin.port"),
        ({"admin.host": "0.0.0.0"}, "admin.host"),
        ({"admin.per_ip_per_minute": 0}, "admin.per_ip_per_minute"),
        ({"audit.retention_days": 0}, "audit.retention_days"),
    ):
        with pytest.raises(ConfigError) as refused:
            load_config(None, environ={}, overrides=overrides)
        assert str(refused.value).startswith(names), refused.value
    apart = load_config(None, environ={}, overrides={"admin.port": 9888})
    assert apart.admin.port == 9888
