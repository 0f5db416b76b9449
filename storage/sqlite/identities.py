"""The SQLite store's account linking: identities added to and removed from a user, each in
one write transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from storage.base import DuplicateError, Identity


class IdentitiesMixin:
    """Store methods of linking; SQLiteStore provides _write."""

    _write: Callable[..., Any]

    async def link_identity(self, user_id: str, identity: Identity) -> bool:
        def link(db: sqlite3.Connection) -> bool:
            if db.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
                return False
            # The primary key (provider, subject) and identities_user_provider refuse a
            # taken identity or a second one at the provider (DuplicateError). Both refuse
            # this user's own identity again, and SQLite names either: the taken identity
            # is the answer, read in the same write transaction.
            taken = db.execute(
                "SELECT 1 FROM identities WHERE provider = ? AND subject = ?",
                (identity.provider, identity.subject),
            ).fetchone()
            if taken is not None:
                raise DuplicateError("identity")
            db.execute(
                "INSERT INTO identities (provider, subject, user_id, linked_at, display)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    identity.provider,
                    identity.subject,
                    user_id,
                    identity.linked_at,
                    identity.display,
                ),
            )
            return True

        linked: bool = await self._write(link)
        return linked

    async def unlink_identity(self, user_id: str, provider: str, *, keep_a_way_in: bool) -> str:
        def unlink(db: sqlite3.Connection) -> str:
            # One write transaction: no other unlink runs between the count and the delete.
            row = db.execute(
                "SELECT users.password_hash IS NOT NULL AS has_password,"
                " (SELECT count(*) FROM identities WHERE user_id = users.id) AS identities,"
                " EXISTS (SELECT 1 FROM identities WHERE user_id = users.id AND provider = ?)"
                " AS linked FROM users WHERE id = ?",
                (provider, user_id),
            ).fetchone()
            if row is None or not row["linked"]:
                return "not_linked"
            if keep_a_way_in and not row["has_password"] and row["identities"] < 2:
                return "last"
            db.execute(
                "DELETE FROM identities WHERE user_id = ? AND provider = ?", (user_id, provider)
            )
            return "unlinked"

        outcome: str = await self._write(unlink)
        return outcome
