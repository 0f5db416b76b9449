"""The soak's two loads: sign-in cycles on a few connections, and access-token checks."""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import threading
import time
import uuid
from typing import Any

from bench.drivers import Load
from bench.loadgen import LoadSpec

PASSWORD = "soak password"


class Cycles:
    """Sign-in cycles on `connections` threads until stopped; counts cycles and wrong answers."""

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self.run_id = uuid.uuid4().hex[:8]
        self.numbers = itertools.count()
        self.lock = threading.Lock()
        self.done = 0
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, daemon=True) for _ in range(connections)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _loop(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self.stopping.is_set():
            with self.lock:
                n = next(self.numbers)
            try:
                problem = self._cycle(connection, n)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            with self.lock:
                if problem is None:
                    self.done += 1
                elif len(self.errors) < 1000:
                    self.errors.append(problem)
        connection.close()

    def _cycle(self, connection: http.client.HTTPConnection, n: int) -> str | None:
        def call(method: str, path: str, body: Any = None, bearer: str | None = None) -> Any:
            headers = {"Content-Type": "application/json"}
            if bearer is not None:
                headers["Authorization"] = f"Bearer {bearer}"
            data = json.dumps(body) if body is not None else None
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            if response.status != 200:
                raise ValueError(f"{method} {path}: {response.status} {raw[:200]!r}")
            return json.loads(raw)

        email = f"soak-{self.run_id}-{n}@bench.example"
        phone = f"+7 917 {n % 10_000_000:07d}"
        registered = call(
            "POST",
            "/authorization/registration",
            {"email": email, "phone_number": phone, "hash_password": PASSWORD},
        )
        pair = call(
            "POST", "/authorization/login/email", {"email": email, "hash_password": PASSWORD}
        )
        renewed = call("GET", "/validate/jwt/refresh", bearer=pair["refresh"])
        if call("GET", "/validate/jwt/access", bearer=renewed["access"]) is not True:
            return "a fresh access token did not validate"
        if call("POST", "/authorization/logout", bearer=pair["refresh"]) is not True:
            return "logout did not answer true"
        call("POST", "/authorization/logout", bearer=registered["refresh"])
        return None


class Checks:
    """The closed-loop load of access-token checks, in rounds of half a token's life, each
    with a fresh token from a refresh (an expired one would be answered false from the
    cache: other work than a check)."""

    def __init__(
        self, port: int, refresh: str, options: argparse.Namespace, seconds: float
    ) -> None:
        self.port, self.refresh, self.options = port, refresh, options
        self.deadline = time.monotonic() + seconds
        self.round = max(10.0, options.access_ttl / 2)
        self.requests = self.errors = 0
        self.seconds = 0.0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.load: Load | None = None

    def start(self) -> None:
        self.thread.start()

    def stop(self, *, kill: bool = False) -> None:
        """After the last round (which ends at the deadline); `kill`: at once."""
        self.stopping.set()
        if kill and self.load is not None:
            self.load.process.kill()
        self.thread.join(timeout=5 if kill else self.round + 120)

    def _loop(self) -> None:
        from bench.cluster import http

        while not self.stopping.is_set() and (left := self.deadline - time.monotonic()) > 1:
            status, renewed = http(
                self.port, "POST", "/validate/jwt/refresh", {"refresh": self.refresh}
            )
            if status != 200:
                self.errors += 1
                time.sleep(1)
                continue
            spec = LoadSpec(
                port=self.port,
                path="/validate/jwt/access",
                headers={"Authorization": f"Bearer {renewed['access']}"},
                connections=self.options.check_connections,
                duration=min(self.round, left),
            )
            self.load = Load(spec, self.options.loadgen)
            try:
                load = self.load.result()
            except RuntimeError:  # killed by stop(kill=True)
                return
            self.requests += load.requests
            self.errors += load.errors
            self.seconds += load.duration
