"""Prometheus metrics of one vhod process. Labels carry route patterns and outcomes only,
never an identifier, a token or an address."""

from __future__ import annotations

import json
import os
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    values,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from core.domain.errors import ApiError
from core.infra.multiprocess_files import SettledFilesCollector
from storage.base import StorageUnavailable

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BOUNDS = [floatToGoString(b) for b in LATENCY_BUCKETS] + ["+Inf"]  # type: ignore[no-untyped-call]
# Store calls: an indexed read on a local SQLite file takes tens of microseconds.
STORAGE_BUCKETS = (0.0001, 0.00025, 0.0005, *LATENCY_BUCKETS)
_STORAGE_BOUNDS = [floatToGoString(b) for b in STORAGE_BUCKETS] + ["+Inf"]  # type: ignore[no-untyped-call]
DELIVERY_OUTCOMES = ("sent", "refused", "failed", "unreachable")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SNAPSHOT_PREFIX = "vhod-requests-"  # beside prometheus_client's *.db files, which it ignores


def use_shared_dir(path: str) -> None:
    """Metrics made from now on (here and in forked workers) write to prometheus_client's
    multiprocess files in `path`. The client reads PROMETHEUS_MULTIPROC_DIR at its import,
    before the configuration is read; each metric takes `values.ValueClass` when made, so
    choosing it again here, as the import does, covers every metric the workers make."""
    os.environ[MULTIPROC_ENV] = path
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def forget_worker(path: str, pid: int) -> None:
    """A worker is gone: its live gauges leave the sums; its counts stay in them."""
    mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


class RequestMetrics(Collector):
    """Requests answered and their latency, as plain numbers read when /metrics is scraped.

    Only the event loop updates them, once per request: the client library's Counter and
    Histogram take a lock on every update, which this one writer does not need. Labels are
    route patterns and fixed method names (AP5), so the tables stay small.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        # per (route, method): a count per bucket of LATENCY_BUCKETS, then +Inf, then the sum
        self.latency: dict[tuple[str, str], list[float]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        table = self.latency.get((route, method))
        if table is None:
            table = self.latency[(route, method)] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        table[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bound >= seconds
        table[-1] += seconds

    def snapshot(self) -> dict[str, list[list[Any]]]:
        return {
            "counts": [[*key, n] for key, n in list(self.counts.items())],
            "latency": [[*key, list(table)] for key, table in list(self.latency.items())],
        }

    def add(self, snapshot: dict[str, list[list[Any]]]) -> None:
        """Add another worker's counts (a `snapshot()`) to these."""
        for route, method, status, n in snapshot.get("counts", []):
            key = (route, method, int(status))
            self.counts[key] = self.counts.get(key, 0) + int(n)
        for route, method, table in snapshot.get("latency", []):
            _add_table(self.latency, (route, method), table)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "vhod_http_requests",
            "HTTP requests answered, by route pattern, method and status.",
            labels=["route", "method", "status"],
        )
        for (route, method, status), answered in list(self.counts.items()):
            requests.add_metric([route, method, str(status)], answered)
        yield requests
        latency = HistogramMetricFamily(
            "vhod_http_request_duration_seconds",
            "Time to answer an HTTP request, by route pattern and method.",
            labels=["route", "method"],
        )
        for (route, method), table in list(self.latency.items()):
            buckets = _histogram_buckets(table, _BOUNDS)
            latency.add_metric([route, method], buckets, sum_value=table[-1])
        yield latency


def _add_table(tables: dict[Any, list[float]], key: Any, table: list[float]) -> None:
    mine = tables.get(key)
    if mine is None:
        tables[key] = [float(x) for x in table]
    elif len(mine) == len(table):  # the same buckets: every worker runs this code
        for i, x in enumerate(table):
            mine[i] += x


def _histogram_buckets(table: list[float], bounds: list[str]) -> list[tuple[str, float]]:
    """Cumulative (bound, count) pairs from a table of per-bucket counts (sum last)."""
    buckets: list[tuple[str, float]] = []
    total = 0.0
    for bound, count in zip(bounds, table[:-1], strict=True):
        total += count
        buckets.append((bound, total))
    return buckets


class StorageMetrics(Collector):
    """The time of each store call, by operation (a method of storage.base.Store: a fixed
    set). Updated on the event loop only, without the client library's lock, like
    RequestMetrics."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = {}

    def observe(self, operation: str, seconds: float) -> None:
        table = self.latency.get(operation)
        if table is None:
            table = self.latency[operation] = [0.0] * (len(STORAGE_BUCKETS) + 2)
        table[bisect_left(STORAGE_BUCKETS, seconds)] += 1
        table[-1] += seconds

    def snapshot(self) -> list[list[Any]]:
        return [[operation, list(table)] for operation, table in list(self.latency.items())]

    def add(self, snapshot: list[list[Any]]) -> None:
        for operation, table in snapshot:
            _add_table(self.latency, operation, table)

    def collect(self) -> Iterator[Metric]:
        latency = HistogramMetricFamily(
            "vhod_storage_call_duration_seconds",
            "Time of a call to the store, by operation, failed calls included.",
            labels=["operation"],
        )
        for operation, table in sorted(self.latency.items()):
            buckets = _histogram_buckets(table, _STORAGE_BOUNDS)
            latency.add_metric([operation], buckets, sum_value=table[-1])
        yield latency


# (seconds the signing key has signed, seconds until the next one signs), or None when
# tokens are signed with an HMAC secret, which never rotates.
KeySchedule = Callable[[], tuple[float, float] | None]


class SigningKeyMetrics(Collector):
    """The signing key's age and the time to the next rotation, read at each scrape."""

    def __init__(self, schedule: KeySchedule) -> None:
        self.schedule = schedule

    def collect(self) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            "vhod_signing_key_age_seconds",
            "Seconds since the key that signs new tokens started signing.",
        )
        rotation = GaugeMetricFamily(
            "vhod_signing_key_rotation_in_seconds",
            "Seconds until the next key starts signing (jwt.rotation_interval).",
        )
        times = self.schedule()
        if times is not None:  # an HMAC secret: neither exists
            age.add_metric([], times[0])
            rotation.add_metric([], times[1])
        yield age
        yield rotation


class WorkerSnapshots(Collector):
    """The request and store-call tables of every worker of a run: each worker writes its
    own to the shared folder about once a second (Metrics.publish); a scrape adds them up.
    The tables stay plain numbers on the event loop, as in one process; a worker that
    dies without a word loses its last second."""

    def __init__(self, metrics: Metrics, folder: str) -> None:
        self.metrics = metrics
        self.folder = folder

    def collect(self) -> Iterator[Metric]:
        self.metrics.publish()  # this worker's own, to the request
        http, storage = RequestMetrics(), StorageMetrics()
        for name in sorted(os.listdir(self.folder)):
            if not (name.startswith(SNAPSHOT_PREFIX) and name.endswith(".json")):
                continue
            try:
                with open(os.path.join(self.folder, name), encoding="utf-8") as file:
                    snapshot = json.load(file)
            except (OSError, ValueError):
                continue  # replaced whole (os.replace), so only a vanished file lands here
            http.add(snapshot.get("http", {}))
            storage.add(snapshot.get("storage", []))
        yield from http.collect()
        yield from storage.collect()


class Metrics:
    """One registry per application, so that tests and several apps never share counters.

    `shared_dir`: this process is one worker of several (server.processes), and /metrics
    answers for all of them: the client library's metrics through its multiprocess mode
    (use_shared_dir), the request tables through WorkerSnapshots. process_* and python_*
    are left out there: they would describe whichever worker the scrape reached."""

    def __init__(self, shared_dir: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.shared_dir = shared_dir
        self.http = RequestMetrics()
        self.storage = StorageMetrics()
        self._depth: Callable[[], float] | None = None
        own: CollectorRegistry | None = self.registry  # where the library's metrics go
        if shared_dir is None:
            # The client library's standard ones, which the default registry would have had:
            # process_* (CPU, memory, open files), python_info and python_gc_*.
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
            self.registry.register(self.http)
            self.registry.register(self.storage)
        else:
            own = None  # they write to the shared files, read back by MultiProcessCollector
            SettledFilesCollector(self.registry, shared_dir)
            self.registry.register(WorkerSnapshots(self, shared_dir))
        self.logins = Counter(
            "vhod_logins",
            "Sign-in attempts by method (email, phone, provider name) and outcome.",
            ["method", "outcome"],
            registry=own,
        )
        self.provider_calls = Counter(
            "vhod_provider_calls",
            "Calls to identity providers by provider, call and outcome.",
            ["provider", "call", "outcome"],
            registry=own,
        )
        self.tokens_issued = Counter(
            "vhod_tokens_issued",
            "JWTs issued, by kind (access_token, refresh_token).",
            ["kind"],
            registry=own,
        )
        self.tokens_refreshed = Counter(
            "vhod_tokens_refreshed",
            "Successful refreshes, by whether the refresh token was rotated.",
            ["rotated"],
            registry=own,
        )
        self.sms_budget_exhausted = Counter(
            "vhod_sms_budget_exhausted",
            "Code requests refused because sms.daily_limit was spent.",
            registry=own,
        )
        self._children: dict[tuple[Counter, str], Counter] = {}
        self.hash_queue = Gauge(
            "vhod_hash_queue_depth",
            "Password hashes waiting for a worker.",
            registry=own,
            multiprocess_mode="livesum",  # the workers' queues together, the dead ones not
        )
        self.deliveries = Counter(
            "vhod_deliveries",
            "One-time codes handed to a channel (email, phone): sent, refused by the mail "
            "server or SMS gateway, or failed (unreachable, timed out).",
            ["channel", "outcome"],
            registry=own,
        )

    def watch_signing_key(self, schedule: KeySchedule) -> None:
        self.registry.register(SigningKeyMetrics(schedule))

    def watch_deliveries(self, channels: list[str]) -> None:
        """Show the configured channels' counts from the start, at 0."""
        for channel in channels:
            for outcome in DELIVERY_OUTCOMES:
                self.deliveries.labels(channel, outcome)

    def delivered(self, channel: str, outcome: str) -> None:
        self.deliveries.labels(channel, outcome).inc()

    def watch_hash_queue(self, depth: Callable[[], float]) -> None:
        if self.shared_dir is None:
            self.hash_queue.set_function(depth)  # read at each scrape, in this process
        else:  # read by whichever worker is scraped: written whenever it changes
            self._depth = depth

    def hash_queue_changed(self) -> None:
        """The hasher's queue grew or shrank (called with server.processes above 1 only)."""
        if self._depth is not None:
            self.hash_queue.set(self._depth())

    def publish(self) -> None:
        """Write this worker's request tables for the others' scrapes (WorkerSnapshots)."""
        if self.shared_dir is None:
            return
        snapshot = {"http": self.http.snapshot(), "storage": self.storage.snapshot()}
        name = os.path.join(self.shared_dir, f"{SNAPSHOT_PREFIX}{os.getpid()}.json")
        temporary = f"{name}.tmp"
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(snapshot, file)
        os.replace(temporary, name)  # a reader sees the old table or the new, whole

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http.observe(route, method, status, seconds)

    def token_issued(self, kind: str) -> None:
        self._count(self.tokens_issued, kind)

    def token_refreshed(self, rotated: bool) -> None:
        self._count(self.tokens_refreshed, "true" if rotated else "false")

    def _count(self, counter: Counter, label: str) -> None:
        # labels() validates and looks the child up under a lock on every call; the label
        # values here are a fixed few (token kinds, true/false), so their children are kept.
        child = self._children.get((counter, label))
        if child is None:
            child = self._children[(counter, label)] = counter.labels(label)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


# Method labels: the methods vhod serves, and one bucket for every made-up method (AP5).
_METHODS = frozenset({"GET", "POST", "OPTIONS", "HEAD"})


def method_label(method: str | None) -> str:
    return method if method in _METHODS else "other"


def login_outcome(status: int) -> str:
    """A login's outcome from its HTTP status: the one place that maps them."""
    return {
        200: "success",
        401: "failure",
        404: "unknown_identity",
        429: "rate_limited",
        503: "unavailable",
    }.get(status, "invalid_request" if 400 <= status < 500 else "error")


# Called once per sign-in attempt with its method (email, phone, a provider's name) and
# its outcome (login_outcome): the metrics hook.
LoginObserver = Callable[[str, str], None]


class LoginCounter:
    """Reports how each sign-in attempt ended, from the service that decides it."""

    def __init__(self, observe: LoginObserver | None) -> None:
        self.observe = observe

    @contextmanager
    def __call__(self, method: str) -> Iterator[None]:
        try:
            yield
        except ApiError as exc:
            self._report(method, login_outcome(exc.status))
            raise
        except StorageUnavailable:
            self._report(method, login_outcome(503))
            raise
        except Exception:
            self._report(method, login_outcome(500))
            raise
        self._report(method, login_outcome(200))

    def _report(self, method: str, outcome: str) -> None:
        if self.observe is not None:
            self.observe(method, outcome)
