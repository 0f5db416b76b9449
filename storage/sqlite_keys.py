"""The SQLite store's token-signing keys (as storage/mongo_keys.py is the MongoDB store's)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from storage.base import SigningKey


class KeysMixin:
    """Store methods of the signing keys; SQLiteStore provides the worker."""

    _run: Callable[..., Any]
    _write: Callable[..., Any]

    # --- token-signing keys ---

    async def add_signing_key(self, key: SigningKey) -> None:
        await self._write(
            lambda db: db.execute(
                "INSERT INTO signing_keys (generation, kid, algorithm, public_key, private_key,"
                " activates_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key.generation,
                    key.kid,
                    key.algorithm,
                    key.public_key,
                    key.private_key,
                    key.activates_at,
                    key.created_at,
                ),
            )
        )

    async def list_signing_keys(self) -> list[SigningKey]:
        def rows(db: sqlite3.Connection) -> list[SigningKey]:
            return [
                SigningKey(
                    kid=row["kid"],
                    generation=row["generation"],
                    algorithm=row["algorithm"],
                    public_key=row["public_key"],
                    private_key=row["private_key"],
                    activates_at=row["activates_at"],
                    created_at=row["created_at"],
                )
                for row in db.execute("SELECT * FROM signing_keys ORDER BY generation")
            ]

        keys: list[SigningKey] = await self._run(rows)
        return keys
