"""The SQLite store's user and refresh-token rows, and its refresh-token statements."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from storage.base import Identity, RefreshToken, User

USER_BY_ID = "SELECT * FROM users WHERE id = ?"
TOKEN_BY_JTI = (
    "SELECT *, EXISTS (SELECT 1 FROM revoked_families"
    " WHERE revoked_families.family = refresh_tokens.family) AS family_revoked"
    " FROM refresh_tokens WHERE jti = ?"
)
# A later revocation keeps the record at least as long as an earlier one did.
# revoked_at is when it was revoked last: what the instances poll (revoked_families_since).
MARK_FAMILY = (
    "INSERT INTO revoked_families (family, until, revoked_at) VALUES (?, ?, ?)"
    " ON CONFLICT (family) DO UPDATE SET until = max(until, excluded.until),"
    " revoked_at = excluded.revoked_at"
)
MARK_FAMILIES_OF_USER = (
    "INSERT INTO revoked_families (family, until, revoked_at)"
    " SELECT DISTINCT family, ?, ? FROM refresh_tokens WHERE user_id = ?"
    " ON CONFLICT (family) DO UPDATE SET until = max(until, excluded.until),"
    " revoked_at = excluded.revoked_at"
)


def add_revoked_at_column(db: sqlite3.Connection) -> None:
    """A database made before revocations were polled has no revoked_at: its revocations
    count as long past (0), which nothing polls for any more."""
    columns = {row["name"] for row in db.execute("PRAGMA table_info(revoked_families)")}
    if "revoked_at" not in columns:
        db.execute("ALTER TABLE revoked_families ADD COLUMN revoked_at REAL NOT NULL DEFAULT 0")
    db.execute(
        "CREATE INDEX IF NOT EXISTS revoked_families_revoked_at ON revoked_families (revoked_at)"
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
        email_verified=bool(row["email_verified"]),
        phone_verified=bool(row["phone_verified"]),
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
        session_started=row["session_started"],
        client_ip=row["client_ip"],
        user_agent=row["user_agent"],
        last_used_at=row["last_used_at"],
    )


INSERT_USER = (
    "INSERT INTO users (id, email, phone, password_hash, profile, created_at, email_verified,"
    " phone_verified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def user_row(user: User) -> tuple[object, ...]:
    return (
        user.id,
        user.email,
        user.phone,
        user.password_hash,
        json.dumps(user.profile),
        user.created_at,
        int(user.email_verified),
        int(user.phone_verified),
    )


def insert_token(db: sqlite3.Connection, token: RefreshToken) -> None:
    db.execute(
        "INSERT INTO refresh_tokens (jti, user_id, family, expires_at, issued_at, revoked,"
        " replaced_by, session_started, client_ip, user_agent, last_used_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            token.jti,
            token.user_id,
            token.family,
            token.expires_at,
            token.issued_at,
            int(bool(token.revoked)),
            token.replaced_by,
            token.session_started,
            token.client_ip,
            token.user_agent,
            token.last_used_at,
        ),
    )


def without_identities(users: Sequence[User]) -> Sequence[User]:
    """bulk_insert_users' input check: it writes users, not their provider identities."""
    if any(user.identities for user in users):
        raise ValueError("bulk_insert_users takes users without provider identities")
    return users
