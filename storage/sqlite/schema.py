"""The SQLite store's schema version (the `meta` table) and its migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from storage.schema import latest, pending
from storage.sqlite.mfa import create_mfa_schema
from storage.sqlite.passkeys import create_passkeys_table

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


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def to_2(db: sqlite3.Connection) -> None:
    """Account linking: when and as whom each identity was linked, at most one identity per
    provider and user (the store refuses a second), and the user a link flow's state is for.
    Idempotent: it checks each column first."""
    if "linked_at" not in _columns(db, "identities"):
        db.execute("ALTER TABLE identities ADD COLUMN linked_at REAL NOT NULL DEFAULT 0")
    if "display" not in _columns(db, "identities"):
        db.execute("ALTER TABLE identities ADD COLUMN display TEXT")
    db.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS identities_user_provider"
        " ON identities (user_id, provider)"
    )
    if "link_user" not in _columns(db, "oauth_states"):
        db.execute("ALTER TABLE oauth_states ADD COLUMN link_user TEXT")


def to_3(db: sqlite3.Connection) -> None:
    """Passkeys (WebAuthn credentials): the `passkeys` table."""
    create_passkeys_table(db)


def to_4(db: sqlite3.Connection) -> None:
    """Second factors: TOTP factors, recovery codes, pending MFA challenges."""
    create_mfa_schema(db)


# Keys: the version each migration makes. The same keys as storage/mongo/schema.py's.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: to_1, 2: to_2, 3: to_3, 4: to_4}


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
