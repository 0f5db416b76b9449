"""Password login at the default hash (Argon2id, OWASP's parameters) beside login at bcrypt
cost 12, in interleaved rounds on one machine: `python bench/password_login.py`.

Issue 26's targets: login at the default hash ÷ the hashing limit (cores ÷ one hash) ≥ 0.85,
and ÷ login at bcrypt cost 12 ≥ 4. Each server seeds its users with hashes of its own
algorithm, so no login rehashes. Writes bench/password_login.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import start_vhod
from bench.drivers import combine, drive
from bench.loadgen import LoadResult, LoadSpec
from bench.report import machine
from bench.seed import PASSWORD, measure_hash_seconds, password_hash, seed_users
from core.domain.passwords import ARGON2_FLOOR

BENCH = Path(__file__).resolve().parent
LIFTED = "1000000000"  # every load comes from one address


def argon2_seconds(samples: int = 5) -> float:
    """One Argon2id check at the shipped parameters: the median of a few."""
    hasher = ARGON2_FLOOR.hasher()
    hashed = hasher.hash(PASSWORD)
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        hasher.verify(hashed, PASSWORD)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def server(folder: Path, name: str, users: int, hashed: str, extra: dict[str, str]) -> object:
    url = f"sqlite:///{folder / name / 'vhod.db'}"
    env = {
        "VHOD_SERVER__DATA_DIR": str(folder / name / "data"),
        "VHOD_STORAGE__URL": url,
        "VHOD_LIMITS__PER_IP_PER_MINUTE": LIFTED,
        **extra,
    }
    vhod = start_vhod(folder, name, env)
    seed_users(url, 0, users, hashed)
    return vhod


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds a round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--loadgen", default="wrk", choices=("wrk", "python"))
    parser.add_argument("--out", type=Path, default=BENCH / "password_login.md")
    options = parser.parse_args()
    cores = os.cpu_count() or 1
    argon2_hash, bcrypt_hash = argon2_seconds(), measure_hash_seconds(12)
    with tempfile.TemporaryDirectory(prefix="vhod-login-") as tmp:
        folder = Path(tmp)
        argon2 = server(folder, "argon2id", options.users, ARGON2_FLOOR.hasher().hash(PASSWORD), {})
        bcrypt = server(
            folder,
            "bcrypt12",
            options.users,
            password_hash(12),
            {"VHOD_PASSWORDS__ALGORITHM": "bcrypt", "VHOD_PASSWORDS__BCRYPT_ROUNDS": "12"},
        )
        runs: dict[str, list[LoadResult]] = {"argon2id": [], "bcrypt12": []}
        try:
            for _ in range(options.rounds):
                for name, vhod in (("argon2id", argon2), ("bcrypt12", bcrypt)):
                    spec = LoadSpec(
                        port=vhod.port,  # type: ignore[attr-defined]
                        path="/authorization/login/email",
                        method="POST",
                        body_kind="login",
                        users=options.users,
                        stride=7,
                        connections=2 * cores + 4,
                        duration=options.duration,
                    )
                    runs[name].append(drive(spec, options.loadgen))
        finally:
            argon2.stop()  # type: ignore[attr-defined]
            bcrypt.stop()  # type: ignore[attr-defined]
    argon2_run, bcrypt_run = combine(runs["argon2id"]), combine(runs["bcrypt12"])
    where = machine(options.loadgen)
    limit = cores / argon2_hash
    rows = [
        ("login at Argon2id ÷ hashing limit (cores ÷ one hash)", argon2_run.rps / limit, 0.85),
        ("login at Argon2id ÷ login at bcrypt cost 12", argon2_run.rps / bcrypt_run.rps, 4.0),
    ]
    lines = [
        "# Password login: Argon2id (the default) beside bcrypt cost 12",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on"
        f" {where['cores']} cores ({where['cpu']}), {where['memory']},"
        f" load from {options.loadgen}.",
        f"Command: `python bench/password_login.py` ({options.rounds} interleaved rounds of"
        f" {options.duration:.0f} s, {2 * cores + 4} connections, {options.users} users).",
        "",
        f"One Argon2id check ({ARGON2_FLOOR.memory_kib} KiB, {ARGON2_FLOOR.iterations}"
        f" iterations, {ARGON2_FLOOR.parallelism} lane): {argon2_hash * 1000:.1f} ms; one bcrypt"
        f" check at cost 12: {bcrypt_hash * 1000:.1f} ms; {cores} cores, so the Argon2id"
        f" hashing limit is {limit:.1f} logins/s.",
        "",
        "| load | req/s | p50 ms | p99 ms | requests | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, run in (("argon2id", argon2_run), ("bcrypt12", bcrypt_run)):
        lines.append(
            f"| login/email, {name} | {run.rps:.1f} | {run.p50_ms:.1f} | {run.p99_ms:.1f}"
            f" | {run.requests:,} | {run.errors} |"
        )
    lines += ["", "| target | ratio | goal | verdict |", "|---|---:|---:|---|"]
    for what, ratio, goal in rows:
        lines.append(f"| {what} | {ratio:.2f} | ≥ {goal} | {'PASS' if ratio >= goal else 'MISS'} |")
    options.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
