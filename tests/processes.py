"""Real vhod processes for tests: a free port, a server started from server.py, a request."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VHOD_")}
    env.update(extra)
    return env


class Server:
    """A vhod process started from server.py in `tmp_path`, logging to a file there."""

    def __init__(self, tmp_path: Path, *args: str, port: int | None = None, **env: str) -> None:
        self.port = port or free_port()
        self.stderr = tmp_path / f"server-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--port", str(self.port), *args],
            cwd=tmp_path,
            env=clean_env(**env),
            stderr=self.stderr.open("wb"),
            stdout=subprocess.DEVNULL,
        )

    def wait_started(self, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if "vhod listening on" in text:
                return text
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}: {text}")
            time.sleep(0.05)
        raise AssertionError(f"server did not start: {self.log()}")

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise


def request(url: str, data: dict | None = None) -> tuple[int, object]:
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
