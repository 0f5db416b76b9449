"""The server as an operator runs it: a real process, its start line, config errors, SIGTERM."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.config import load_config
from core.infra.maintenance import purge_expired_periodically
from server import start_line
from storage import StorageUnavailable
from tests.fakes.channels import SmtpInbox
from tests.processes import Server, free_port, request, setting_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "test.yaml"
    path.write_text(
        "passwords:\n  algorithm: bcrypt\n  bcrypt_rounds: 4\n"
        f"server:\n  data_dir: {tmp_path / 'data'}\n"
        f"storage:\n  url: sqlite:///{tmp_path / 'data' / 'vhod.db'}\n"
    )
    return path


def test_starts_serves_and_stops_cleanly_on_sigterm(tmp_path, config_file):
    server = Server(tmp_path, "--config", str(config_file))
    try:
        line = server.wait_started()
        assert f"http://127.0.0.1:{server.port}" in line
        assert "storage=sqlite:///" in line
        assert "providers=" in line
        assert request(server.url("/healthz")) == (200, {"status": "ok"})
        user = {"phone_number": "+79161234567", "email": "a@example.com", "hash_password": "p" * 8}
        status, body = request(server.url("/authorization/registration"), user)
        assert status == 200 and set(body) == {"access", "refresh"}
    finally:
        code = server.stop()
    assert code == 0
    # A new install signs with ES256: its key-encryption key was generated, owner-only, in
    # data_dir, and no HMAC secret was made.
    kek = tmp_path / "data" / "jwt_key_encryption_key"
    assert kek.exists() and (kek.stat().st_mode & 0o777) == 0o600
    assert not (tmp_path / "data" / "jwt_secret").exists()


def hash_queue_depth(server: Server) -> float:
    with urllib.request.urlopen(server.url("/metrics"), timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("vhod_hash_queue_depth "):
                return float(line.split()[1])
    raise AssertionError("no vhod_hash_queue_depth in /metrics")


def test_in_flight_requests_finish_during_shutdown(tmp_path, config_file):
    # One hash worker: of two registrations, one hashes and the other waits for the worker.
    server = Server(
        tmp_path,
        "--config",
        str(config_file),
        VHOD_PASSWORDS__BCRYPT_ROUNDS="13",
        VHOD_LIMITS__HASH_WORKERS="1",
    )
    try:
        server.wait_started(timeout=60)
        answers: list[tuple[int, object]] = []

        def register(index: int) -> None:
            user = {
                "phone_number": f"+7916123456{index}",
                "email": f"user{index}@example.com",
                "hash_password": "p" * 8,
            }
            answers.append(request(server.url("/authorization/registration"), user))

        threads = [threading.Thread(target=register, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        # Signal only once the server shows a registration waiting for the worker: both
        # are in flight, and the waiting one still has a whole hash to do.
        deadline = time.monotonic() + 30
        while hash_queue_depth(server) < 1:
            assert time.monotonic() < deadline, "no registration ever waited for the worker"
            assert len(answers) < 2, f"both finished before the signal: {answers}"
            time.sleep(0.01)
        server.terminate()
        for thread in threads:
            thread.join(60)
        assert [status for status, _ in answers] == [200, 200], answers
    finally:
        code = server.stop()
    assert code == 0
    waited = re.search(
        r"shutting down: no new connections, waiting for (\d+) in flight", server.log()
    )
    assert waited and int(waited.group(1)) >= 1, server.log()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


@pytest.mark.parametrize(
    "env,named",
    [
        ({"VHOD_JWT__SECRET": "too-short"}, "jwt.secret"),
        ({"VHOD_SERVER__NO_SUCH_KEY": "1"}, "server.no_such_key"),
        ({"VHOD_LIMITS__LOGIN_WINDOW": "soon"}, "limits.login_window"),
    ],
)
def test_refuses_to_start_naming_the_key(tmp_path, config_file, env, named):
    server = Server(tmp_path, "--config", str(config_file), **env)
    code = server.process.wait(timeout=20)
    assert code != 0
    assert named in server.log()


def test_unknown_key_in_the_file_names_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("jwt:\n  algorithm: HS256\n  secrett: x\n")
    server = Server(tmp_path, "--config", str(path))
    assert server.process.wait(timeout=20) != 0
    assert "jwt.secrett" in server.log()


def test_missing_named_config_file_is_an_error(tmp_path):
    server = Server(tmp_path, "--config", str(tmp_path / "absent.yaml"))
    assert server.process.wait(timeout=20) != 0
    assert "absent.yaml" in server.log()


def one_line_exit(server: Server) -> str:
    """The process's whole output, once it exited non-zero, as one line."""
    code = server.process.wait(timeout=30)
    text = server.log()
    assert code != 0, text
    assert text.count("\n") == 1 and text.endswith("\n"), text
    assert "Traceback" not in text
    return text.strip()


# The storage is what these tests reach; HS256 keeps the key pair's KEK out of the way
# (a MongoDB store needs a configured jwt.key_encryption_key for ES256).
HS256 = {
    "VHOD_JWT__ALGORITHM": "HS256",
    "VHOD_PASSWORDS__ALGORITHM": "bcrypt",
    "VHOD_PASSWORDS__BCRYPT_ROUNDS": "4",
}


def test_unreachable_mongodb_is_one_line_naming_it_without_the_password(tmp_path):
    port = free_port()  # nothing listens there
    url = f"mongodb://vhod:db-password@127.0.0.1:{port}/vhod?serverSelectionTimeoutMS=300"
    server = Server(tmp_path, VHOD_STORAGE__URL=url, **HS256)
    line = one_line_exit(server)
    assert line.startswith(
        f"vhod: storage unreachable: mongodb://vhod:***@127.0.0.1:{port}/vhod"
        "?serverSelectionTimeoutMS=300: "
    )
    assert "db-password" not in line


def test_unreachable_sqlite_file_is_one_line(tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    url = f"sqlite:///{tmp_path / 'not-a-folder' / 'vhod.db'}"
    server = Server(tmp_path, VHOD_STORAGE__URL=url, **HS256)
    assert one_line_exit(server).startswith(f"vhod: storage unreachable: {url}: ")
    # With the default key pair, the generated key-encryption key beside it fails first.
    fresh = str(tmp_path / "fresh")  # no generated HMAC secret from the run above
    server = Server(
        tmp_path,
        VHOD_STORAGE__URL=url,
        VHOD_SERVER__DATA_DIR=fresh,
        VHOD_PASSWORDS__ALGORITHM="bcrypt",
        VHOD_PASSWORDS__BCRYPT_ROUNDS="4",
    )
    assert one_line_exit(server).startswith("vhod: configuration error: jwt.key_encryption_key")


@pytest.mark.parametrize("password", ["pa/ss", "p@ss@word", "pa?ss=1", "pa#ss"])
def test_a_url_password_never_shows_when_the_start_fails(tmp_path, password):
    # PyMongo refuses the URL (a configuration error) or cannot reach it; either way, one
    # line that masks the password.
    url = f"mongodb://admin:{password}@127.0.0.1:{free_port()}/vhod?serverSelectionTimeoutMS=300"
    server = Server(tmp_path, VHOD_STORAGE__URL=url, **HS256)
    line = one_line_exit(server)
    assert line.startswith(
        ("vhod: storage unreachable: ", "vhod: configuration error: storage.url:")
    )
    assert password not in line


@pytest.mark.parametrize("password", ["pa/ss", "p@ss@word", "pa?ss=1", "pa#ss"])
def test_start_line_masks_the_url_password(password):
    config = load_config(
        None, environ={}, overrides={"storage.url": f"mongodb://admin:{password}@db/vhod"}
    )
    services = SimpleNamespace(
        providers={}, tokens=SimpleNamespace(keys=SimpleNamespace(algorithm="ES256"))
    )
    line = start_line(config, services)  # type: ignore[arg-type]
    assert "storage=mongodb://admin:***@db/vhod " in line
    assert password not in line


class FailingPurgeStore:
    """purge_expired fails with a bug, then with an outage, then works."""

    def __init__(self) -> None:
        self.calls = 0
        self.worked = asyncio.Event()

    async def purge_expired(self, now: float) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("boom for mongodb://vhod:db-password@db/vhod")
        if self.calls == 2:
            raise StorageUnavailable("db is down")
        self.worked.set()


async def test_purging_goes_on_after_any_error_and_logs_it(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="vhod")
    store = FailingPurgeStore()
    url = "mongodb://vhod:db-password@db/vhod"
    purging = asyncio.ensure_future(
        purge_expired_periodically(store, lambda: 0.0, url, interval=0)  # type: ignore[arg-type]
    )
    try:
        await asyncio.wait_for(store.worked.wait(), 10)
        assert not purging.done()
    finally:
        purging.cancel()
    messages = [r.getMessage() for r in caplog.records if r.name == "vhod"]
    assert len(messages) == 2, messages
    assert messages[0].startswith("purging expired rows failed, will retry: RuntimeError at ")
    assert "test_server.py" in messages[0] and "db-password" not in messages[0]
    assert messages[1] == "purging expired rows failed, will retry: db is down"


def fail_login(server: Server, email: str) -> None:
    status, _ = request(
        server.url("/authorization/login/email"), {"email": email, "hash_password": "p" * 8}
    )
    assert status == 401


def pseudonym_in_log(server: Server) -> str:
    """The identifier of the login_failed event; read once the server has stopped, since
    log lines reach the file from a writer thread."""
    for line in server.log().splitlines():
        if '"event": "login_failed"' in line:
            return json.loads(line[line.index("{") :])["identifier"]
    raise AssertionError(server.log())


def test_identifier_pseudonym_is_keyed_and_stable_across_restarts(tmp_path, config_file):
    email = "nobody@example.com"
    pseudonyms = []
    for _ in range(2):
        server = Server(tmp_path, "--config", str(config_file))
        try:
            server.wait_started()
            fail_login(server, email)
        finally:
            assert server.stop() == 0
        pseudonyms.append(pseudonym_in_log(server))
    assert pseudonyms[0] == pseudonyms[1]
    assert pseudonyms[0] != hashlib.sha256(email.encode()).hexdigest()[:24]
    key = tmp_path / "data" / "pseudonym_key"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600


def test_shutdown_waits_for_a_reset_code_still_going_out(tmp_path):
    # The answer did not wait for the mail server; the shutdown does, before the store closes.
    inbox = SmtpInbox(hold=threading.Event()).start()
    server = Server(tmp_path, **HS256, **setting_env(inbox.config()))
    try:
        server.wait_started()
        user = {
            "phone_number": "+79161234567",
            "email": "ann@example.com",
            "hash_password": "p" * 8,
        }
        assert request(server.url("/authorization/registration"), user)[0] == 200
        reset = request(server.url("/authorization/password/reset"), {"email": user["email"]})
        assert reset == (200, True)
        assert inbox.arrived.wait(20), "the code never reached the mail server"
        assert inbox.messages == []  # held by the mail server, after the answer
        server.terminate()
        server.wait_until(lambda: "shutting down" in server.log(), 20, "shutdown")
        assert inbox.messages == [] and server.alive()
        inbox.hold.set()
        assert server.process.wait(timeout=30) == 0
        assert inbox.code_for(user["email"]).isdigit()
        log = server.log()  # vhod saw the mail server take the code, and only then stopped
        assert "reset_requested" in log and log.index("reset_requested") < log.index("stopped")
    finally:
        server.stop()
        inbox.stop()
