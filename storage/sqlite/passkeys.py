"""The SQLite store's passkeys (as storage/mongo/passkeys.py is the MongoDB store's)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from storage.base import Passkey

# Made by migration 2 (storage/sqlite/schema.py). The credential id is the key: every
# sign-in finds its passkey by it.
PASSKEYS_TABLE = """
CREATE TABLE IF NOT EXISTS passkeys (
    credential_id TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    sign_count INTEGER NOT NULL DEFAULT 0,
    name TEXT NOT NULL,
    transports TEXT NOT NULL DEFAULT '[]',
    backup_eligible INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    last_used_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS passkeys_user_id ON passkeys (user_id, created_at)
"""


def create_passkeys_table(db: sqlite3.Connection) -> None:
    for statement in PASSKEYS_TABLE.split(";"):
        if statement.strip():
            db.execute(statement)


def _passkey(row: sqlite3.Row) -> Passkey:
    return Passkey(
        id=row["id"],
        user_id=row["user_id"],
        credential_id=row["credential_id"],
        public_key=row["public_key"],
        sign_count=int(row["sign_count"]),
        name=row["name"],
        created_at=float(row["created_at"]),
        transports=tuple(json.loads(row["transports"])),
        backup_eligible=bool(row["backup_eligible"]),
        last_used_at=float(row["last_used_at"]),
    )


class PasskeysMixin:
    """Store methods of the passkeys; SQLiteStore provides the worker."""

    _run: Callable[..., Any]
    _write: Callable[..., Any]

    async def add_passkey(self, passkey: Passkey) -> None:
        await self._write(
            lambda db: db.execute(
                "INSERT INTO passkeys (credential_id, id, user_id, public_key, sign_count, name,"
                " transports, backup_eligible, created_at, last_used_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    passkey.credential_id,
                    passkey.id,
                    passkey.user_id,
                    passkey.public_key,
                    passkey.sign_count,
                    passkey.name,
                    json.dumps(list(passkey.transports)),
                    int(passkey.backup_eligible),
                    passkey.created_at,
                    passkey.last_used_at,
                ),
            )
        )

    async def list_passkeys(self, user_id: str) -> list[Passkey]:
        def rows(db: sqlite3.Connection) -> list[Passkey]:
            return [
                _passkey(row)
                for row in db.execute(
                    "SELECT * FROM passkeys WHERE user_id = ? ORDER BY created_at, id", (user_id,)
                )
            ]

        found: list[Passkey] = await self._run(rows)
        return found

    async def find_passkey(self, credential_id: str) -> Passkey | None:
        def row(db: sqlite3.Connection) -> Passkey | None:
            found = db.execute(
                "SELECT * FROM passkeys WHERE credential_id = ?", (credential_id,)
            ).fetchone()
            return None if found is None else _passkey(found)

        passkey: Passkey | None = await self._run(row)
        return passkey

    async def rename_passkey(self, user_id: str, passkey_id: str, name: str) -> bool:
        return await self._changed(
            "UPDATE passkeys SET name = ? WHERE id = ? AND user_id = ?", name, passkey_id, user_id
        )

    async def delete_passkey(self, user_id: str, passkey_id: str) -> bool:
        return await self._changed(
            "DELETE FROM passkeys WHERE id = ? AND user_id = ?", passkey_id, user_id
        )

    async def use_passkey(
        self, credential_id: str, old_count: int, new_count: int, now: float
    ) -> bool:
        return await self._changed(
            "UPDATE passkeys SET sign_count = ?, last_used_at = ?"
            " WHERE credential_id = ? AND sign_count = ?",
            new_count,
            now,
            credential_id,
            old_count,
        )

    async def _changed(self, statement: str, *args: Any) -> bool:
        count: int = await self._write(lambda db: db.execute(statement, args).rowcount)
        return count == 1
