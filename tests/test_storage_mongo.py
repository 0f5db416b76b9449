"""MongoDB-only storage behaviour: indexes, TTL dates, lost and returning servers, URLs."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import (
    AutoReconnect,
    ExecutionTimeout,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
    WriteConcernError,
)

from storage import (
    DuplicateError,
    Identity,
    MongoStore,
    PartialWrite,
    RefreshToken,
    StorageUnavailable,
    User,
    open_store,
)
from tests.processes import free_port
from tests.storage_fixtures import NxServer, mongomock_database, open_test_store, refresh_token

NOW = time.time() + 86_400.0


async def index_info(collection: Any) -> dict[str, dict[str, Any]]:
    info = await collection.index_information()
    return {name: {k: v for k, v in spec.items() if k != "v"} for name, spec in info.items()}


async def test_setup_creates_the_indexes() -> None:
    store = MongoStore(database=mongomock_database())
    await store.setup()
    await store.setup()  # idempotent

    ttl = {"key": [("purge_at", 1)], "expireAfterSeconds": 0}
    assert await index_info(store.users) == {
        "_id_": {"key": [("_id", 1)]},
        "email_unique": {
            "key": [("email", 1)],
            "unique": True,
            "partialFilterExpression": {"email": {"$type": "string"}},
        },
        "phone_unique": {
            "key": [("phone", 1)],
            "unique": True,
            "partialFilterExpression": {"phone": {"$type": "string"}},
        },
        "created_at": {"key": [("created_at", 1)]},
    }
    assert await index_info(store.refresh_tokens) == {
        "_id_": {"key": [("_id", 1)]},
        "user_id": {"key": [("user_id", 1)]},
        "family": {"key": [("family", 1)]},
        "purge_at_ttl": ttl,
    }
    assert await index_info(store.oauth_states) == {
        "_id_": {"key": [("_id", 1)]},
        "code_hash": {
            "key": [("code_hash", 1)],
            "partialFilterExpression": {"code_hash": {"$type": "string"}},
        },
        "purge_at_ttl": ttl,
    }
    assert await index_info(store.counters) == {"_id_": {"key": [("_id", 1)]}, "purge_at_ttl": ttl}
    assert await index_info(store.revoked_families) == {
        "_id_": {"key": [("_id", 1)]},
        "revoked_at": {"key": [("revoked_at", 1)]},  # polled by every instance
        "purge_at_ttl": ttl,
    }
    assert await index_info(store.database["audit_events"]) == {
        "_id_": {"key": [("_id", 1)]},
        "time": {"key": [("time", 1)]},
        "user_time": {"key": [("user_id", 1), ("time", 1)]},
        "purge_at_ttl": ttl,
    }


async def test_ttl_dates_match_the_expiry() -> None:
    store = MongoStore(database=mongomock_database())
    await store.setup()
    await store.add_refresh_token(
        RefreshToken(jti="t1", user_id="u1", family="t1", expires_at=NOW + 0.25)
    )
    await store.hit_counter("k", 60, NOW)

    for collection, key in ((store.refresh_tokens, "t1"), (store.counters, "k")):
        purge_at = (await collection.find_one({"_id": key}))["purge_at"]
        # mongomock, like PyMongo without tz_aware, hands dates back naive: they are UTC.
        if purge_at.tzinfo is None:
            purge_at = purge_at.replace(tzinfo=UTC)
        expected = NOW + 0.25 if key == "t1" else NOW + 60
        assert purge_at.timestamp() == pytest.approx(expected, abs=0.001)


@pytest.mark.parametrize("kind", ["mongomock", "mongo-wire"])
async def test_integer_booleans_read_back_as_booleans(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue("mongo_url") if kind == "mongo-wire" else None
    store = await open_test_store(kind, tmp_path, url)
    assert isinstance(store, MongoStore)
    try:
        for jti, revoked in (("one", 1), ("zero", 0)):
            await store.refresh_tokens.insert_one(
                {"_id": jti, "user_id": "u", "family": jti, "expires_at": NOW, "revoked": revoked}
            )

        one, zero = await refresh_token(store, "one"), await refresh_token(store, "zero")

        assert one is not None and one.revoked is True
        assert zero is not None and zero.revoked is False
    finally:
        if url is not None:
            await store.database.client.drop_database(store.database.name)
        await store.close()


async def test_a_closed_port_is_unavailable_after_the_configured_timeout() -> None:
    store = MongoStore(f"mongodb://127.0.0.1:{free_port()}/vhod", timeout_ms=300)
    try:
        options = store.database.client.options
        assert options.server_selection_timeout == 0.3
        assert options.pool_options.connect_timeout == 0.3
        with pytest.raises(StorageUnavailable) as caught:
            await store.ping()
        assert isinstance(caught.value.__cause__, ServerSelectionTimeoutError)
        with pytest.raises(StorageUnavailable):
            await store.create_user(User(id="u1", email="ann@example.com"))
        with pytest.raises(StorageUnavailable):
            await store.hit_counter("k", 60, NOW)
    finally:
        await store.close()


async def test_the_store_works_again_when_the_server_returns(tmp_path: Path) -> None:
    server = NxServer(tmp_path)
    server.start()
    store = MongoStore(server.url + "vhod_reconnect", timeout_ms=1000)
    try:
        await store.setup()
        await store.create_user(User(id="u1", email="ann@example.com"))

        server.stop()
        with pytest.raises(StorageUnavailable):
            await store.get_user("u1")
        with pytest.raises(StorageUnavailable):
            await store.ping()

        # Same port; the in-memory data and its indexes are gone. No ping in between:
        # the first write after reconnecting re-creates the unique indexes (D17).
        server.start()
        await store.create_user(User(id="u2", email="bob@example.com"))
        with pytest.raises(DuplicateError):
            await store.create_user(User(id="u3", email="bob@example.com"))
        found = await store.find_user_by_email("bob@example.com")
        assert found is not None and found.id == "u2"
        await store.ping()
    finally:
        await store.close()
        server.stop()


async def test_ping_recreates_the_unique_indexes_of_a_recreated_database(
    tmp_path: Path, mongo_url: str
) -> None:
    store = await open_test_store("mongo-wire", tmp_path, mongo_url)
    assert isinstance(store, MongoStore)
    try:
        await store.database.client.drop_database(store.database.name)

        await store.ping()

        await store.create_user(User(id="u1", email="ann@example.com", phone="+79160000001"))
        for loser in (
            User(id="u2", email="ann@example.com"),
            User(id="u3", phone="+79160000001"),
        ):
            with pytest.raises(DuplicateError):
                await store.create_user(loser)
    finally:
        await store.database.client.drop_database(store.database.name)
        await store.close()


async def test_ping_fails_while_duplicates_block_a_unique_index(
    tmp_path: Path, mongo_url: str
) -> None:
    store = await open_test_store("mongo-wire", tmp_path, mongo_url)
    assert isinstance(store, MongoStore)
    try:
        await store.database.client.drop_database(store.database.name)
        await store.users.insert_many(
            [{"_id": "u1", "email": "ann@example.com"}, {"_id": "u2", "email": "ann@example.com"}]
        )

        with pytest.raises(StorageUnavailable, match=r"users\.email"):
            await store.ping()
    finally:
        await store.database.client.drop_database(store.database.name)
        await store.close()


def test_writes_use_write_concern_majority() -> None:
    store = MongoStore(f"mongodb://127.0.0.1:{free_port()}/vhod")
    chosen = MongoStore(f"mongodb://127.0.0.1:{free_port()}/vhod?w=2")
    try:
        for collection in (store.users, store.refresh_tokens, store.revoked_families):
            assert collection.write_concern.document == {"w": "majority"}
        assert chosen.users.write_concern.document == {"w": 2}  # the URL's choice wins
    finally:
        asyncio.run(store.close())
        asyncio.run(chosen.close())


@pytest.mark.parametrize(
    "fault",
    [
        AutoReconnect("connection closed"),
        NotPrimaryError("not primary"),
        NetworkTimeout("timed out"),
        ServerSelectionTimeoutError("no server"),
        WaitQueueTimeoutError("pool exhausted"),
        ExecutionTimeout("operation exceeded time limit", code=50),
        OperationFailure("shutting down", code=91),
        OperationFailure("stepped down", code=189),
        OperationFailure("labelled", code=1, details={"errorLabels": ["RetryableWriteError"]}),
        WriteConcernError("waiting for replication timed out", code=64),
    ],
    ids=lambda fault: type(fault).__name__ + str(getattr(fault, "code", "") or ""),
)
async def test_transient_faults_are_unavailable(
    fault: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await mongomock_store()

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise fault

    monkeypatch.setattr(store.users, "find_one", failing)
    monkeypatch.setattr(store.refresh_tokens, "insert_one", failing)

    with pytest.raises(StorageUnavailable):
        await store.find_user_by_email("ann@example.com")
    with pytest.raises(StorageUnavailable) as caught:
        await store.add_refresh_token(
            RefreshToken(jti="t", user_id="u", family="t", expires_at=NOW)
        )
    # A write-concern failure may still have written: it says so.
    assert isinstance(caught.value, PartialWrite) is isinstance(fault, WriteConcernError)


@pytest.mark.parametrize(
    "fault",
    [OperationFailure("bad value", code=2), OperationFailure("unknown operator", code=2)],
)
async def test_a_refused_query_stays_an_error(
    fault: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await mongomock_store()

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise fault

    monkeypatch.setattr(store.users, "find_one", failing)

    with pytest.raises(OperationFailure):
        await store.find_user_by_email("ann@example.com")


async def test_open_store_mongodb_does_not_connect() -> None:
    store = await open_store(f"mongodb://127.0.0.1:{free_port()}/accounts")
    try:
        assert isinstance(store, MongoStore) and store.kind == "mongodb"
        assert store.database.name == "accounts"
    finally:
        await store.close()


async def test_database_name_defaults_to_vhod() -> None:
    store = MongoStore(f"mongodb://127.0.0.1:{free_port()}")
    try:
        assert store.database.name == "vhod"
    finally:
        await store.close()


async def test_url_options_win_over_the_default_timeouts() -> None:
    port = free_port()
    store = MongoStore(f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=150")
    default = MongoStore(f"mongodb://127.0.0.1:{port}/")
    try:
        assert store.database.client.options.server_selection_timeout == 0.15
        assert default.database.client.options.server_selection_timeout == 2
    finally:
        await store.close()
        await default.close()


def test_store_needs_a_url_or_a_database() -> None:
    with pytest.raises(ValueError):
        MongoStore()
    with pytest.raises(ValueError):
        MongoStore("mongodb://127.0.0.1/", database=mongomock_database())


# --- undo paths: MongoDB has no multi-document atomicity here, so each step is undone ---


async def mongomock_store() -> MongoStore:
    store = MongoStore(database=mongomock_database())
    await store.setup()
    return store


def fail_after(monkeypatch: pytest.MonkeyPatch, collection: Any, method: str, calls: int) -> None:
    """`collection.method` works `calls` times, then fails as a lost connection does."""
    original = getattr(collection, method)
    count = 0

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        count += 1
        if count > calls:
            raise AutoReconnect("connection closed")
        return await original(*args, **kwargs)

    monkeypatch.setattr(collection, method, flaky)


async def test_a_lost_connection_while_claiming_identities_undoes_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = await mongomock_store()
    user = User(
        id="u1", email="ann@example.com", identities=[Identity("vk", "1"), Identity("ya", "2")]
    )
    fail_after(monkeypatch, store.identities, "insert_one", 1)

    with pytest.raises(StorageUnavailable) as caught:
        await store.create_user(user)

    assert not isinstance(caught.value, PartialWrite)
    monkeypatch.undo()
    assert await store.get_user("u1") is None
    assert await store.identities.count_documents({}) == 0


async def test_a_taken_first_token_id_undoes_the_user() -> None:
    store = await mongomock_store()
    taken = RefreshToken(jti="t1", user_id="other", family="t1", expires_at=NOW)
    await store.add_refresh_token(taken)
    user = User(id="u1", email="ann@example.com", identities=[Identity("vk", "1")])

    with pytest.raises(DuplicateError) as caught:
        await store.create_user(
            user, RefreshToken(jti="t1", user_id="u1", family="t1", expires_at=NOW)
        )

    assert caught.value.field == "jti"
    assert await store.get_user("u1") is None
    assert await store.find_user_by_identity("vk", "1") is None
    assert await refresh_token(store, "t1") == taken


async def test_an_undo_that_fails_is_a_partial_write(monkeypatch: pytest.MonkeyPatch) -> None:
    store = await mongomock_store()
    fail_after(monkeypatch, store.refresh_tokens, "insert_one", 0)
    fail_after(monkeypatch, store.users, "delete_one", 0)
    token = RefreshToken(jti="t1", user_id="u1", family="t1", expires_at=NOW)

    with pytest.raises(PartialWrite):
        await store.create_user(User(id="u1", email="ann@example.com"), token)


async def test_rotating_onto_a_taken_id_keeps_the_token_usable() -> None:
    store = await mongomock_store()
    for jti in ("t0", "t1"):
        await store.add_refresh_token(
            RefreshToken(jti=jti, user_id="u1", family=jti, expires_at=NOW)
        )
    successor = RefreshToken(jti="t1", user_id="u1", family="t0", expires_at=NOW)

    with pytest.raises(DuplicateError):
        await store.rotate_refresh_token("t0", successor, NOW - 60)

    found = await refresh_token(store, "t0")
    assert found is not None and found.replaced_by is None
    fresh = RefreshToken(jti="t2", user_id="u1", family="t0", expires_at=NOW)
    assert await store.rotate_refresh_token("t0", fresh, NOW - 60) is True
