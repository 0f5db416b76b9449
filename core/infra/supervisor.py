"""The process that forks the workers of `server.processes` and looks after them.

Tornado's fork_processes restarts dead children without a bound and never returns in the
parent; this one bounds the restarts (core.infra.workers.RestartBudget), passes SIGTERM on to
every worker and waits for them to drain, logs each death, and returns an exit code.
POSIX only (os.fork); core.infra.workers refuses the setting elsewhere. The parent runs no event
loop and no thread, so nothing a worker inherits is held by someone who is not there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from collections.abc import Callable
from types import FrameType

from core.infra.workers import RestartBudget

log = logging.getLogger("vhod")
KILL_MARGIN_SECONDS = 10.0  # after a worker's own grace and drains, before SIGKILL
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _signals() -> tuple[int, ...]:
    # SIGCHLD exists only where os.fork does: read when supervising, never at import.
    return (*STOP_SIGNALS, signal.SIGCHLD)


def describe(status: int) -> str:
    """A wait status in words: "exit 1", "killed by SIGKILL"."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exit {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


class Supervisor:
    """Forks `count` workers, each running `run_worker(id)` (ids 1..count) and exiting
    with what it returns; replaces a worker that dies while the budget allows."""

    def __init__(
        self,
        count: int,
        run_worker: Callable[[int], int],
        *,
        stop_within: float,
        budget: RestartBudget | None = None,
        on_exit: Callable[[int], None] = lambda pid: None,
        on_stop: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.count = count
        self.run_worker = run_worker
        self.stop_within = stop_within
        self.budget = budget or RestartBudget(count)
        self.on_exit = on_exit  # a worker's pid once it is gone (its metrics files)
        # Stopping begins: the parent lets go of the listening sockets, so that once every
        # worker has closed its own copy, new connections are refused, not left queued.
        self.on_stop = on_stop
        self.clock = clock
        self.workers: dict[int, int] = {}  # pid -> worker id
        self._stopping = False
        self._failed = False
        self._wake_read = self._wake_write = -1

    # --- the parent ---

    def run(self) -> int:
        """Until every worker is gone after a SIGTERM or SIGINT (0), or after a worker died
        beyond the restart bound (1)."""
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _signals()}
        old_wakeup = signal.set_wakeup_fd(self._wake_write)
        try:
            for worker in range(1, self.count + 1):
                self._spawn(worker)
            log.info("supervising %d worker processes (pid %d)", self.count, os.getpid())
            self._watch()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._wake_read)
            os.close(self._wake_write)
        return 1 if self._failed else 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only a flag: the loop, woken through the wakeup fd, does the rest.
        if signum in STOP_SIGNALS:
            self._stopping = True

    def _watch(self) -> None:
        kill_at: float | None = None
        while self.workers:
            self._reap()
            if self._stopping and kill_at is None:
                log.info("stopping: SIGTERM to %d workers, waiting for them", len(self.workers))
                self.on_stop()
                self._signal_all(signal.SIGTERM)
                kill_at = self.clock() + self.stop_within
            if kill_at is not None and self.clock() >= kill_at and self.workers:
                log.warning(
                    "%d workers still running after %.0f s: SIGKILL",
                    len(self.workers),
                    self.stop_within,
                )
                self._signal_all(signal.SIGKILL)
                kill_at = float("inf")
            if not self.workers:
                break
            timeout = None if kill_at is None else max(0.0, min(kill_at - self.clock(), 1.0))
            with contextlib.suppress(InterruptedError):
                select.select([self._wake_read], [], [], timeout)
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_read, 512):
                    pass

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue  # not one of ours
            self.on_exit(pid)
            if self._stopping:
                log.info("worker %d (pid %d) stopped: %s", worker, pid, describe(status))
                continue
            if self.budget.allow(self.clock()):
                log.warning(
                    "worker %d (pid %d) died: %s; restarting it (%d of %d restarts allowed"
                    " a minute)",
                    worker, pid, describe(status), self.budget.recent, self.budget.limit,
                )  # fmt: skip
                self._spawn(worker)
                continue
            log.error(
                "worker %d (pid %d) died: %s, beyond the bound of %d restarts a minute:"
                " stopping vhod",
                worker, pid, describe(status), self.budget.limit,
            )  # fmt: skip
            self._failed = True
            self._stopping = True

    def _signal_all(self, sig: signal.Signals) -> None:
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _spawn(self, worker: int) -> None:
        pid = os.fork()
        if pid == 0:
            self._become_worker(worker)  # never returns
        self.workers[pid] = worker

    # --- the child ---

    def _become_worker(self, worker: int) -> None:
        code = 1
        try:
            # The parent's signal plumbing is not the worker's: its event loop sets its own.
            signal.set_wakeup_fd(-1)
            for sig in _signals():
                signal.signal(sig, signal.SIG_DFL)
            os.close(self._wake_read)
            os.close(self._wake_write)
            code = self.run_worker(worker)
        except BaseException:
            with contextlib.suppress(BaseException):
                log.exception("worker %d failed", worker)
        finally:
            # Never back into the parent's code (its finally blocks, atexit, its sockets).
            os._exit(code)
