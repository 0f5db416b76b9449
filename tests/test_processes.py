"""`server.processes: 2` as an operator runs it: one port, two forked workers on one store
(a SQLite file, the MongoDB wire server). Both answer; a token or a logout of one holds on
the other; /metrics adds both up; a killed worker comes back, within a bound; SIGTERM
drains every worker and the server exits 0. Which worker answered is read from the access
log, whose lines name it (`worker=N`), by a request id the test chose."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pymongo import MongoClient

from tests.processes import ROOT, Server, clean_env
from tests.storage_fixtures import with_database

SECRET = "one-secret-for-both-workers-of-this-test"
WITHIN_SECONDS = 5.0  # a logout is seen everywhere within the revocation interval and more
BASE_ENV = {
    "VHOD_SERVER__PROCESSES": "2",
    "VHOD_PASSWORDS__ALGORITHM": "bcrypt",
    "VHOD_PASSWORDS__BCRYPT_ROUNDS": "4",
    "VHOD_LIMITS__HASH_WORKERS": "1",
    "VHOD_LIMITS__PER_IP_PER_MINUTE": "100000",
}


def start(tmp_path: Path, **env: str) -> Server:
    """vhod with two workers; returns once both said they listen."""
    settings = {**BASE_ENV, "VHOD_SERVER__DATA_DIR": str(tmp_path / "data"), **env}
    settings.setdefault("VHOD_STORAGE__URL", f"sqlite:///{tmp_path / 'data' / 'vhod.db'}")
    if "VHOD_JWT__KEY_ENCRYPTION_KEY" not in settings:  # SQLite: HS256 with a set secret
        settings.setdefault("VHOD_JWT__SECRET", SECRET)
    server = Server(tmp_path, **settings)
    server.wait_until(lambda: len(listening(server)) == 2, 60, "two workers")
    return server


def listening(server: Server) -> set[str]:
    return set(re.findall(r"worker=(\d+) \[-\] vhod listening on", server.log()))


def worker_pids(server: Server) -> list[int]:
    """The supervisor's children (its workers), from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == server.pid:
                pids.append(int(entry.name))
    return sorted(pids)


def call(
    server: Server, path: str, body: dict[str, Any] | None = None, access: str | None = None
) -> tuple[int, Any, str]:
    """One request on a new connection, with a request id of the test's; the status, the
    answer and that id."""
    rid = uuid.uuid4().hex
    headers = {"Content-Type": "application/json", "X-Request-Id": rid}
    if access is not None:
        headers["Authorization"] = f"Bearer {access}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url(path), data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    answer = json.loads(raw) if raw.startswith((b"{", b"[", b"t", b"f", b"n")) else raw
    return status, answer, rid


def workers_of(server: Server, rids: list[str]) -> dict[str, str]:
    """The worker that answered each request id, from the access log (written within 50 ms)."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + 10
    while len(found) < len(rids) and time.monotonic() < deadline:
        log = server.log()
        for rid in rids:
            match = re.search(rf"vhod\.access worker=(\d+) \[{rid}\]", log)
            if match:
                found[rid] = match.group(1)
        time.sleep(0.05)
    assert len(found) == len(rids), f"{len(rids) - len(found)} requests not in the log"
    return found


def until_both_workers(server: Server, path: str, **kwargs: Any) -> list[tuple[Any, str]]:
    """Repeat a request until each worker answered it at least once: (answer, worker) each."""
    answers: list[tuple[Any, str]] = []
    for _ in range(100):
        batch = [call(server, path, **kwargs) for _ in range(4)]
        assert all(status == 200 for status, _, _ in batch), batch
        workers = workers_of(server, [rid for _, _, rid in batch])
        answers += [(answer, workers[rid]) for _, answer, rid in batch]
        if {w for _, w in answers} == {"1", "2"}:
            return answers
    raise AssertionError(f"one worker answered all {len(answers)} requests")


@pytest.fixture(params=["sqlite", "mongo-wire"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"VHOD_STORAGE__URL": f"sqlite:///{tmp_path / 'shared' / 'vhod.db'}"}
        return
    url = with_database(request.getfixturevalue("mongo_url"), f"vhod_procs_{uuid.uuid4().hex[:8]}")
    # MongoDB: ES256, the signing keys in the store, sealed with one key-encryption key.
    yield {"VHOD_STORAGE__URL": url, "VHOD_JWT__KEY_ENCRYPTION_KEY": SECRET}
    client: MongoClient[dict[str, Any]] = MongoClient(url)
    client.drop_database(urlsplit(url).path.strip("/"))
    client.close()


def test_both_workers_serve_one_store_tokens_and_logouts(tmp_path, store_env):
    server = start(tmp_path, **store_env)
    try:
        user = {"phone_number": "+79161234567", "email": "a@example.com", "hash_password": "p" * 8}
        status, pair, rid = call(server, "/authorization/registration", user)
        assert status == 200, pair
        (issuer,) = workers_of(server, [rid]).values()

        # The token one worker issued checks true on both, the other one included.
        checks = until_both_workers(server, "/validate/jwt/access", body={"access": pair["access"]})
        assert all(answer is True for answer, _ in checks), checks
        assert {w for _, w in checks} - {issuer}

        # Request ids stay unique across the forked workers.
        ids = re.findall(r"vhod\.access worker=\d+ \[([0-9a-f]{32})\]", server.log())
        assert len(ids) == len(set(ids))

        status, answer, rid = call(server, "/authorization/logout", {"refresh": pair["refresh"]})
        assert (status, answer) == (200, True)
        (logged_out_on,) = workers_of(server, [rid]).values()
        # Both workers refuse the ended session within the revocation interval.
        deadline = time.monotonic() + WITHIN_SECONDS
        refused_by: set[str] = set()
        while refused_by != {"1", "2"}:
            assert time.monotonic() < deadline, f"only {refused_by} refused it after 5 s"
            batch = [
                call(server, "/validate/jwt/access", {"access": pair["access"]}) for _ in range(4)
            ]
            workers = workers_of(server, [r for _, _, r in batch])
            refused_by |= {workers[r] for _, answer, r in batch if answer is False}
        assert refused_by - {logged_out_on}
    finally:
        assert server.stop() == 0


def metric(server: Server, name: str, labels: str = "") -> float:
    with urllib.request.urlopen(server.url("/metrics"), timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + ("{" if labels else " ")) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_add_up_every_worker(tmp_path, store_env):
    server = start(tmp_path, **store_env)
    try:
        answered = until_both_workers(server, "/healthz")
        for n in range(3):  # a library counter (prometheus_client's multiprocess files)
            user = {"phone_number": f"+7916123450{n}", "email": f"{n}@example.com"}
            status, _, _ = call(
                server, "/authorization/registration", {**user, "hash_password": "p" * 8}
            )
            assert status == 200
        healthz = 'route="/healthz"'
        deadline = time.monotonic() + 10
        while metric(server, "vhod_http_requests_total", healthz) != len(answered):
            assert time.monotonic() < deadline, metric(server, "vhod_http_requests_total", healthz)
            time.sleep(0.2)
        issued = metric(server, "vhod_tokens_issued_total", 'kind="access_token"')
        assert issued == 3
        counted = metric(server, "vhod_http_request_duration_seconds_count", healthz)
        assert counted == len(answered)
    finally:
        assert server.stop() == 0


def test_a_killed_worker_is_restarted_and_the_bound_stops_the_server(tmp_path, store_env):
    server = start(tmp_path, **store_env)
    try:
        first = worker_pids(server)
        assert len(first) == 2
        os.kill(first[0], signal.SIGKILL)
        # New connections meanwhile are all answered: those the kernel hands to the dead
        # worker's socket (the supervisor keeps it open) wait there for the replacement,
        # which must take that very socket over, or they would wait for ever.
        assert [call(server, "/healthz")[0] for _ in range(8)] == [200] * 8
        server.wait_until(lambda: "restarting it" in server.log(), 30, "the supervisor")
        server.wait_until(lambda: len(worker_pids(server)) == 2, 30, "the supervisor")
        server.wait_until(
            lambda: len(re.findall("vhod listening on", server.log())) == 3, 30, "a new worker"
        )
        assert first[0] not in worker_pids(server)
        until_both_workers(server, "/healthz")  # the replacement answers too
        assert "died: killed by SIGKILL; restarting it" in server.log()

        # Two restarts a minute for two workers: the second is allowed, the third death
        # stops vhod with exit 1.
        second = worker_pids(server)[0]
        os.kill(second, signal.SIGKILL)
        server.wait_until(
            lambda: (
                server.log().count("restarting it") == 2
                and len(worker_pids(server)) == 2
                and second not in worker_pids(server)
            ),
            30,
            "the supervisor",
        )
        os.kill(worker_pids(server)[0], signal.SIGKILL)
        code = server.process.wait(timeout=120)
    finally:
        server.stop()
    assert code == 1
    assert (
        len(re.findall("beyond the bound of 2 restarts a minute: stopping vhod", server.log())) == 1
    )
    assert worker_pids(server) == []


def test_sigterm_drains_in_flight_requests_on_every_worker(tmp_path, store_env):
    # One hashing thread per worker and slow hashes: of four registrations, some wait.
    server = start(tmp_path, VHOD_PASSWORDS__BCRYPT_ROUNDS="12", **store_env)
    answers: list[tuple[int, Any, str]] = []

    def register(n: int) -> None:
        user = {"phone_number": f"+7916123451{n}", "email": f"r{n}@example.com"}
        answers.append(
            call(server, "/authorization/registration", {**user, "hash_password": "p" * 8})
        )

    threads = [threading.Thread(target=register, args=(n,)) for n in range(4)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while metric(server, "vhod_hash_queue_depth") < 1:
            assert time.monotonic() < deadline, "no registration ever waited for a hash"
            assert len(answers) < 4, f"all finished before the signal: {answers}"
            time.sleep(0.01)
        server.terminate()
        server.wait_until(
            lambda: server.log().count("shutting down: no new connections") == 2, 60, "vhod"
        )
        # Nobody keeps the port open any more: a new connection is refused, not queued.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
        for thread in threads:
            thread.join(120)
        assert [status for status, _, _ in answers] == [200] * 4, answers
    finally:
        code = server.stop(timeout=120)
    assert code == 0
    waited = [int(n) for n in re.findall(r"waiting for (\d+) in flight", server.log())]
    assert len(waited) == 2 and sum(waited) >= 1, server.log()
    assert len(re.findall(r"worker=0 .* worker \d \(pid \d+\) stopped: exit 0", server.log())) == 2


def test_workers_stop_when_the_supervisor_is_killed(tmp_path):
    server = start(tmp_path)
    try:
        pids = worker_pids(server)
        assert len(pids) == 2
        server.process.kill()  # SIGKILL: nobody forwards a SIGTERM
        server.process.wait(timeout=10)
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() and not zombie(pid) for pid in pids):
            assert time.monotonic() < deadline, "workers outlived their supervisor"
            time.sleep(0.1)
    finally:
        server.stop()
    assert server.log().count("is gone: stopping this worker") == 2


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def listening_sockets(port: int) -> int:
    """How many sockets listen on 127.0.0.1:`port` (/proc/net/tcp, state 0A)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    wanted = f"0100007F:{port:04X}"
    return sum(1 for row in rows if row.split()[1] == wanted and row.split()[3] == "0A")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads on Linux")
def test_each_worker_listens_on_its_own_socket_and_the_port_stays_exclusive(tmp_path):
    server = start(tmp_path)
    try:
        # One socket a worker, so the kernel spreads connections; on one shared socket the
        # first worker to wake takes a whole burst of keep-alive connections.
        assert listening_sockets(server.port) == 2
        connections = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(24)]
        rids = [uuid.uuid4().hex for _ in connections]
        for conn, rid in zip(connections, rids, strict=True):
            request = f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: {rid}\r\n\r\n"
            conn.sendall(request.encode())
        for conn in connections:
            assert conn.recv(4096).startswith(b"HTTP/1.1 200")
            conn.close()
        answered = list(workers_of(server, rids).values())
        assert min(answered.count("1"), answered.count("2")) >= 3, answered
        # Another vhod on the port is refused, as with one process, whatever its processes.
        for processes in ("1", "2"):
            other = tmp_path / f"other-{processes}"
            env = {**BASE_ENV, "VHOD_SERVER__PROCESSES": processes, "VHOD_JWT__SECRET": SECRET}
            env["VHOD_SERVER__DATA_DIR"] = str(other / "data")
            env["VHOD_STORAGE__URL"] = f"sqlite:///{other / 'vhod.db'}"
            result = subprocess.run(
                [sys.executable, str(ROOT / "server.py"), "--port", str(server.port)],
                cwd=tmp_path,
                env=clean_env(**env),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 1, result.stderr
            assert result.stderr.strip().splitlines()[-1] == (
                f"vhod: cannot listen on 127.0.0.1:{server.port}: address already in use"
            )
        assert listening_sockets(server.port) == 2
    finally:
        server.stop()
