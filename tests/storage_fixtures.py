"""Store fixtures for the storage tests: SQLite, MongoDB over mongomock, MongoDB over the wire.

tests/conftest.py loads this as a plugin. The wire variant
talks TCP to an `nx-27017` server the session starts on a free port, or to the server
`VHOD_TEST_MONGO_URL` names; each test gets a database of its own. When that server cannot
be started or reached, its tests fail: they never skip.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from storage import MongoStore, Store, open_store
from tests.processes import free_port

STORE_KINDS = ["sqlite", "mongomock", "mongo-wire"]

# nx-27017 ships no __main__ module, and the console script may not sit beside the
# interpreter that runs the tests; calling its entry point works in both layouts.
_NX_MAIN = "import sys; from nx_27017.nx_27017 import main; sys.exit(main())"


class NxServer:
    """An `nx-27017` MongoDB wire-protocol server in a child process."""

    def __init__(self, folder: Path, port: int | None = None, *, db: str = "memory") -> None:
        self.folder = folder
        self.db = db  # "memory", or a file that keeps the data across restarts
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def log(self) -> Path:
        return self.folder / f"nx-27017-{self.port}-{self.starts}.log"

    def start(self, timeout: float = 15.0) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        command = [sys.executable, "-c", _NX_MAIN, "--db", self.db, "--host", "127.0.0.1"]
        command += ["-p", str(self.port), "--log-file", str(self.log)]
        command += ["--pid-file", str(self.log.with_suffix(".pid"))]
        with open(self.log.with_suffix(".out"), "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        # Ready when this process says it listens (another one may hold the port) and the
        # port accepts connections.
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.log.exists() and "Listening on" in self.log.read_text(errors="replace"):
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        output = self.tail()
        self.stop()
        raise RuntimeError(f"nx-27017 did not start on port {self.port}: {output}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def tail(self) -> str:
        texts = [
            path.read_text(errors="replace")[-2000:]
            for path in (self.log, self.log.with_suffix(".out"))
            if path.exists()
        ]
        return "\n".join(texts) or "(no output)"


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the wire-protocol server, without a database name."""
    given = os.environ.get("VHOD_TEST_MONGO_URL")
    if given:
        check_reachable(given)
        yield given
        return
    server = NxServer(tmp_path_factory.mktemp("nx-27017"))
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"cannot start the nx-27017 test server: {exc}")
    try:
        check_reachable(server.url)
        yield server.url
    finally:
        server.stop()


def check_reachable(url: str) -> None:
    """Fail (never skip) every test that needs the server when it does not answer."""
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=3000)
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        pytest.fail(f"the MongoDB test server at {urlsplit(url).hostname} does not answer: {exc}")
    finally:
        client.close()


def with_database(url: str, name: str) -> str:
    """`url` with its database (the path) replaced by `name`; options are kept."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def mongomock_database(name: str = "vhod_test") -> Any:
    """A fresh in-process mongomock database behind the Motor-style async API."""
    from mongomock_motor import AsyncMongoMockClient

    return AsyncMongoMockClient()[name]


async def open_test_store(kind: str, tmp_path: Path, mongo_url: str | None = None) -> Store:
    """A store of `kind` on an empty database of its own, set up."""
    store: Store
    if kind == "sqlite":
        store = await open_store(f"sqlite:///{tmp_path}/store/vhod.db")
    elif kind == "mongomock":
        store = MongoStore(database=mongomock_database())
    elif kind == "mongo-wire":
        assert mongo_url is not None
        store = await open_store(with_database(mongo_url, f"vhod_test_{uuid.uuid4().hex[:12]}"))
    else:
        raise ValueError(kind)
    try:
        await store.setup()
    except BaseException:
        await store.close()
        raise
    return store


async def dispose(store: Store) -> None:
    if isinstance(store, MongoStore) and store.owns_client:
        await store.database.client.drop_database(store.database.name)
    await store.close()


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, io_loop: Any, tmp_path: Path) -> Iterator[Store]:
    """An empty, set-up store of each kind; the test runs once per kind."""
    url = request.getfixturevalue("mongo_url") if request.param == "mongo-wire" else None
    made = io_loop.run_sync(lambda: open_test_store(request.param, tmp_path, url))
    yield made
    io_loop.run_sync(lambda: dispose(made))


@pytest.fixture(params=["sqlite", "mongo-wire"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A storage URL of an empty database, on SQLite and on the wire server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/backend/vhod.db"
        return
    name = f"vhod_app_{uuid.uuid4().hex[:12]}"
    base = request.getfixturevalue("mongo_url")
    yield with_database(base, name)
    client: MongoClient[dict[str, Any]] = MongoClient(base, serverSelectionTimeoutMS=3000)
    try:
        client.drop_database(name)
    finally:
        client.close()


@dataclass
class Running:
    """A vhod app served in this process on its own services: `url(path)` reaches it."""

    services: Any
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        response = await AsyncHTTPClient().fetch(
            self.url(path),
            method=method,
            body=None if body is None else json.dumps(body),
            headers={"Content-Type": "application/json"},
            raise_error=False,
            request_timeout=60,
        )
        return response.code, json.loads(response.body or b"null")


@asynccontextmanager
async def running_app(tmp_path: Path, storage_url: str, **overrides: Any) -> AsyncIterator[Running]:
    """Services on `storage_url` (test settings plus `overrides`) behind a real HTTP server."""
    from server import build_services, make_app
    from tests.conftest import make_config

    config = make_config(tmp_path, **{"storage.url": storage_url, **overrides})
    services = await build_services(config)
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(make_app(services))
    server.add_sockets(sockets)
    try:
        yield Running(services, sockets[0].getsockname()[1])
    finally:
        server.stop()
        await server.close_all_connections()
        await services.close()


async def refresh_token(store: Any, jti: str) -> Any:
    """The stored record of refresh token `jti` (its `revoked` counts the family's), or None."""
    found = await store.get_refresh_token_and_user(jti)
    return None if found is None else found[0]


def instances_on_one_store(
    request: pytest.FixtureRequest, tmp_path: Path, env: dict[str, str], secret: str
) -> Iterator[Any]:
    """Two vhod processes (tests.processes.two_instances) on one store of the test's kind:
    a SQLite file with `secret` as jwt.secret (HS256), or a database of its own on the wire
    server with `secret` as the key-encryption key (ES256, keys in the store)."""
    from tests.processes import two_instances

    mongo_url = None
    if request.param == "sqlite":
        storage_url = f"sqlite:///{tmp_path / 'shared' / 'vhod.db'}"
        shared = {"VHOD_JWT__SECRET": secret}
    else:
        base = request.getfixturevalue("mongo_url")
        mongo_url = storage_url = with_database(base, f"vhod_pair_{uuid.uuid4().hex[:12]}")
        shared = {"VHOD_JWT__KEY_ENCRYPTION_KEY": secret}
    with two_instances(
        tmp_path, {**shared, "VHOD_STORAGE__URL": storage_url, **env}, mongo_url=mongo_url
    ) as pair:
        yield pair
