"""Logging: the request id each request's lines carry, calls whose record the writer makes
(`defer`), and the setup of the process's batching writer and its format (`core.infra.log_writer`),
which keep formatting and writing off the event loop."""

from __future__ import annotations

import atexit
import logging
import time
from contextvars import ContextVar
from typing import Any

from core.infra.log_writer import BatchingHandler, BatchStream, LineFormatter

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (or "-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


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


def configure(level: str, fmt: str, *, worker: int | None = None) -> BatchingHandler:
    """Set up the root logger once for the process; returns its running batching handler.

    `worker`: this is worker `worker` of several processes sharing stderr (core.infra.workers):
    its lines name it, and go out in whole-line writes."""
    handler = BatchStream(shared=worker is not None)
    handler.setFormatter(LineFormatter(fmt, worker=worker))
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


def configure_supervisor(level: str, fmt: str) -> None:
    """The root logger of the process that forks the workers (worker 0): each line written
    at once, with no writer thread, since a thread's locks must not be held across a fork."""
    global _writer
    if _writer is not None:
        _writer.close()  # what it still holds is written before any worker starts
        _writer = None
    handler = BatchStream(shared=True)
    handler.setFormatter(LineFormatter(fmt, worker=0))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
