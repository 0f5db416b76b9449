"""The processes of a run, started with the test suite's helpers (tests/processes.py):
vhod on its shipped configuration, the bare Tornado baseline, a fake VK ID, nx-27017."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.hashes import PasswordHash
from tests.processes import ROOT, Child, Server, accepts_connections, free_port

BENCH = ROOT / "bench"
# The per-address limit (30 a minute by default) would refuse the load, which comes from one
# address; everything else is the shipped config.yaml: access log at info, metrics on.
PER_IP_PER_MINUTE = "1000000000"


def http(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request to 127.0.0.1:`port`, for setting up; the answer's status and JSON."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")
    except (OSError, ValueError):
        return 0, None


# A fixed key-encryption key for the benchmark's own throwaway stores, never a real one.
BENCH_KEK = "bench-only-key-encryption-key-0123456789abcdef"


def vhod_overrides(
    data_dir: Path,
    storage_url: str,
    passwords: PasswordHash,
    vk: dict[str, str],
    algorithm: str | None,
    sms_channel: dict[str, str] | None = None,
) -> dict[str, str]:
    """What the benchmark sets on top of config.yaml (the report lists these)."""
    env = {
        "VHOD_SERVER__DATA_DIR": str(data_dir),
        "VHOD_STORAGE__URL": storage_url,
        "VHOD_LIMITS__PER_IP_PER_MINUTE": PER_IP_PER_MINUTE,
        # Nothing for config.yaml's own hash; the users seeded for it are hashed at the same
        # algorithm and costs, so no login rehashes.
        **passwords.overrides(),
    }
    if sms_channel is not None:
        # Code sign-in through the fake SMS.ru; every load comes from one address, so the
        # per-client and per-prefix budgets are lifted; the per-number one stays.
        env["VHOD_SMS__CHANNELS"] = json.dumps([sms_channel])
        env["VHOD_ACCOUNTS__CODE_SIGN_UP"] = "true"
        env["VHOD_SMS__PER_CLIENT_PER_HOUR"] = PER_IP_PER_MINUTE
        env["VHOD_SMS__PER_PREFIX_PER_HOUR"] = PER_IP_PER_MINUTE
    if algorithm is not None:  # unset: the shipped default (ES256 on a new install)
        env["VHOD_JWT__ALGORITHM"] = algorithm
    if storage_url.startswith("mongodb"):
        # Required with a shared store: every instance must decrypt the same signing keys.
        env["VHOD_JWT__KEY_ENCRYPTION_KEY"] = BENCH_KEK
    for key in ("client_id", "authorize_url", "token_url", "userinfo_url"):
        env[f"VHOD_PROVIDERS__VK__{key.upper()}"] = vk[key]
    return env


class VhodRefused(Exception):
    """vhod exited at start (e.g. it refuses a setting); the message is its log's tail."""


def start_vhod(folder: Path, name: str, overrides: dict[str, str]) -> Server:
    """vhod from server.py with the repository's config.yaml; returns once /readyz is 200."""
    (folder / name).mkdir(parents=True, exist_ok=True)
    server = Server(folder / name, "--config", str(ROOT / "config.yaml"), **overrides)
    try:
        server.wait_ready(timeout=60)
    except AssertionError as exc:
        exited = not server.alive()
        server.stop()
        if exited:
            raise VhodRefused(server.log()[-1000:]) from exc
        raise
    return server


def start_baseline(folder: Path, processes: int = 1) -> tuple[Child, int]:
    """The bare Tornado app of bench/baseline.py (in `processes` processes on one port);
    returns it and its port."""
    port = free_port()
    command = [sys.executable, str(BENCH / "baseline.py"), "--port", str(port)]
    command += ["--processes", str(processes)]
    child = Child(command, folder / f"baseline-{processes}.log")
    child.wait_until(lambda: accepts_connections(port), 30, "the baseline")
    return child, port


def start_announcing(folder: Path, script: str, what: str) -> tuple[Child, dict[str, Any]]:
    """A fake of the test suite started from bench/`script`, which prints one JSON line
    (its port, config section, tokens) once it listens; returns it and that line."""
    command = [sys.executable, str(BENCH / script)]
    child = Child(command, folder / f"{Path(script).stem}.log", stdout=subprocess.PIPE)
    assert child.process.stdout is not None
    line = child.process.stdout.readline()
    if not line:
        raise RuntimeError(f"the {what} did not start: {child.log()}")
    announced: dict[str, Any] = json.loads(line)
    return child, announced


def start_fake_vk(folder: Path) -> tuple[Child, dict[str, Any]]:
    """The test suite's fake VK ID; returns it with its config section and a VK token."""
    return start_announcing(folder, "fake_provider.py", "fake VK")


def start_fake_gateway(folder: Path) -> tuple[Child, dict[str, str]]:
    """The test suite's fake SMS.ru; returns it with its sms.channels entry."""
    child, announced = start_announcing(folder, "fake_gateway.py", "fake SMS gateway")
    channel: dict[str, str] = announced["channel"]
    return child, channel


@contextlib.contextmanager
def nx_server(folder: Path) -> Iterator[str]:
    """The nx-27017 wire server the tests use, started the same way; yields its base URL."""
    from tests.storage_fixtures import NxServer

    server = NxServer(folder / "nx-27017")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")
