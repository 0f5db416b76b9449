"""The baseline: plain Tornado answering a constant JSON `true`, to read vhod's numbers against."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

import tornado.httpserver
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


async def serve(host: str, port: int) -> None:
    # The same server settings as vhod's serve().
    server = tornado.httpserver.HTTPServer(make_app(), idle_connection_timeout=60)
    server.listen(port, address=host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"baseline listening on http://{host}:{port}", flush=True)
    await stop.wait()
    server.stop()
    await server.close_all_connections()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    # Bare Tornado: its access log (info) stays off, as it is unless an app turns it on.
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
