"""`server.processes`: how many worker processes serve, and the plain decisions around them
(which configurations can fork, how many restarts are allowed, each worker's share of the
hashing threads). The forking itself is core.infra.supervisor's; server.py wires the two."""

from __future__ import annotations

import os
import socket
import sys
from collections import deque
from dataclasses import dataclass

from storage import database_file, is_shared

AUTO = "auto"
RESTART_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Worker:
    """One worker of a server started with `server.processes` above 1."""

    id: int  # 1 .. count; a restarted worker takes the id of the one it replaces
    count: int
    metrics_dir: str  # the run's private folder of prometheus_client's multiprocess files


def parse_processes(value: object) -> int | str:
    """The setting as written (an int, a string of digits from the environment, or `auto`)
    in its normal form: an int >= 1 or "auto". ValueError with the setting's sentence."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        if text.isdigit():
            value = int(text)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError("server.processes: must be a whole number of 1 or more, or auto")


def worker_count(value: int | str, cpu_count: int | None = None) -> int:
    """How many processes serve: the number, or `auto`: the CPU count (1 when unknown)."""
    if value == AUTO:
        return cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return int(value)


def processes_problem(
    value: object, storage_url: str, *, can_fork: bool | None = None, cpu_count: int | None = None
) -> str | None:
    """Why this setting cannot work here, in one line; None when it can."""
    try:
        count = worker_count(parse_processes(value), cpu_count)
    except ValueError as exc:
        return str(exc)
    if count == 1:
        return None
    if not (hasattr(os, "fork") if can_fork is None else can_fork):
        return (
            f"server.processes: {count} workers need os.fork, which this platform lacks;"
            " set 1 (or run several instances behind a load balancer)"
        )
    if not is_shared(storage_url) and database_file(storage_url) is None:
        return (
            f"server.processes: {count} workers need a store they share, and an in-memory"
            " database lives inside one process; use a SQLite file or MongoDB, or set 1"
        )
    return None


def spreads_connections(platform: str = sys.platform) -> bool:
    """Whether each worker can listen on a socket of its own on the one port: Linux hands
    each new connection of a SO_REUSEPORT group to one of its sockets by a hash of the
    connection's addresses, so workers get even shares of the keep-alive connections.
    On one shared socket, the worker that wakes first accepts every connection waiting, and
    a burst of keep-alive connections (a proxy's pool, a load test) can all land on one
    worker. Elsewhere (BSD, macOS) the option shares a port without spreading connections."""
    return platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def hash_workers(configured: int | None, count: int, cpu_count: int | None = None) -> int | None:
    """Each worker's hashing threads: the configured number, or (unset) the cores shared
    out, so that N workers together hash on about as many threads as one process would."""
    if configured is not None or count == 1:
        return configured
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, cores // count)


class RestartBudget:
    """At most `limit` restarts within any `window` seconds: a worker that dies over and
    over (a crash at start, the store gone) stops the server instead of spinning."""

    def __init__(self, limit: int, window: float = RESTART_WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        """Count a restart at `now` if the bound allows it; False (not counted) when not."""
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True

    @property
    def recent(self) -> int:
        return len(self._times)
