"""The JSON request handler every route builds on: parameters in, contract errors out."""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

import tornado.httputil
import tornado.web
from tornado.escape import json_encode

from core.errors import ApiError, invalid_request, storage_unavailable
from core.events import client_ip_var
from core.logs import request_id_var
from core.metrics import login_outcome
from core.net import client_ip
from storage.base import StorageUnavailable

app_log = logging.getLogger("vhod")
access_log = logging.getLogger("vhod.access")

# Query parameters whose values never reach a log line (AP3).
REDACTED_PARAMS = frozenset(
    {
        "access",
        "refresh",
        "access_token",
        "refresh_token",
        "code",
        "hash_password",
        "code_verifier",
        "state",
        "device_id",
        "token",
    }
)

_STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
    500: "server_error",
    502: "provider_unavailable",
    503: "service_unavailable",
}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CORS_ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-Id"
CORS_EXPOSED_HEADERS = "Retry-After, X-Request-Id"
CORS_MAX_AGE = "600"
_JSON_TYPE = re.compile(r"^application/([a-z0-9.+-]+\+)?json\s*(;|$)", re.I)
_FORM_TYPE = "application/x-www-form-urlencoded"


def redact_uri(uri: str) -> str:
    """The request URI with the values of secret query parameters replaced by `***`."""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    pairs = parse_qsl(query, keep_blank_values=True)
    safe = [(k, "***" if k.lower() in REDACTED_PARAMS else v) for k, v in pairs]
    return f"{path}?{urlencode(safe, safe='*')}"


# The request headers a JsonHandler reads.
_READ_HEADERS = frozenset(
    {"Authorization", "Content-Length", "Content-Type", "Origin", "X-Forwarded-For", "X-Request-Id"}
)


def read_headers(headers: tornado.httputil.HTTPHeaders) -> dict[str, str]:
    """The request headers vhod reads, each as `headers.get(name)` would give it, in one pass.

    HTTPHeaders re-normalises the name on every lookup, and get() of an absent header raises
    and catches a KeyError inside: one pass over the few headers a request has costs less.
    """
    found: dict[str, str] = {}
    for name, value in headers.get_all():
        if name in _READ_HEADERS:
            found[name] = f"{found[name]},{value}" if name in found else value
    return found


def route_of(handler: tornado.web.RequestHandler) -> str:
    """The route pattern a request matched; every route of ours is a literal path."""
    if isinstance(handler, NotFoundHandler) or not isinstance(handler, JsonHandler):
        return "unmatched"
    return handler.request.path


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's `log_function`: one access line and the request metrics, secrets redacted."""
    status = handler.get_status()
    request = handler.request
    seconds = request.request_time()
    route = route_of(handler)
    metrics = handler.settings["services"].metrics
    metrics.observe_request(route, request.method or "-", status, seconds)
    login_method = getattr(handler, "login_method", None)
    if login_method and request.method != "OPTIONS":
        metrics.logins.labels(login_method, login_outcome(status)).inc()
    # A 500 is a bug; other 5xx (overloaded, storage or provider down) are expected states.
    level = logging.ERROR if status == 500 else logging.WARNING if status > 500 else logging.INFO
    if access_log.isEnabledFor(level):
        duration_ms = round(1000.0 * seconds, 2)
        access_log.log(
            level,
            "%d %s %s (%s) %.2fms",
            status,
            request.method,
            redact_uri(request.uri or ""),
            client_ip_var.get(),
            duration_ms,
            extra={
                "request_id": getattr(handler, "request_id", "-"),
                "method": request.method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "ip": client_ip_var.get(),
            },
        )


@tornado.web.stream_request_body
class JsonHandler(tornado.web.RequestHandler):
    """Reads parameters from a JSON body, a form body or the query string; writes JSON.

    The body is streamed so that an oversized one is refused with 413 from its
    Content-Length, before it is read (AP1).
    """

    # Routes that count against the per-client-address limit (LG4).
    address_limited = False
    _read: dict[str, str] | None = None  # read_headers(), once a header is asked for

    def initialize(self) -> None:
        # The application's services (accounts, store, providers…), set once by server.py;
        # an attribute rather than a property, since each request reads it several times.
        self.services: Any = self.application.settings["services"]
        self._chunks: list[bytes] = []
        self._size = 0
        self._params: dict[str, Any] | None = None

    def set_default_headers(self) -> None:
        # Called again by send_error, so errors carry these headers too.
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        request_id = getattr(self, "request_id", None)
        if request_id:
            self.set_header("X-Request-Id", request_id)
        origin = self.header("Origin")
        if origin and origin in self.settings["services"].config.server.cors_origins:
            # Exact origins only, never "*"; an unknown origin gets no CORS headers at all.
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Expose-Headers", CORS_EXPOSED_HEADERS)
            self.add_header("Vary", "Origin")

    def header(self, name: str) -> str | None:
        """The request header `name` (one of _READ_HEADERS), or None."""
        read = self._read
        if read is None:
            read = self._read = read_headers(self.request.headers)
        return read.get(name)

    @property
    def client_ip(self) -> str:
        remote = self.request.remote_ip or "-"
        trusted = self.services.trusted_proxies
        if not trusted:  # X-Forwarded-For is believed from no one: no need to read it
            return remote
        return client_ip(remote, self.header("X-Forwarded-For"), trusted)

    async def prepare(self) -> None:
        self.services.request_started()
        self._counted = True
        offered = self.header("X-Request-Id")
        if offered is not None and _REQUEST_ID.match(offered):
            self.request_id = offered
        else:
            self.request_id = os.urandom(16).hex()  # as uuid4().hex, without the UUID object
        request_id_var.set(self.request_id)
        self.set_header("X-Request-Id", self.request_id)
        client_ip_var.set(self.client_ip)
        limit = self.settings["max_body_bytes"]
        length = self.header("Content-Length")
        if length is not None:
            try:
                too_large = int(length) > limit
            except ValueError as exc:
                raise ApiError(400, "invalid_request", "Content-Length is not a number.") from exc
            if too_large:
                raise payload_too_large(limit)
        # Tornado would stop reading at its own limit with a bare 400; ours is checked per chunk.
        self.request.connection.set_max_body_size(limit + 1)
        if self.address_limited and self.request.method != "OPTIONS":
            await self.services.throttle.hit_address(client_ip_var.get())

    def options(self, *args: Any) -> None:
        """CORS preflight: the allowed methods for a configured origin, nothing for others."""
        origin = self.header("Origin")
        if origin and origin in self.services.config.server.cors_origins:
            methods = [m for m in ("GET", "POST") if self._implements(m)]
            self.set_header("Access-Control-Allow-Methods", ", ".join(methods))
            self.set_header("Access-Control-Allow-Headers", CORS_ALLOWED_HEADERS)
            self.set_header("Access-Control-Max-Age", CORS_MAX_AGE)
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()

    def _implements(self, method: str) -> bool:
        own = getattr(type(self), method.lower(), None)
        base = getattr(tornado.web.RequestHandler, method.lower(), None)
        return own is not None and own is not base

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.settings["max_body_bytes"]:
            raise payload_too_large(self.settings["max_body_bytes"])
        self._chunks.append(chunk)

    def on_finish(self) -> None:
        if getattr(self, "_counted", False):
            self.services.request_finished()
            self._counted = False

    # parameters

    @property
    def params(self) -> dict[str, Any]:
        if self._params is None:
            self._params = self._parse_params()
        return self._params

    def query_params(self) -> dict[str, str]:
        """The query string's parameters, the last value of each."""
        return {
            key: values[-1].decode("utf-8", "replace")
            for key, values in self.request.query_arguments.items()
        }

    def _parse_params(self) -> dict[str, Any]:
        merged: dict[str, Any] = dict(self.query_params())
        body = b"".join(self._chunks)
        content_type = self.header("Content-Type") or ""
        if body and _JSON_TYPE.match(content_type):
            try:
                decoded = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise invalid_request("The body is not valid JSON.") from exc
            if not isinstance(decoded, dict):
                raise invalid_request("The JSON body must be an object.")
            merged.update(decoded)
        elif body and content_type.split(";")[0].strip().lower() == _FORM_TYPE:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise invalid_request("The form body is not UTF-8.") from exc
            merged.update(parse_qsl(text, keep_blank_values=True))
        return merged

    def param(self, name: str, *, required: bool = True) -> str | None:
        """A string parameter; anything else (a number, an object such as {"$ne": null}) is 400."""
        value = self.params.get(name)
        if value is None or value == "":
            if required:
                raise invalid_request(f"The parameter '{name}' is required.")
            return None
        if not isinstance(value, str):
            raise invalid_request(f"The parameter '{name}' must be a string.")
        return value

    def flag_param(self, name: str) -> bool:
        """An optional boolean: JSON true/false, or "true"/"false"/"1"/"0" as text."""
        value = self.params.get(name)
        if value is None or value == "" or isinstance(value, bool):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "1", "false", "0"):
            return value.lower() in ("true", "1")
        raise invalid_request(f"The parameter '{name}' must be true or false.")

    def token_param(self, name: str) -> str:
        """A token from `Authorization: Bearer`, which wins, or else from the parameter."""
        authorization = self.header("Authorization") or ""
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        value = self.param(name)
        assert value is not None
        return value

    # responses

    def write_json(self, value: Any, *, status: int = 200, token: bool = False) -> None:
        if token:
            self.set_header("Cache-Control", "no-store")
            self.set_header("Pragma", "no-cache")
        self.set_status(status)
        if value is True or value is False:  # the answer of every token check
            self.finish("true" if value else "false")
        else:
            self.finish(json_encode(value))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            error = exc
        elif isinstance(exc, StorageUnavailable):
            error = storage_unavailable()
        elif isinstance(exc, tornado.web.HTTPError) and status_code < 500:
            description = exc.log_message or self._reason
            if status_code == 404:
                description = "There is no such resource."
            elif status_code == 405:
                description = f"The method {self.request.method} is not allowed here."
                allowed = [m for m in ("GET", "POST") if self._implements(m)]
                self.set_header("Allow", ", ".join([*allowed, "OPTIONS"]))
            error = ApiError(
                status_code, _STATUS_CODES.get(status_code, "invalid_request"), description
            )
        else:
            error = ApiError(500, "server_error", "The server failed to process the request.")
        self.set_status(error.status)
        for name, value in error.headers.items():
            self.set_header(name, value)
        if error.status == 413:
            # The rest of the body is not read; the connection cannot be reused.
            self.set_header("Connection", "close")
        self.finish(json_encode(error.body()))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, ApiError | StorageUnavailable):
            if self._finished:
                return
            status = e.status if isinstance(e, ApiError) else 503
            if isinstance(e, StorageUnavailable):
                app_log.warning("storage unavailable: %s", e)
            self.send_error(status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


class JsonApplication(tornado.web.Application):
    """The Tornado application of vhod: a request without a body skips body streaming.

    Streaming (JsonHandler) is there to refuse an oversized body from its Content-Length
    before reading it (AP1). A request that has no body gains nothing from it, yet pays for
    it: Tornado then runs the handler in a task of its own and waits on two futures, a few
    event-loop turns per request. Such requests are served by a twin of the handler class
    that does not stream; everything the handler does is the same.
    """

    def get_handler_delegate(
        self,
        request: tornado.httputil.HTTPServerRequest,
        target_class: type[tornado.web.RequestHandler],
        target_kwargs: dict[str, Any] | None = None,
        path_args: list[bytes] | None = None,
        path_kwargs: dict[str, bytes] | None = None,
    ) -> Any:
        if issubclass(target_class, JsonHandler) and not _may_have_body(request.headers):
            target_class = _without_streaming(target_class)
        return super().get_handler_delegate(
            request, target_class, target_kwargs, path_args, path_kwargs
        )


def _may_have_body(headers: tornado.httputil.HTTPHeaders) -> bool:
    """False only when the request surely has no body, and Tornado would not try to parse
    one either (it parses form and multipart types, and may refuse them, when not streaming)."""
    for name, value in headers.get_all():  # one pass: see read_headers
        if name == "Transfer-Encoding" or (name == "Content-Length" and value != "0"):
            return True
        if name == "Content-Type" and value.lower().startswith(_PARSED_BODY_TYPES):
            return True
    return False


_PARSED_BODY_TYPES = ("application/x-www-form-urlencoded", "multipart/")


_NON_STREAMING: dict[type, type] = {}


def _without_streaming(cls: type[tornado.web.RequestHandler]) -> type[tornado.web.RequestHandler]:
    twin = _NON_STREAMING.get(cls)
    if twin is None:
        # `_stream_request_body` is the flag tornado.web.stream_request_body sets on a class.
        namespace = {"_stream_request_body": False, "__qualname__": cls.__qualname__}
        twin = _NON_STREAMING[cls] = type(cls.__name__, (cls,), namespace)
    return twin


def payload_too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"The request body is larger than {limit} bytes.")


class NotFoundHandler(JsonHandler):
    """Every unknown path: a JSON 404 whatever the method."""

    async def prepare(self) -> None:
        await super().prepare()
        raise ApiError(404, "not_found", "There is no such resource.")
