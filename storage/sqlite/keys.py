"""The SQLite store's token-signing keys and exchanged provider tokens (as
storage/mongo/keys.py is the MongoDB store's)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
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

    # --- provider tokens from our own exchange ---

    async def remember_exchanged_token(
        self,
        provider: str,
        token_hash: str,
        expires_at: float,
        claims: Mapping[str, Any] | None = None,
    ) -> None:
        text = None if claims is None else json.dumps(dict(claims), separators=(",", ":"))

        def remember(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO exchanged_tokens (provider, token_hash, expires_at, claims)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (provider, token_hash) DO NOTHING",
                (provider, token_hash, expires_at, text),
            )

        await self._write(remember)

    async def exchanged_token_claims(
        self, provider: str, token_hash: str, now: float
    ) -> dict[str, Any] | None:
        def claims(db: sqlite3.Connection) -> tuple[str | None] | None:
            row = db.execute(
                "SELECT claims FROM exchanged_tokens WHERE provider = ? AND token_hash = ?"
                " AND expires_at > ?",
                (provider, token_hash, now),
            ).fetchone()
            return None if row is None else (row["claims"],)

        found = await self._run(claims)
        if found is None:
            return None
        value = json.loads(found[0]) if found[0] else {}
        return value if isinstance(value, dict) else {}

    @staticmethod
    def add_claims_column(db: sqlite3.Connection) -> None:
        """A database made before providers without user info (Telegram) has no claims column."""
        columns = {row["name"] for row in db.execute("PRAGMA table_info(exchanged_tokens)")}
        if "claims" not in columns:
            db.execute("ALTER TABLE exchanged_tokens ADD COLUMN claims TEXT")
