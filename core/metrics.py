"""Prometheus metrics of one vhod process. Labels carry route patterns and outcomes only,
never an identifier, a token or an address."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from core.errors import ApiError
from storage.base import StorageUnavailable

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BOUNDS = [floatToGoString(b) for b in LATENCY_BUCKETS] + ["+Inf"]  # type: ignore[no-untyped-call]


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
            buckets: list[tuple[str, float]] = []
            total = 0.0
            for bound, count in zip(_BOUNDS, table[:-1], strict=True):
                total += count
                buckets.append((bound, total))
            latency.add_metric([route, method], buckets, sum_value=table[-1])
        yield latency


class Metrics:
    """One registry per application, so that tests and several apps never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http = RequestMetrics()
        self.registry.register(self.http)
        self.logins = Counter(
            "vhod_logins",
            "Sign-in attempts by method (email, phone, provider name) and outcome.",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.provider_calls = Counter(
            "vhod_provider_calls",
            "Calls to identity providers by provider, call and outcome.",
            ["provider", "call", "outcome"],
            registry=self.registry,
        )
        self.tokens_issued = Counter(
            "vhod_tokens_issued",
            "JWTs issued, by kind (access_token, refresh_token).",
            ["kind"],
            registry=self.registry,
        )
        self.tokens_refreshed = Counter(
            "vhod_tokens_refreshed",
            "Successful refreshes, by whether the refresh token was rotated.",
            ["rotated"],
            registry=self.registry,
        )
        self.code_deliveries = Counter(
            "vhod_code_deliveries",
            "Codes handed to phone channels, by channel (the configured names) and outcome "
            "(sent, refused, unreachable, failed).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.sms_budget_exhausted = Counter(
            "vhod_sms_budget_exhausted",
            "Code requests refused because sms.daily_limit was spent.",
            registry=self.registry,
        )
        self._children: dict[tuple[Counter, str], Counter] = {}
        self.hash_queue = Gauge(
            "vhod_hash_queue_depth",
            "Password hashes waiting for a worker.",
            registry=self.registry,
        )

    def code_delivery(self, channel: str, outcome: str, reason: str | None) -> None:
        """A phone channel's attempt (core.sms_gateways.ChannelChain's report)."""
        self.code_deliveries.labels(channel, outcome).inc()

    def watch_hash_queue(self, depth: Callable[[], float]) -> None:
        self.hash_queue.set_function(depth)

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
