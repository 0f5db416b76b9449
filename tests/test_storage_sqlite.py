"""SQLite-only storage behaviour: durability, sharing one file, indexes, faults, open_store."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import (
    DuplicateError,
    Identity,
    OAuthState,
    RefreshToken,
    SQLiteStore,
    StorageUnavailable,
    User,
    open_store,
)
from tests.processes import Server, request
from tests.storage_fixtures import refresh_token

NOW = time.time()


async def opened(path: Path, **kwargs: int) -> SQLiteStore:
    store = SQLiteStore(str(path), **kwargs)
    await store.setup()
    return store


async def test_a_user_survives_closing_the_store(tmp_path: Path) -> None:
    path = tmp_path / "vhod.db"
    first = await opened(path)
    user = User(id="u1", email="ann@example.com", identities=[Identity("vk", "1")])
    await first.create_user(user)
    await first.close()

    second = await opened(path)
    try:
        assert await second.find_user_by_email("ann@example.com") == user
        assert await second.find_user_by_identity("vk", "1") == user
    finally:
        await second.close()


async def test_two_stores_on_one_file_share_everything(tmp_path: Path) -> None:
    path = tmp_path / "vhod.db"
    one, two = await opened(path), await opened(path)
    try:
        await one.create_user(User(id="u1", email="ann@example.com"))
        found = await two.find_user_by_email("ann@example.com")
        assert found is not None and found.id == "u1"

        with pytest.raises(DuplicateError):
            await two.create_user(User(id="u2", email="ann@example.com"))

        token = RefreshToken(jti="t1", user_id="u1", family="t1", expires_at=NOW + 60)
        await two.add_refresh_token(token)
        successor = RefreshToken(jti="t2", user_id="u1", family="t1", expires_at=NOW + 60)
        assert await one.rotate_refresh_token("t1", successor, NOW) is True
        assert await two.rotate_refresh_token("t1", successor, NOW) is False

        await one.hit_counter("k", 60, NOW)
        assert await two.hit_counter("k", 60, NOW) == (2, NOW + 60)
    finally:
        await one.close()
        await two.close()


async def test_connection_settings(tmp_path: Path) -> None:
    store = await opened(tmp_path / "vhod.db")
    try:
        pragmas = await store._run(
            lambda db: [
                db.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            ]
        )
    finally:
        await store.close()

    assert pragmas == ["wal", 2, 1, 5000]  # synchronous 2 is FULL


async def test_every_lookup_uses_an_index(tmp_path: Path) -> None:
    store = await opened(tmp_path / "vhod.db")
    statements: list[str] = []
    await store._run(lambda db: db.set_trace_callback(statements.append))
    try:
        await store.create_user(User(id="u1", email="a@x.test", identities=[Identity("vk", "1")]))
        await store.get_user("u1")
        await store.find_user_by_email("a@x.test")
        await store.find_user_by_phone("+79160000000")
        await store.find_user_by_identity("vk", "1")
        await store.set_password_hash("u1", "hash")
        await store.add_refresh_token(
            RefreshToken(jti="t1", user_id="u1", family="t1", expires_at=NOW + 60)
        )
        await refresh_token(store, "t1")
        await store.rotate_refresh_token(
            "t1", RefreshToken(jti="t2", user_id="u1", family="t1", expires_at=NOW + 60), NOW
        )
        await store.revoke_refresh_token("t1")
        await store.revoke_family("t1", until=NOW + 60, now=NOW)
        await store.revoke_user_tokens("u1", until=NOW + 60, now=NOW)
        await store.put_state(OAuthState(state="s1", provider="vk", expires_at=NOW + 60))
        await store.attach_code("s1", "vk", "h", NOW)
        await store.find_state_by_code("vk", "h", NOW)
        await store.find_state("vk", "s1", NOW)
        await store.consume_state("vk", "s1")
        await store.hit_counter("k", 60, NOW)
        await store.reset_counter("k")
        await store.purge_expired(NOW)
        await store._run(lambda db: db.set_trace_callback(None))

        lookups = [s for s in statements if s.split()[0].upper() in ("SELECT", "UPDATE", "DELETE")]
        plans = await store._run(
            lambda db: {
                s: [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + s)] for s in lookups
            }
        )
    finally:
        await store.close()

    assert len(lookups) >= 20
    scans = {s: plan for s, plan in plans.items() if any(d.startswith("SCAN") for d in plan)}
    assert scans == {}


async def test_locked_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "vhod.db"
    store = await opened(path, busy_timeout_ms=100)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageUnavailable):
            await store.create_user(User(id="u1", email="ann@example.com"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    # Nothing was written, and the store works once the lock is gone.
    assert await store.get_user("u1") is None
    await store.create_user(User(id="u1", email="ann@example.com"))
    await store.close()


async def test_unopenable_file_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "missing-folder" / "vhod.db"))
    try:
        with pytest.raises(StorageUnavailable):
            await store.ping()
    finally:
        await store.close()


async def test_setup_is_idempotent(tmp_path: Path) -> None:
    store = await opened(tmp_path / "vhod.db")
    await store.create_user(User(id="u1", email="ann@example.com"))
    await store.setup()
    assert await store.get_user("u1") is not None
    await store.close()


async def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    store = await opened(tmp_path / "vhod.db")
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError):
        await store.ping()


async def test_open_store_sqlite_creates_the_folder_but_not_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "vhod.db"

    store = await open_store(f"sqlite:///{path}")

    try:
        assert isinstance(store, SQLiteStore) and store.kind == "sqlite"
        assert path.parent.is_dir()
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await store.get_user("u1")
        await store.setup()
        assert await store.get_user("u1") is None
    finally:
        await store.close()


async def test_open_store_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    store = await open_store("sqlite:///data/vhod.db")
    try:
        await store.setup()
    finally:
        await store.close()

    assert (tmp_path / "data" / "vhod.db").is_file()


async def test_open_store_in_memory() -> None:
    store = await open_store("sqlite:///:memory:")
    try:
        await store.setup()
        await store.create_user(User(id="u1", email="ann@example.com"))
        assert await store.get_user("u1") is not None
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgres://vhod:secret@db/vhod", "'postgres'"),
        ("data/vhod.db", "''"),
        ("sqlite:/x.db", "sqlite:///"),
        ("sqlite:///", "sqlite:///"),
    ],
)
async def test_open_store_rejects_unknown_urls(url: str, named: str) -> None:
    with pytest.raises(ValueError, match=named) as caught:
        await open_store(url)
    assert "secret" not in str(caught.value)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask, so that only the store's own modes protect the files."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


async def test_database_files_are_private_whatever_the_umask(tmp_path: Path, open_umask) -> None:
    """D19: the folder is 0700 and vhod.db, -wal and -shm are 0600: they hold password hashes."""
    path = tmp_path / "data" / "deeper" / "vhod.db"

    store = await open_store(f"sqlite:///{path}")
    try:
        await store.setup()
        await store.create_user(User(id="u1", email="ann@example.com", password_hash="$2b$"))
        modes = {
            name: stat.S_IMODE(os.stat(tmp_path / name).st_mode)
            for name in ("data", "data/deeper", "data/deeper/vhod.db")
        }
        for suffix in ("-wal", "-shm"):
            modes[suffix] = stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode)
    finally:
        await store.close()

    assert modes == {
        "data": 0o700,
        "data/deeper": 0o700,
        "data/deeper/vhod.db": 0o600,
        "-wal": 0o600,
        "-shm": 0o600,
    }


async def test_an_existing_readable_database_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "vhod.db"
    os.chmod(tmp_path, 0o755)
    for name in ("vhod.db", "vhod.db-wal"):
        (tmp_path / name).touch(mode=0o644)
        os.chmod(tmp_path / name, 0o644)

    store = await opened(path)
    try:
        modes = [stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode) for suffix in ("", "-wal")]
    finally:
        await store.close()

    assert modes == [0o600, 0o600]
    assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o755  # the operator's folder: as it was


def test_a_server_started_with_the_defaults_keeps_its_data_private(tmp_path: Path) -> None:
    """D19 end to end: the data folder the default configuration uses is 0700, and the
    database files and the generated secret in it are 0600."""
    server = Server(tmp_path, VHOD_PASSWORDS__ALGORITHM="bcrypt", VHOD_PASSWORDS__BCRYPT_ROUNDS="4")
    try:
        server.wait_started()
        status, _ = request(
            server.url("/authorization/registration"),
            {"phone_number": "+79161234567", "email": "a@example.ru", "hash_password": "12345678"},
        )
        assert status == 200
        data = tmp_path / "data"
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in [data, *data.iterdir()]}
    finally:
        server.stop()

    assert modes.pop("data") == 0o700
    # A new install signs with ES256: the generated key-encryption key is the secret here.
    assert {"vhod.db", "vhod.db-wal", "vhod.db-shm", "jwt_key_encryption_key"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes


async def test_an_audit_log_made_before_folding_gets_its_columns(tmp_path: Path) -> None:
    from storage.base import AuditEvent, EventQuery

    path = tmp_path / "vhod.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE audit_events (id TEXT PRIMARY KEY, time REAL NOT NULL, type TEXT NOT"
            " NULL, user_id TEXT, identifier TEXT, ip TEXT NOT NULL, request_id TEXT NOT NULL,"
            " details TEXT NOT NULL DEFAULT '{}', expires_at REAL NOT NULL)"
        )
        db.execute(
            "INSERT INTO audit_events VALUES ('old', ?, 'logout', 'u1', NULL, '-', '-', '{}', ?)",
            (NOW, NOW + 60),
        )
    store = await opened(path)
    try:
        folded = AuditEvent(id="new", time=NOW, type="logout", fold="f", expires_at=NOW + 60)
        await store.add_events([folded])
        await store.add_events([AuditEvent(id="again", time=NOW, type="logout", fold="f")])
        kept = {e.id: e.repeats for e in await store.list_events(EventQuery(limit=10))}
        assert kept == {"old": 1, "new": 2}
    finally:
        await store.close()


async def test_exchanged_tokens_made_before_id_token_claims_get_their_column(
    tmp_path: Path,
) -> None:
    path = tmp_path / "vhod.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE exchanged_tokens (provider TEXT NOT NULL, token_hash TEXT NOT NULL,"
            " expires_at REAL NOT NULL, PRIMARY KEY (provider, token_hash))"
        )
        db.execute("INSERT INTO exchanged_tokens VALUES ('vk', ?, ?)", ("a" * 64, NOW + 60))
    store = await opened(path)
    try:
        assert await store.exchanged_token_claims("vk", "a" * 64, NOW) == {}
        await store.remember_exchanged_token("telegram", "b" * 64, NOW + 60, claims={"sub": "1"})
        assert await store.exchanged_token_claims("telegram", "b" * 64, NOW) == {"sub": "1"}
    finally:
        await store.close()
