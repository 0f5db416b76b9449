"""The SQLite store's account-lifecycle part: verified flags, sessions, deletion, codes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from storage.base import OneTimeCode, RefreshToken
from storage.sqlite.mfa import delete_second_factors
from storage.sqlite.rows import MARK_FAMILIES_OF_USER, token_from

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS one_time_codes (
    key TEXT PRIMARY KEY,
    code_hash TEXT NOT NULL,
    user_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS one_time_codes_user_id ON one_time_codes (user_id);
CREATE INDEX IF NOT EXISTS one_time_codes_expires_at ON one_time_codes (expires_at)
"""

# Columns a database made before the account lifecycle lacks: (table, column, definition).
ADDED_COLUMNS = (
    ("users", "email_verified", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "phone_verified", "INTEGER NOT NULL DEFAULT 0"),
    ("refresh_tokens", "session_started", "REAL NOT NULL DEFAULT 0"),
    ("refresh_tokens", "client_ip", "TEXT"),
    ("refresh_tokens", "user_agent", "TEXT"),
    ("refresh_tokens", "last_used_at", "REAL NOT NULL DEFAULT 0"),
)

_LIVE_TOKENS_OF_USER = (
    "SELECT *, 0 AS family_revoked FROM refresh_tokens WHERE user_id = ? AND revoked = 0"
    " AND replaced_by IS NULL AND expires_at > ? AND NOT EXISTS (SELECT 1 FROM"
    " revoked_families WHERE revoked_families.family = refresh_tokens.family)"
    " ORDER BY session_started, issued_at"
)
# The one statement per field: the field name never comes from the caller's text.
_ADD_ADDRESS = {
    "email": "UPDATE users SET email = ?, email_verified = 1 WHERE id = ? AND email IS NULL",
    "phone": "UPDATE users SET phone = ?, phone_verified = 1 WHERE id = ? AND phone IS NULL",
}
_MARK_VERIFIED = {
    "email": "UPDATE users SET email_verified = 1 WHERE id = ? AND email = ?",
    "phone": "UPDATE users SET phone_verified = 1 WHERE id = ? AND phone = ?",
}


def create_lifecycle_schema(db: sqlite3.Connection) -> None:
    """The codes table, and the lifecycle columns added to an older database's tables."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    for table, column, definition in ADDED_COLUMNS:
        present = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


def _checkpoint_without_secure_delete(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # best effort: a reader may hold it back
    db.execute("PRAGMA secure_delete = OFF")


def _code(row: sqlite3.Row) -> OneTimeCode:
    return OneTimeCode(
        key=row["key"],
        code_hash=row["code_hash"],
        user_id=row["user_id"],
        expires_at=row["expires_at"],
        attempts=row["attempts"],
        created_at=row["created_at"],
    )


class LifecycleMixin:
    """Store methods of the account lifecycle; SQLiteStore provides _run and _write."""

    _run: Callable[..., Any]
    _write: Callable[..., Any]

    async def set_verified(self, user_id: str, field: str, value: str) -> bool:
        statement = _MARK_VERIFIED[field]

        def mark(db: sqlite3.Connection) -> bool:
            return db.execute(statement, (user_id, value)).rowcount == 1

        result: bool = await self._write(mark)
        return result

    async def add_address(self, user_id: str, field: str, value: str) -> bool:
        statement = _ADD_ADDRESS[field]

        def add(db: sqlite3.Connection) -> bool:
            return db.execute(statement, (value, user_id)).rowcount == 1

        result: bool = await self._write(add)  # a unique index refuses a taken one
        return result

    async def list_live_tokens(self, user_id: str, now: float) -> list[RefreshToken]:
        def rows(db: sqlite3.Connection) -> list[RefreshToken]:
            return [token_from(row) for row in db.execute(_LIVE_TOKENS_OF_USER, (user_id, now))]

        result: list[RefreshToken] = await self._run(rows)
        return result

    async def touch_refresh_token(self, jti: str, now: float) -> None:
        await self._write(
            lambda db: db.execute(
                "UPDATE refresh_tokens SET last_used_at = ? WHERE jti = ?", (now, jti)
            )
        )

    async def delete_user(self, user_id: str, *, until: float, now: float) -> None:
        def delete(db: sqlite3.Connection) -> None:
            db.execute(MARK_FAMILIES_OF_USER, (until, now, user_id))
            db.execute("DELETE FROM refresh_tokens WHERE user_id = ?", (user_id,))
            db.execute("DELETE FROM one_time_codes WHERE user_id = ?", (user_id,))
            db.execute("DELETE FROM passkeys WHERE user_id = ?", (user_id,))
            db.execute("DELETE FROM identities WHERE user_id = ?", (user_id,))
            delete_second_factors(db, user_id)
            db.execute("DELETE FROM users WHERE id = ?", (user_id,))

        # Deleted rows would linger in free pages and in the write-ahead log: zero them
        # (secure_delete) and fold the log into the file, so no copy of the person stays.
        await self._run(lambda db: db.execute("PRAGMA secure_delete = ON"))
        try:
            await self._write(delete)  # one transaction: all of it or nothing
        finally:
            await self._run(_checkpoint_without_secure_delete)

    async def put_code(self, code: OneTimeCode) -> None:
        await self._write(
            lambda db: db.execute(
                "INSERT INTO one_time_codes"
                " (key, code_hash, user_id, expires_at, attempts, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " code_hash = excluded.code_hash, user_id = excluded.user_id,"
                " expires_at = excluded.expires_at, attempts = excluded.attempts,"
                " created_at = excluded.created_at",
                (
                    code.key,
                    code.code_hash,
                    code.user_id,
                    code.expires_at,
                    code.attempts,
                    code.created_at,
                ),
            )
        )

    async def try_code(self, key: str, now: float, max_attempts: int) -> OneTimeCode | None:
        def count(db: sqlite3.Connection) -> OneTimeCode | None:
            row = db.execute(
                "UPDATE one_time_codes SET attempts = attempts + 1 WHERE key = ?"
                " AND expires_at > ? AND attempts < ? RETURNING *",
                (key, now, max_attempts),
            ).fetchone()
            return None if row is None else _code(row)

        result: OneTimeCode | None = await self._write(count)
        return result

    async def consume_code(self, key: str, code_hash: str) -> bool:
        def consume(db: sqlite3.Connection) -> bool:
            deleted = db.execute(
                "DELETE FROM one_time_codes WHERE key = ? AND code_hash = ?", (key, code_hash)
            )
            return deleted.rowcount == 1

        result: bool = await self._write(consume)
        return result

    async def delete_code(self, key: str) -> None:
        await self._write(lambda db: db.execute("DELETE FROM one_time_codes WHERE key = ?", (key,)))
