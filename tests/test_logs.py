"""Logging off the event loop: the queue handler, and redaction that holds on every path."""

from __future__ import annotations

import logging
import queue

import pytest

from core.logs import DeferredQueueHandler, RedactedUri, is_secret_name, redact_uri
from tests.processes import Server, request

MARKER = "S3CR3T-MARKER-9c2d"


@pytest.mark.parametrize(
    "name",
    [
        "access",
        "refresh",
        "code",
        "state",
        "device_id",
        "hash_password",
        "client_secret",
        "id_token",
        "new_password",
        "code_verifier",
        "otp_code",
        "session_key",
        "Access_Token",
    ],
)
def test_secret_parameter_names_are_recognised(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["email", "phone_number", "redirect", "all", "error", "scope"])
def test_plain_parameter_names_are_kept(name):
    assert not is_secret_name(name)


def test_redact_uri_masks_secret_values_only():
    uri = f"/x?email=a%40b.ru&client_secret={MARKER}&id_token={MARKER}&redirect=1"
    redacted = redact_uri(uri)
    assert MARKER not in redacted
    assert redacted == "/x?email=a%40b.ru&client_secret=***&id_token=***&redirect=1"
    assert str(RedactedUri(uri)) == repr(RedactedUri(uri)) == redacted


def test_the_queue_handler_defers_formatting_to_the_writer_thread():
    records: queue.Queue[logging.LogRecord] = queue.Queue(10)
    handler = DeferredQueueHandler(records)
    uri = RedactedUri(f"/v?access={MARKER}")
    plain = logging.makeLogRecord({"msg": "%d %s", "args": (200, uri)})
    handler.handle(plain)
    queued = records.get_nowait()
    assert queued.args == (200, uri)  # not formatted on the caller's (the loop's) thread
    assert MARKER not in queued.getMessage()
    mutable = {"k": "v"}
    record = logging.makeLogRecord({"msg": "%s", "args": ([mutable],)})
    handler.handle(record)
    mutable["k"] = "changed later"
    assert records.get_nowait().getMessage() == "[{'k': 'v'}]"  # formatted at once


def test_a_full_queue_drops_lines_and_says_how_many():
    records: queue.Queue[logging.LogRecord] = queue.Queue(2)
    handler = DeferredQueueHandler(records)
    for i in range(5):
        handler.handle(logging.makeLogRecord({"msg": f"line {i}"}))
    assert [records.get_nowait().getMessage() for _ in range(2)] == ["line 0", "line 1"]
    assert handler.dropped == 3
    handler.handle(logging.makeLogRecord({"msg": "after"}))
    assert records.get_nowait().getMessage() == (
        "3 log lines were dropped: the log output is too slow"
    )
    assert records.get_nowait().getMessage() == "after"


def test_a_running_server_logs_through_the_queue_with_secrets_redacted(tmp_path):
    server = Server(tmp_path, VHOD_PASSWORDS__BCRYPT_ROUNDS="4")
    try:
        server.wait_started()
        status, _ = request(server.url(f"/validate/jwt/access?access={MARKER}"))
        assert status == 200
        status, _ = request(server.url(f"/validate/jwt/refresh?refresh={MARKER}"))
        assert status == 401
    finally:
        assert server.stop() == 0  # the writer thread flushes what is queued at exit
    log = server.log()
    assert "/validate/jwt/access?access=*** " in log
    assert "/validate/jwt/refresh?refresh=*** " in log
    assert MARKER not in log
