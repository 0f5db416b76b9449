"""The SQLite store's second factors: TOTP factors, recovery codes, MFA challenges."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from storage.base import MfaChallenge, SecondFactors, TotpFactor

# Created by migration 2 (storage/sqlite/schema.py).
SCHEMA = """
CREATE TABLE IF NOT EXISTS totp_factors (
    user_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0,
    last_step INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS recovery_codes (
    user_id TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);
CREATE TABLE IF NOT EXISTS mfa_challenges (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    amr TEXT NOT NULL,
    expires_at REAL NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    bound TEXT
);
CREATE INDEX IF NOT EXISTS mfa_challenges_expires_at ON mfa_challenges (expires_at)
"""


def create_mfa_schema(db: sqlite3.Connection) -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def delete_second_factors(db: sqlite3.Connection, user_id: str) -> None:
    """Inside delete_user's transaction."""
    db.execute("DELETE FROM totp_factors WHERE user_id = ?", (user_id,))
    db.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
    db.execute("DELETE FROM mfa_challenges WHERE user_id = ?", (user_id,))


def _totp(row: sqlite3.Row | None) -> TotpFactor | None:
    if row is None:
        return None
    return TotpFactor(
        user_id=row["user_id"],
        secret=row["secret"],
        confirmed=bool(row["confirmed"]),
        last_step=int(row["last_step"]),
        created_at=float(row["created_at"]),
    )


def _challenge(row: sqlite3.Row | None) -> MfaChallenge | None:
    if row is None:
        return None
    return MfaChallenge(
        token_hash=row["token_hash"],
        user_id=row["user_id"],
        amr=list(json.loads(row["amr"])),
        expires_at=float(row["expires_at"]),
        tries=int(row["tries"]),
        bound=row["bound"],
    )


class MfaMixin:
    """Store methods of the second factors; SQLiteStore provides _run and _write."""

    _run: Callable[..., Any]
    _write: Callable[..., Any]

    async def _changed(self, statement: str, *args: Any) -> bool:
        def change(db: sqlite3.Connection) -> bool:
            return db.execute(statement, args).rowcount == 1

        result: bool = await self._write(change)
        return result

    async def put_totp(self, factor: TotpFactor) -> bool:
        return await self._changed(
            "INSERT INTO totp_factors (user_id, secret, confirmed, last_step, created_at)"
            " VALUES (?, ?, 0, 0, ?) ON CONFLICT (user_id) DO UPDATE SET"
            " secret = excluded.secret, last_step = 0, created_at = excluded.created_at"
            " WHERE totp_factors.confirmed = 0",
            factor.user_id,
            factor.secret,
            factor.created_at,
        )

    async def get_totp(self, user_id: str) -> TotpFactor | None:
        def read(db: sqlite3.Connection) -> TotpFactor | None:
            return _totp(
                db.execute("SELECT * FROM totp_factors WHERE user_id = ?", (user_id,)).fetchone()
            )

        result: TotpFactor | None = await self._run(read)
        return result

    async def second_factors(self, user_id: str) -> SecondFactors:
        def read(db: sqlite3.Connection) -> SecondFactors:
            confirmed, passkeys = db.execute(
                "SELECT (SELECT confirmed FROM totp_factors WHERE user_id = ?),"
                " (SELECT COUNT(*) FROM passkeys WHERE user_id = ?)",
                (user_id, user_id),
            ).fetchone()
            return SecondFactors(totp_confirmed=bool(confirmed), passkeys=int(passkeys))

        result: SecondFactors = await self._run(read)
        return result

    async def confirm_totp(self, user_id: str, secret: str, step: int) -> bool:
        return await self._changed(
            "UPDATE totp_factors SET confirmed = 1, last_step = ? WHERE user_id = ?"
            " AND confirmed = 0 AND secret = ? AND last_step < ?",
            step,
            user_id,
            secret,
            step,
        )

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        return await self._changed(
            "UPDATE totp_factors SET last_step = ? WHERE user_id = ? AND confirmed = 1"
            " AND last_step < ?",
            step,
            user_id,
            step,
        )

    async def delete_totp(self, user_id: str) -> bool:
        return await self._changed("DELETE FROM totp_factors WHERE user_id = ?", user_id)

    async def set_recovery_codes(self, user_id: str, code_hashes: Sequence[str]) -> None:
        def replace(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
            db.executemany(
                "INSERT OR IGNORE INTO recovery_codes (user_id, code_hash) VALUES (?, ?)",
                [(user_id, code_hash) for code_hash in code_hashes],
            )

        await self._write(replace)  # one transaction: the old set or the new one

    async def use_recovery_code(self, user_id: str, code_hash: str) -> bool:
        return await self._changed(
            "DELETE FROM recovery_codes WHERE user_id = ? AND code_hash = ?", user_id, code_hash
        )

    async def count_recovery_codes(self, user_id: str) -> int:
        def count(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?", (user_id,)
            ).fetchone()
            return int(row[0])

        result: int = await self._run(count)
        return result

    async def put_mfa_challenge(self, challenge: MfaChallenge) -> None:
        await self._write(
            lambda db: db.execute(
                "INSERT INTO mfa_challenges (token_hash, user_id, amr, expires_at, tries, bound)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    challenge.token_hash,
                    challenge.user_id,
                    json.dumps(challenge.amr),
                    challenge.expires_at,
                    challenge.tries,
                    challenge.bound,
                ),
            )
        )

    async def try_mfa_challenge(
        self, token_hash: str, now: float, max_tries: int
    ) -> MfaChallenge | None:
        def count(db: sqlite3.Connection) -> MfaChallenge | None:
            return _challenge(
                db.execute(
                    "UPDATE mfa_challenges SET tries = tries + 1 WHERE token_hash = ?"
                    " AND expires_at > ? AND tries < ? RETURNING *",
                    (token_hash, now, max_tries),
                ).fetchone()
            )

        result: MfaChallenge | None = await self._write(count)
        return result

    async def consume_mfa_challenge(self, token_hash: str) -> bool:
        return await self._changed("DELETE FROM mfa_challenges WHERE token_hash = ?", token_hash)
