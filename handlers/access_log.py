"""The access log line and the request metrics of every answered request, secrets redacted."""

from __future__ import annotations

import logging

import tornado.web

from core.domain.events import client_ip_var
from core.infra import logs
from core.infra.metrics import method_label
from core.infra.redact import RedactedUri

access_log = logging.getLogger("vhod.access")


def route_of(handler: tornado.web.RequestHandler) -> str:
    """The route pattern a request matched, for metric labels: a fixed set (AP5).

    A handler names its pattern in `route_label`; a JsonHandler route is a literal path,
    so the matched path is the pattern; anything else is `unmatched`.
    """
    label = getattr(handler, "route_label", None)
    return label if isinstance(label, str) else "unmatched"


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's `log_function`: one access line and the request metrics."""
    status = handler.get_status()
    request = handler.request
    seconds = request.request_time()
    route = route_of(handler)
    method = method_label(request.method)
    metrics = handler.settings["services"].metrics
    metrics.observe_request(route, method, status, seconds)
    # A 500 is a bug; other 5xx (overloaded, storage or provider down) are expected states.
    level = logging.ERROR if status == 500 else logging.WARNING if status > 500 else logging.INFO
    # defer() checks the level, once.
    duration_ms = round(1000.0 * seconds, 2)
    ip = client_ip_var.get()
    uri = request.uri or ""
    logs.defer(
        access_log,
        level,
        "%d %s %s (%s) %.2fms",
        # Only a query holds secrets. Lines wait up to 50 ms for the writer, long
        # enough to outlive a young collection: an object in every line would be
        # promoted and bring on the oldest generation's full, pausing collections.
        (status, method, RedactedUri(uri) if "?" in uri else uri, ip, duration_ms),
        request_id=getattr(handler, "request_id", "-"),
        method=method,
        route=route,
        status=status,
        duration_ms=duration_ms,
        ip=ip,
    )
