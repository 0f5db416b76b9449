"""The SQLite store's schema version (the `meta` table) and its migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from storage.schema import latest, pending
from storage.sqlite_mfa import create_mfa_schema

META = "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"


def recorded_version(db: sqlite3.Connection) -> int:
    """The version the file was last migrated to; 0 when none is recorded (vhod 0.1.0, or
    a new file)."""
    has_meta = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if has_meta is None:
        return 0
    row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    return 0 if row is None else int(row[0])


def to_1(db: sqlite3.Connection) -> None:
    """0.9.0: the version is recorded. 0.1.0's tables are otherwise the same; the columns
    that older development databases lack are added by setup() on every start."""
    db.execute(META)


def to_2(db: sqlite3.Connection) -> None:
    """Second factors: TOTP factors, recovery codes, pending MFA challenges."""
    create_mfa_schema(db)


# Keys: the version each migration makes. The same keys as storage/mongo_schema.py's.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: to_1, 2: to_2}


def migrate(db: sqlite3.Connection, create_tables: Callable[[sqlite3.Connection], None]) -> None:
    """In the caller's write transaction: refuse a newer file (SchemaTooNew) before
    anything is written, create what is missing, run the pending migrations, record the
    version. Another process starting at once waits for this transaction, then finds
    nothing left to do."""
    steps = pending(recorded_version(db), MIGRATIONS)
    create_tables(db)
    for step in steps:
        step(db)
    db.execute(META)
    db.execute(
        "INSERT INTO meta (name, value) VALUES ('schema_version', ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (latest(MIGRATIONS),),
    )
