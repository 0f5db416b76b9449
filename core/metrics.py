"""Prometheus metrics of one vhod process. Labels carry route patterns and outcomes only,
never an identifier, a token or an address."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from core.errors import ApiError
from storage.base import StorageUnavailable

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One registry per application, so that tests and several apps never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "vhod_http_requests",
            "HTTP requests answered, by route pattern, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vhod_http_request_duration_seconds",
            "Time to answer an HTTP request, by route pattern and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
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
        self.hash_queue = Gauge(
            "vhod_hash_queue_depth",
            "Password hashes waiting for a worker.",
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def watch_hash_queue(self, depth: Callable[[], float]) -> None:
        self.hash_queue.set_function(depth)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        # labels() validates and looks the child up under a lock on every call; the
        # children of one (route, method, status) never change, so they are kept here.
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

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
