"""vhod: a self-hosted sign-in service. `python server.py [--config PATH] [--port N]` starts it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

import yaml

from core.cli.admin_cli import COMMANDS as ADMIN_COMMANDS
from core.cli.admin_cli import add_admin_commands, run_admin_command
from core.cli.password_cli import add_passwords_commands, run_passwords_command
from core.cli.store_cli import COMMANDS as STORE_COMMANDS
from core.cli.store_cli import add_store_commands, run_store_command
from core.config import Config, ConfigError, load_config, masked
from core.domain.accounts import Accounts, AccountSettings
from core.domain.addresses import Addresses
from core.domain.admin import Admin, AdminKeys, Cursors
from core.domain.audit import AuditLog
from core.domain.code_signin import code_sign_in_from
from core.domain.codes import Codes
from core.domain.events import set_pseudonym_key
from core.domain.identities import Identities
from core.domain.lifecycle import Lifecycle
from core.domain.mfa_account import seal_roots, second_factors_from
from core.domain.passkeys import passkeys_from
from core.domain.passwords import Hasher
from core.domain.services import Services
from core.domain.social import SocialSignIn
from core.domain.throttle import Throttle
from core.infra import logs
from core.infra.clock import Clock, system_clock
from core.infra.data_files import refuse_lost_key_files_at_start
from core.infra.delivery import Delivery
from core.infra.maintenance import storage_unreachable_line
from core.infra.metrics import Metrics
from core.infra.net import parse_networks
from core.infra.redact import redact_text
from core.infra.version import version
from core.infra.workers import Worker, hash_workers, worker_count
from core.signing.kek import SETTING as KEK_SETTING
from core.signing.kek import KeyEncryptionKey, UndecryptableKey
from core.signing.key_manager import KeyManager
from core.signing.key_setup import (
    add_keys_commands,
    key_ring,
    refresh_keys,
    rotation_policy,
    run_keys_command,
)
from core.signing.keys import KeyRing
from core.signing.shared_keys import secrets_folder, shared_keys
from core.signing.tokens import TokenService
from handlers.app import CannotListen
from handlers.app import make_app as make_app  # the tests build apps from here
from handlers.app import start_line as start_line
from handlers.serving import serve, serve_processes
from providers import ProviderRegistryError, build_providers, discover_providers
from providers.registry import secret_keys, settings_help
from storage import StorageUnavailable, Store, is_shared, open_store, url_problem
from storage.schema import SchemaTooNew
from storage.timing import time_calls

log = logging.getLogger("vhod")


@dataclass
class ConfiguredParts:
    providers: dict[str, Any]
    trusted_proxies: tuple[Any, ...]
    metrics: Metrics
    delivery: Delivery
    ring: KeyRing
    kek: KeyEncryptionKey | None


def configured_parts(
    config: Config,
    provider_classes: dict[str, Any] | None = None,
    *,
    create: bool = True,
    metrics_dir: str | None = None,
) -> ConfiguredParts:
    """What the start builds from the configuration alone, each of which can refuse it
    (ConfigError). --check-config calls this too, with `create` false: the same checks,
    and no generated key file written. `metrics_dir`: a worker's (core.infra.workers.Worker)."""
    try:
        providers = build_providers(
            discover_providers() if provider_classes is None else provider_classes,
            config.providers,
            public_url=config.public_url,
            connect_timeout=config.limits.provider_connect_timeout,
            request_timeout=config.limits.provider_timeout,
        )
        trusted_proxies = parse_networks(config.server.trusted_proxies)
        metrics = Metrics(metrics_dir)
        delivery = Delivery(config.email, config.sms, on_delivery=metrics.delivered)
        metrics.watch_deliveries(delivery.channels)
        if problem := url_problem(config.storage.url):
            raise ConfigError(f"storage.url: {redact_text(problem, config.storage.url)}")
    except (ValueError, ProviderRegistryError) as exc:
        raise ConfigError(config.problem(str(exc))) from exc
    refuse_lost_key_files_at_start(config)  # before key_ring or anything generates one
    ring, kek = key_ring(config, create=create)
    return ConfiguredParts(providers, trusted_proxies, metrics, delivery, ring, kek)


async def build_services(
    config: Config,
    *,
    store: Store | None = None,
    clock: Clock = system_clock,
    provider_classes: dict[str, Any] | None = None,
    worker: Worker | None = None,
) -> Services:
    """Providers, storage (tables and indexes created), the hashing pool, the token signer.

    Everything that can refuse the configuration runs before storage is opened. `worker`:
    this process is one of several (server.processes), whose metrics are added up."""
    metrics_dir = None if worker is None else worker.metrics_dir
    parts = configured_parts(config, provider_classes, metrics_dir=metrics_dir)
    providers, trusted_proxies, delivery = parts.providers, parts.trusted_proxies, parts.delivery
    metrics, ring, kek = parts.metrics, parts.ring, parts.kek
    try:
        shared = shared_keys(config)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    except OSError as exc:
        if not is_shared(config.storage.url):  # beside the database: its folder
            raise StorageUnavailable(str(exc)) from exc
        raise ConfigError(
            f"server.data_dir: cannot keep the pseudonym key in {secrets_folder(config)}: {exc}"
        ) from exc
    if shared.note is not None:
        log.warning("%s", shared.note)
    set_pseudonym_key(shared.pseudonyms)
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
        refresh_keys=refresh_keys(config, ring, kek),
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
    time_calls(store, metrics.storage.observe)
    keys = KeyManager(store, ring, rotation_policy(config), kek=kek, clock=clock)
    metrics.watch_signing_key(keys.schedule)
    try:
        await keys.start()
    except UndecryptableKey as exc:
        if opened_here:
            await store.close()
        raise ConfigError(f"{KEK_SETTING}: {exc}; nothing was changed") from exc
    hasher = Hasher(
        config.passwords.algorithm,
        rounds=config.passwords.bcrypt_rounds,
        argon2=config.passwords.argon2,
        workers=hash_workers(config.limits.hash_workers, 1 if worker is None else worker.count),
        queue=config.limits.hash_queue,
    )
    await hasher.warm_up()
    metrics.watch_hash_queue(lambda: hasher.queue_depth)
    if worker is not None:
        hasher.on_change = metrics.hash_queue_changed
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
    try:  # the sessions ended lately, before the first check (then server.py follows them)
        await accounts.revoked.poll()
    except StorageUnavailable as exc:
        log.warning("reading revoked sessions failed, will retry: %s", exc)
    audit = AuditLog(
        store,
        retention=config.audit.retention_days * 86_400,
        enabled=config.audit.enabled,
        clock=clock,
        ipv6_prefix=config.limits.ipv6_prefix,
    )
    lifecycle = Lifecycle(
        store,
        accounts,
        Codes(store, config.accounts, shared.codes, clock=clock),
        delivery,
        require_verified_email=config.accounts.require_verified_email,
        clock=clock,
        flush_events=audit.flush,
    )
    code_sign_in = code_sign_in_from(config, store, accounts, lifecycle.codes, delivery, metrics)
    addresses = Addresses(store, accounts, lifecycle.codes, delivery, code_sign_in)
    passkeys = passkeys_from(config, store, accounts, delivery, clock)
    second_factors, mfa_account = second_factors_from(
        config.accounts, store, accounts, seal_roots(kek, ring), shared.codes, passkeys, clock
    )
    mfa_account.passkeys_reset_hook = passkeys.remove_all
    admin = Admin(
        store,
        accounts,
        audit,
        AdminKeys(config.admin.keys),
        Cursors(shared.cursors),
        lifecycle,
        per_ip_per_minute=config.admin.per_ip_per_minute,
        ipv6_prefix=config.limits.ipv6_prefix,
        clock=clock,
        second_factors=mfa_account,
    )
    social = SocialSignIn(
        store,
        accounts,
        metrics=metrics,
        clock=clock,
        require_binding=config.social.require_binding,
    )
    # Wires itself into social (link flows) and accounts (provider registrations).
    identities = Identities(
        store,
        accounts,
        social,
        lifecycle,
        delivery,
        providers,
        link_verified_email=config.social.link_verified_email,
        clock=clock,
        passkey_count=passkeys.count,
    )
    return Services(
        config=config,
        store=store,
        hasher=hasher,
        tokens=tokens,
        keys=keys,
        accounts=accounts,
        social=social,
        throttle=throttle,
        metrics=metrics,
        lifecycle=lifecycle,
        code_sign_in=code_sign_in,
        addresses=addresses,
        audit=audit,
        admin=admin,
        identities=identities,
        second_factors=second_factors,
        mfa_account=mfa_account,
        passkeys=passkeys,
        trusted_proxies=trusted_proxies,
        providers=providers,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", action="version", version=f"vhod {version()}")
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
    commands.metavar = "{keys,passwords,admin,users,events,migrate,backup,restore}"
    add_passwords_commands(commands)
    add_admin_commands(commands)
    add_store_commands(commands)
    return parser.parse_args(argv)


def check_config(config: Config) -> None:
    """What --check-config validates beyond the file itself: everything the start checks
    before it opens the store (configured_parts), so that a passing check starts."""
    configured_parts(config, create=False)


def config_error_lines(exc: ConfigError) -> str:
    """One line per problem, each saying what it is."""
    return "\n".join(f"vhod: configuration error: {line}" for line in str(exc).splitlines())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = args.config or os.environ.get("VHOD_CONFIG") or "config.yaml"
    overrides = {"server.port": args.port} if args.port is not None else {}
    try:
        config = load_config(path, overrides=overrides, required=path != "config.yaml")
    except ConfigError as exc:
        print(config_error_lines(exc), file=sys.stderr)
        return 2
    if args.check_config:
        try:
            check_config(config)
        except ConfigError as exc:
            print(config_error_lines(exc), file=sys.stderr)
            return 2
        classes = discover_providers()
        print(yaml.safe_dump(masked(config, secret_keys(classes)), sort_keys=False), end="")
        print("\n".join(settings_help(classes)))
        print(f"# configuration OK ({path})", file=sys.stderr)
        return 0
    writer = logs.configure(config.logging.level, config.logging.format)
    try:
        if args.command == "keys":
            return run_keys_command(config, args)
        if args.command == "passwords":
            return run_passwords_command(config, args)
        if args.command in ADMIN_COMMANDS:
            return run_admin_command(config, args, build_services)
        if args.command in STORE_COMMANDS:
            return run_store_command(config, args)
        count = worker_count(config.server.processes)
        if count > 1:
            return serve_processes(config, count, build_services)
        asyncio.run(serve(config, build_services))
    except ConfigError as exc:
        writer.close()  # the log lines before it come first
        print(config_error_lines(exc), file=sys.stderr)
        return 2
    except StorageUnavailable as exc:
        writer.close()
        print(storage_unreachable_line(config.storage.url, exc), file=sys.stderr)
        return 1
    except SchemaTooNew as exc:  # nothing was written: this code must not touch that store
        writer.close()
        print(f"vhod: {exc} (this is vhod {version()})", file=sys.stderr)
        return 2
    except CannotListen as exc:
        writer.close()
        print(exc, file=sys.stderr)
        return 1
    finally:
        writer.close()  # what is still pending is written before main() returns
    return 0


if __name__ == "__main__":
    sys.exit(main())
