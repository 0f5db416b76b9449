"""`python server.py passwords calibrate`: the time of one password hash on this machine, for
the configured parameters and a few candidates, to choose `passwords.*` with numbers."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from core.config import Config
from core.domain.passwords import ARGON2_FLOOR, Argon2Params, Hasher

# OWASP's minimum, then steps up in memory (what costs an attacker's GPU most) and time.
CANDIDATES = (
    Argon2Params(19_456, 2, 1),
    Argon2Params(19_456, 3, 1),
    Argon2Params(32_768, 2, 1),
    Argon2Params(47_104, 2, 1),
    Argon2Params(65_536, 3, 1),
)
SECRET = b"calibration password"


@dataclass(frozen=True)
class Candidate:
    algorithm: str
    argon2: Argon2Params | None = None
    rounds: int = 0

    def hasher(self) -> Hasher:
        if self.argon2 is not None:
            return Hasher("argon2id", argon2=self.argon2, workers=1, queue=0)
        return Hasher("bcrypt", rounds=self.rounds, workers=1, queue=0)


def add_passwords_commands(commands: Any) -> None:
    passwords = commands.add_parser("passwords", help="password hashing")
    actions = passwords.add_subparsers(dest="passwords_command", required=True)
    calibrate = actions.add_parser(
        "calibrate", help="time one hash on this machine for candidate parameters"
    )
    calibrate.add_argument(
        "--samples", type=int, default=5, help="hashes timed per row; the median is shown"
    )
    calibrate.add_argument(
        "--argon2",
        action="append",
        metavar="MEMORY_KIB,ITERATIONS,LANES",
        help="an Argon2id candidate (repeatable); replaces the built-in ones",
    )
    calibrate.add_argument(
        "--bcrypt", type=int, action="append", metavar="COST", help="a bcrypt cost (repeatable)"
    )


def run_passwords_command(config: Config, args: argparse.Namespace) -> int:
    try:
        candidates = _candidates(config, args)
    except ValueError as exc:
        print(f"vhod: {exc}", file=sys.stderr)
        return 2
    if args.samples < 1:
        print("vhod: --samples must be at least 1", file=sys.stderr)
        return 2
    workers = config.limits.hash_workers or os.cpu_count() or 1
    configured = _configured(config)
    rows = [_row(c, c == configured, workers, args.samples) for c in candidates]
    print(
        f"One hash on this machine, median of {args.samples} (MS: wall time, CPU MS: its "
        f"own); {workers} hash workers (limits.hash_workers); * = configured"
    )
    print(format_table(rows))
    print(
        "Hashing holds at most POOL MEMORY (workers x memory cost). Password logins per "
        "second stay below HASHES/S (by CPU time); a login for an unknown user costs one too."
    )
    return 0


def _configured(config: Config) -> Candidate:
    if config.passwords.algorithm == "argon2id":
        return Candidate("argon2id", argon2=config.passwords.argon2)
    return Candidate("bcrypt", rounds=config.passwords.bcrypt_rounds)


def _candidates(config: Config, args: argparse.Namespace) -> list[Candidate]:
    chosen: list[Candidate] = [_configured(config)]
    argon2 = [_parse_argon2(text) for text in args.argon2] if args.argon2 else list(CANDIDATES)
    chosen += [Candidate("argon2id", argon2=params) for params in argon2]
    for rounds in args.bcrypt or [config.passwords.bcrypt_rounds]:
        if not 4 <= rounds <= 31:
            raise ValueError(f"--bcrypt {rounds}: a bcrypt cost is between 4 and 31")
        chosen.append(Candidate("bcrypt", rounds=rounds))
    return list(dict.fromkeys(chosen))  # the configured row once, first


def _parse_argon2(text: str) -> Argon2Params:
    try:
        memory, iterations, lanes = (int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--argon2 {text!r}: expected MEMORY_KIB,ITERATIONS,LANES") from None
    if iterations < 1 or lanes < 1 or memory < 8 * lanes:
        raise ValueError(f"--argon2 {text!r}: at least 8 KiB per lane, 1 iteration, 1 lane")
    return Argon2Params(memory, iterations, lanes)


def _row(candidate: Candidate, configured: bool, workers: int, samples: int) -> tuple[str, ...]:
    hasher = candidate.hasher()
    try:
        hasher.hash_now(SECRET)  # the first one pays for allocations and imports
        times, cpu_times = [], []
        for _ in range(samples):
            started, cpu_started = time.perf_counter(), time.process_time()
            hasher.hash_now(SECRET)
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
    finally:
        hasher.close()
    # CPU time is the hash's own cost; wall time adds whatever else the machine was doing.
    seconds, cpu_seconds = statistics.median(times), statistics.median(cpu_times)
    params = candidate.argon2
    if params is None:
        settings, memory, note = f"cost {candidate.rounds}", "-", "legacy"
    else:
        settings = f"m={params.memory_kib} t={params.iterations} p={params.parallelism}"
        memory = f"{workers * params.memory_kib / 1024:.0f} MiB"
        floor = f"m={ARGON2_FLOOR.memory_kib} t={ARGON2_FLOOR.iterations}"
        note = f"refused: below {floor}" if params.below(ARGON2_FLOOR) else ""
    return (
        "*" if configured else "",
        candidate.algorithm,
        settings,
        f"{seconds * 1000:.1f}",
        f"{cpu_seconds * 1000:.1f}",
        memory,
        # Hashes side by side: one per worker, as far as there are cores to run them.
        f"{min(workers, os.cpu_count() or 1) / max(cpu_seconds, 1e-6):.0f}",
        note,
    )


def format_table(rows: list[tuple[str, ...]]) -> str:
    header = ("", "ALGORITHM", "PARAMETERS", "MS", "CPU MS", "POOL MEMORY", "HASHES/S", "NOTE")
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    )
