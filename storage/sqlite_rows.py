"""The SQLite store's user and refresh-token rows, and its refresh-token statements."""

from __future__ import annotations

import json
import sqlite3

from storage.base import Identity, RefreshToken, User

TOKEN_BY_JTI = (
    "SELECT *, EXISTS (SELECT 1 FROM revoked_families"
    " WHERE revoked_families.family = refresh_tokens.family) AS family_revoked"
    " FROM refresh_tokens WHERE jti = ?"
)
# A later revocation keeps the record at least as long as an earlier one did.
MARK_FAMILY = (
    "INSERT INTO revoked_families (family, until) VALUES (?, ?)"
    " ON CONFLICT (family) DO UPDATE SET until = max(until, excluded.until)"
)
MARK_FAMILIES_OF_USER = (
    "INSERT INTO revoked_families (family, until)"
    " SELECT DISTINCT family, ? FROM refresh_tokens WHERE user_id = ?"
    " ON CONFLICT (family) DO UPDATE SET until = max(until, excluded.until)"
)


def user_from(row: sqlite3.Row, identities: list[Identity]) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        phone=row["phone"],
        password_hash=row["password_hash"],
        identities=identities,
        profile=json.loads(row["profile"]),
        created_at=row["created_at"],
        disabled=bool(row["disabled"]),
    )


def token_from(row: sqlite3.Row) -> RefreshToken:
    return RefreshToken(
        jti=row["jti"],
        user_id=row["user_id"],
        family=row["family"],
        expires_at=row["expires_at"],
        issued_at=row["issued_at"],
        revoked=bool(row["revoked"] or row["family_revoked"]),
        replaced_by=row["replaced_by"],
    )
