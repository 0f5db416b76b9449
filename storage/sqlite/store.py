"""Embedded SQLite store: one connection, used from one dedicated worker thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from storage.base import (
    Identity,
    RefreshToken,
    User,
)
from storage.sqlite.admin import SQLiteAdmin, create_admin_schema, purge_events
from storage.sqlite.identities import IdentitiesMixin
from storage.sqlite.keys import KeysMixin
from storage.sqlite.lifecycle import LifecycleMixin, create_lifecycle_schema
from storage.sqlite.mfa import MfaMixin
from storage.sqlite.passkeys import PasskeysMixin
from storage.sqlite.rows import (
    INSERT_USER,
    MARK_FAMILIES_OF_USER,
    MARK_FAMILY,
    TOKEN_BY_JTI,
    USER_BY_ID,
    add_revoked_at_column,
    insert_token,
    token_from,
    user_from,
    user_row,
    without_identities,
)
from storage.sqlite.schema import migrate, recorded_version
from storage.sqlite.states import OAuthStatesMixin, add_binding_column
from storage.sqlite.worker import Worker, make_private, transaction

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT UNIQUE,
    phone TEXT UNIQUE,
    password_hash TEXT,
    profile TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS identities (
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX IF NOT EXISTS identities_user_id ON identities (user_id);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    jti TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    family TEXT NOT NULL,
    expires_at REAL NOT NULL,
    issued_at REAL NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0,
    replaced_by TEXT
);
CREATE INDEX IF NOT EXISTS refresh_tokens_user_id ON refresh_tokens (user_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE TABLE IF NOT EXISTS oauth_states (
    state TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    expires_at REAL NOT NULL,
    code_verifier TEXT,
    code_hash TEXT,
    binding_hash TEXT
);
CREATE INDEX IF NOT EXISTS oauth_states_code_hash ON oauth_states (code_hash)
    WHERE code_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS oauth_states_expires_at ON oauth_states (expires_at);
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY,
    hits INTEGER NOT NULL,
    ends REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS counters_ends ON counters (ends);
CREATE TABLE IF NOT EXISTS signing_keys (
    generation INTEGER PRIMARY KEY,
    kid TEXT NOT NULL UNIQUE,
    algorithm TEXT NOT NULL,
    public_key TEXT NOT NULL,
    private_key TEXT NOT NULL,
    activates_at REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_families (
    family TEXT PRIMARY KEY,
    until REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_families_until ON revoked_families (until);
CREATE TABLE IF NOT EXISTS exchanged_tokens (
    provider TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    expires_at REAL NOT NULL,
    claims TEXT,
    PRIMARY KEY (provider, token_hash)
);
CREATE INDEX IF NOT EXISTS exchanged_tokens_expires_at ON exchanged_tokens (expires_at);
"""


class SQLiteStore(
    OAuthStatesMixin,
    LifecycleMixin,
    MfaMixin,
    SQLiteAdmin,
    KeysMixin,
    IdentitiesMixin,
    PasskeysMixin,
):
    """The Store protocol on one SQLite file, safe to share with other processes (WAL)."""

    kind = "sqlite"

    def __init__(self, path: str, *, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._closed = False
        self._worker = Worker(self._connect)

    # --- plumbing: the functions handed to `_run` run on the worker thread ---

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError("the store is closed")
        return await self._worker.run(fn, *args)

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            make_private(self.path)
        db = sqlite3.connect(self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            db.close()
            raise
        return db

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(transaction, fn, *args)

    async def _update(self, statement: str, *args: Any) -> None:
        await self._write(lambda db: db.execute(statement, args))

    # --- lifecycle ---

    async def setup(self) -> None:
        def create(db: sqlite3.Connection) -> None:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            add_binding_column(db)
            KeysMixin.add_claims_column(db)
            add_revoked_at_column(db)
            create_lifecycle_schema(db)
            create_admin_schema(db)

        await self._write(migrate, create)

    async def schema_version(self) -> int:
        return await self._run(recorded_version)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._worker.stop()

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    # --- users ---

    async def create_user(self, user: User, first_token: RefreshToken | None = None) -> None:
        def insert(db: sqlite3.Connection) -> None:
            # A unique-constraint failure names its column, which names the field.
            db.execute(INSERT_USER, user_row(user))
            db.executemany(
                "INSERT INTO identities (provider, subject, user_id, linked_at, display)"
                " VALUES (?, ?, ?, ?, ?)",
                [(i.provider, i.subject, user.id, i.linked_at, i.display) for i in user.identities],
            )
            if first_token is not None:
                self._insert_token(db, first_token)

        await self._write(insert)

    @staticmethod
    def _load_user(db: sqlite3.Connection, row: sqlite3.Row | None) -> User | None:
        if row is None:
            return None
        identities = [
            Identity(provider, subject, linked_at, display)
            for provider, subject, linked_at, display in db.execute(
                "SELECT provider, subject, linked_at, display FROM identities"
                " WHERE user_id = ? ORDER BY rowid",
                (row["id"],),
            )
        ]
        return user_from(row, identities)

    async def _find_user(self, query: str, *args: Any) -> User | None:
        return await self._run(lambda db: self._load_user(db, db.execute(query, args).fetchone()))

    async def get_user(self, user_id: str) -> User | None:
        return await self._find_user(USER_BY_ID, user_id)

    async def find_user_by_email(self, email: str) -> User | None:
        return await self._find_user("SELECT * FROM users WHERE email = ?", email)

    async def find_user_by_phone(self, phone: str) -> User | None:
        return await self._find_user("SELECT * FROM users WHERE phone = ?", phone)

    async def find_user_by_identity(self, provider: str, subject: str) -> User | None:
        return await self._find_user(
            "SELECT users.* FROM identities JOIN users ON users.id = identities.user_id"
            " WHERE identities.provider = ? AND identities.subject = ?",
            provider,
            subject,
        )

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._update(
            "UPDATE users SET password_hash = ? WHERE id = ?", password_hash, user_id
        )

    async def swap_password_hash(self, user_id: str, old: str, new: str) -> bool:
        def swap(db: sqlite3.Connection) -> bool:
            return bool(
                db.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                    (new, user_id, old),
                ).rowcount
                == 1
            )

        return await self._write(swap)

    # --- refresh tokens ---

    _insert_token = staticmethod(insert_token)  # an attribute, so a test can make it fail

    async def add_refresh_token(self, token: RefreshToken) -> None:
        await self._write(self._insert_token, token)

    async def add_password_session(self, token: RefreshToken, password_hash: str) -> bool:
        def add(db: sqlite3.Connection) -> bool:
            # One write transaction: no password change can come between check and insert.
            unchanged = db.execute(
                "SELECT 1 FROM users WHERE id = ? AND password_hash = ?",
                (token.user_id, password_hash),
            ).fetchone()
            if unchanged is None:
                return False
            self._insert_token(db, token)
            return True

        return await self._write(add)

    async def get_refresh_token_and_user(self, jti: str) -> tuple[RefreshToken, User | None] | None:
        def get(db: sqlite3.Connection) -> tuple[RefreshToken, User | None] | None:
            row = db.execute(TOKEN_BY_JTI, (jti,)).fetchone()
            if row is None:
                return None
            token = token_from(row)
            return token, self._load_user(db, db.execute(USER_BY_ID, (token.user_id,)).fetchone())

        return await self._run(get)

    async def rotate_refresh_token(self, jti: str, successor: RefreshToken, now: float) -> bool:
        def rotate(db: sqlite3.Connection) -> bool:
            retired = db.execute(
                "UPDATE refresh_tokens SET replaced_by = ? WHERE jti = ? AND revoked = 0"
                " AND replaced_by IS NULL AND expires_at > ?",
                (successor.jti, jti, now),
            ).rowcount
            if retired != 1:
                return False
            self._insert_token(db, successor)
            return True

        return await self._write(rotate)

    async def revoke_refresh_token(self, jti: str) -> None:
        await self._update("UPDATE refresh_tokens SET revoked = 1 WHERE jti = ?", jti)

    async def revoke_family(self, family: str, *, until: float, now: float) -> None:
        def revoke(db: sqlite3.Connection) -> None:
            db.execute(MARK_FAMILY, (family, until, now))
            db.execute("UPDATE refresh_tokens SET revoked = 1 WHERE family = ?", (family,))

        await self._write(revoke)

    async def revoke_user_tokens(self, user_id: str, *, until: float, now: float) -> None:
        def revoke(db: sqlite3.Connection) -> None:
            db.execute(MARK_FAMILIES_OF_USER, (until, now, user_id))
            db.execute("UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ?", (user_id,))

        await self._write(revoke)

    async def revoked_families_since(self, since: float) -> list[tuple[str, float]]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT family, revoked_at FROM revoked_families WHERE revoked_at >= ?",
                (since,),
            ).fetchall()
        )
        return [(row["family"], row["revoked_at"]) for row in rows]

    # --- counters ---

    async def hit_counter(self, key: str, window: float, now: float) -> tuple[int, float]:
        [counted] = await self.hit_counters([(key, window)], now)
        return counted

    async def hit_counters(
        self, hits: Sequence[tuple[str, float]], now: float
    ) -> list[tuple[int, float]]:
        def hit(db: sqlite3.Connection) -> list[tuple[int, float]]:
            counted = []
            for key, window in hits:
                row = db.execute("SELECT hits, ends FROM counters WHERE key = ?", (key,)).fetchone()
                if row is not None and row["ends"] > now:
                    count, ends = row["hits"] + 1, row["ends"]
                else:
                    count, ends = 1, now + window
                db.execute(
                    "INSERT INTO counters (key, hits, ends) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET hits = excluded.hits, ends = excluded.ends",
                    (key, count, ends),
                )
                counted.append((count, ends))
            return counted

        return await self._write(hit)  # one transaction: all counted, or none

    async def reset_counter(self, key: str) -> None:
        await self._update("DELETE FROM counters WHERE key = ?", key)

    async def purge_expired(self, now: float) -> None:
        def purge(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM oauth_states WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM counters WHERE ends <= ?", (now,))
            db.execute("DELETE FROM refresh_tokens WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM revoked_families WHERE until <= ?", (now,))
            db.execute("DELETE FROM exchanged_tokens WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM one_time_codes WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM mfa_challenges WHERE expires_at <= ?", (now,))
            purge_events(db, now)

        await self._write(purge)

    # --- bulk loading ---

    async def bulk_insert_users(self, users: Sequence[User]) -> None:
        rows = [user_row(user) for user in without_identities(users)]

        def insert(db: sqlite3.Connection) -> None:
            db.executemany(INSERT_USER, rows)

        if rows:
            await self._write(insert)  # one transaction: a collision stores none of them
