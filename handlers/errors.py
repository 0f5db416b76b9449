"""What an exception raised while serving a request becomes: the contract's JSON error, and
at most one log line, with the URI redacted."""

from __future__ import annotations

import logging
from http.client import responses

import tornado.web

from core.domain.errors import ApiError, storage_unavailable
from core.infra.redact import RedactedUri
from storage.base import StorageUnavailable

app_log = logging.getLogger("vhod")

# Codes for the statuses Tornado itself raises (unknown method, missing argument…).
STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
}
SERVER_ERROR = ApiError(500, "server_error", "The server failed to process the request.")


def api_error_for(exc: BaseException | None, status: int, method: str) -> ApiError:
    """The ApiError to render for `exc`, which made Tornado send `status`."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, StorageUnavailable):
        return storage_unavailable()
    if status >= 500:
        return SERVER_ERROR
    if status == 404:
        description = "There is no such resource."
    elif status == 405:
        description = f"The method {method} is not allowed here."
    elif isinstance(exc, tornado.web.HTTPError) and exc.reason:
        description = exc.reason
    else:
        description = responses.get(status, "The request was refused.")
    return ApiError(status, STATUS_CODES.get(status, "invalid_request"), description)


def log_exception(exc: BaseException | None, method: str, uri: str) -> None:
    """One line for an exception that reached Tornado, never the raw URI (D1b, AP7).

    A contract error (ApiError) is the answer itself, not a fault: the services log the
    security events that go with it.
    """
    if exc is None or isinstance(exc, ApiError):
        return
    if isinstance(exc, StorageUnavailable):
        app_log.warning("storage unavailable: %s", exc)
    elif isinstance(exc, tornado.web.HTTPError):
        # log_message is a format whose arguments may hold request values: the format only.
        app_log.warning(
            "%d %s %s: %s", exc.status_code, method, RedactedUri(uri), exc.log_message or ""
        )
    else:
        app_log.error("uncaught exception in %s %s", method, RedactedUri(uri), exc_info=exc)
