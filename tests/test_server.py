"""The server as an operator runs it: a real process, its start line, config errors, SIGTERM."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.processes import Server, request

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "test.yaml"
    path.write_text(
        "passwords:\n  bcrypt_rounds: 4\n"
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


def test_in_flight_request_finishes_during_shutdown(tmp_path, config_file):
    server = Server(tmp_path, "--config", str(config_file), VHOD_PASSWORDS__BCRYPT_ROUNDS="14")
    try:
        server.wait_started(timeout=60)
        result: dict[str, object] = {}
        user = {"phone_number": "+79161234567", "email": "a@example.com", "hash_password": "p" * 8}

        def register() -> None:
            result["answer"] = request(server.url("/authorization/registration"), user)

        thread = threading.Thread(target=register)
        thread.start()
        time.sleep(0.3)  # the bcrypt-14 hash (about a second) is under way
        server.process.send_signal(signal.SIGTERM)
        thread.join(30)
        assert result["answer"][0] == 200
    finally:
        code = server.stop()
    assert code == 0
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
