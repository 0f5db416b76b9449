"""An HTTP server on 127.0.0.1 in a thread of its own, for the fakes of outside services.

The fakes serve in-process apps and server processes alike. A fake sets `handler` to its
BaseHTTPRequestHandler class, which reaches the fake as `self.server.fake`.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self


class ThreadedHttpFake:
    handler: ClassVar[type[BaseHTTPRequestHandler]]
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        server.fake = self  # type: ignore[attr-defined]
        self._server, self.port = server, server.server_address[1]
        threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.05), daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def fake_of(handler: BaseHTTPRequestHandler) -> Any:
    return handler.server.fake  # type: ignore[attr-defined]
