"""The batching log writer and its line formats: the event loop hands over records (or the
fields of one), a writer thread formats them and writes each batch with one write and one
flush."""

from __future__ import annotations

import json
import logging
import os
import select
import sys
import threading
import time
from typing import Any

from core.infra.redact import RedactedUri

# Attributes every LogRecord has; anything else on a record came through `extra=`.
STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Arguments that read the same when formatted later, in the writer thread.
_LATE_FORMAT_SAFE = (str, int, float, bool, type(None), RedactedUri)
PENDING_LIMIT = 10_000  # records waiting for the writer; beyond it lines are dropped
WRITE_INTERVAL = 0.05  # seconds between the writer's batches
# Bytes one write() puts into a pipe whole, however many processes write to it (POSIX
# PIPE_BUF); a regular file takes each write() whole on Linux.
ATOMIC_WRITE_BYTES = getattr(select, "PIPE_BUF", 512)

# A log call whose LogRecord the writer makes: (created, level, logger name, msg, args, extra).
Deferred = tuple[float, int, str, str, tuple[Any, ...], dict[str, Any]]


class LineFormatter(logging.Formatter):
    """The two formats of `logging.format`, built from a record's fields, so that a deferred
    call and a LogRecord are formatted by one code path and read alike.

    text: `time LEVEL logger [request id] message`, the time as logging's default (local);
    json: one object per line: time (UTC), level, logger, message and the extra fields.
    With `server.processes` above 1 each line names its process: `worker=N` before the
    request id, or "worker": N (0 is the supervisor, 1..N the workers).
    """

    def __init__(self, style: str = "text", worker: int | None = None) -> None:
        super().__init__()
        self.json = style == "json"
        self.worker = worker
        self._time_format = "%Y-%m-%dT%H:%M:%S" if self.json else "%Y-%m-%d %H:%M:%S"
        self._convert = time.gmtime if self.json else time.localtime
        self._second, self._second_text = -1, ""  # a second's text, made once per second

    def format(self, record: logging.LogRecord) -> str:
        extra = {
            k: v for k, v in vars(record).items() if k not in STANDARD_ATTRIBUTES and k[:1] != "_"
        }
        tail = ""
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            tail = record.exc_text
        if record.stack_info:
            stack = self.formatStack(record.stack_info)
            tail = f"{tail}\n{stack}" if tail else stack
        return self.line(
            record.created, record.levelname, record.name, record.getMessage(), extra, tail
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
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime(self._time_format, self._convert(second))
            self._second = second
        millis = int((created - second) * 1000)
        if self.json:
            entry: dict[str, object] = {
                "time": f"{self._second_text}.{millis:03d}Z",
                "level": level.lower(),
                "logger": logger,
                "message": message,
                **extra,
            }
            if self.worker is not None:
                entry["worker"] = self.worker
            if exception:
                entry["exception"] = exception
            return json.dumps(entry, default=str, ensure_ascii=False)
        worker = "" if self.worker is None else f" worker={self.worker}"
        text = (
            f"{self._second_text},{millis:03d} {level} {logger}{worker}"
            f" [{extra.get('request_id', '-')}] {message}"
        )
        return f"{text}\n{exception}" if exception else text


def late_formattable(record: logging.LogRecord) -> logging.LogRecord:
    """The record, formatted now unless its arguments read the same later (plain values)."""
    args = record.args
    if args and not (
        isinstance(args, tuple) and all(isinstance(a, _LATE_FORMAT_SAFE) for a in args)
    ):
        record.msg, record.args = record.getMessage(), None
    return record


def record_of(entry: Deferred) -> logging.LogRecord:
    """The LogRecord a deferred call stands for, as Logger.makeRecord would have made it."""
    created, level, name, msg, args, extra = entry
    record = logging.LogRecord(name, level, "", 0, msg, args, None)
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    record.__dict__.update(extra)
    return record


def whole_line_chunks(lines: list[str], limit: int = ATOMIC_WRITE_BYTES) -> list[bytes]:
    """The lines (without their newlines) as few byte strings as can be, each of whole lines
    and at most `limit` bytes unless one line alone is longer: written one write() each,
    the lines of several processes sharing one pipe or file never cut into each other."""
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        data = line.encode("utf-8", "backslashreplace") + b"\n"
        if current and size + len(data) > limit:
            chunks.append(b"".join(current))
            current, size = [], 0
        current.append(data)
        size += len(data)
    if current:
        chunks.append(b"".join(current))
    return chunks


def write_all(fd: int, data: bytes) -> None:
    """One os.write, and more only if the system took part of it (a signal, a full disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class BatchStream(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler on stderr that writes a whole batch at once.

    Like the stdlib's last-resort handler, it writes to whatever sys.stderr is when it writes.
    sys.stderr is write-through: every write() is a system call that gives up the GIL and
    takes it back, so a write per line would cost the event loop as many handoffs.

    `shared`: other processes write to the same stderr (server.processes above 1), so each
    batch goes to its file descriptor in whole-line chunks (whole_line_chunks).
    """

    def __init__(self, *, shared: bool = False) -> None:
        logging.Handler.__init__(self)
        self.shared = shared

    @property
    def stream(self) -> Any:
        return sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        # Used directly (the supervisor's lines, core.infra.logs): one record, as a batch of one.
        self.write_batch([record])

    def write_batch(self, batch: list[logging.LogRecord | Deferred]) -> None:
        formatter = self.formatter
        lines = []
        for item in batch:
            try:
                if isinstance(item, logging.LogRecord):
                    lines.append(self.format(item))
                elif isinstance(formatter, LineFormatter):
                    created, level, name, msg, args, extra = item
                    level_name = logging.getLevelName(level)
                    message = msg % args if args else msg  # as LogRecord.getMessage
                    lines.append(formatter.line(created, level_name, name, message, extra))
                else:
                    lines.append(self.format(record_of(item)))
            except Exception:
                self.handleError(item if isinstance(item, logging.LogRecord) else record_of(item))
        if not lines:
            return
        stream = self.stream
        with self.lock:  # type: ignore[union-attr]
            try:
                if self.shared:
                    stream.flush()  # what else went through sys.stderr comes first
                    fd = stream.fileno()
                    for chunk in whole_line_chunks(lines):
                        write_all(fd, chunk)
                    return
                stream.write("\n".join(lines) + "\n")
                stream.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": "a batch of log lines"}))


class BatchingHandler(logging.Handler):
    """Collects records on the caller's thread; a writer thread formats and writes them.

    The event loop only appends a record, or the fields of one (`add`), to a list. Every
    WRITE_INTERVAL the writer takes the whole list, formats it and writes it with one flush.
    A queue handing over each record (stdlib QueueHandler and QueueListener) measured slower
    here than writing on the loop: waking the writer per line moves the GIL back and forth on
    every request. When the output is slower than the requests, lines beyond PENDING_LIMIT
    are dropped and a warning says how many, rather than memory growing without bound.
    """

    def __init__(self, target: logging.Handler, interval: float = WRITE_INTERVAL) -> None:
        super().__init__()
        self.target = target
        self.interval = interval
        self.pending: list[logging.LogRecord | Deferred] = []
        self.dropped = 0
        self._stopped = threading.Event()
        self._writer = threading.Thread(target=self._write_forever, name="log-writer", daemon=True)

    def start(self) -> None:
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        self._keep(late_formattable(record))

    def add(self, entry: Deferred) -> None:
        """A log call whose record the writer makes; its args must read the same later."""
        with self.lock:  # type: ignore[union-attr]
            self._keep(entry)

    def _keep(self, item: logging.LogRecord | Deferred) -> None:  # with self.lock held
        if len(self.pending) >= PENDING_LIMIT:
            self.dropped += 1
        else:
            self.pending.append(item)

    def serves_alone(self, logger: logging.Logger) -> bool:
        """True when a record of `logger` would reach this handler and nothing else: no
        handler or filter on the way, this the root's only handler (as `configure` sets)."""
        if logger.disabled:
            return False
        current: logging.Logger | None = logger
        while current is not None:
            if current.filters:
                return False
            if current.parent is None:  # the root
                return current.handlers == [self]
            if current.handlers or not current.propagate:
                return False
            current = current.parent
        return False

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
        if isinstance(self.target, BatchStream):
            self.target.write_batch(batch)
        else:
            for item in batch:
                self.target.handle(item if isinstance(item, logging.LogRecord) else record_of(item))

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
