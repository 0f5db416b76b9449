"""The SQLite store's plumbing: one connection owned by one worker thread, and fault mapping."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from storage.base import DuplicateError, StorageUnavailable

T = TypeVar("T")

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700

# Primary result codes of faults another process or the disk causes, not this code.
TRANSIENT_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_READONLY,
    }
)

# "UNIQUE constraint failed: <table>.<column>[, ...]" names the refusing constraint.
_DUPLICATE_FIELDS = {
    "users.email": "email",
    "users.phone": "phone",
    "identities.provider": "identity",
    "identities.user_id": "provider",  # identities_user_provider: one per provider and user
    "users.id": "id",
    "refresh_tokens.jti": "jti",
    "oauth_states.state": "state",
    "signing_keys.generation": "generation",
    "signing_keys.kid": "kid",
    "passkeys.credential_id": "credential_id",
    "passkeys.id": "id",
}


def duplicate(exc: sqlite3.IntegrityError) -> DuplicateError | None:
    """The DuplicateError a unique-constraint failure stands for, or None for another fault."""
    message = str(exc)
    if not message.startswith("UNIQUE constraint failed: "):
        return None
    column = message.removeprefix("UNIQUE constraint failed: ").split(",")[0].strip()
    field = _DUPLICATE_FIELDS.get(column)
    return None if field is None else DuplicateError(field)


# A call for the worker thread: (function, its arguments, the caller's future and loop).
_Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]", asyncio.AbstractEventLoop]
# What became of it: (the future, the result, or the exception raised).
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


def _settle(outcomes: list[_Outcome]) -> None:
    """On the caller's loop: resolve the futures of a batch of finished jobs."""
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class Worker:
    """Runs functions of a sqlite3 connection on one dedicated thread, in the order asked.

    One thread owns the connection, so sqlite3 objects never cross threads and statements
    run one at a time. `connect` opens the connection on that thread at first use.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._open = connect
        self._db: sqlite3.Connection | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(connection, *args)` on the worker thread, with faults mapped to store errors."""
        result: T = await self._submit(self._call, fn, args)
        return result

    async def stop(self) -> None:
        """Close the connection after the work queued before, then end the thread."""
        if self._thread is None:
            return  # never used: no connection, no thread
        try:
            # Queued after any pending work, so that work finishes on the open connection.
            await self._submit(self._disconnect)
        finally:
            self._jobs.put(None)

    def _submit(self, call: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._thread is None:
            # A daemon, as executor threads are not joined either: stop() ends it.
            self._thread = threading.Thread(target=self._work, name="vhod-sqlite", daemon=True)
            self._thread.start()
        self._jobs.put((call, args, future, loop))
        return future

    def _work(self) -> None:
        """The worker thread: run the jobs in order; hand their results back in batches.

        Each job's result could wake the event loop on its own (as run_in_executor does),
        but under load the loop then spends much of its time on those wake-ups: results of
        the jobs that queued up meanwhile go back in one wake-up instead.
        """
        while True:
            job = self._jobs.get()
            finished: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
            while job is not None:
                call, args, future, loop = job
                # A job its caller gave up on before it started is dropped, as an
                # executor drops a cancelled job that has not started.
                if not future.cancelled():
                    try:
                        outcome: _Outcome = (future, call(*args), None)
                    except BaseException as exc:  # the caller's, as an executor hands it over
                        outcome = (future, None, exc)
                    finished.setdefault(loop, []).append(outcome)
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
            for loop, outcomes in finished.items():
                # RuntimeError: that loop is closed, so nobody waits for these any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, outcomes)
            if job is None:  # stop() asked the thread to end, after all work before it
                return

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            if self._db is None:
                self._db = self._open()
            return fn(self._db, *args)
        except sqlite3.IntegrityError as exc:
            refused = duplicate(exc)
            if refused is None:
                raise
            raise refused from exc
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in TRANSIENT_CODES:
                raise StorageUnavailable(str(exc)) from exc
            raise
        except OSError as exc:  # preparing the file: as SQLITE_CANTOPEN would be
            raise StorageUnavailable(str(exc)) from exc

    def _disconnect(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def transaction(db: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """`fn(db, *args)` in one write transaction, rolled back when it raises."""
    # IMMEDIATE takes the write lock up front, so a read-then-write cannot interleave
    # with another process's write.
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db, *args)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def make_private(path: str) -> None:
    """Create the database file readable by its owner only, and tighten an existing one.

    The file holds password hashes. SQLite creates -wal and -shm with the database file's
    mode, whatever the umask, so they follow; left-overs from an older run are tightened
    too. Modes are set with chmod, so the umask cannot widen them.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path + suffix, PRIVATE_FILE_MODE)
