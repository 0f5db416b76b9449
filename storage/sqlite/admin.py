"""The SQLite store's operator side: blocking users, listing them, and the audit log."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from storage.base import AuditEvent, EventQuery, User

T = TypeVar("T")

ADMIN_SCHEMA = """
CREATE INDEX IF NOT EXISTS users_created_at ON users (created_at, id);
CREATE TABLE IF NOT EXISTS audit_events (
    id TEXT PRIMARY KEY,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    user_id TEXT,
    identifier TEXT,
    ip TEXT NOT NULL,
    request_id TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    expires_at REAL NOT NULL,
    fold TEXT,
    repeats INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events (time, id);
CREATE INDEX IF NOT EXISTS audit_events_user ON audit_events (user_id, time, id);
CREATE INDEX IF NOT EXISTS audit_events_expires_at ON audit_events (expires_at);
"""


def create_admin_schema(db: sqlite3.Connection) -> None:
    """The audit table and indexes; a database made before blocking gets its column."""
    columns = {row["name"] for row in db.execute("PRAGMA table_info(users)")}
    if "disabled" not in columns:
        db.execute("ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0")
    for statement in ADMIN_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    # A log made before folding gets its columns; its rows stay one event each.
    columns = {row["name"] for row in db.execute("PRAGMA table_info(audit_events)")}
    if "fold" not in columns:
        db.execute("ALTER TABLE audit_events ADD COLUMN fold TEXT")
        db.execute("ALTER TABLE audit_events ADD COLUMN repeats INTEGER NOT NULL DEFAULT 1")
    # NULLs never collide in a unique index: unfolded events are each kept.
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS audit_events_fold ON audit_events (fold)")


def purge_events(db: sqlite3.Connection, now: float) -> None:
    db.execute("DELETE FROM audit_events WHERE expires_at <= ?", (now,))


def _event_from(row: sqlite3.Row) -> AuditEvent:
    return AuditEvent(
        id=row["id"],
        time=row["time"],
        type=row["type"],
        user_id=row["user_id"],
        identifier=row["identifier"],
        ip=row["ip"],
        request_id=row["request_id"],
        details=json.loads(row["details"]),
        expires_at=row["expires_at"],
        fold=row["fold"],
        repeats=row["repeats"],
    )


def _event_filter(query: EventQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if query.user_id is not None:
        clauses.append("user_id = ?")
        args.append(query.user_id)
    if query.types:
        clauses.append(f"type IN ({', '.join('?' * len(query.types))})")
        args.extend(query.types)
    if query.since is not None:
        clauses.append("time >= ?")
        args.append(query.since)
    if query.until is not None:
        clauses.append("time < ?")
        args.append(query.until)
    if query.after is not None:
        beyond = "<" if query.newest_first else ">"
        clauses.append(f"(time {beyond} ? OR (time = ? AND id {beyond} ?))")
        time, event_id = query.after
        args.extend((time, time, event_id))
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return where, args


class SQLiteAdmin:
    """Mixed into SQLiteStore, whose `_run`, `_write` and `_load_user` these use."""

    _run: Callable[..., Any]
    _write: Callable[..., Any]
    _load_user: Callable[..., User | None]

    async def set_user_disabled(self, user_id: str, disabled: bool) -> bool:
        def update(db: sqlite3.Connection) -> bool:
            statement = "UPDATE users SET disabled = ? WHERE id = ?"
            return db.execute(statement, (int(disabled), user_id)).rowcount == 1

        return bool(await self._write(update))

    async def list_users(self, limit: int, after: tuple[float, str] | None = None) -> list[User]:
        def rows(db: sqlite3.Connection) -> list[User]:
            if after is None:
                found = db.execute(
                    "SELECT * FROM users ORDER BY created_at, id LIMIT ?", (limit,)
                ).fetchall()
            else:
                created_at, user_id = after
                found = db.execute(
                    "SELECT * FROM users WHERE created_at > ? OR (created_at = ? AND id > ?)"
                    " ORDER BY created_at, id LIMIT ?",
                    (created_at, created_at, user_id, limit),
                ).fetchall()
            return [user for row in found if (user := self._load_user(db, row)) is not None]

        return list(await self._run(rows))

    async def add_events(self, events: Sequence[AuditEvent]) -> None:
        rows = [
            (
                e.id,
                e.time,
                e.type,
                e.user_id,
                e.identifier,
                e.ip,
                e.request_id,
                json.dumps(e.details, sort_keys=True),
                e.expires_at,
                e.fold,
                e.repeats,
            )
            for e in events
        ]

        def insert(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO audit_events (id, time, type, user_id, identifier, ip, request_id,"
                " details, expires_at, fold, repeats) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                # The same event again (its id) counts nothing; another of its fold counts.
                " ON CONFLICT (id) DO NOTHING"
                " ON CONFLICT (fold) DO UPDATE SET repeats = repeats + excluded.repeats",
                rows,
            )

        if rows:
            await self._write(insert)

    async def purge_events_before(self, time: float) -> None:
        await self._write(lambda db: db.execute("DELETE FROM audit_events WHERE time < ?", (time,)))

    async def forget_user_in_events(self, user_id: str, pseudonym: str) -> None:
        await self._write(
            lambda db: db.execute(
                "UPDATE audit_events SET user_id = NULL, identifier = ? WHERE user_id = ?",
                (pseudonym, user_id),
            )
        )

    async def list_events(self, query: EventQuery) -> list[AuditEvent]:
        where, args = _event_filter(query)
        order = "DESC" if query.newest_first else "ASC"
        # Only fixed clauses and placeholders are joined into the statement.
        statement = f"SELECT * FROM audit_events{where} ORDER BY time {order}, id {order} LIMIT ?"  # noqa: S608

        def rows(db: sqlite3.Connection) -> list[AuditEvent]:
            return [_event_from(row) for row in db.execute(statement, (*args, query.limit))]

        return list(await self._run(rows))
