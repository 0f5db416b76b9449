"""vhod: a self-hosted sign-in service. `python server.py [--config PATH] [--port N]` starts it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

import tornado.httpserver
import tornado.web
import yaml

from core import logs
from core.accounts import Accounts, AccountSettings
from core.clock import Clock, system_clock
from core.config import Config, ConfigError, load_config, masked, redact_url
from core.kek import SETTING as KEK_SETTING
from core.kek import UndecryptableKey
from core.key_manager import KeyManager
from core.key_setup import add_keys_commands, key_ring, rotation_policy, run_keys_command
from core.metrics import Metrics
from core.net import parse_networks
from core.passwords import Hasher
from core.social import SocialSignIn
from core.throttle import Throttle
from core.tokens import TokenService
from handlers import auth, ops, validate, wellknown
from handlers.base import JsonApplication, NotFoundHandler, log_request
from handlers.docs import docs_routes
from handlers.social import provider_routes
from providers import ProviderRegistryError, build_providers, discover_providers
from storage import StorageUnavailable, Store, open_store

log = logging.getLogger("vhod")

SHUTDOWN_GRACE_SECONDS = 30
PURGE_INTERVAL_SECONDS = 600


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
        self.hasher.close()
        await self.store.close()


async def build_services(
    config: Config,
    *,
    store: Store | None = None,
    clock: Clock = system_clock,
    provider_classes: dict[str, Any] | None = None,
) -> Services:
    """Providers, storage (tables and indexes created), the hashing pool, the token signer.

    Everything that can refuse the configuration runs before storage is opened."""
    try:
        providers = build_providers(
            discover_providers() if provider_classes is None else provider_classes,
            config.providers,
            public_url=config.public_url,
            connect_timeout=config.limits.provider_connect_timeout,
            request_timeout=config.limits.provider_timeout,
        )
        trusted_proxies = parse_networks(config.server.trusted_proxies)
    except (ValueError, ProviderRegistryError) as exc:
        raise ConfigError(str(exc)) from exc
    ring, kek = key_ring(config)
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
        on_issue=lambda mode: metrics.tokens_issued.labels(mode).inc(),
    )
    if store is None:
        store = await open_store(config.storage.url)
    await store.setup()
    keys = KeyManager(store, ring, rotation_policy(config), kek=kek, clock=clock)
    try:
        await keys.start()
    except UndecryptableKey as exc:
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
        ),
        clock=clock,
    )
    return Services(
        config=config,
        store=store,
        hasher=hasher,
        tokens=tokens,
        keys=keys,
        accounts=accounts,
        social=SocialSignIn(store, accounts, metrics=metrics, clock=clock),
        throttle=throttle,
        metrics=metrics,
        trusted_proxies=trusted_proxies,
        providers=providers,
    )


def make_app(services: Services) -> tornado.web.Application:
    routes: list[Any] = [
        # Tornado tries the routes in order: the token checks, most of the traffic, first.
        (r"/validate/jwt/access", validate.AccessHandler),
        (r"/validate/jwt/refresh", validate.RefreshHandler),
        (r"/authorization/registration", auth.RegistrationHandler),
        (r"/authorization/login/email", auth.EmailLoginHandler),
        (r"/authorization/login/phone/number", auth.PhoneLoginHandler),
        (r"/authorization/logout", auth.LogoutHandler),
        (r"/.well-known/jwks.json", wellknown.JwksHandler),
        (r"/.well-known/openid-configuration", wellknown.DiscoveryHandler),
        (r"/healthz", ops.HealthHandler),
        (r"/readyz", ops.ReadyHandler),
        *provider_routes(services.providers),
        *docs_routes(),
    ]
    if services.config.metrics.enabled:
        routes.append((r"/metrics", ops.MetricsHandler))
    return JsonApplication(
        routes,
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


async def serve(config: Config) -> None:
    services = await build_services(config)
    app = make_app(services)
    server = tornado.httpserver.HTTPServer(
        app, max_body_size=config.server.max_body_bytes + 1, idle_connection_timeout=60
    )
    server.listen(config.server.port, address=config.server.host)
    log.info(start_line(config, services))
    purging = asyncio.ensure_future(purge_expired_periodically(services))
    maintaining_keys = asyncio.ensure_future(services.keys.maintain())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down: no new connections, waiting for %d in flight", services.in_flight)
    purging.cancel()
    maintaining_keys.cancel()
    server.stop()
    await services.wait_idle(SHUTDOWN_GRACE_SECONDS)
    await server.close_all_connections()
    await services.close()
    log.info("stopped")


async def purge_expired_periodically(
    services: Services, interval: float = PURGE_INTERVAL_SECONDS
) -> None:
    """Delete expired states, counters and refresh tokens now and then.

    MongoDB's TTL indexes do it there too; SQLite has nothing else that would."""
    while True:
        try:
            await services.store.purge_expired(services.accounts.clock())
        except StorageUnavailable as exc:
            log.warning("purging expired rows failed, will retry: %s", exc)
        await asyncio.sleep(interval)


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
    add_keys_commands(parser)
    return parser.parse_args(argv)


def check_config(config: Config) -> None:
    """What --check-config validates beyond the file itself: providers and proxies."""
    try:
        build_providers(discover_providers(), config.providers, public_url=config.public_url)
        parse_networks(config.server.trusted_proxies)
    except (ValueError, ProviderRegistryError) as exc:
        raise ConfigError(str(exc)) from exc


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
        print(f"# configuration OK ({path})", file=sys.stderr)
        return 0
    logs.configure(config.logging.level, config.logging.format)
    try:
        if args.command == "keys":
            return run_keys_command(config, args)
        asyncio.run(serve(config))
    except ConfigError as exc:
        print(f"vhod: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
