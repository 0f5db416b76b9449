"""Logging off the event loop: the batching handler, and redaction that holds on every path."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from core.infra import log_writer, logs
from core.infra.log_writer import BatchingHandler, LineFormatter
from core.infra.redact import RedactedUri, is_secret_name, redact_uri
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


class Collected(logging.Handler):
    """The writer's target in these tests: what it was handed, and from which thread."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.threads: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.threads.add(threading.get_ident())


def test_the_loop_only_collects_records_and_the_writer_formats_them():
    target = Collected()
    handler = BatchingHandler(target, interval=0.01)
    uri = RedactedUri(f"/v?access={MARKER}")
    handler.handle(logging.makeLogRecord({"msg": "%d %s", "args": (200, uri)}))
    mutable = {"k": "v"}
    handler.handle(logging.makeLogRecord({"msg": "%s", "args": ([mutable],)}))
    mutable["k"] = "changed later"
    assert target.records == []  # nothing written on the caller's (the loop's) thread
    handler.start()
    try:
        for _ in range(200):  # the writer's next batch, within about 2 s
            if len(target.records) == 2:
                break
            time.sleep(0.01)
    finally:
        handler.close()
    plain, formatted = target.records
    assert target.threads and threading.get_ident() not in target.threads  # the writer's
    assert plain.args == (200, uri)  # formatted only by the target, off the loop
    assert MARKER not in plain.getMessage()
    assert formatted.getMessage() == "[{'k': 'v'}]"  # formatted at once: it could change


def test_lines_beyond_the_limit_are_dropped_and_counted(monkeypatch):
    monkeypatch.setattr(log_writer, "PENDING_LIMIT", 2)
    target = Collected()
    handler = BatchingHandler(target)
    for i in range(5):
        handler.handle(logging.makeLogRecord({"msg": f"line {i}"}))
    assert handler.dropped == 3
    handler.write_pending()
    assert [r.getMessage() for r in target.records] == [
        "line 0",
        "line 1",
        "3 log lines were dropped: the log output is too slow",
    ]
    handler.handle(logging.makeLogRecord({"msg": "after"}))
    handler.write_pending()
    assert target.records[-1].getMessage() == "after"


def test_a_running_server_logs_through_the_queue_with_secrets_redacted(tmp_path):
    server = Server(tmp_path, VHOD_PASSWORDS__ALGORITHM="bcrypt", VHOD_PASSWORDS__BCRYPT_ROUNDS="4")
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


class CountingStream:
    def __init__(self) -> None:
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        self.flushes += 1


ACCESS_ARGS = (200, "GET", RedactedUri(f"/validate/jwt/access?access={MARKER}"), "10.0.0.1", 1.25)
ACCESS_EXTRA = {"request_id": "req-7", "method": "GET", "route": "/validate/jwt/access"}


@pytest.mark.parametrize("formatter", [LineFormatter("text"), LineFormatter("json")])
def test_a_deferred_call_reads_as_the_record_it_stands_for(formatter):
    created = 1_700_000_000.25
    entry = (
        created,
        logging.INFO,
        "vhod.access",
        "%d %s %s (%s) %.2fms",
        ACCESS_ARGS,
        ACCESS_EXTRA,
    )
    record = log_writer.record_of(entry)
    stream = log_writer.BatchStream()
    stream.setFormatter(formatter)
    out = CountingStream()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stderr", out)
        stream.write_batch([entry, record])
    deferred, made = out.writes[0].splitlines()
    assert deferred == made == formatter.format(record)
    assert MARKER not in deferred and "access=***" in deferred


def test_the_text_format_is_the_stdlib_format_it_replaces():
    stdlib = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    record = logging.makeLogRecord(
        {"msg": "hello %s", "args": ("world",), "levelno": 30, "levelname": "WARNING"}
    )
    record.name, record.request_id = "vhod", "req-1"
    assert LineFormatter("text").format(record) == stdlib.format(record)
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.makeLogRecord({"msg": "failed", "exc_info": __import__("sys").exc_info()})
    failed.request_id = "-"
    assert LineFormatter("text").format(failed) == stdlib.format(failed)


def test_a_batch_is_one_write_and_one_flush(monkeypatch):
    out = CountingStream()
    monkeypatch.setattr("sys.stderr", out)
    stream = log_writer.BatchStream()
    stream.setFormatter(LineFormatter("text"))
    handler = BatchingHandler(stream)
    for i in range(50):
        handler.handle(logging.makeLogRecord({"msg": f"line {i}", "request_id": "-"}))
    handler.write_pending()
    assert len(out.writes) == 1 and out.flushes == 1
    assert out.writes[0].count("\n") == 50


def test_calls_are_deferred_only_when_the_writer_is_all_they_reach(monkeypatch):
    root = logging.getLogger()
    handler = BatchingHandler(logging.NullHandler())
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(logs, "_writer", handler)
    logger = logging.getLogger("vhod.access")
    monkeypatch.setattr(logger, "level", logging.INFO)
    assert handler.serves_alone(logger)
    logs.defer(logger, logging.INFO, "%d", (1,), route="/x")
    assert isinstance(handler.pending[-1], tuple)  # no LogRecord made on this thread
    capture = logging.Handler()
    monkeypatch.setattr(root, "handlers", [handler, capture])  # as a test's log capture
    assert not handler.serves_alone(logger)
    monkeypatch.setattr(root, "handlers", [handler])
    filtered = logging.getLogger("vhod")
    monkeypatch.setattr(filtered, "filters", [logging.Filter("nothing")])
    assert not handler.serves_alone(logger)
    monkeypatch.setattr(filtered, "filters", [])
    monkeypatch.setattr(logger, "propagate", False)
    assert not handler.serves_alone(logger)


def test_an_access_line_without_a_query_holds_only_plain_values(monkeypatch):
    import types

    from core.infra.metrics import Metrics
    from handlers import access_log

    root = logging.getLogger()
    handler = BatchingHandler(logging.NullHandler())
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(logs, "_writer", handler)
    monkeypatch.setattr(logging.getLogger("vhod.access"), "level", logging.INFO)

    def answered(uri: str) -> object:
        request = types.SimpleNamespace(method="GET", uri=uri, request_time=lambda: 0.001)
        return types.SimpleNamespace(
            get_status=lambda: 200,
            request=request,
            settings={"services": types.SimpleNamespace(metrics=Metrics())},
            route_label="/validate/jwt/access",
            request_id="req-1",
        )

    access_log.log_request(answered("/validate/jwt/access"))
    access_log.log_request(answered(f"/validate/jwt/access?access={MARKER}"))
    plain, with_query = handler.pending
    # Lines wait up to 50 ms for the writer, long enough to outlive a young collection: an
    # object of ours in every line would be promoted with it and bring on the oldest
    # generation's full collections, which pause the event loop.
    assert all(type(value) in (str, int, float) for value in plain[4])
    assert isinstance(with_query[4][2], RedactedUri)  # redacted when the writer formats it
    assert MARKER not in str(with_query[4][2])
