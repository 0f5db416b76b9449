"""The JSON request handler every route builds on: parameters in, contract errors out.

Its parts live beside it: parameter parsing (`params`), the body cap (`body_limit`), CORS
(`cors`), error rendering and exception logging (`errors`), the access log and metrics
(`access_log`). This module wires them into Tornado's public handler hooks.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Awaitable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

import tornado.httputil
import tornado.web
from tornado.escape import json_encode

from core.domain.errors import ApiError
from core.domain.events import audit_sink_var, client_ip_var
from core.domain.sessions import user_agent_var
from core.infra.logs import request_id_var
from core.infra.net import client_ip
from handlers import cors, errors, params
from handlers.body_limit import BodyLimit

if TYPE_CHECKING:
    from core.domain.services import Services

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# The request headers a JsonHandler reads.
_READ_HEADERS = frozenset(
    {
        "Accept",
        "Authorization",
        "Content-Length",
        "Content-Type",
        "Origin",
        "User-Agent",
        "X-Forwarded-For",
        "X-Request-Id",
    }
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


# Request ids must be unique, not secret: a generator seeded once from the OS costs no system
# call per request, as os.urandom() or uuid4() would.
_request_ids = random.Random(os.urandom(32))  # noqa: S311 - an id, not a secret
# A forked worker (server.processes) would otherwise draw the very ids its siblings draw.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _request_ids.seed(os.urandom(32)))


def new_request_id() -> str:
    """32 hex digits, as uuid4().hex."""
    return f"{_request_ids.getrandbits(128):032x}"


async def wait_for(pending: Awaitable[None] | None) -> None:
    """Await what a prepare() returned, if anything."""
    if pending is not None:
        await pending


def payload_too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"The request body is larger than {limit} bytes.")


class JsonHandler(tornado.web.RequestHandler):
    """Reads parameters from the query string and a JSON or form body; writes JSON."""

    # Routes that count against the per-client-address limit (LG4).
    address_limited = False
    # A GET route that creates or signs in a user (the providers' seed routes): a foreign
    # origin's request is refused as for a POST.
    changes_state_on_get = False
    _read: dict[str, str] | None = None  # read_headers(), once a header is asked for
    _params: dict[str, Any] | None = None
    _counted = False
    # Answers that are the same for everyone until the server changes (documents, public
    # keys) carry an ETag; the others never do: a token check answered 304 to a client that
    # sent If-None-Match would be no answer at all, and hashing each body costs every request.
    cacheable = False

    def initialize(self) -> None:
        # An attribute rather than a property, since each request reads it several times.
        self.services: Services = self.settings["services"]

    @property
    def route_label(self) -> str:
        """The route pattern for metrics: every JsonHandler route is a literal path."""
        return self.request.path

    def set_default_headers(self) -> None:
        # Called again by send_error, so errors carry these headers too; runs before
        # initialize(), hence settings rather than self.services.
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        request_id = getattr(self, "request_id", None)
        if request_id:
            self.set_header("X-Request-Id", request_id)
        allowed = self.settings["services"].config.server.cors_origins
        if allowed:
            for name, value in cors.response_headers(self.header("Origin"), allowed).items():
                self.set_header(name, value)

    def compute_etag(self) -> str | None:
        return super().compute_etag() if self.cacheable else None

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

    def prepare(self) -> Awaitable[None] | None:
        """The checks every request passes; an awaitable only where one must wait (the
        per-address limit), so that the other routes make no coroutine for it.

        A subclass that extends it awaits what it returns: `await wait_for(super().prepare())`.
        """
        self.services.request_started()
        self._counted = True
        offered = self.header("X-Request-Id")
        if offered is not None and _REQUEST_ID.match(offered):
            self.request_id = offered
        else:
            self.request_id = new_request_id()
        request_id_var.set(self.request_id)
        self.set_header("X-Request-Id", self.request_id)
        client_ip_var.set(self.client_ip)
        user_agent_var.set(self.header("User-Agent") or "")  # for the session it may start
        audit_sink_var.set(self.services.audit)  # this request's events go to its store
        body_limit: BodyLimit = self.settings["body_limit"]
        if body_limit.refused and self.request.connection in body_limit.refused:
            raise payload_too_large(body_limit.limit)
        method = self.request.method or "GET"
        allowed = self.services.config.server.cors_origins
        if allowed:  # with no origin configured, no origin is checked
            cors.check_origin(
                method not in cors.SAFE_METHODS or (method == "GET" and self.changes_state_on_get),
                self.header("Origin"),
                allowed,
            )
        if self.address_limited and method != "OPTIONS":
            return self.services.throttle.hit_address(client_ip_var.get())
        return None

    def options(self, *args: Any) -> None:
        """CORS preflight: the allowed methods for a configured origin, nothing for others."""
        methods = [m for m in ("GET", "POST") if self._implements(m)]
        allowed = self.services.config.server.cors_origins
        for name, value in cors.preflight_headers(self.header("Origin"), allowed, methods).items():
            self.set_header(name, value)
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()

    def _implements(self, method: str) -> bool:
        own = getattr(type(self), method.lower(), None)
        base = getattr(tornado.web.RequestHandler, method.lower(), None)
        return own is not None and own is not base

    def _uncount(self) -> None:
        # Once per request, however it ends: finished, failed, or dropped by the client (D7).
        if self._counted:
            self._counted = False
            self.services.request_finished()

    def on_finish(self) -> None:
        self._uncount()

    def on_connection_close(self) -> None:
        self._uncount()
        super().on_connection_close()

    # parameters

    @property
    def params(self) -> dict[str, Any]:
        if self._params is None:
            merged: dict[str, Any] = self.query_params()
            merged.update(params.body_params(self.request.body, self.header("Content-Type") or ""))
            self._params = merged
        return self._params

    def query_params(self) -> dict[str, str]:
        """The query string's parameters, the last value of each; invalid UTF-8 is a 400."""
        return params.query_params(self.request.query_arguments)

    @overload
    def param(self, name: str) -> str: ...
    @overload
    def param(self, name: str, *, required: Literal[True]) -> str: ...
    @overload
    def param(self, name: str, *, required: bool) -> str | None: ...
    def param(self, name: str, *, required: bool = True) -> str | None:
        """A string parameter; anything else (a number, an object such as {"$ne": null}) is 400."""
        return params.string_param(self.params, name, required=required)

    def flag_param(self, name: str) -> bool:
        """An optional boolean: JSON true/false, or "true"/"false"/"1"/"0" as text."""
        return params.flag_param(self.params, name)

    def token_param(self, name: str) -> str:
        """A token from `Authorization: Bearer`, which wins, or else from the parameter."""
        token = params.bearer_token(self.header("Authorization"))
        if token is not None:
            return token
        return self.param(name)

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
        error = errors.api_error_for(exc, status_code, self.request.method or "-")
        if error.status == 405:
            allowed = [m for m in ("GET", "POST", "DELETE") if self._implements(m)]
            self.set_header("Allow", ", ".join([*allowed, "OPTIONS"]))
        self.set_status(error.status)
        for name, value in error.headers.items():
            self.set_header(name, value)
        if error.status == 413:
            # The rest of the body is not read; the connection cannot be reused.
            self.set_header("Connection", "close")
        self.finish(json_encode(error.body()))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        errors.log_exception(value, self.request.method or "-", self.request.uri or "")


class JsonApplication(tornado.web.Application):
    """The Tornado application of vhod: every request's body passes the body cap."""

    def __init__(self, *args: Any, max_body_bytes: int, **settings: Any) -> None:
        self.body_limit = BodyLimit(max_body_bytes)
        super().__init__(*args, body_limit=self.body_limit, **settings)

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        return self.body_limit.wrap(super().start_request(server_conn, request_conn), request_conn)


class NotFoundHandler(JsonHandler):
    """Every unknown path: a JSON 404 whatever the method."""

    route_label = "unmatched"

    def prepare(self) -> None:
        super().prepare()  # no awaitable: this route is not address-limited
        raise ApiError(404, "not_found", "There is no such resource.")
