"""The SQLite store's OAuth states: single-use, bound to one provider, short-lived."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from storage.base import OAuthState

_LIVE_STATE_BY_STATE = (
    "SELECT * FROM oauth_states WHERE state = ? AND provider = ? AND expires_at > ?"
)
_LIVE_STATE_BY_CODE_HASH = (
    "SELECT * FROM oauth_states WHERE code_hash = ? AND provider = ? AND expires_at > ? LIMIT 1"
)


def add_binding_column(db: sqlite3.Connection) -> None:
    """A database made before browser binding has no binding_hash column (and an unused
    `extra` one, which its default keeps out of the way)."""
    columns = {row["name"] for row in db.execute("PRAGMA table_info(oauth_states)")}
    if "binding_hash" not in columns:
        db.execute("ALTER TABLE oauth_states ADD COLUMN binding_hash TEXT")


def _state(row: sqlite3.Row) -> OAuthState:
    return OAuthState(
        state=row["state"],
        provider=row["provider"],
        expires_at=row["expires_at"],
        code_verifier=row["code_verifier"],
        code_hash=row["code_hash"],
        binding_hash=row["binding_hash"],
        link_user=row["link_user"],
    )


class OAuthStatesMixin:
    """Store methods of the OAuth states; SQLiteStore provides _run and _write."""

    _run: Callable[..., Any]
    _write: Callable[..., Any]

    async def put_state(self, state: OAuthState) -> None:
        await self._write(
            lambda db: db.execute(
                "INSERT INTO oauth_states"
                " (state, provider, expires_at, code_verifier, code_hash, binding_hash,"
                " link_user) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    state.state,
                    state.provider,
                    state.expires_at,
                    state.code_verifier,
                    state.code_hash,
                    state.binding_hash,
                    state.link_user,
                ),
            )
        )

    async def attach_code(self, state: str, provider: str, code_hash: str, now: float) -> bool:
        def attach(db: sqlite3.Connection) -> bool:
            return (
                db.execute(
                    "UPDATE oauth_states SET code_hash = ? WHERE state = ? AND provider = ?"
                    " AND expires_at > ? AND code_hash IS NULL",
                    (code_hash, state, provider, now),
                ).rowcount
                == 1
            )

        attached: bool = await self._write(attach)
        return attached

    async def find_state(self, provider: str, state: str, now: float) -> OAuthState | None:
        return await self._find_state(_LIVE_STATE_BY_STATE, state, provider, now)

    async def find_state_by_code(
        self, provider: str, code_hash: str, now: float
    ) -> OAuthState | None:
        return await self._find_state(_LIVE_STATE_BY_CODE_HASH, code_hash, provider, now)

    async def _find_state(self, query: str, *args: Any) -> OAuthState | None:
        def find(db: sqlite3.Connection) -> OAuthState | None:
            row = db.execute(query, args).fetchone()
            return None if row is None else _state(row)

        found: OAuthState | None = await self._run(find)
        return found

    async def consume_state(self, provider: str, state: str) -> bool:
        def consume(db: sqlite3.Connection) -> bool:
            deleted = db.execute(
                "DELETE FROM oauth_states WHERE state = ? AND provider = ?", (state, provider)
            )
            return deleted.rowcount == 1

        consumed: bool = await self._write(consume)
        return consumed
