"""Logging: formats (`logging.format`: text or json), the request id each request's lines
carry, redaction of secret query values, and a batching writer that keeps formatting and
writing off the event loop."""

from __future__ import annotations

import atexit
import json
import logging
import sys
import threading
import time
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl, urlencode

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# Attributes every LogRecord has; anything else on a record came through `extra=`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (or "-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


# A query parameter whose lower-cased name contains one of these never shows its value in a
# log line (AP3, AP7). A substring rule, so that `client_secret`, `id_token`, `new_password`
# or a plugin's `otp_code` are caught without being listed one by one.
SECRET_NAME_PARTS = (
    "access",
    "refresh",
    "token",
    "code",
    "password",
    "secret",
    "state",
    "device_id",
    "verifier",
    "assertion",
    "session",
    "key",
    "otp",
    "query",  # the admin search: an email or a phone number (PII, not a secret)
)


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAME_PARTS)


def redact_uri(uri: str) -> str:
    """The request URI with the values of secret query parameters replaced by `***`."""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    pairs = parse_qsl(query, keep_blank_values=True)
    safe = [(k, "***" if is_secret_name(k) else v) for k, v in pairs]
    return f"{path}?{urlencode(safe, safe='*')}"


class RedactedUri:
    """A URI that is redacted when a log handler formats it, which may be off the event loop.

    Every handler (the batching writer thread, a test's capture) gets the redacted text: the
    raw URI is reachable only through the attribute, never through str() or repr().
    """

    __slots__ = ("uri",)

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __str__(self) -> str:
        return redact_uri(self.uri)

    __repr__ = __str__


# Arguments that read the same when formatted later, in the writer thread.
_LATE_FORMAT_SAFE = (str, int, float, bool, type(None), RedactedUri)
PENDING_LIMIT = 10_000  # records waiting for the writer; beyond it lines are dropped
WRITE_INTERVAL = 0.05  # seconds between the writer's batches


def late_formattable(record: logging.LogRecord) -> logging.LogRecord:
    """The record, formatted now unless its arguments read the same later (plain values)."""
    args = record.args
    if args and not (
        isinstance(args, tuple) and all(isinstance(a, _LATE_FORMAT_SAFE) for a in args)
    ):
        record.msg, record.args = record.getMessage(), None
    return record


class _BatchStream(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler on stderr that leaves flushing to its caller, once per batch.

    Like the stdlib's last-resort handler, it writes to whatever sys.stderr is when it writes.
    """

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:
        return sys.stderr

    def flush(self) -> None:
        pass

    def flush_batch(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()


class BatchingHandler(logging.Handler):
    """Collects records on the caller's thread; a writer thread formats and writes them.

    The event loop only appends a record to a list. Every WRITE_INTERVAL the writer takes the
    whole list, formats it and writes it with one flush. A queue handing over each record
    (stdlib QueueHandler and QueueListener) measured slower here than writing on the loop:
    waking the writer per line moves the GIL back and forth on every request. When the output
    is slower than the requests, lines beyond PENDING_LIMIT are dropped and a warning says
    how many, rather than memory growing without bound.
    """

    def __init__(self, target: logging.Handler, interval: float = WRITE_INTERVAL) -> None:
        super().__init__()
        self.target = target
        self.interval = interval
        self.pending: list[logging.LogRecord] = []
        self.dropped = 0
        self._stopped = threading.Event()
        self._writer = threading.Thread(target=self._write_forever, name="log-writer", daemon=True)

    def start(self) -> None:
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        if len(self.pending) >= PENDING_LIMIT:
            self.dropped += 1
            return
        self.pending.append(late_formattable(record))

    def write_pending(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            batch, self.pending = self.pending, []
            dropped, self.dropped = self.dropped, 0
        if dropped:
            batch.append(
                logging.makeLogRecord(
                    {
                        "name": "vhod",
                        "levelno": logging.WARNING,
                        "levelname": "WARNING",
                        "msg": "%d log lines were dropped: the log output is too slow",
                        "args": (dropped,),
                        "request_id": "-",
                    }
                )
            )
        for record in batch:
            self.target.handle(record)
        if batch and isinstance(self.target, _BatchStream):
            self.target.flush_batch()

    def _write_forever(self) -> None:
        while not self._stopped.wait(self.interval):
            self.write_pending()

    def close(self) -> None:
        """Write what is pending and stop the writer (at exit)."""
        self._stopped.set()
        if self._writer.is_alive():
            self._writer.join(timeout=5)
        self.write_pending()
        super().close()


def configure(level: str, fmt: str) -> BatchingHandler:
    """Set up the root logger once for the process; returns its running batching handler."""
    handler = _BatchStream()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    # No format of ours prints them; each costs a call per record on the loop.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    batching = BatchingHandler(handler)
    batching.addFilter(RequestIdFilter())  # on the caller's thread, where the request id is
    batching.start()
    atexit.register(batching.close)  # writes what is still pending
    root = logging.getLogger()
    root.handlers[:] = [batching]
    root.setLevel(level.upper())
    # Tornado's own access log prints full URIs with their queries; ours redacts them.
    logging.getLogger("tornado.access").disabled = True
    return batching
