"""Logging: formats (`logging.format`: text or json), the request id each request's lines
carry, redaction of secret query values, and the setup of the process's batching writer
(`core.log_writer`), which keeps formatting and writing off the event loop."""

from __future__ import annotations

import atexit
import json
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from core.log_writer import BatchingHandler, BatchStream, LineFormatter

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (or "-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class _SecondCache:
    """The text of a timestamp's whole second, made once per second rather than per line."""

    def __init__(self, render: Callable[[float], str]) -> None:
        self.render = render
        self.second = -1
        self.text = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self.second:
            self.text, self.second = self.render(second), second
        return self.text


class TextFormatter(LineFormatter):
    """`time LEVEL logger [request id] message`, the time as logging's default (local time)."""

    def __init__(self) -> None:
        super().__init__()
        self._seconds = _SecondCache(
            lambda second: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        )

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        extra: dict[str, Any],
        exception: str = "",
    ) -> str:
        millis = int((created - int(created)) * 1000)
        text = (
            f"{self._seconds(created)},{millis:03d} {level} {logger}"
            f" [{extra.get('request_id', '-')}] {message}"
        )
        return f"{text}\n{exception}" if exception else text


class JsonFormatter(LineFormatter):
    """One JSON object per line: time, level, logger, message and the record's extra fields."""

    def __init__(self) -> None:
        super().__init__()
        self._seconds = _SecondCache(
            lambda second: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        )

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        extra: dict[str, Any],
        exception: str = "",
    ) -> str:
        millis = int((created - int(created)) * 1000)
        entry: dict[str, object] = {
            "time": f"{self._seconds(created)}.{millis:03d}Z",
            "level": level.lower(),
            "logger": logger,
            "message": message,
            **extra,
        }
        if exception:
            entry["exception"] = exception
        return json.dumps(entry, default=str, ensure_ascii=False)


# The process's writer, once `configure` has made it.
_writer: BatchingHandler | None = None


def defer(
    logger: logging.Logger, level: int, msg: str, args: tuple[Any, ...], **extra: Any
) -> None:
    """Log as `logger.log(level, msg, *args, extra=extra)` would, the LogRecord made later.

    When the process's batching writer is all a record of `logger` would reach, the caller's
    thread (the event loop) only appends the call's fields to the writer's batch: making a
    LogRecord and passing it down the logger tree costs more than the whole line's text
    does in the writer. Otherwise (another handler or filter is set, as in a test's log
    capture) the record is made and handled here, as usual. `args` must read the same later:
    plain values or RedactedUri.
    """
    if not logger.isEnabledFor(level):
        return
    extra.setdefault("request_id", request_id_var.get())
    writer = _writer
    if writer is not None and writer.serves_alone(logger):
        writer.add((time.time(), level, logger.name, msg, args, extra))
    else:
        logger.handle(
            logger.makeRecord(logger.name, level, __file__, 0, msg, args, None, extra=extra)
        )


def configure(level: str, fmt: str) -> BatchingHandler:
    """Set up the root logger once for the process; returns its running batching handler."""
    handler = BatchStream()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    # No format of ours prints them; each costs a call per record on the loop.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    batching = BatchingHandler(handler)
    batching.addFilter(RequestIdFilter())  # on the caller's thread, where the request id is
    batching.start()
    global _writer
    _writer = batching
    atexit.register(batching.close)  # writes what is still pending
    root = logging.getLogger()
    root.handlers[:] = [batching]
    root.setLevel(level.upper())
    # Tornado's own access log prints full URIs with their queries; ours redacts them.
    logging.getLogger("tornado.access").disabled = True
    return batching
