"""vhod's benchmark: `python bench/run.py [--quick]` measures vhod and checks its speed targets.

It starts vhod as a real process (on SQLite, and on the nx-27017 MongoDB wire server when
that is installed), a baseline Tornado app and a fake VK ID, drives them from a separate
load process (wrk when installed, else bench/loadgen.py), all on 127.0.0.1, and writes a
JSON result, a Markdown table and a chart under bench/results/. A full run also copies the
table and chart to bench/latest.md and bench/latest.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))

import bcrypt  # noqa: E402  (after the project root is on the path, like the imports below)
import tornado  # noqa: E402

from bench.loadgen import LoadResult, LoadSpec  # noqa: E402
from core.tokens import ACCESS, TokenService  # noqa: E402
from storage import User, open_store  # noqa: E402
from storage.mongo import user_document  # noqa: E402  (what create_user writes)
from tests.processes import free_port  # noqa: E402

SECRET = "benchmark-only-secret-" + "0123456789" * 4
PASSWORD = "bench password"
DOMAIN = "bench.example"
BIG_LIMIT = "1000000000"  # per-address and login-failure limits: out of the way of the load
SQLITE, MONGO = "sqlite", "mongodb"
STORE_TITLES = {SQLITE: "SQLite", MONGO: "MongoDB wire (nx-27017)", "tornado": "plain Tornado"}
MEASURES = (
    "baseline",
    "validate/access",
    "validate/refresh",
    "login/email",
    "registration",
    "provider login (vk)",
)
LOGIN_STRIDE = 100_003  # a prime: logins at the large size read users all over the table


@dataclass
class Options:
    quick: bool
    loadgen: str  # "wrk" or "python"
    stores: list[str]
    duration: float  # seconds per throughput load
    login_duration: float  # seconds per load whose requests each cost one bcrypt
    rounds: int  # baseline / validate rounds, interleaved so that drift hits both alike
    connections: int
    bcrypt_rounds: int
    small_users: int
    large_users: int
    mongo_load_seconds: float  # time budget for the bulk load on the wire server
    memory_requests: int
    token_pool: int
    results: Path
    chart: bool | None  # None: when matplotlib is installed (quick runs only)
    latest: bool
    strict: bool


@dataclass
class Row:
    measure: str
    store: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


@dataclass
class Target:
    name: str
    rule: str
    ratio: float | None
    passed: bool
    detail: str

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "MISS"


@dataclass
class Report:
    machine: dict[str, Any]
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    elapsed_s: float = 0.0


# --- processes ---------------------------------------------------------------------------


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


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


class Child:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(
        self, name: str, command: list[str], folder: Path, port: int = 0, **popen: Any
    ) -> None:
        self.name = name
        self.port = port
        self.log = folder / f"{name}.log"
        with self.log.open("wb") as out:
            popen.setdefault("stdout", out)
            self.process = subprocess.Popen(command, stderr=out, **popen)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def vhod_env(data_dir: Path, storage_url: str, rounds: int, vk: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VHOD_")}
    env.update(
        VHOD_JWT__SECRET=SECRET,
        VHOD_LOGGING__LEVEL="warning",  # the access log would otherwise dominate
        VHOD_LIMITS__PER_IP_PER_MINUTE=BIG_LIMIT,
        VHOD_LIMITS__LOGIN_FAILURES=BIG_LIMIT,
        VHOD_PASSWORDS__BCRYPT_ROUNDS=str(rounds),
        VHOD_SERVER__DATA_DIR=str(data_dir),
        VHOD_STORAGE__URL=storage_url,
    )
    for key in ("client_id", "authorize_url", "token_url", "userinfo_url"):
        env[f"VHOD_PROVIDERS__VK__{key.upper()}"] = vk[key]
    return env


def start_vhod(
    folder: Path, name: str, storage_url: str, options: Options, vk: dict[str, str]
) -> Child:
    port = free_port()
    data = folder / f"{name}-data"
    data.mkdir(parents=True, exist_ok=True)
    child = Child(
        name,
        [sys.executable, str(ROOT / "server.py"), "--port", str(port)],
        folder,
        port,
        cwd=folder,  # no config.yaml there: defaults plus the environment below
        env=vhod_env(data, storage_url, options.bcrypt_rounds, vk),
    )

    def ready() -> bool:
        if not child.alive():
            raise RuntimeError(f"vhod ({name}) exited: {child.tail()}")
        return http(port, "GET", "/readyz")[0] == 200

    wait_until(ready, 60, f"vhod ({name})")
    return child


def start_baseline(folder: Path) -> Child:
    port = free_port()
    command = [sys.executable, str(BENCH / "baseline.py"), "--port", str(port)]
    child = Child("baseline", command, folder, port)
    wait_until(lambda: _accepts(port) or _died(child), 30, "the baseline")
    return child


def start_fake_vk(folder: Path) -> tuple[Child, dict[str, Any]]:
    child = Child(
        "fake-vk",
        [sys.executable, str(BENCH / "fake_provider.py")],
        folder,
        stdout=subprocess.PIPE,
    )
    assert child.process.stdout is not None
    line = child.process.stdout.readline()
    if not line:
        raise RuntimeError(f"the fake VK did not start: {child.tail()}")
    return child, json.loads(line)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _died(child: Child) -> bool:
    if not child.alive():
        raise RuntimeError(f"{child.name} exited: {child.tail()}")
    return False


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


# --- load ----------------------------------------------------------------------------------


class Load:
    """One load generator run in its own process: wrk with a Lua script, or bench/loadgen.py."""

    def __init__(self, spec: LoadSpec, tool: str) -> None:
        self.spec = spec
        self.tool = tool
        if tool == "wrk":
            command, env = wrk_command(spec)
        else:
            command = [sys.executable, str(BENCH / "loadgen.py"), json.dumps(asdict(spec))]
            env = dict(os.environ)
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def result(self) -> LoadResult:
        out, err = self.process.communicate(timeout=self.spec.duration + 120)
        if self.process.returncode != 0:
            raise RuntimeError(f"{self.tool} failed ({self.process.returncode}): {err}{out}")
        if self.tool == "python":
            data = json.loads(out.strip().splitlines()[-1])
            return LoadResult(**data)
        line = next((x for x in out.splitlines() if x.startswith("BENCH_RESULT ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result: {err}{out}")
        raw = json.loads(line.removeprefix("BENCH_RESULT "))
        seconds = raw["duration_us"] / 1e6
        return LoadResult(
            requests=raw["requests"],
            duration=round(seconds, 3),
            rps=round(raw["requests"] / seconds, 2) if seconds else 0.0,
            p50_ms=raw["p50_us"] / 1000,
            p99_ms=raw["p99_us"] / 1000,
            errors=raw["non2xx"] + raw["socket_errors"],
            statuses={},
            tool="wrk",
        )


def wrk_command(spec: LoadSpec) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    env.update(
        BENCH_THREADS="1",
        BENCH_PREFIX=spec.user_prefix,
        BENCH_START=str(spec.start),
        BENCH_USERS=str(spec.users),
        BENCH_STRIDE=str(spec.stride),
        BENCH_PASSWORD=spec.password,
        BENCH_METHOD=spec.method,
        BENCH_BODY=spec.body or "",
        BENCH_TOKENS=spec.tokens_file or "",
    )
    script = {"static": "static.lua", "register": "register.lua", "login": "login.lua"}.get(
        spec.body_kind, "tokens.lua"
    )
    command = ["wrk", "-t1", f"-c{spec.connections}", f"-d{max(1, round(spec.duration))}s"]
    command += ["--timeout", "30s", "-s", str(BENCH / script)]
    for name, value in spec.headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(f"http://{spec.host}:{spec.port}{spec.path}")
    return command, env


def drive(spec: LoadSpec, tool: str) -> LoadResult:
    return Load(spec, tool).result()


def combine(results: list[LoadResult]) -> LoadResult:
    """Several runs of one load as one: total rate, median percentiles."""
    requests = sum(r.requests for r in results)
    seconds = sum(r.duration for r in results)
    return LoadResult(
        requests=requests,
        duration=round(seconds, 3),
        rps=round(requests / seconds, 2) if seconds else 0.0,
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
        statuses={},
        tool=results[0].tool,
    )


# --- data ----------------------------------------------------------------------------------


def user_email(prefix: str, n: int) -> str:
    return f"{prefix}{n}@{DOMAIN}"


def bulk_users(prefix: str, start: int, stop: int, password_hash: str) -> Iterator[User]:
    """Users `start`..`stop-1` as the store keeps them (normal email and E.164 phone)."""
    for n in range(start, stop):
        yield User(
            id=uuid.uuid4().hex,
            email=user_email(prefix, n),
            phone=f"+79{n:09d}",
            password_hash=password_hash,
            created_at=time.time(),
        )


def load_sqlite(path: Path, prefix: str, start: int, stop: int, password_hash: str) -> float:
    """Insert users straight into vhod's SQLite file; returns the seconds it took."""
    began = time.perf_counter()
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout = 30000")
        batch: list[tuple[Any, ...]] = []

        def flush() -> None:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO users (id, email, phone, password_hash, profile, created_at)"
                " VALUES (?, ?, ?, ?, '{}', ?)",
                batch,
            )
            db.execute("COMMIT")
            batch.clear()

        for user in bulk_users(prefix, start, stop, password_hash):
            batch.append((user.id, user.email, user.phone, user.password_hash, user.created_at))
            if len(batch) >= 50_000:
                flush()
        if batch:
            flush()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return time.perf_counter() - began


def load_mongo(
    url: str, prefix: str, start: int, stop: int, password_hash: str, budget: float
) -> tuple[int, float]:
    """insert_many straight into the users collection, within `budget` seconds.

    Returns how many users are stored in all (start + inserted) and the seconds it took."""
    from pymongo import MongoClient

    began = time.perf_counter()
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    stored = start
    try:
        users = client.get_default_database()["users"]
        batch: list[dict[str, Any]] = []
        for user in bulk_users(prefix, start, stop, password_hash):
            batch.append(user_document(user))
            if len(batch) >= 10_000:
                users.insert_many(batch, ordered=False)
                stored += len(batch)
                batch.clear()
                if time.perf_counter() - began > budget:
                    break
        if batch:
            users.insert_many(batch, ordered=False)
            stored += len(batch)
    finally:
        client.close()
    return stored, time.perf_counter() - began


def lookup_median_us(storage_url: str, emails: list[str]) -> float:
    """The median time of the store's own find_user_by_email, from this process."""

    async def measure() -> float:
        store = await open_store(storage_url)
        try:
            times = []
            for email in emails:
                began = time.perf_counter()
                found = await store.find_user_by_email(email)
                times.append(time.perf_counter() - began)
                if found is None:
                    raise RuntimeError(f"bulk-loaded user {email} is missing")
            return statistics.median(times) * 1e6
        finally:
            await store.close()

    return asyncio.run(measure())


def mint_tokens(count: int, path: Path) -> None:
    """Valid access tokens for the memory run, signed with the benchmark's secret."""
    tokens = TokenService(SECRET.encode())
    with path.open("w", encoding="ascii") as out:
        for n in range(count):
            out.write(tokens.issue(ACCESS, uuid.uuid4().hex, user_email("m", n)).token + "\n")


# --- the run -------------------------------------------------------------------------------


def measure_hash_seconds(rounds: int, samples: int = 5) -> float:
    """One bcrypt check at the configured cost, on an idle machine: the median of a few."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds))
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        bcrypt.checkpw(PASSWORD.encode(), hashed)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "tornado": tornado.version,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


class Bench:
    """One benchmark run: the servers, the phases, the numbers."""

    def __init__(self, options: Options, folder: Path) -> None:
        self.o = options
        self.folder = folder
        self.report = Report(
            machine={**machine(), "load generator": self.tool_name()},
            settings={
                k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()
            },
        )
        self.hash_seconds = 0.0
        self.vk_token = ""

    def tool_name(self) -> str:
        if self.o.loadgen == "python":
            return "bench/loadgen.py (asyncio, one process)"
        version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
        return (version.split("[")[0].strip() or "wrk") + ", 1 thread"

    def spec(self, port: int, path: str, **kwargs: Any) -> LoadSpec:
        kwargs.setdefault("connections", self.o.connections)
        kwargs.setdefault("duration", self.o.duration)
        return LoadSpec(port=port, path=path, **kwargs)

    def add_row(self, measure: str, store: str, result: LoadResult) -> None:
        self.report.rows.append(
            Row(
                measure,
                store,
                round(result.rps, 1),
                round(result.p50_ms, 2),
                round(result.p99_ms, 2),
                result.requests,
                result.errors,
            )
        )
        print(
            f"  {measure:<22} {STORE_TITLES.get(store, store):<24} {result.rps:9.1f} req/s"
            f"  p50 {result.p50_ms:8.2f} ms  p99 {result.p99_ms:8.2f} ms"
            f"  ({result.requests} requests, {result.errors} errors)",
            flush=True,
        )

    def row(self, measure: str, store: str) -> Row | None:
        return next(
            (r for r in self.report.rows if r.measure == measure and r.store == store), None
        )

    def run(self) -> Report:
        began = time.perf_counter()
        print(f"vhod benchmark{' (quick)' if self.o.quick else ''}: {self.report.machine}")
        self.hash_seconds = measure_hash_seconds(self.o.bcrypt_rounds)
        cores = os.cpu_count() or 1
        self.report.extra["hash"] = {
            "bcrypt_rounds": self.o.bcrypt_rounds,
            "one_hash_ms": round(self.hash_seconds * 1000, 2),
            "cores": cores,
            "limit_per_s": round(cores / self.hash_seconds, 2),
        }
        print(
            f"  one bcrypt check at cost {self.o.bcrypt_rounds}: "
            f"{self.hash_seconds * 1000:.1f} ms → hashing limit {cores / self.hash_seconds:.1f}/s"
        )
        fake, vk = start_fake_vk(self.folder)
        self.vk_token = vk["token"]
        baseline = start_baseline(self.folder)
        try:
            for store in self.o.stores:
                self.run_store(store, baseline.port, vk)
        finally:
            baseline.stop()
            fake.stop()
        self.judge()
        self.report.elapsed_s = round(time.perf_counter() - began, 1)
        return self.report

    def run_store(self, store: str, baseline_port: int, vk: dict[str, Any]) -> None:
        print(f"{STORE_TITLES[store]}:", flush=True)
        with contextlib.ExitStack() as stack:
            if store == SQLITE:
                db_path = self.folder / "sqlite" / "vhod.db"
                url = f"sqlite:///{db_path}"
            else:
                url = stack.enter_context(nx_server(self.folder)) + "vhod_bench"
            vhod = start_vhod(self.folder, f"vhod-{store}", url, self.o, vk["section"])
            stack.callback(vhod.stop)
            port = vhod.port
            password_hash = bcrypt.hashpw(
                PASSWORD.encode(), bcrypt.gensalt(self.o.bcrypt_rounds)
            ).decode()

            def bulk(start: int, stop: int) -> tuple[int, float]:
                if store == SQLITE:
                    return stop, load_sqlite(db_path, "u", start, stop, password_hash)
                budget = self.o.mongo_load_seconds
                return load_mongo(url, "u", start, stop, password_hash, budget)

            small, seconds = bulk(0, self.o.small_users)
            print(f"  bulk-loaded {small:,} users in {seconds:.1f} s", flush=True)
            p50_small = self.login_p50(port, small, store, small)
            lookup_small = lookup_median_us(url, self.sample_emails(small))

            status, pair = http(
                port,
                "POST",
                "/authorization/registration",
                {
                    "phone_number": "+7 925 000-00-01",
                    "email": "main@bench.example",
                    "hash_password": PASSWORD,
                },
            )
            if status != 200:
                raise RuntimeError(f"registration answered {status}: {pair}")
            status, answer = http(port, "GET", f"/vk/registration?access_token={self.vk_token}")
            if status != 200:
                raise RuntimeError(f"VK registration answered {status}: {answer}")

            self.throughput(store, port, baseline_port, pair)
            if store == SQLITE:
                self.saturation(port)
                self.memory(vhod, port)

            large, seconds = bulk(small, self.o.large_users)
            print(f"  bulk-loaded up to {large:,} users in {seconds:.1f} s", flush=True)
            p50_large = self.login_p50(port, large, store, large)
            lookup_large = lookup_median_us(url, self.sample_emails(large))
            self.report.extra.setdefault("users", {})[store] = {
                "small": small,
                "large": large,
                "requested_large": self.o.large_users,
                "bulk_load_s": round(seconds, 1),
                "login_p50_small_ms": p50_small,
                "login_p50_large_ms": p50_large,
                "lookup_median_small_us": round(lookup_small, 1),
                "lookup_median_large_us": round(lookup_large, 1),
            }
            print(
                f"  store lookup by email, median: {lookup_small:.0f} µs at {small:,} users,"
                f" {lookup_large:.0f} µs at {large:,}",
                flush=True,
            )

    def sample_emails(self, users: int, count: int = 200) -> list[str]:
        return [user_email("u", n * LOGIN_STRIDE % users) for n in range(count)]

    def login_p50(self, port: int, users: int, store: str, label: int) -> float:
        """Login latency one at a time (no queueing), users spread over the whole table."""
        result = drive(
            self.spec(
                port,
                "/authorization/login/email",
                method="POST",
                body_kind="login",
                users=users,
                stride=LOGIN_STRIDE if users > LOGIN_STRIDE else 7,
                connections=1,
                duration=self.o.login_duration,
            ),
            self.o.loadgen,
        )
        self.add_row(f"login/email, 1 at a time, {label:,} users", store, result)
        if result.errors:
            raise RuntimeError(f"{result.errors} logins failed at {users:,} users ({store})")
        return result.p50_ms

    def throughput(self, store: str, port: int, baseline_port: int, pair: dict[str, str]) -> None:
        tool = self.o.loadgen
        access = self.spec(
            port, "/validate/jwt/access", headers={"Authorization": f"Bearer {pair['access']}"}
        )
        refresh = self.spec(
            port, "/validate/jwt/refresh", headers={"Authorization": f"Bearer {pair['refresh']}"}
        )
        rounds = self.o.rounds if store == SQLITE else 1
        runs: dict[str, list[LoadResult]] = {"baseline": [], "access": [], "refresh": []}
        for _ in range(rounds):
            if store == SQLITE:
                runs["baseline"].append(drive(replace(access, port=baseline_port), tool))
            runs["access"].append(drive(access, tool))
            runs["refresh"].append(drive(refresh, tool))
        if store == SQLITE:
            self.add_row("baseline", "tornado", combine(runs["baseline"]))
        self.add_row("validate/access", store, combine(runs["access"]))
        self.add_row("validate/refresh", store, combine(runs["refresh"]))
        hashing = {"connections": 2 * (os.cpu_count() or 1) + 4, "duration": self.o.login_duration}
        login = self.spec(
            port,
            "/authorization/login/email",
            method="POST",
            body_kind="login",
            users=self.o.small_users,
            stride=7,
            **hashing,
        )
        self.add_row("login/email", store, drive(login, tool))
        register = self.spec(
            port,
            "/authorization/registration",
            method="POST",
            body_kind="register",
            user_prefix=f"r-{store}-",
            **hashing,
        )
        self.add_row("registration", store, drive(register, tool))
        provider = self.spec(port, f"/vk/login?access_token={self.vk_token}")
        self.add_row("provider login (vk)", store, drive(provider, tool))

    def saturation(self, port: int) -> None:
        """validate/access latency, idle and while logins keep every hashing worker busy."""
        probe = self.spec(
            port,
            "/validate/jwt/access",
            body_kind="tokens",
            tokens_file=str(self.tokens_file(64)),
            connections=2,
        )
        idle = drive(probe, self.o.loadgen)
        logins = self.spec(
            port,
            "/authorization/login/email",
            method="POST",
            body_kind="login",
            users=self.o.small_users,
            stride=7,
            connections=2 * (os.cpu_count() or 1) + 4,
            duration=self.o.duration + 2,
        )
        background = Load(logins, self.o.loadgen)
        try:
            time.sleep(1.0)  # every hashing worker busy, the queue filled
            loaded = drive(probe, self.o.loadgen)
        finally:
            saturating = background.result()
        self.add_row("validate/access, idle, 2 conns", SQLITE, idle)
        self.add_row("validate/access, logins saturating", SQLITE, loaded)
        self.add_row("login/email, saturating", SQLITE, saturating)
        self.report.extra["saturation"] = {
            "idle_p99_ms": idle.p99_ms,
            "loaded_p99_ms": loaded.p99_ms,
            "login_rps_meanwhile": saturating.rps,
        }

    def tokens_file(self, count: int) -> Path:
        path = self.folder / f"tokens-{count}.txt"
        if not path.exists():
            mint_tokens(count, path)
        return path

    def memory(self, vhod: Child, port: int) -> None:
        """RSS of the vhod process across `memory_requests` validations, after a warm-up
        that fills the verified-token cache (more distinct tokens than it holds)."""
        spec = self.spec(
            port,
            "/validate/jwt/access",
            body_kind="tokens",
            tokens_file=str(self.tokens_file(self.o.token_pool)),
        )
        # Warm-up: every token of the pool once, so the bounded cache is full before the
        # first reading; then the requests whose effect on memory is measured.
        _, rate = self.requests_of(spec, self.o.token_pool, rate=1000.0)
        before = rss_kib(vhod.pid)
        runs, rate = self.requests_of(spec, self.o.memory_requests, rate)
        done = sum(r.requests for r in runs)
        after = rss_kib(vhod.pid)
        self.add_row("validate/access, memory run", SQLITE, combine(runs))
        self.report.extra["memory"] = {
            "requests": done,
            "distinct_tokens": self.o.token_pool,
            "rss_before_kib": before,
            "rss_after_kib": after,
        }
        print(f"  RSS {before:,} KiB → {after:,} KiB across {done:,} validations", flush=True)

    def requests_of(
        self, spec: LoadSpec, count: int, rate: float
    ) -> tuple[list[LoadResult], float]:
        """Loads of `spec` until at least `count` answers came back (wrk runs for a time,
        so its duration is worked out from the last rate seen)."""
        done, runs = 0, []
        while done < count:
            remaining = count - done
            seconds = min(60.0, max(1.0, 1.05 * remaining / rate))
            result = drive(replace(spec, duration=seconds, max_requests=remaining), self.o.loadgen)
            if result.requests == 0:
                raise RuntimeError("a memory run made no progress")
            runs.append(result)
            done += result.requests
            rate = max(result.rps, 1.0)
        return runs, rate

    def judge(self) -> None:
        targets = self.report.targets
        base = self.row("baseline", "tornado")
        access = self.row("validate/access", SQLITE)
        refresh = self.row("validate/refresh", SQLITE)
        login = self.row("login/email", SQLITE)
        if base and access and refresh:
            ratio = access.rps / base.rps
            targets.append(
                Target(
                    "validate/access throughput",
                    "≥ 0.9 × baseline",
                    ratio,
                    ratio >= 0.9,
                    f"{access.rps:.0f} vs {base.rps:.0f} req/s",
                )
            )
            ratio = refresh.rps / base.rps
            targets.append(
                Target(
                    "validate/refresh throughput",
                    "≥ 0.5 × baseline",
                    ratio,
                    ratio >= 0.5,
                    f"{refresh.rps:.0f} vs {base.rps:.0f} req/s",
                )
            )
        if login:
            limit = self.report.extra["hash"]["limit_per_s"]
            ratio = login.rps / limit
            targets.append(
                Target(
                    f"login throughput at bcrypt cost {self.o.bcrypt_rounds}",
                    "≥ 0.85 × hashing limit",
                    ratio,
                    ratio >= 0.85,
                    f"{login.rps:.2f}/s vs {limit:.2f}/s (cores ÷ one hash)",
                )
            )
        saturation = self.report.extra.get("saturation")
        if saturation:
            ratio = saturation["loaded_p99_ms"] / max(saturation["idle_p99_ms"], 1e-6)
            targets.append(
                Target(
                    "validate/access p99 while logins saturate hashing",
                    "≤ 3 × idle p99",
                    ratio,
                    ratio <= 3.0,
                    f"{saturation['loaded_p99_ms']:.2f} ms vs {saturation['idle_p99_ms']:.2f} ms",
                )
            )
        memory = self.report.extra.get("memory")
        if memory:
            ratio = memory["rss_after_kib"] / memory["rss_before_kib"]
            targets.append(
                Target(
                    f"RSS across {memory['requests']:,} validations",
                    "grows < 10 %",
                    ratio,
                    ratio < 1.10,
                    f"{memory['rss_before_kib']:,} → {memory['rss_after_kib']:,} KiB",
                )
            )
        for store, users in self.report.extra.get("users", {}).items():
            ratio = users["login_p50_large_ms"] / users["login_p50_small_ms"]
            short = (
                ""
                if users["large"] >= users["requested_large"]
                else (
                    f"; only {users['large']:,} of {users['requested_large']:,} loaded"
                    f" in the {self.o.mongo_load_seconds:.0f} s budget"
                )
            )
            targets.append(
                Target(
                    f"login p50, {users['large']:,} vs {users['small']:,} users"
                    f" ({STORE_TITLES[store]})",
                    "≤ 1.5 ×",
                    ratio,
                    ratio <= 1.5,
                    f"{users['login_p50_large_ms']:.1f} vs"
                    f" {users['login_p50_small_ms']:.1f} ms{short}",
                )
            )


# --- output --------------------------------------------------------------------------------


def markdown(report: Report, command: str) -> str:
    m = report.machine
    lines = [
        f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), {m['memory']}, {m['os']},"
        f" Python {m['python']}, Tornado {m['tornado']}; load from {m['load generator']}.",
        f"Command: `{command}` ({report.elapsed_s:.0f} s).",
        "",
        "| measure | server | req/s | p50 ms | p99 ms | requests | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in report.rows:
        lines.append(
            f"| {r.measure} | {STORE_TITLES.get(r.store, r.store)} | {r.rps:,.1f} |"
            f" {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.requests:,} | {r.errors:,} |"
        )
    h = report.extra.get("hash", {})
    if h:
        lines += [
            "",
            f"One bcrypt check at cost {h['bcrypt_rounds']}: {h['one_hash_ms']} ms, so the"
            f" hashing limit is {h['cores']} cores ÷ that = {h['limit_per_s']} logins/s.",
        ]
    for store, u in report.extra.get("users", {}).items():
        lines.append(
            f"{STORE_TITLES[store]}: store lookup by email, median {u['lookup_median_small_us']}"
            f" µs at {u['small']:,} users and {u['lookup_median_large_us']} µs at"
            f" {u['large']:,} (bulk load {u['bulk_load_s']} s)."
        )
    lines += ["", "| target | rule | ratio | verdict | measured |", "|---|---|---:|---|---|"]
    for t in report.targets:
        ratio = "-" if t.ratio is None else f"{t.ratio:.4f}"
        lines.append(f"| {t.name} | {t.rule} | {ratio} | {t.verdict} | {t.detail} |")
    return "\n".join(lines) + "\n"


def chart(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stores = [s for s in (SQLITE, MONGO) if any(r.store == s for r in report.rows)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), width_ratios=[3, 2])
    names = list(MEASURES)
    width = 0.8 / (len(stores) or 1)
    for i, store in enumerate(stores):
        values = []
        for name in names:
            row = next((r for r in report.rows if r.measure == name and r.store == store), None)
            if name == "baseline":
                row = next((r for r in report.rows if r.measure == name), None) if i == 0 else None
            values.append(row.rps if row else 0)
        xs = [n + (i - (len(stores) - 1) / 2) * width for n in range(len(names))]
        bars = left.bar(xs, values, width, label=STORE_TITLES[store])
        left.bar_label(bars, labels=[f"{v:,.0f}" if v else "" for v in values], fontsize=7)
    left.set_yscale("log")
    left.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    left.set_ylabel("requests per second (log scale)")
    left.set_title("Throughput")
    left.legend(fontsize=8)
    targets = [t for t in report.targets if t.ratio is not None]
    colours = ["tab:green" if t.passed else "tab:red" for t in targets]
    ys = range(len(targets))
    right.barh(ys, [t.ratio for t in targets], color=colours)
    right.set_yticks(ys, [f"{t.name}\n{t.rule}" for t in targets], fontsize=7)
    right.invert_yaxis()
    right.set_xlabel("measured ratio (green: PASS, red: MISS)")
    right.set_title("Targets")
    for y, t in zip(ys, targets, strict=True):
        right.annotate(
            f"{t.ratio:.4f}",
            (t.ratio, y),
            fontsize=7,
            va="center",
            xytext=(3, 0),
            textcoords="offset points",
        )
    m = report.machine
    fig.suptitle(
        f"vhod benchmark, {m['date']}: {m['cores']} cores, {m['cpu']}, Python {m['python']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(report: Report, options: Options, command: str) -> dict[str, Path]:
    options.results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = options.results / f"{stamp}{'-quick' if options.quick else ''}"
    paths = {"json": stem.with_suffix(".json"), "table": stem.with_suffix(".md")}
    data = asdict(report)
    for target, original in zip(data["targets"], report.targets, strict=True):
        target["verdict"] = original.verdict
    paths["json"].write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    table = markdown(report, command)
    paths["table"].write_text(table)
    want_chart = options.chart
    if want_chart is None:
        want_chart = importlib.util.find_spec("matplotlib") is not None
        if not want_chart:
            print("matplotlib is not installed: no chart (pip install -r bench/requirements.txt)")
    if want_chart:
        paths["chart"] = stem.with_suffix(".png")
        chart(report, paths["chart"])
    if options.latest:
        (BENCH / "latest.md").write_text(
            "# Latest benchmark\n\n![throughput and targets](latest.png)\n\n" + table
        )
        if "chart" in paths:
            shutil.copyfile(paths["chart"], BENCH / "latest.png")
    return paths


# --- command line --------------------------------------------------------------------------


def default_rounds() -> int:
    """The bcrypt cost vhod's own config.yaml sets (12 if it cannot be read)."""
    from core.config import ConfigError, load_config

    try:
        return load_config(ROOT / "config.yaml", environ={}).passwords.bcrypt_rounds
    except ConfigError:
        return 12


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short smoke run (seconds, small tables, cost 4); not written to bench/latest.*",
    )
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator (auto: wrk when installed)",
    )
    parser.add_argument(
        "--stores",
        default=None,
        help="comma-separated: sqlite,mongodb (default: both when nx-27017 is installed)",
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per load")
    parser.add_argument(
        "--bcrypt-rounds",
        type=int,
        default=None,
        help="bcrypt cost (default: config.yaml's; quick: 4)",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=None,
        help="the large user count (default 1,000,000; quick 5,000)",
    )
    parser.add_argument(
        "--mongo-load-seconds",
        type=float,
        default=None,
        help="time budget for the bulk load on the wire server (default 120)",
    )
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    chart_group = parser.add_mutually_exclusive_group()
    chart_group.add_argument("--chart", dest="chart", action="store_true", default=None)
    chart_group.add_argument("--no-chart", dest="chart", action="store_false")
    parser.add_argument(
        "--latest",
        dest="latest",
        action="store_true",
        default=None,
        help="copy the table and chart to bench/latest.* (default: full runs)",
    )
    parser.add_argument("--no-latest", dest="latest", action="store_false")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    quick = args.quick
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    elif loadgen == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), or use --loadgen python")
    if args.stores:
        stores = [s.strip() for s in args.stores.split(",") if s.strip()]
        unknown = set(stores) - {SQLITE, MONGO}
        if unknown:
            parser.error(f"unknown stores: {', '.join(sorted(unknown))}")
    else:
        stores = [SQLITE] + ([MONGO] if importlib.util.find_spec("nx_27017") else [])
    chart_wanted = args.chart
    if chart_wanted is None and not quick:
        chart_wanted = True  # a full run always draws its chart
    if chart_wanted and importlib.util.find_spec("matplotlib") is None:
        parser.error(
            "the chart needs matplotlib: pip install -r bench/requirements.txt (or --no-chart)"
        )
    duration = args.duration or (1.0 if quick else 5.0)
    return Options(
        quick=quick,
        loadgen=loadgen,
        stores=stores,
        duration=duration,
        login_duration=duration if quick else 2 * duration,
        rounds=1 if quick else 4,
        connections=16,
        bcrypt_rounds=args.bcrypt_rounds or (4 if quick else default_rounds()),
        small_users=200 if quick else 1_000,
        large_users=args.users or (5_000 if quick else 1_000_000),
        mongo_load_seconds=args.mongo_load_seconds or (30.0 if quick else 120.0),
        memory_requests=2_000 if quick else 100_000,
        token_pool=300 if quick else 20_000,
        results=args.results,
        chart=chart_wanted,
        latest=(not quick) if args.latest is None else args.latest,
        strict=args.strict,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    command = "python bench/run.py" + (" --quick" if options.quick else "")
    with tempfile.TemporaryDirectory(prefix="vhod-bench-") as tmp:
        bench = Bench(options, Path(tmp))
        report = bench.run()
    paths = write_outputs(report, options, command)
    print()
    for t in report.targets:
        ratio = "-" if t.ratio is None else f"{t.ratio:.4f}"
        print(f"{t.verdict}  {t.name}: {ratio} ({t.rule}; {t.detail})")
    print(
        f"\n{len(report.rows)} measurements in {report.elapsed_s:.0f} s; written:"
        f" {', '.join(str(p) for p in paths.values())}"
    )
    if options.latest:
        print("copied to bench/latest.md" + (" and bench/latest.png" if "chart" in paths else ""))
    return 1 if options.strict and not all(t.passed for t in report.targets) else 0


if __name__ == "__main__":
    sys.exit(main())
