"""The HTTP side of a vhod process: the application over the services, its server, and the
sockets it listens on."""

from __future__ import annotations

import socket

import tornado.httpserver
import tornado.netutil
import tornado.web

from core.config import Config
from core.domain.services import Services
from core.infra.redact import redact_url
from handlers.access_log import log_request
from handlers.base import JsonApplication, NotFoundHandler
from handlers.routes import routes

UNREAD_BODY_BYTES = 1 << 40


def make_app(services: Services, *, listener: str = "main") -> tornado.web.Application:
    return JsonApplication(
        routes(services, listener=listener),
        services=services,
        max_body_bytes=services.config.server.max_body_bytes,
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        xheaders=False,
    )


def start_line(config: Config, services: Services) -> str:
    providers = ",".join(
        f"{name}{'' if provider.configured else '(not configured)'}"
        for name, provider in sorted(services.providers.items())
    )
    return (
        f"vhod listening on http://{config.server.host}:{config.server.port} "
        f"storage={redact_url(config.storage.url)} providers={providers or 'none'} "
        f"tokens={services.tokens.keys.algorithm}"
    )


def http_server(app: tornado.web.Application, config: Config) -> tornado.httpserver.HTTPServer:
    return tornado.httpserver.HTTPServer(
        app,
        # The body cap is the application's (a JSON 413); Tornado's own would answer a bare
        # 400, so its limit only bounds what is read and discarded after a refusal.
        max_body_size=UNREAD_BODY_BYTES,
        body_timeout=config.server.body_timeout,
        idle_connection_timeout=60,
    )


class CannotListen(Exception):
    """An address the configuration names cannot be listened on (in use, not allowed)."""


def listen_sockets(host: str, port: int, *, reuse_port: bool = False) -> list[socket.socket]:
    try:
        return tornado.netutil.bind_sockets(port, address=host, reuse_port=reuse_port)
    except OSError as exc:  # EADDRINUSE, EACCES, an unknown host name
        reason = (exc.strerror or str(exc)).lower()
        raise CannotListen(f"vhod: cannot listen on {host}:{port}: {reason}") from exc
