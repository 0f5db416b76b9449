"""The baseline: plain Tornado answering a constant JSON `true`, to read vhod's numbers against."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
from types import FrameType

import tornado.httpserver
import tornado.netutil
import tornado.web

# The route vhod answers token checks on, so the load generator sends both servers the very
# same request bytes and the difference is vhod's own work.
ROUTE = r"/validate/jwt/access"


class TrueHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(b"true")

    post = get


def make_app() -> tornado.web.Application:
    return tornado.web.Application([(ROUTE, TrueHandler)])


async def serve(host: str, port: int, sockets: list[socket.socket] | None = None) -> None:
    # The same server settings as vhod's serve().
    server = tornado.httpserver.HTTPServer(make_app(), idle_connection_timeout=60)
    if sockets is None:
        server.listen(port, address=host)
    else:
        server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"baseline listening on http://{host}:{port}", flush=True)
    await stop.wait()
    server.stop()
    await server.close_all_connections()


def serve_forked(host: str, port: int, processes: int) -> None:
    """The same app in `processes` forked processes on one port, as vhod's
    `server.processes` runs: each child on a SO_REUSEPORT socket of its own, bound by the
    parent (Tornado's fork_processes would leave its children running when the parent is
    stopped): SIGTERM to the parent reaches each of them."""
    groups = [
        tornado.netutil.bind_sockets(port, address=host, reuse_port=True) for _ in range(processes)
    ]
    children = []
    for mine in groups:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for sock in (sock for group in groups if group is not mine for sock in group):
                    sock.close()
                asyncio.run(serve(host, port, mine))
                code = 0
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        os.waitpid(child, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1, help="forked processes, one port")
    args = parser.parse_args(argv)
    # Bare Tornado: its access log (info) stays off, as it is unless an app turns it on.
    logging.basicConfig(level=logging.WARNING)
    if args.processes > 1:
        serve_forked(args.host, args.port, args.processes)
    else:
        asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
