"""CORS for the configured front-end origins: exact origins only, and a foreign origin's
state-changing request is refused before it acts. Plain functions, no Tornado."""

from __future__ import annotations

from collections.abc import Collection

from core.domain.errors import ApiError

ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-Id"
EXPOSED_HEADERS = "Retry-After, X-Request-Id"
PREFLIGHT_MAX_AGE = "600"
# Methods that only read; every other method may change something.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def response_headers(origin: str | None, allowed: Collection[str]) -> dict[str, str]:
    """Headers every answer of a CORS-capable route carries.

    `Vary: Origin` goes on every answer once any origin is configured, so that a shared cache
    never serves one origin's answer (with or without the CORS headers) to another.
    """
    if not allowed:
        return {}
    headers = {"Vary": "Origin"}
    if origin and origin in allowed:  # never "*"; an unknown origin gets no CORS headers
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    return headers


def preflight_headers(
    origin: str | None, allowed: Collection[str], methods: list[str]
) -> dict[str, str]:
    """The extra headers of an OPTIONS answer: the allowed methods for a configured origin."""
    if not (origin and origin in allowed):
        return {}
    return {
        "Access-Control-Allow-Methods": ", ".join(methods),
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
    }


def check_origin(changes_state: bool, origin: str | None, allowed: Collection[str]) -> None:
    """Refuse a state-changing request from a page of an origin that is not allowed.

    A browser sends a simple form POST cross-site without a preflight, and CORS only hides
    the answer: the registration or the failed login would still happen. A request without
    `Origin` (a server, curl) is not a browser's cross-site request and passes.
    """
    if changes_state and allowed and origin is not None and origin not in allowed:
        raise ApiError(403, "origin_not_allowed", "Requests from this origin are not allowed.")
