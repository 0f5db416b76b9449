"""Passkey sign-in throughput and latency on SQLite: `python bench/passkeys.py`

Starts vhod as a process on a fresh SQLite store (config.yaml, the per-address limit lifted
as the main benchmark lifts it), registers `--users` accounts, each with a passkey made by
the test suite's software authenticator (ES256; counter 0, as synced passkeys keep it, so
that assertions may land in any order). Then, from one client:

- `login/options`: POST /authorization/passkeys/login/options for `--duration` seconds
  (each answer stores a challenge);
- `login`: POST /authorization/passkeys/login with `--assertions` assertions signed
  beforehand, one per challenge fetched beforehand, each posted once.

It prints each load's requests per second, p50 and p99, as the load generator of the main
benchmark (bench/loadgen.py) measures them. A measurement, never a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import PER_IP_PER_MINUTE, http, start_vhod
from bench.drivers import PYTHON, drive
from bench.loadgen import LoadResult, LoadSpec
from tests.fakes.webauthn import SoftAuthenticator

ORIGIN = "http://localhost:3000"
BASE = "/authorization/passkeys"


def overrides(folder: Path) -> dict[str, str]:
    return {
        "VHOD_SERVER__DATA_DIR": str(folder / "data"),
        "VHOD_STORAGE__URL": f"sqlite:///{folder / 'data' / 'vhod.db'}",
        "VHOD_LIMITS__PER_IP_PER_MINUTE": PER_IP_PER_MINUTE,
        # The accounts' passwords are only set-up: the cheapest hash makes them fast.
        "VHOD_PASSWORDS__ALGORITHM": "bcrypt",
        "VHOD_PASSWORDS__BCRYPT_ROUNDS": "4",
        "VHOD_WEBAUTHN__RP_ID": "localhost",
        "VHOD_WEBAUTHN__ORIGINS": ORIGIN,
    }


def call(port: int, path: str, body: dict[str, Any]) -> Any:
    status, answer = http(port, "POST", path, body)
    if status != 200:
        raise RuntimeError(f"{path}: {status} {answer}")
    return answer


def enrol(port: int, users: int) -> list[SoftAuthenticator]:
    """`users` accounts, each with one passkey on an authenticator of its own."""
    authenticators = []
    for n in range(users):
        pair = call(
            port,
            "/authorization/registration",
            {
                "email": f"passkey{n}@bench.example",
                "phone_number": f"+7926{n:07d}",
                "hash_password": "bench password",
            },
        )
        access = {"access": pair["access"]}
        options = call(port, f"{BASE}/register/options", access)
        authenticator = SoftAuthenticator(ORIGIN, counting=False)
        call(port, f"{BASE}/register", {**access, "credential": authenticator.create(options)})
        authenticators.append(authenticator)
    return authenticators


def signed_assertions(port: int, authenticators: list[SoftAuthenticator], count: int) -> list[str]:
    """`count` login bodies, each answering a challenge of its own, round robin over the
    authenticators."""
    bodies = []
    for n in range(count):
        options = call(port, f"{BASE}/login/options", {})
        credential = authenticators[n % len(authenticators)].get(options)
        bodies.append(json.dumps({"credential": credential}))
    return bodies


def line(name: str, result: LoadResult) -> str:
    return (
        f"| {name} | {result.requests:,} | {result.rps:,.0f} | {result.p50_ms:.1f} |"
        f" {result.p99_ms:.1f} | {result.errors} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=50, help="accounts with a passkey (50)")
    parser.add_argument("--assertions", type=int, default=2000, help="sign-ins (2000)")
    parser.add_argument("--duration", type=float, default=5.0, help="options load, s (5)")
    parser.add_argument("--connections", type=int, default=16, help="(16)")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vhod-passkeys-") as name:
        folder = Path(name)
        vhod = start_vhod(folder, "vhod", overrides(folder))
        try:
            started = time.monotonic()
            authenticators = enrol(vhod.port, options.users)
            bodies = signed_assertions(vhod.port, authenticators, options.assertions)
            print(f"set up in {time.monotonic() - started:.1f} s", flush=True)
            spec = LoadSpec(
                port=vhod.port,
                path=f"{BASE}/login/options",
                method="POST",
                body="{}",
                connections=options.connections,
                duration=options.duration,
            )
            issued = drive(spec, PYTHON)
            file = folder / "assertions.txt"
            file.write_text("\n".join(bodies) + "\n", encoding="utf-8")
            spec = LoadSpec(
                port=vhod.port,
                path=f"{BASE}/login",
                method="POST",
                body_kind="bodies",
                tokens_file=str(file),
                max_requests=len(bodies),
                connections=options.connections,
                duration=600.0,
            )
            signed_in = drive(spec, PYTHON)
        finally:
            vhod.stop()
    print("| load | requests | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    print(line("passkeys/login/options", issued))
    print(line("passkeys/login", signed_in))
    return 0 if issued.errors == 0 and signed_in.errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
