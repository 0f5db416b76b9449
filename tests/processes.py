"""Real processes for tests and the benchmark: a free port, a vhod server started from
server.py, any other child process with its output in a log file, and a request."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pymongo import MongoClient
from tornado.httpclient import AsyncHTTPClient

from core.config import ENV_PREFIX

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def install_lock(name: str) -> Iterator[None]:
    """One installer of `name` at a time across processes (pytest-xdist workers, two runs):
    the others wait, then find it installed."""
    folder = ROOT / ".cache"
    folder.mkdir(exist_ok=True)
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def missing_tool(reason: str) -> None:
    """A tool a test needs is not installed: skip the test, except in CI, where it fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def npm_ci(folder: Path, lock_name: str) -> None:
    """`npm ci` into folder/node_modules from its package-lock.json, when the lockfile changed
    since the last successful install (a stamp beside the modules says which one it was).

    --ignore-scripts: no tool needs an install script, and none may download anything.
    --prefer-offline: what npm's cache holds is used without asking the registry again.
    """
    if shutil.which("npm") is None or shutil.which("node") is None:
        missing_tool("Node.js and npm are missing: install Debian's nodejs and npm")
    digest = hashlib.sha256((folder / "package-lock.json").read_bytes()).hexdigest()
    stamp = folder / "node_modules" / ".vhod-lock-sha256"
    with install_lock(lock_name):
        if stamp.exists() and stamp.read_text() == digest:
            return
        done = subprocess.run(
            [
                "npm",
                "ci",
                "--prefix",
                str(folder),
                "--ignore-scripts",
                "--prefer-offline",
                "--no-audit",
                "--no-fund",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        stamp.write_text(digest)


def setting_env(settings: dict[str, Any]) -> dict[str, str]:
    """Dotted settings (`{"email.timeout": 5}`) as the environment variables that override
    them (`VHOD_EMAIL__TIMEOUT=5`), for a server started with clean_env()."""
    return {
        ENV_PREFIX + dotted.upper().replace(".", "__"): str(value)
        for dotted, value in settings.items()
    }


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(extra)
    return env


def accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class Child:
    """A child process whose stderr goes to `log_path`; stopped with SIGTERM, then SIGKILL."""

    def __init__(
        self,
        command: list[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdout: Any = subprocess.DEVNULL,
    ) -> None:
        self.log_path = log_path
        self.terminated = False
        with log_path.open("wb") as err:
            self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=err)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready()` until it is true; AssertionError when this process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if not self.alive():
                raise AssertionError(f"{what} exited {self.process.returncode}: {self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"{what} did not start within {timeout:.0f} s: {self.log()[-2000:]}")

    def terminate(self) -> None:
        """SIGTERM, once: a second signal that lands after the event loop has closed (and put
        back the default handler) would kill a process that was shutting down cleanly."""
        if self.process.poll() is None and not self.terminated:
            self.process.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self, timeout: float = 15) -> int:
        self.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise


class Server(Child):
    """A vhod process started from server.py in `tmp_path`, logging to a file there."""

    def __init__(
        self,
        tmp_path: Path,
        *args: str,
        port: int | None = None,
        script: Path = ROOT / "server.py",
        **env: str,
    ) -> None:
        self.chosen_port = port is None
        self.launch = (tmp_path, args, script, env)
        self._start(port or free_port())

    def _start(self, port: int) -> None:
        tmp_path, args, script, env = self.launch
        self.port = port
        self.stderr = tmp_path / f"server-{self.port}.log"
        super().__init__(
            [sys.executable, str(script), "--port", str(self.port), *args],
            self.stderr,
            cwd=tmp_path,
            env=clean_env(**env),
        )

    def wait_started(self, timeout: float = 20) -> str:
        # A port free_port() found free can be taken before the server binds it (another
        # test's process, an outgoing connection): then the server starts again on another.
        for retry in (True, True, False):
            try:
                self.wait_until(lambda: "vhod listening on" in self.log(), timeout, "server")
                return self.log()
            except AssertionError:
                taken = "address already in use" in self.log() and not self.alive()
                if not (retry and taken and self.chosen_port):
                    raise
                self._start(free_port())
        raise AssertionError("unreachable")

    def wait_ready(self, timeout: float = 20) -> None:
        """Until /readyz answers 200: listening, and its storage reachable."""
        self.wait_until(lambda: status_of(self.url("/readyz")) == 200, timeout, "server")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


async def call_json(
    instance: Server,
    path: str,
    body: Any = None,
    access: str | None = None,
    *,
    method: str = "POST",
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One JSON request to a vhod process (the caller's access token as a bearer header);
    its status and decoded body."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    if access is not None:
        sent["Authorization"] = f"Bearer {access}"
    response = await AsyncHTTPClient().fetch(
        instance.url(path),
        method=method,
        body=None if method == "GET" else (raw if raw is not None else json.dumps(body or {})),
        headers=sent,
        raise_error=False,
    )
    # Every answer of vhod's API is JSON, errors included.
    assert response.headers["Content-Type"].startswith("application/json"), path
    return response.code, json.loads(response.body or b"null")


def status_of(url: str) -> int:
    """The HTTP status of a GET of `url`; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def request(url: str, data: dict | None = None) -> tuple[int, object]:
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@dataclass
class Pair:
    """Two vhod processes on one store."""

    a: Server
    b: Server


@contextmanager
def two_instances(
    tmp_path: Path,
    env: dict[str, str],
    *,
    ports: tuple[int | None, int | None] = (None, None),
    mongo_url: str | None = None,
) -> Iterator[Pair]:
    """A and B with the same settings and data folders of their own; on MongoDB the test's
    database is dropped afterwards."""
    a = Server(tmp_path, port=ports[0], VHOD_SERVER__DATA_DIR=str(tmp_path / "data-a"), **env)
    b = None
    try:
        a.wait_started(timeout=30)  # A creates the tables or indexes; B finds them there
        b = Server(tmp_path, port=ports[1], VHOD_SERVER__DATA_DIR=str(tmp_path / "data-b"), **env)
        b.wait_started(timeout=30)
        yield Pair(a, b)
    finally:
        for instance in (b, a):
            if instance is not None:
                instance.stop()
        if mongo_url is not None:
            client: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
            client.drop_database(urlsplit(mongo_url).path.strip("/"))
            client.close()
