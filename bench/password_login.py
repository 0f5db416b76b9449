"""Password login at the default hash (Argon2id, OWASP's parameters) beside login at bcrypt
cost 12, in interleaved rounds on one machine: `python bench/password_login.py`.

Issue 26's targets: login at the default hash ÷ the hashing limit (cores ÷ one hash) ≥ 0.85,
and ÷ login at bcrypt cost 12 ≥ 4. Each server seeds its users with hashes of its own
algorithm, so no login rehashes. Writes bench/password_login.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import start_vhod
from bench.drivers import combine, drive
from bench.hashes import PasswordHash
from bench.loadgen import LoadResult, LoadSpec
from bench.report import machine
from bench.seed import seed_users

BENCH = Path(__file__).resolve().parent
LIFTED = "1000000000"  # every load comes from one address


def server(folder: Path, name: str, users: int, passwords: PasswordHash) -> object:
    url = f"sqlite:///{folder / name / 'vhod.db'}"
    env = {
        "VHOD_SERVER__DATA_DIR": str(folder / name / "data"),
        "VHOD_STORAGE__URL": url,
        "VHOD_LIMITS__PER_IP_PER_MINUTE": LIFTED,
        **passwords.overrides(),
    }
    vhod = start_vhod(folder, name, env)
    seed_users(url, 0, users, passwords.hash_password())
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
    default, bcrypt12 = PasswordHash.shipped(), PasswordHash.bcrypt(12)
    argon2_hash, bcrypt_hash = default.verify_seconds(), bcrypt12.verify_seconds()
    with tempfile.TemporaryDirectory(prefix="vhod-login-") as tmp:
        folder = Path(tmp)
        argon2 = server(folder, "argon2id", options.users, default)
        bcrypt = server(folder, "bcrypt12", options.users, bcrypt12)
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
        f"One check at {default.label}: {argon2_hash * 1000:.1f} ms; one at"
        f" {bcrypt12.label}: {bcrypt_hash * 1000:.1f} ms; {cores} cores, so the Argon2id"
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
