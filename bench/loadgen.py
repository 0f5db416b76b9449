"""An asyncio HTTP/1.1 load generator: keep-alive connections, bounded in time, used without wrk.

`python bench/loadgen.py '<spec as JSON>'` runs one load and prints its result as JSON.
Every connection sends its next request as soon as the answer to the last one is read
(a closed loop, as wrk does), until the duration or the request budget runs out.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

# "static": the same request every time; "register": a new user each time; "login": the next
# stored user; "tokens": the next token of a file, in an Authorization header; "code_send":
# a sign-in code to a new phone number each time; "bodies": the next JSON body of a file
# (one a line), each once (single-use codes: a load of them stops at max_requests).
BODY_KINDS = ("static", "register", "login", "tokens", "code_send", "bodies")


@dataclass
class LoadSpec:
    """One load: what to send, to where, on how many connections, for how long."""

    port: int
    path: str
    method: str = "GET"
    host: str = "127.0.0.1"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # static body (JSON)
    body_kind: str = "static"
    users: int = 1000  # login: cycle through u0..u{users-1}
    stride: int = 1  # login: user number n * stride % users, to spread over a large table
    user_prefix: str = "u"  # login: emails {prefix}{i}@bench.example; register: unique prefix
    start: int = 0  # register: the first number, so that two loads on one store never collide
    password: str = "bench password"
    connections: int = 16
    duration: float = 5.0
    max_requests: int | None = None  # stop early once this many answers came back
    tokens_file: str | None = None  # tokens: one token a line


@dataclass
class LoadResult:
    requests: int
    duration: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # answers that were not 2xx, plus broken connections
    statuses: dict[str, int]
    tool: str = "loadgen"


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of already sorted values, nearest-rank."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def registration_body(prefix: str, n: int) -> str:
    """A registration no one made before: the email and the phone number carry `n`."""
    return json.dumps(
        {
            "phone_number": f"+7 916 {n % 10_000_000:07d}",
            "email": f"{prefix}{n}@bench.example",
            "hash_password": "bench password",
        }
    )


def code_send_body(n: int) -> str:
    """A sign-in code to a number no other request of the load asked for."""
    return json.dumps({"phone_number": f"+7 925 {n % 10_000_000:07d}"})


def login_body(prefix: str, n: int, users: int, password: str, stride: int = 1) -> str:
    email = f"{prefix}{n * stride % users}@bench.example"
    return json.dumps({"email": email, "hash_password": password})


class _Requests:
    """Makes the request bytes each connection sends next."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.counter = itertools.count(spec.start)
        lines = [f"{spec.method} {spec.path} HTTP/1.1", f"Host: {spec.host}:{spec.port}"]
        lines += [f"{name}: {value}" for name, value in spec.headers.items()]
        self.head = "\r\n".join(lines)
        self.static = self._encode(spec.body) if spec.body_kind == "static" else b""
        self.tokens: list[str] = []
        if spec.body_kind in ("tokens", "bodies"):
            if not spec.tokens_file:
                raise ValueError(f"body_kind {spec.body_kind!r} needs tokens_file")
            with open(spec.tokens_file, encoding="ascii") as lines:
                self.tokens = [line.strip() for line in lines if line.strip()]

    def _encode(self, body: str | None, header: str = "") -> bytes:
        if body is None:
            return (self.head + header + "\r\n\r\n").encode()
        data = body.encode()
        head = f"{self.head}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}"
        return (head + "\r\n\r\n").encode() + data

    def next(self) -> bytes:
        if self.spec.body_kind == "static":
            return self.static
        n = next(self.counter)
        spec = self.spec
        if spec.body_kind == "register":
            return self._encode(registration_body(spec.user_prefix, n))
        if spec.body_kind == "tokens":
            token = self.tokens[n % len(self.tokens)]
            return self._encode(None, f"\r\nAuthorization: Bearer {token}")
        if spec.body_kind == "code_send":
            return self._encode(code_send_body(n))
        if spec.body_kind == "bodies":
            return self._encode(self.tokens[n % len(self.tokens)])
        return self._encode(login_body(spec.user_prefix, n, spec.users, spec.password, spec.stride))


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status and body of one HTTP/1.1 answer with a Content-Length (as vhod sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


async def run_load(spec: LoadSpec) -> LoadResult:
    """Drive `spec` and measure it; never runs past its duration (plus one answer's wait)."""
    if spec.body_kind not in BODY_KINDS:
        raise ValueError(f"body_kind must be one of {BODY_KINDS}")
    requests = _Requests(spec)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    broken = 0
    start = time.perf_counter()
    deadline = start + spec.duration

    sent = 0

    def budget_left() -> bool:
        # Counted when sent, not when answered: the connections in flight must not send
        # past the budget (a load of single-use codes sends each once).
        return spec.max_requests is None or sent < spec.max_requests

    async def connection() -> None:
        nonlocal broken, sent
        while time.perf_counter() < deadline and budget_left():
            try:
                reader, writer = await asyncio.open_connection(spec.host, spec.port)
            except OSError:
                broken += 1
                await asyncio.sleep(0.05)
                continue
            try:
                while time.perf_counter() < deadline and budget_left():
                    sent += 1
                    began = time.perf_counter()
                    writer.write(requests.next())
                    status, _ = await read_response(reader)
                    latencies.append(time.perf_counter() - began)
                    statuses[str(status)] += 1
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                broken += 1  # closed or garbled: count it and open a new connection
            finally:
                writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(spec.connections)]
    # Answers still awaited at the deadline are not waited for long: the load is bounded.
    await asyncio.wait(tasks, timeout=spec.duration + 30)
    for task in tasks:
        task.cancel()
    elapsed = min(time.perf_counter(), deadline) - start
    latencies.sort()
    ok = sum(n for status, n in statuses.items() if status.startswith("2"))
    return LoadResult(
        requests=len(latencies),
        duration=round(elapsed, 3),
        rps=round(len(latencies) / elapsed, 2) if elapsed > 0 else 0.0,
        p50_ms=round(1000 * percentile(latencies, 50), 3),
        p99_ms=round(1000 * percentile(latencies, 99), 3),
        errors=len(latencies) - ok + broken,
        statuses=dict(statuses),
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: loadgen.py '<LoadSpec as JSON>'", file=sys.stderr)
        return 2
    spec = LoadSpec(**json.loads(args[0]))
    result = asyncio.run(run_load(spec))
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
