"""`vhod migrate`, `vhod backup FILE` and `vhod restore FILE DIR`: the store as a whole."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from core.cli.backup import DATABASE, BackupError, Made, backup, restore
from core.config import Config
from core.infra.data_files import sqlite_database
from core.infra.redact import redact_url
from storage import open_store
from storage.sqlite.url import PREFIX as SQLITE_PREFIX

COMMANDS = ("migrate", "backup", "restore")


def add_store_commands(commands: Any) -> None:
    """The store commands, on the subparsers of server.py's parser."""
    commands.add_parser(
        "migrate", help="bring the store's schema up to this version's (a start does it too)"
    )
    made = commands.add_parser(
        "backup", help="the SQLite store and its key files, consistent while vhod runs, as a tar"
    )
    made.add_argument("file", type=Path, help="the archive to write (replaced if it exists)")
    restored = commands.add_parser(
        "restore", help="lay a backup out in a new folder, ready to start vhod on"
    )
    restored.add_argument("file", type=Path, help="the archive `vhod backup` wrote")
    restored.add_argument("dir", type=Path, help="a new or empty folder")


def run_store_command(config: Config, args: argparse.Namespace) -> int:
    """Run one store command; the exit status. StorageUnavailable and SchemaTooNew go up to
    server.main, which prints them as one line like a start's."""
    try:
        if args.command == "migrate":
            return asyncio.run(migrate(config))
        if args.command == "backup":
            made = backup(config, args.file)
            print(f"backed up {DATABASE} (schema {made.schema_version}) {_keys(made)}")
            print(f"to {args.file} (mode 0600): keep it as secret as the data folder")
        else:
            made = restore(args.file, args.dir)
            folder = args.dir.absolute()
            print(f"restored {DATABASE} (schema {made.schema_version}) {_keys(made)}")
            print(f"into {folder}; start vhod there with")
            print(f"  VHOD_SERVER__DATA_DIR={folder}")
            print(f"  VHOD_STORAGE__URL={SQLITE_PREFIX}{folder / DATABASE}")
        for name in made.configured:
            print(
                f"vhod: {name} is set in the configuration, not kept in the backup: "
                "the restored store needs the same value",
                file=sys.stderr,
            )
        return 0
    except BackupError as exc:
        print(f"vhod: {exc}", file=sys.stderr)
        return 1


def _keys(made: Made) -> str:
    return f"with {', '.join(made.key_files)}" if made.key_files else "with no key file"


async def migrate(config: Config) -> int:
    database = sqlite_database(config)
    if database is not None and not database.is_file():
        print(f"vhod: {database}: there is no database to migrate", file=sys.stderr)
        return 1
    store = await open_store(config.storage.url)
    try:
        before = await store.schema_version()
        await store.setup()  # SchemaTooNew, before any change, for a store ahead of this code
        after = await store.schema_version()
    finally:
        await store.close()
    where = redact_url(config.storage.url)
    if before == after:
        print(f"{where}: schema version {after}, nothing to migrate")
    else:
        print(f"{where}: schema version {before} migrated to {after}")
    return 0
