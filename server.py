"""vhod: a self-hosted sign-in service. `python server.py [--config PATH] [--port N]` starts it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
import yaml

from core import logs
from core.accounts import Accounts, AccountSettings
from core.admin import Admin, AdminKeys, Cursors
from core.admin_cli import COMMANDS as ADMIN_COMMANDS
from core.admin_cli import add_admin_commands, run_admin_command
from core.audit import AuditLog
from core.clock import Clock, system_clock
from core.codes import Codes, code_key
from core.config import Config, ConfigError, load_config, masked
from core.delivery import Delivery
from core.events import derived_key, pseudonym_key, set_pseudonym_key
from core.kek import SETTING as KEK_SETTING
from core.kek import KeyEncryptionKey, UndecryptableKey
from core.key_manager import KeyManager
from core.key_setup import add_keys_commands, key_ring, rotation_policy, run_keys_command
from core.keys import KeyRing
from core.lifecycle import Lifecycle
from core.maintenance import purge_expired_periodically, storage_unreachable_line
from core.metrics import Metrics
from core.net import parse_networks
from core.passwords import Hasher
from core.redact import redact_text, redact_url
from core.social import SocialSignIn
from core.throttle import Throttle
from core.tokens import TokenService
from handlers.access_log import log_request
from handlers.base import JsonApplication, NotFoundHandler
from handlers.routes import routes
from providers import ProviderRegistryError, build_providers, discover_providers
from providers.registry import settings_help
from storage import StorageUnavailable, Store, open_store, url_problem

log = logging.getLogger("vhod")

SHUTDOWN_GRACE_SECONDS = 30
UNREAD_BODY_BYTES = 1 << 40


@dataclass
class Services:
    """Everything the handlers use, built once at start and reachable from `settings`."""

    config: Config
    store: Store
    hasher: Hasher
    tokens: TokenService
    keys: KeyManager
    accounts: Accounts
    social: SocialSignIn
    throttle: Throttle
    metrics: Metrics
    lifecycle: Lifecycle
    audit: AuditLog
    admin: Admin
    trusted_proxies: tuple[Any, ...] = ()
    providers: dict[str, Any] = field(default_factory=dict)
    in_flight: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def request_started(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def request_finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, grace: float) -> None:
        """Return once no request is in flight, or after `grace` seconds."""
        if self.in_flight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)

    async def close(self) -> None:
        await self.lifecycle.drain(SHUTDOWN_GRACE_SECONDS)  # reset codes still going out
        self.hasher.close()
        await self.audit.close()  # the queued events go to the store before it closes
        await self.store.close()


@dataclass
class ConfiguredParts:
    providers: dict[str, Any]
    trusted_proxies: tuple[Any, ...]
    delivery: Delivery
    ring: KeyRing
    kek: KeyEncryptionKey | None


def configured_parts(
    config: Config, provider_classes: dict[str, Any] | None = None, *, create: bool = True
) -> ConfiguredParts:
    """What the start builds from the configuration alone, each of which can refuse it
    (ConfigError). --check-config calls this too, with `create` false: the same checks,
    and no generated key file written."""
    try:
        providers = build_providers(
            discover_providers() if provider_classes is None else provider_classes,
            config.providers,
            public_url=config.public_url,
            connect_timeout=config.limits.provider_connect_timeout,
            request_timeout=config.limits.provider_timeout,
        )
        trusted_proxies = parse_networks(config.server.trusted_proxies)
        delivery = Delivery(config.email, config.sms)
        if problem := url_problem(config.storage.url):
            raise ConfigError(f"storage.url: {redact_text(problem, config.storage.url)}")
    except (ValueError, ProviderRegistryError) as exc:
        raise ConfigError(str(exc)) from exc
    ring, kek = key_ring(config, create=create)
    return ConfiguredParts(providers, trusted_proxies, delivery, ring, kek)


async def build_services(
    config: Config,
    *,
    store: Store | None = None,
    clock: Clock = system_clock,
    provider_classes: dict[str, Any] | None = None,
) -> Services:
    """Providers, storage (tables and indexes created), the hashing pool, the token signer.

    Everything that can refuse the configuration runs before storage is opened."""
    parts = configured_parts(config, provider_classes)
    providers, trusted_proxies, delivery = parts.providers, parts.trusted_proxies, parts.delivery
    ring, kek = parts.ring, parts.kek
    try:
        key = pseudonym_key(config.logging.pseudonym_key, config.jwt.secret, config.server.data_dir)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    except OSError as exc:
        raise ConfigError(f"server.data_dir: cannot keep the pseudonym key there: {exc}") from exc
    set_pseudonym_key(key)
    codes_secret = code_key(
        config.logging.pseudonym_key,
        config.jwt.secret,
        config.jwt.key_encryption_key,
        config.server.data_dir,
    )
    metrics = Metrics()
    tokens = TokenService(
        keys=ring,
        algorithm=ring.algorithm,
        issuer=config.jwt.issuer,
        audience=config.jwt.audience,
        access_type=config.jwt.access_token_type,
        access_ttl=config.jwt.access_ttl,
        refresh_ttl=config.jwt.refresh_ttl,
        clock=clock,
        on_issue=metrics.token_issued,
    )
    opened_here = store is None
    if store is None:
        url = config.storage.url
        try:
            store = await open_store(url)
        except ValueError as exc:
            raise ConfigError(f"storage.url: {redact_text(str(exc), url)}") from exc
        except OSError as exc:  # e.g. the SQLite file's folder cannot be made
            raise StorageUnavailable(str(exc)) from exc
    try:
        await store.setup()
    except BaseException:
        if opened_here:  # a store handed in is its owner's to close
            with contextlib.suppress(Exception):
                await store.close()
        raise
    keys = KeyManager(store, ring, rotation_policy(config), kek=kek, clock=clock)
    try:
        await keys.start()
    except UndecryptableKey as exc:
        if opened_here:
            await store.close()
        raise ConfigError(f"{KEK_SETTING}: {exc}; nothing was changed") from exc
    hasher = Hasher(
        config.passwords.bcrypt_rounds,
        workers=config.limits.hash_workers,
        queue=config.limits.hash_queue,
    )
    await hasher.warm_up()
    metrics.watch_hash_queue(lambda: hasher.queue_depth)
    throttle = Throttle(store, config.limits, clock=clock)
    accounts = Accounts(
        store,
        hasher,
        tokens,
        throttle,
        AccountSettings(
            min_password_length=config.passwords.min_length,
            default_region=config.identifiers.default_region,
            rotate_refresh=config.jwt.rotate_refresh,
            require_verified_email=config.accounts.require_verified_email,
        ),
        clock=clock,
        on_login=lambda method, outcome: metrics.logins.labels(method, outcome).inc(),
    )
    audit = AuditLog(
        store,
        retention=config.audit.retention_days * 86_400,
        enabled=config.audit.enabled,
        clock=clock,
    )
    lifecycle = Lifecycle(
        store,
        accounts,
        Codes(store, config.accounts, codes_secret, clock=clock),
        delivery,
        require_verified_email=config.accounts.require_verified_email,
        clock=clock,
        flush_events=audit.flush,
    )
    admin = Admin(
        store,
        accounts,
        audit,
        AdminKeys(config.admin.keys),
        Cursors(derived_key("admin-cursor")),
        lifecycle,
        per_ip_per_minute=config.admin.per_ip_per_minute,
        ipv6_prefix=config.limits.ipv6_prefix,
        clock=clock,
    )
    return Services(
        config=config,
        store=store,
        hasher=hasher,
        tokens=tokens,
        keys=keys,
        accounts=accounts,
        social=SocialSignIn(
            store,
            accounts,
            metrics=metrics,
            clock=clock,
            require_binding=config.social.require_binding,
        ),
        throttle=throttle,
        metrics=metrics,
        lifecycle=lifecycle,
        audit=audit,
        admin=admin,
        trusted_proxies=trusted_proxies,
        providers=providers,
    )


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


def listen_sockets(host: str, port: int) -> list[socket.socket]:
    try:
        return tornado.netutil.bind_sockets(port, address=host)
    except OSError as exc:  # EADDRINUSE, EACCES, an unknown host name
        reason = (exc.strerror or str(exc)).lower()
        raise CannotListen(f"vhod: cannot listen on {host}:{port}: {reason}") from exc


async def serve(config: Config) -> None:
    # The ports first: a busy one stops the start before the store is opened.
    listeners = [listen_sockets(config.server.host, config.server.port)]
    admin_host = config.admin.host or config.server.host
    try:
        if config.admin.port is not None:  # the admin routes on an address of their own
            listeners.append(listen_sockets(admin_host, config.admin.port))
        services = await build_services(config)
    except BaseException:
        for sock in (sock for group in listeners for sock in group):
            sock.close()
        raise
    servers = [http_server(make_app(services), config)]
    servers[0].add_sockets(listeners[0])
    if config.admin.port is not None:
        servers.append(http_server(make_app(services, listener="admin"), config))
        servers[1].add_sockets(listeners[1])
        log.info("admin API listening on http://%s:%d", admin_host, config.admin.port)
    log.info(start_line(config, services))
    # What start-up made (modules, settings, keys, routes) lives as long as the process: the
    # collector's full passes need not walk it again while requests come and go.
    gc.freeze()
    purging = asyncio.ensure_future(
        purge_expired_periodically(services.store, services.accounts.clock, config.storage.url)
    )
    maintaining_keys = asyncio.ensure_future(services.keys.maintain())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down: no new connections, waiting for %d in flight", services.in_flight)
    purging.cancel()
    maintaining_keys.cancel()
    for server in servers:
        server.stop()
    await services.wait_idle(SHUTDOWN_GRACE_SECONDS)
    for server in servers:
        await server.close_all_connections()
    await services.close()
    log.info("stopped")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--config",
        default=None,
        help="YAML settings file (default: $VHOD_CONFIG or config.yaml)",
    )
    parser.add_argument("--port", type=int, default=None, help="listen on this port")
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print the effective one with secrets masked, exit",
    )
    commands = add_keys_commands(parser)
    commands.metavar = "{keys,admin,users,events}"
    add_admin_commands(commands)
    return parser.parse_args(argv)


def check_config(config: Config) -> None:
    """What --check-config validates beyond the file itself: everything the start checks
    before it opens the store (configured_parts), so that a passing check starts."""
    configured_parts(config, create=False)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = args.config or os.environ.get("VHOD_CONFIG") or "config.yaml"
    overrides = {"server.port": args.port} if args.port is not None else {}
    try:
        config = load_config(path, overrides=overrides, required=path != "config.yaml")
    except ConfigError as exc:
        print(f"vhod: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        try:
            check_config(config)
        except ConfigError as exc:
            print(f"vhod: configuration error: {exc}", file=sys.stderr)
            return 2
        print(yaml.safe_dump(masked(config), sort_keys=False), end="")
        print("\n".join(settings_help(discover_providers())))
        print(f"# configuration OK ({path})", file=sys.stderr)
        return 0
    writer = logs.configure(config.logging.level, config.logging.format)
    try:
        if args.command == "keys":
            return run_keys_command(config, args)
        if args.command in ADMIN_COMMANDS:
            return run_admin_command(config, args, build_services)
        asyncio.run(serve(config))
    except ConfigError as exc:
        writer.close()  # the log lines before it come first
        print(f"vhod: configuration error: {exc}", file=sys.stderr)
        return 2
    except StorageUnavailable as exc:
        writer.close()
        print(storage_unreachable_line(config.storage.url, exc), file=sys.stderr)
        return 1
    except CannotListen as exc:
        writer.close()
        print(exc, file=sys.stderr)
        return 1
    finally:
        writer.close()  # what is still pending is written before main() returns
    return 0


if __name__ == "__main__":
    sys.exit(main())
