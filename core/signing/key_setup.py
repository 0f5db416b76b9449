"""From the configuration to the key ring, and the `python server.py keys …` commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.config import Config, ConfigError
from core.infra.data_files import kek_folder, refuse_lost_key_files
from core.signing.kek import KEK_FILE, KeyEncryptionKey, UndecryptableKey, load_kek
from core.signing.kek import SETTING as KEK_SETTING
from core.signing.key_manager import KeyInfo, KeyManager
from core.signing.keys import (
    ASYMMETRIC_ALGORITHMS,
    HMAC_ALGORITHMS,
    Key,
    KeyRing,
    RotationPolicy,
    refresh_key,
)
from core.signing.tokens import LEEWAY_SECONDS, SECRET_FILE, choose_algorithm, load_or_create_secret
from storage import StorageUnavailable, is_shared, open_store


def rotation_policy(config: Config) -> RotationPolicy:
    return RotationPolicy(
        interval=config.jwt.rotation_interval,
        lead=config.jwt.rotation_lead,
        # A retired key verifies until the last token it signed has expired.
        retention=max(config.jwt.access_ttl, config.jwt.refresh_ttl) + LEEWAY_SECONDS,
    )


def key_ring(
    config: Config, *, private_keys: bool = False, create: bool = True
) -> tuple[KeyRing, KeyEncryptionKey | None]:
    """The key ring (with the HMAC secret, when there is one) and the key-encryption key,
    which is needed to sign asymmetrically or, with `private_keys`, to add a key.

    ConfigError, before any key file is generated, when the database depends on one that
    is gone (core.infra.data_files). With `create` false no generated secret is written
    (--check-config runs the same checks as the start without leaving files behind)."""
    data_dir = config.server.data_dir
    algorithm = choose_algorithm(config.jwt.algorithm, config.jwt.secret, data_dir)
    needs_kek = algorithm in ASYMMETRIC_ALGORITHMS or private_keys
    refuse_lost_key_files(config, kek_needed=needs_kek, pseudonym_needed=False)
    secret: bytes | None = None
    try:
        if config.jwt.secret is not None:
            secret = config.jwt.secret.encode()
        elif algorithm in HMAC_ALGORITHMS or (Path(data_dir) / SECRET_FILE).exists():
            # After a switch to a key pair the generated secret still verifies its tokens.
            secret = load_or_create_secret(data_dir, create=create)
        kek = None
        if needs_kek:
            folder = generated_kek_folder(config)
            try:
                kek = load_kek(
                    config.jwt.key_encryption_key,
                    folder,
                    shared_store=is_shared(config.storage.url),
                    create=create,
                )
            except OSError as exc:
                raise ConfigError(
                    f"{KEK_SETTING}: cannot keep a generated one in {folder}: {exc.strerror}"
                ) from exc
    except ValueError as exc:  # SecretFileError, or a missing or short KEK
        raise ConfigError(str(exc)) from exc
    hmac_algorithm = algorithm if algorithm in HMAC_ALGORITHMS else "HS256"
    ring = KeyRing(algorithm=algorithm, hmac_secret=secret, hmac_algorithm=hmac_algorithm)
    return ring, kek


def refresh_keys(config: Config, ring: KeyRing, kek: KeyEncryptionKey | None) -> list[Key]:
    """The unpublished keys of refresh tokens: the first signs, every one verifies.

    Signing asymmetrically, the key comes from the KEK, which every instance on one store
    shares; on HS256 from the HMAC secret, so instances that share `jwt.secret` agree with
    no KEK. The other one, when this instance has it, verifies too: while instances switch
    between HS256 and a key pair one by one, each takes the others' refresh tokens."""
    roots: list[bytes] = []
    if kek is None and ring.algorithm in HMAC_ALGORITHMS:
        kek = _existing_kek(config)
    if kek is not None:
        roots.append(kek.refresh_token_root())
    if ring.hmac is not None:
        roots.insert(
            len(roots) if ring.algorithm in ASYMMETRIC_ALGORITHMS else 0, ring.hmac.signing
        )
    return [refresh_key(root) for root in roots]


def _existing_kek(config: Config) -> KeyEncryptionKey | None:
    """The KEK an HS256 instance has (configured, or generated earlier), never a new one."""
    folder = generated_kek_folder(config)
    if config.jwt.key_encryption_key is None and not (Path(folder) / KEK_FILE).exists():
        return None
    try:
        return load_kek(config.jwt.key_encryption_key, folder, shared_store=False)
    except (ValueError, OSError):
        return None  # unreadable: this instance signs and verifies with the secret's key


def generated_kek_folder(config: Config) -> str:
    return str(kek_folder(config))


def add_keys_commands(parser: argparse.ArgumentParser) -> Any:
    """Adds the `keys` command; returns the subparsers, for the other commands."""
    commands = parser.add_subparsers(dest="command", metavar="keys")
    keys = commands.add_parser("keys", help="list, rotate or import the token-signing keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    actions.add_parser("list", help="each key's id, algorithm, state and dates")
    rotate = actions.add_parser(
        "rotate", help="publish a new key now; it signs after jwt.rotation_lead seconds"
    )
    rotate.add_argument("--algorithm", choices=ASYMMETRIC_ALGORITHMS, default=None)
    imported = actions.add_parser(
        "import", help="add a PEM private key (P-256, Ed25519, RSA) as the next key"
    )
    imported.add_argument("path", help="the PEM file")
    imported.add_argument(
        "--password-env", default=None, help="environment variable holding the PEM's password"
    )
    return commands


def run_keys_command(config: Config, args: argparse.Namespace) -> int:
    """Run one `keys` command against the configured store; the exit status."""
    pem = None
    if args.keys_command == "import":
        try:
            pem = Path(args.path).read_bytes()
        except OSError as exc:
            print(f"vhod: {args.path}: {exc.strerror}", file=sys.stderr)
            return 2
    return asyncio.run(_run_keys_command(config, args, pem))


async def _run_keys_command(config: Config, args: argparse.Namespace, pem: bytes | None) -> int:
    adding = args.keys_command != "list"
    try:
        ring, kek = key_ring(config, private_keys=adding)
    except ConfigError as exc:
        print(f"vhod: configuration error: {exc}", file=sys.stderr)
        return 2
    store = await open_store(config.storage.url)
    try:
        await store.setup()
        manager = KeyManager(store, ring, rotation_policy(config), kek=kek)
        # Adding a key under another KEK than the stored ones would split the key set.
        await manager.refresh(strict=adding)
        if args.keys_command == "rotate":
            algorithm = args.algorithm or (
                ring.algorithm if ring.algorithm in ASYMMETRIC_ALGORITHMS else "ES256"
            )
            added = await manager.rotate_if_due(force=True, algorithm=algorithm)
            print("a new key was added" if added else "a new key is already waiting to sign")
        elif pem is not None:
            password = os.environ.get(args.password_env) if args.password_env else None
            record = await manager.import_pem(pem, password.encode() if password else None)
            print(f"imported key {record.kid} ({record.algorithm})")
        print(format_keys(await manager.describe()))
        return 0
    except UndecryptableKey as exc:
        print(f"vhod: configuration error: {KEK_SETTING}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"vhod: {exc}", file=sys.stderr)
        return 2
    except StorageUnavailable as exc:
        print(f"vhod: the store is unavailable, nothing was changed: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()


def format_keys(keys: list[KeyInfo]) -> str:
    def when(seconds: float) -> str:
        if seconds == float("inf"):
            return "-"
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    rows: list[Any] = [("KID", "ALGORITHM", "STATE", "SIGNS FROM", "PUBLISHED UNTIL", "CREATED")]
    rows += [
        (
            k.kid,
            k.algorithm,
            k.state,
            when(k.activates_at),
            when(k.published_until),
            when(k.created_at),
        )
        for k in keys
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            str(value).ljust(width) for value, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    )
