"""The SQLite database as a file: an online backup, an integrity check, and what it holds.

These open their own connections, beside a server that may be running: the backup reads one
consistent snapshot (SQLite's backup API copies every page inside one read transaction, so
writes that land meanwhile are not in it, and none are half in it)."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from storage.sqlite.schema import recorded_version

BUSY_TIMEOUT_SECONDS = 5.0


class DatabaseFileError(Exception):
    """The file is no usable vhod database; the message says why."""


def _read_only(path: Path) -> sqlite3.Connection:
    # mode=ro: a missing file is an error, not a new empty database.
    return sqlite3.connect(
        f"file:{quote(str(path))}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS
    )


def backup_database(source: Path, target: Path) -> int:
    """Copy the live database `source` to the new file `target`; its schema version."""
    try:
        with (
            contextlib.closing(_read_only(source)) as db,
            contextlib.closing(sqlite3.connect(target)) as copy,
        ):
            db.backup(copy)  # pages=-1: the whole file in one step, one snapshot
            # One self-contained file (no -wal beside it); vhod turns WAL on again at start.
            copy.execute("PRAGMA journal_mode = DELETE")
            return check_database_connection(copy, target)
    except sqlite3.Error as exc:
        raise DatabaseFileError(f"{source}: cannot back it up: {exc}") from exc


def check_database(path: Path) -> int:
    """The schema version of the database at `path`, after SQLite's integrity check."""
    try:
        with contextlib.closing(_read_only(path)) as db:
            return check_database_connection(db, path)
    except sqlite3.Error as exc:
        raise DatabaseFileError(f"{path}: not a usable SQLite database: {exc}") from exc


def check_database_connection(db: sqlite3.Connection, path: Path) -> int:
    result = db.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        raise DatabaseFileError(f"{path}: SQLite's integrity check fails: {result}")
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "users" not in tables:
        raise DatabaseFileError(f"{path}: holds no vhod tables")
    return recorded_version(db)


@dataclass(frozen=True)
class Holdings:
    """What an existing database file holds that a generated key file goes with."""

    users: bool
    signing_keys: bool


def holdings(path: Path) -> Holdings | None:
    """None when there is no database at `path` (or an empty file: a new install)."""
    if not path.is_file() or path.stat().st_size == 0:
        return None

    def any_row(db: sqlite3.Connection, table: str) -> bool:
        try:  # the names are the constants below
            return db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None  # noqa: S608
        except sqlite3.OperationalError:  # no such table: made before it, or not vhod's
            return False

    try:
        with contextlib.closing(_read_only(path)) as db:
            return Holdings(any_row(db, "users"), signing_keys=any_row(db, "signing_keys"))
    except sqlite3.DatabaseError as exc:  # not a database at all
        raise DatabaseFileError(f"{path}: not a usable SQLite database: {exc}") from exc
