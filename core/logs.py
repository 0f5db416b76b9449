"""Logging: formats (`logging.format`: text or json), the request id each request's lines
carry, redaction of secret query values, and a queue that keeps formatting and writing off
the event loop."""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import time
from contextvars import ContextVar
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

    Every handler (the queue's writer thread, a test's capture) gets the redacted text: the
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
QUEUE_LIMIT = 10_000


class DeferredQueueHandler(logging.handlers.QueueHandler):
    """Puts records on a bounded queue unformatted: the writer thread formats and writes them.

    The stdlib QueueHandler formats in prepare(), on the caller's thread, which is the event
    loop. Here a record is only copied forward; arguments that could change before the writer
    reads them (anything but plain values) are formatted now. A full queue (the output is
    slower than the requests) drops lines and says how many, rather than growing without bound.
    """

    def __init__(self, target: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(target)
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        args = record.args
        if args and not (
            isinstance(args, tuple) and all(isinstance(a, _LATE_FORMAT_SAFE) for a in args)
        ):
            record.msg, record.args = record.getMessage(), None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            if self.dropped:
                note = logging.makeLogRecord(
                    {
                        "name": "vhod",
                        "levelno": logging.WARNING,
                        "levelname": "WARNING",
                        "msg": "%d log lines were dropped: the log output is too slow",
                        "args": (self.dropped,),
                        "request_id": "-",
                    }
                )
                self.queue.put_nowait(note)
                self.dropped = 0
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


def configure(level: str, fmt: str) -> logging.handlers.QueueListener:
    """Set up the root logger once for the process; returns the running writer thread."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    records: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_LIMIT)
    queued = DeferredQueueHandler(records)
    queued.addFilter(RequestIdFilter())  # on the caller's thread, where the request id is
    listener = logging.handlers.QueueListener(records, handler, respect_handler_level=True)
    listener.start()
    atexit.register(listener.stop)  # writes what is still queued
    root = logging.getLogger()
    root.handlers[:] = [queued]
    root.setLevel(level.upper())
    # Tornado's own access log prints full URIs with their queries; ours redacts them.
    logging.getLogger("tornado.access").disabled = True
    return listener
