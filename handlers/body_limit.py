"""The request-body cap: an over-limit body, announced or chunked, gets the handler's JSON 413.

Tornado enforces its own `max_body_size` with a bare `400` and a closed connection, and only a
streaming handler sees the body before it is complete. Instead, the application wraps each
request's message delegate (the public `HTTPMessageDelegate` interface): the bytes are counted
as they arrive, and once they exceed the cap (or `Content-Length` says they will) the rest is
discarded and the handler runs at once, finding its connection in `refused`. The handler then
answers 413 like any other error; Tornado closes the connection, since the body was not read.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable

from tornado import httputil


class BodyLimit:
    """The cap and the connections whose request body it refused."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.refused: weakref.WeakSet[httputil.HTTPConnection] = weakref.WeakSet()

    def wrap(
        self, inner: httputil.HTTPMessageDelegate, connection: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return _LimitedMessage(self, inner, connection)


class _LimitedMessage(httputil.HTTPMessageDelegate):
    def __init__(
        self,
        limit: BodyLimit,
        inner: httputil.HTTPMessageDelegate,
        connection: httputil.HTTPConnection,
    ) -> None:
        self.limit = limit
        self.inner = inner
        self.connection = connection
        self.received = 0
        self.passing = True  # False once refused: the handler already runs without the body

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        result = self.inner.headers_received(start_line, headers)
        # `in` first: get() of an absent header raises and catches a KeyError inside, and
        # most requests (every GET) have none.
        length = headers["Content-Length"] if "Content-Length" in headers else ""  # noqa: SIM401
        if length.isdigit() and int(length) > self.limit.limit:
            self._refuse()
        return result

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if not self.passing:
            return None
        self.received += len(chunk)
        if self.received > self.limit.limit:
            self._refuse()
            return None
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        if self.passing:
            self.passing = False
            self.inner.finish()

    def on_connection_close(self) -> None:
        self.inner.on_connection_close()

    def _refuse(self) -> None:
        self.passing = False
        self.limit.refused.add(self.connection)
        self.inner.finish()  # run the handler now, on what it has: it answers 413
