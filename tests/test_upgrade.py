"""Upgrades: a store made by vhod 0.1.0 (schema 0, kept in tests/fixtures/schema0/) starts
under this code with its users, sessions, keys and tokens intact, on SQLite and on MongoDB;
`vhod migrate` does the same on demand; a store newer than the code refuses the start with
one line and is left as it was. The migration runner itself is checked on every store kind
with a made-up next migration."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bson import json_util
from pymongo import MongoClient

from storage.mongo import schema as mongo_schema
from storage.schema import SchemaTooNew, latest
from storage.sqlite import schema as sqlite_schema
from tests.processes import ROOT, Server, clean_env, request, setting_env
from tests.storage_fixtures import with_database

FIXTURE = ROOT / "tests" / "fixtures" / "schema0"
TOKENS = json.loads((FIXTURE / "tokens.json").read_text())
CURRENT = latest(sqlite_schema.MIGRATIONS)


@dataclass
class OldStore:
    """A schema-0 store, copied for one test: the settings that start vhod on it."""

    kind: str
    env: dict[str, str]
    made: dict[str, Any]  # the users, with the tokens 0.1.0 issued them
    sqlite_path: Path | None = None
    mongo_url: str | None = None

    def recorded_version(self) -> int | None:
        """The schema version the store records, None when it records none."""
        if self.sqlite_path is not None:
            with sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True) as db:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
                if "meta" not in tables:
                    return None
                row = db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
                return None if row is None else row[0]
        client: MongoClient[dict[str, Any]] = MongoClient(self.mongo_url)
        try:
            doc = client.get_default_database()["meta"].find_one({"_id": "schema_version"})
            return None if doc is None else doc["version"]
        finally:
            client.close()

    def set_version(self, version: int) -> None:
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path) as db:
                db.execute(sqlite_schema.META)
                db.execute(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES ('schema_version', ?)",
                    (version,),
                )
            return
        client: MongoClient[dict[str, Any]] = MongoClient(self.mongo_url)
        try:
            # update_one, not replace_one: nx-27017 0.8.1 gives an upserted replacement an
            # ObjectId rather than the filter's _id.
            client.get_default_database()["meta"].update_one(
                {"_id": "schema_version"}, {"$set": {"version": version}}, upsert=True
            )
        finally:
            client.close()

    def user_emails(self) -> list[str]:
        if self.sqlite_path is not None:
            with sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True) as db:
                return sorted(r[0] for r in db.execute("SELECT email FROM users"))
        client: MongoClient[dict[str, Any]] = MongoClient(self.mongo_url)
        try:
            return sorted(u["email"] for u in client.get_default_database()["users"].find())
        finally:
            client.close()


def load_mongo_dump(url: str) -> None:
    """tests/fixtures/schema0/mongo.json into the (empty) database `url` names."""
    dump = json_util.loads((FIXTURE / "mongo.json").read_text())
    client: MongoClient[dict[str, Any]] = MongoClient(url)
    try:
        database = client.get_default_database()
        for name, documents in dump.items():
            database.create_collection(name)
            if documents:
                database[name].insert_many(documents)
    finally:
        client.close()


@pytest.fixture(params=["sqlite", "mongo-wire"])
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OldStore]:
    settings = setting_env(TOKENS["settings"])
    data = tmp_path / "data"
    if request.param == "sqlite":
        shutil.copytree(FIXTURE / "sqlite", data)
        path = data / "vhod.db"
        env = {
            **settings,
            "VHOD_SERVER__DATA_DIR": str(data),
            "VHOD_STORAGE__URL": f"sqlite:///{path}",
        }
        yield OldStore("sqlite", env, TOKENS["sqlite"], sqlite_path=path)
        return
    base = request.getfixturevalue("mongo_url")
    name = f"vhod_upgrade_{uuid.uuid4().hex[:12]}"
    url = with_database(base, name)
    load_mongo_dump(url)
    env = {
        **settings,
        "VHOD_SERVER__DATA_DIR": str(data),
        "VHOD_STORAGE__URL": url,
        "VHOD_JWT__KEY_ENCRYPTION_KEY": TOKENS["mongo_key_encryption_key"],
    }
    try:
        yield OldStore("mongo", env, TOKENS["mongo"], mongo_url=url)
    finally:
        client: MongoClient[dict[str, Any]] = MongoClient(base)
        client.drop_database(name)
        client.close()


def run_command(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), *args],
        cwd=tmp_path,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_fixture_is_a_schema_0_store_of_the_previous_release(old_store):
    assert old_store.made["release"] == "0.1.0"
    assert old_store.recorded_version() is None
    assert old_store.user_emails() == ["ann@example.com", "bob@example.com"]


def test_a_0_1_0_store_upgrades_at_start_with_its_users_and_tokens(old_store, tmp_path):
    server = Server(tmp_path, **old_store.env)
    try:
        server.wait_ready(timeout=30)
        assert old_store.recorded_version() == CURRENT
        for user in old_store.made["users"]:
            for session in user["sessions"]:
                # The access tokens 0.1.0 signed verify with the key it stored (and sealed
                # with the key-encryption key it generated or was given).
                status, valid = request(
                    server.url("/validate/jwt/access"), {"access": session["access"]}
                )
                assert (status, valid) == (200, True)
            # Its refresh tokens are live sessions of the upgraded store.
            status, refreshed = request(
                server.url("/validate/jwt/refresh"), {"refresh": user["sessions"][0]["refresh"]}
            )
            assert status == 200 and refreshed["email"] == user["email"], refreshed
            status, sessions = request(
                server.url("/authorization/sessions"), {"access": refreshed["access"]}
            )
            assert status == 200 and len(sessions["sessions"]) == 2, sessions
            # The stored password hash still signs the user in.
            status, signed_in = request(
                server.url("/authorization/login/email"),
                {"email": user["email"], "hash_password": user["hash_password"]},
            )
            assert status == 200 and signed_in["access"], signed_in
        assert "Traceback" not in server.log()
    finally:
        assert server.stop() == 0, server.log()
    assert old_store.user_emails() == ["ann@example.com", "bob@example.com"]


def test_vhod_migrate_upgrades_the_store_once(old_store, tmp_path):
    first = run_command(tmp_path, old_store.env, "migrate")
    assert first.returncode == 0, first.stderr
    assert f"schema version 0 migrated to {CURRENT}" in first.stdout
    assert old_store.recorded_version() == CURRENT
    again = run_command(tmp_path, old_store.env, "migrate")
    assert again.returncode == 0, again.stderr
    assert f"schema version {CURRENT}, nothing to migrate" in again.stdout


def test_a_store_newer_than_the_code_refuses_the_start_with_one_line(old_store, tmp_path):
    newer = CURRENT + 1
    old_store.set_version(newer)
    for args in ((), ("migrate",), ("users", "find", "ann@example.com")):
        done = run_command(tmp_path, old_store.env, *args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert f"schema version {newer}, newer than this vhod knows ({CURRENT})" in lines[0]
    # Left as it was: nothing migrated down, no user touched.
    assert old_store.recorded_version() == newer
    assert old_store.user_emails() == ["ann@example.com", "bob@example.com"]


# ---- the migration runner, on every store kind ---------------------------------------------


def test_both_stores_have_the_same_migrations():
    assert set(sqlite_schema.MIGRATIONS) == set(mongo_schema.MIGRATIONS)
    assert sorted(sqlite_schema.MIGRATIONS) == list(range(1, CURRENT + 1))


async def test_the_next_migration_runs_once_and_an_older_runner_refuses(store, monkeypatch):
    """A store set up by this code is at CURRENT; a release with one more migration runs
    it once and records its number; this code then refuses that store."""
    assert await store.schema_version() == CURRENT
    runs: list[str] = []
    if store.kind == "sqlite":

        def step(db: sqlite3.Connection) -> None:
            db.execute("CREATE TABLE next_release (x INTEGER)")  # fails if run twice
            runs.append("sqlite")

        migrations: dict[int, Any] = sqlite_schema.MIGRATIONS
    else:

        async def step(database: Any) -> None:
            await database["next_release"].insert_one({"x": 1})
            runs.append("mongo")

        migrations = mongo_schema.MIGRATIONS
    monkeypatch.setitem(migrations, CURRENT + 1, step)
    await store.setup()
    await store.setup()
    assert len(runs) == 1
    assert await store.schema_version() == CURRENT + 1
    monkeypatch.delitem(migrations, CURRENT + 1)
    with pytest.raises(SchemaTooNew) as refused:
        await store.setup()
    assert (refused.value.found, refused.value.known) == (CURRENT + 1, CURRENT)
