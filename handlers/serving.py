"""Running vhod: one process (`serve`), or a supervisor and the workers it forks
(`serve_processes`, for `server.processes` above 1; docs/processes.md). server.py hands in
how the services are built."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Awaitable
from typing import Protocol

from core.config import Config
from core.domain.services import SHUTDOWN_GRACE_SECONDS, Services
from core.infra import logs
from core.infra.maintenance import purge_expired_periodically, storage_unreachable_line
from core.infra.metrics import Metrics, forget_worker, use_shared_dir
from core.infra.supervisor import KILL_MARGIN_SECONDS, Supervisor
from core.infra.workers import RestartBudget, Worker, spreads_connections
from handlers.app import http_server, listen_sockets, make_app, start_line
from storage import StorageUnavailable

log = logging.getLogger("vhod")
METRICS_PUBLISH_SECONDS = 1.0  # how stale another worker's request counts may be


class Build(Protocol):
    def __call__(self, config: Config, *, worker: Worker | None = None) -> Awaitable[Services]: ...


def bind_listeners(config: Config) -> list[list[socket.socket]]:
    """The sockets of the main address, then of the admin one when it has its own port."""
    listeners = [listen_sockets(config.server.host, config.server.port)]
    try:
        if config.admin.port is not None:  # the admin routes on an address of their own
            admin_host = config.admin.host or config.server.host
            listeners.append(listen_sockets(admin_host, config.admin.port))
    except BaseException:
        close_listeners(listeners)
        raise
    return listeners


def close_listeners(listeners: list[list[socket.socket]]) -> None:
    for sock in (sock for group in listeners for sock in group):
        sock.close()


def bind_worker_listeners(config: Config, count: int) -> list[list[list[socket.socket]]]:
    """Each worker's listeners, bound here once before any fork: on Linux every worker gets
    sockets of its own on the main port (one SO_REUSEPORT group, so that the kernel spreads
    connections evenly; core.infra.workers.spreads_connections), elsewhere all share one.
    The admin port's sockets are shared: its traffic is light.

    The main port is first bound without SO_REUSEPORT and let go: that bind fails when
    anything listens there already, so a second vhod cannot join the group by mistake."""
    shared = bind_listeners(config)
    if count == 1 or not spreads_connections():
        return [shared] * count
    close_listeners(shared[:1])
    own: list[list[socket.socket]] = []
    try:
        for _ in range(count):
            own.append(listen_sockets(config.server.host, config.server.port, reuse_port=True))
    except BaseException:
        close_listeners([*own, *shared[1:]])
        raise
    return [[mine, *shared[1:]] for mine in own]


def distinct_sockets(listeners: list[list[list[socket.socket]]]) -> list[socket.socket]:
    """Every socket of `listeners` once (workers share the admin port's)."""
    seen: dict[int, socket.socket] = {}
    for sock in (sock for worker in listeners for group in worker for sock in group):
        seen.setdefault(id(sock), sock)
    return list(seen.values())


async def serve(
    config: Config,
    build: Build,
    *,
    listeners: list[list[socket.socket]] | None = None,
    worker: Worker | None = None,
) -> None:
    """One vhod process, its services made by `build` (server.build_services): on
    `listeners` bound by the supervisor when this is a `worker`."""
    # The ports first: a busy one stops the start before the store is opened.
    if listeners is None:
        listeners = bind_listeners(config)
    admin_host = config.admin.host or config.server.host
    try:
        services = await build(config, worker=worker)
    except BaseException:
        close_listeners(listeners)
        raise
    servers = [http_server(make_app(services), config)]
    servers[0].add_sockets(listeners[0])
    if config.admin.port is not None:
        servers.append(http_server(make_app(services, listener="admin"), config))
        servers[1].add_sockets(listeners[1])
        log.info("admin API listening on http://%s:%d", admin_host, config.admin.port)
    log.info(start_line(config, services))
    # What start-up made (modules, settings, keys, routes) lives as long as the process: the
    # collector's full passes need not walk it again while requests come and go.
    gc.freeze()
    background = []
    if worker is None or worker.id == 1:  # one purger of the shared store is enough
        purge = purge_expired_periodically(
            services.store,
            services.accounts.clock,
            config.storage.url,
            events_retention=config.audit.retention_days * 86_400,
        )
        background.append(asyncio.ensure_future(purge))
    stop = asyncio.Event()
    if worker is not None:
        duties = worker_duties(services.metrics, os.getppid(), stop)
        background.append(asyncio.ensure_future(duties))
    maintaining_keys = asyncio.ensure_future(services.keys.maintain())
    following_revocations = asyncio.ensure_future(services.accounts.revoked.follow())

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down: no new connections, waiting for %d in flight", services.in_flight)
    for task in background:
        task.cancel()
    maintaining_keys.cancel()
    following_revocations.cancel()
    for server in servers:
        server.stop()
    await services.wait_idle(SHUTDOWN_GRACE_SECONDS)
    for server in servers:
        await server.close_all_connections()
    await services.close()
    services.metrics.publish()  # a worker's last counts stay in the sum after it is gone
    log.info("stopped")


async def worker_duties(metrics: Metrics, supervisor: int, stop: asyncio.Event) -> None:
    """Once a second: write this worker's request tables for the other workers' scrapes,
    and stop (draining, as on SIGTERM) if the supervisor is gone (killed with SIGKILL, say),
    rather than serve on with nobody to restart or stop the workers."""
    while True:
        await asyncio.sleep(METRICS_PUBLISH_SECONDS)
        if os.getppid() != supervisor:
            log.warning("the supervisor (pid %d) is gone: stopping this worker", supervisor)
            stop.set()
            return
        try:
            metrics.publish()
        except OSError as exc:
            log.warning("writing this worker's metrics failed, will retry: %s", exc)


async def prepare(config: Config, build: Build) -> None:
    """Before any worker is forked: everything the start checks, creates or migrates (key
    files, tables, indexes, the first signing key), done once by the supervisor and closed,
    so that workers find it made and no connection or thread crosses the fork."""
    services = await build(config)
    await services.close()


def serve_processes(config: Config, count: int, build: Build) -> int:
    """`server.processes` above 1: bind once (bind_worker_listeners), prepare once, then
    fork and supervise `count` workers, each a whole vhod with its own event loop and
    services."""
    per_worker = bind_worker_listeners(config, count)
    every_socket = distinct_sockets(per_worker)
    metrics_dir = None
    try:
        asyncio.run(prepare(config, build))  # its errors end the start, as in one process
        level, fmt = config.logging.level, config.logging.format
        logs.configure_supervisor(level, fmt)
        metrics_dir = tempfile.mkdtemp(prefix="vhod-metrics-")  # private (0700), this run's
        use_shared_dir(metrics_dir)
        shared = metrics_dir

        def run_worker(worker_id: int) -> int:
            writer = logs.configure(level, fmt, worker=worker_id)
            listeners = per_worker[worker_id - 1]
            mine = {id(sock) for group in listeners for sock in group}
            # The other workers' sockets stay open in the supervisor, not here: a worker that
            # stops must not keep a socket that no one accepts on listening.
            close_listeners([[sock for sock in every_socket if id(sock) not in mine]])
            try:
                worker = Worker(worker_id, count, shared)
                asyncio.run(serve(config, build, listeners=listeners, worker=worker))
            except StorageUnavailable as exc:
                log.error("%s", storage_unreachable_line(config.storage.url, exc))
                return 1
            except Exception:
                log.exception("worker %d failed", worker_id)
                return 1
            finally:
                writer.close()
            return 0

        supervisor = Supervisor(
            count,
            run_worker,
            # A worker waits SHUTDOWN_GRACE_SECONDS for its requests, then as long again for
            # codes still going out (Services.close): SIGKILL comes after both.
            stop_within=3 * SHUTDOWN_GRACE_SECONDS + KILL_MARGIN_SECONDS,
            budget=RestartBudget(count),
            on_exit=lambda pid: forget_worker(shared, pid),
            on_stop=lambda: close_listeners([every_socket]),
        )
        code = supervisor.run()
        log.info("stopped")
        return code
    finally:
        close_listeners([every_socket])
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
