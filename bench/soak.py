"""vhod's memory soak: `python bench/soak.py [--minutes 15] [--stores sqlite,mongodb]`.

Per store, one vhod process (the shipped config.yaml, as bench/run.py starts it) takes
mixed traffic for `--minutes`: sign-in cycles (register -> login -> refresh -> validate ->
logout, each answer checked) on a few connections, beside a closed-loop load of access-token
checks (bench/loadgen.py, or wrk when installed). The server's RSS is sampled every few
seconds; the verdict is its growth over the last third of the run, when every cache has
filled: flat when within 2 %. Results go to bench/soak.md and bench/soak.json.

`--tracemalloc` runs the server under tracemalloc (bench/traced_server.py, much slower) and
prints what grew between a snapshot at two thirds of the run and one at its end (the
snapshots are kept beside OUT for tracemalloc.Snapshot.load).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import (
    BENCH,
    nx_server,
    rss_kib,
    start_fake_vk,
    start_vhod,
    vhod_overrides,
)
from bench.drivers import PYTHON, Load, describe_tool, pick_tool
from bench.hashes import PasswordHash
from bench.loadgen import LoadSpec
from bench.model import MONGO, SQLITE, STORE_TITLES
from bench.report import machine
from bench.seed import collect_access_tokens
from bench.soak_load import PASSWORD, Checks, Cycles
from bench.soak_trace import growth_lines, start_traced, take_snapshot
from core.signing.tokens import VERIFIED_CACHE_SIZE

FLAT_PERCENT = 2.0  # the last third's growth that still counts as flat
SAMPLE_SECONDS = 2.0
CYCLE_CONNECTIONS = 2  # sign-in cycles run on this many connections at once
CHECK_CONNECTIONS = 8  # the background load of access-token checks
BCRYPT_ROUNDS = 4  # the soak is about memory: cheap hashing lets many cycles through
# The set of ended sessions (core.domain.revocations) keeps each for access_ttl + 20 s: at the
# default 900 s it fills for longer than a 15-minute run, two entries a cycle, and its
# filling would read as growth. The soak's access tokens live this long instead, so that
# it is full before the last third; the check load takes a fresh token as its old one ages.
ACCESS_TTL = 120


@dataclass
class StoreSoak:
    store: str
    minutes: float
    cycles: int = 0
    cycle_errors: int = 0  # a wrong status or answer in a cycle
    check_requests: int = 0
    check_errors: int = 0
    check_rps: float = 0.0
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, RSS KiB)
    cycles_at: list[tuple[float, int]] = field(default_factory=list)  # (seconds, cycles)
    rss_start_mib: float = 0.0  # RSS at the start of the last third
    rss_end_mib: float = 0.0
    growth_percent: float = 0.0
    bytes_per_cycle: float = 0.0  # over the last third
    flat: bool = False
    tracemalloc_top: list[str] = field(default_factory=list)


def soak_store(store: str, options: argparse.Namespace, folder: Path, vk: dict[str, Any]) -> Any:
    seconds = options.minutes * 60
    result = StoreSoak(store, options.minutes)
    print(f"{STORE_TITLES[store]}: {options.minutes:g} min", flush=True)
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{folder / store / 'vhod.db'}"
        if store == MONGO:
            url = stack.enter_context(nx_server(folder / store)) + "vhod_soak"
        passwords = PasswordHash.bcrypt(BCRYPT_ROUNDS)
        overrides = vhod_overrides(folder / store / "data", url, passwords, vk, None)
        overrides["VHOD_JWT__ACCESS_TTL"] = str(options.access_ttl)
        snapshots = options.out.with_name(f"{options.out.name}-{store}-snapshots")
        if options.tracemalloc:
            vhod = start_traced(folder / store, overrides, snapshots)
        else:
            vhod = start_vhod(folder, store, overrides)
        stack.callback(vhod.stop)
        status, pair = _register(vhod.port)
        if status != 200:
            raise RuntimeError(f"registration answered {status}: {pair}")
        if options.warm_up:
            warm_up(vhod.port, pair["refresh"], folder / store)
        background = None
        if options.check_connections:
            background = Checks(vhod.port, pair["refresh"], options, seconds)
            background.start()
        cycles = Cycles(vhod.port, CYCLE_CONNECTIONS)
        began = time.monotonic()
        cycles.start()
        snapshot_files: list[Path] = []
        finished = False
        try:
            next_sample = began
            while (now := time.monotonic()) - began < seconds:
                if now >= next_sample:
                    t = now - began
                    result.samples.append((round(t, 1), rss_kib(vhod.pid)))
                    result.cycles_at.append((round(t, 1), cycles.done))
                    if options.tracemalloc and not snapshot_files and t >= 2 * seconds / 3:
                        snapshot_files.append(take_snapshot(vhod, snapshots, 1))
                    next_sample += SAMPLE_SECONDS
                time.sleep(0.2)
            result.samples.append((round(time.monotonic() - began, 1), rss_kib(vhod.pid)))
            result.cycles_at.append((round(time.monotonic() - began, 1), cycles.done))
            if options.tracemalloc and snapshot_files:
                snapshot_files.append(take_snapshot(vhod, snapshots, 2))
            finished = True
        finally:
            cycles.stop()
            if background is not None:
                background.stop(kill=not finished)
                result.check_requests = background.requests
                result.check_errors = background.errors
                result.check_rps = round(background.requests / max(1.0, background.seconds), 1)
        result.cycles = cycles.done
        result.cycle_errors = len(cycles.errors)
        if cycles.errors:
            print(f"  first wrong answers: {cycles.errors[:3]}", flush=True)
        if len(snapshot_files) == 2:
            result.tracemalloc_top = growth_lines(*snapshot_files)
    judge(result, seconds)
    print(
        f"  {result.cycles:,} cycles ({result.cycle_errors} wrong), {result.check_requests:,}"
        f" checks at {result.check_rps:,.0f} req/s ({result.check_errors} errors); RSS over the"
        f" last third {result.rss_start_mib:.1f} -> {result.rss_end_mib:.1f} MiB"
        f" ({result.growth_percent:+.2f} %, {result.bytes_per_cycle:+.0f} B/cycle):"
        f" {'flat' if result.flat else 'GROWS'}",
        flush=True,
    )
    for line in result.tracemalloc_top:
        print(f"    {line}", flush=True)
    return result


def warm_up(port: int, refresh: str, folder: Path) -> None:
    """Fill the cache of verified tokens (core.signing.tokens, bounded) before the clock starts, so
    that its filling is not counted as growth: one check of each of twice as many distinct
    tokens as it holds, as RSS settles only once every entry has been replaced once."""
    count = 2 * VERIFIED_CACHE_SIZE + 1024
    began = time.monotonic()
    pool = collect_access_tokens(port, refresh, count, folder / "warm-up-tokens.txt")
    spec = LoadSpec(
        port=port,
        path="/validate/jwt/access",
        body_kind="tokens",
        tokens_file=str(pool),
        connections=4,
        duration=600,
        max_requests=count,
    )
    # The asyncio generator whatever the run's tool: wrk cannot stop at max_requests, and
    # would run the warm-up for its whole 600 s.
    load = Load(spec, PYTHON)
    try:
        checked = load.result()
    finally:
        if load.process.poll() is None:  # interrupted (SIGTERM): no load outlives the soak
            load.process.kill()
    print(
        f"  warm-up: {checked.requests:,} distinct tokens checked"
        f" ({time.monotonic() - began:.0f} s)",
        flush=True,
    )


def _register(port: int) -> tuple[int, Any]:
    from bench.cluster import http

    body = {"phone_number": "+7 925 000-00-01", "email": "main@bench.example"}
    return http(port, "POST", "/authorization/registration", {**body, "hash_password": PASSWORD})


def judge(result: StoreSoak, seconds: float) -> None:
    """RSS growth over the last third: the median of its first and of its last tenth."""
    third = 2 * seconds / 3
    tenth = (seconds - third) / 10
    first = [kib for t, kib in result.samples if third <= t < third + tenth]
    last = [kib for t, kib in result.samples if t >= seconds - tenth]
    if not first or not last:
        raise RuntimeError("too few RSS samples for a verdict: run longer")
    start, end = statistics.median(first), statistics.median(last)
    cycles_start = next(c for t, c in result.cycles_at if t >= third)
    cycles_run = max(1, result.cycles_at[-1][1] - cycles_start)
    result.rss_start_mib = round(start / 1024, 2)
    result.rss_end_mib = round(end / 1024, 2)
    result.growth_percent = round(100 * (end - start) / start, 2)
    result.bytes_per_cycle = round((end - start) * 1024 / cycles_run, 1)
    result.flat = abs(result.growth_percent) <= FLAT_PERCENT


def write_report(
    results: list[StoreSoak], options: argparse.Namespace, info: dict[str, Any]
) -> None:
    command = (
        f"python bench/soak.py --minutes {options.minutes:g} --stores {','.join(options.stores)}"
        f" --loadgen {options.loadgen} --access-ttl {options.access_ttl}"
    )
    data = {"command": command, "machine": info, "flat_percent": FLAT_PERCENT}
    data["stores"] = [asdict(r) for r in results]
    options.out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    lines = [
        "# vhod memory soak",
        "",
        f"`{command}`, {info['date']}, {info['cores']} cores, {info['cpu']};"
        f" load: {info['load generator']}.",
        "",
        f"Sign-in cycles (register, login, refresh, validate, logout) on {CYCLE_CONNECTIONS}"
        f" connections beside access-token checks on {options.check_connections}, bcrypt cost"
        f" {BCRYPT_ROUNDS}, `jwt.access_ttl` {options.access_ttl} s (the ended sessions an"
        " instance keeps in memory, two a cycle, are kept that long plus 20 s: at the default"
        " 900 s they would fill for the whole run; the check load takes a fresh token every"
        f" {max(10.0, options.access_ttl / 2):g} s). RSS growth over the last third of the run"
        f" (median of its first and last tenth); flat: within {FLAT_PERCENT:g} %.",
        "",
        "| store | minutes | cycles | wrong | checks | checks/s | RSS at 2/3 | RSS at end"
        " | growth | bytes/cycle | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {STORE_TITLES[r.store]} | {r.minutes:g} | {r.cycles:,} | {r.cycle_errors}"
            f" | {r.check_requests:,} | {r.check_rps:,.0f} | {r.rss_start_mib:.1f} MiB"
            f" | {r.rss_end_mib:.1f} MiB | {r.growth_percent:+.2f} % | {r.bytes_per_cycle:+.0f}"
            f" | {'flat' if r.flat else 'GROWS'} |"
        )
    options.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="per store (default 15)")
    parser.add_argument("--stores", default=None, help="sqlite,mongodb (default: both)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--check-connections",
        type=int,
        default=CHECK_CONNECTIONS,
        help=f"connections of the access-token check load (default {CHECK_CONNECTIONS}; 0: none)",
    )
    parser.add_argument(
        "--access-ttl",
        type=int,
        default=ACCESS_TTL,
        help=f"jwt.access_ttl of the soaked server, seconds (default {ACCESS_TTL})",
    )
    parser.add_argument("--tracemalloc", action="store_true", help="trace the server's memory")
    parser.add_argument(
        "--no-warm-up",
        dest="warm_up",
        action="store_false",
        help="skip filling the verified-token cache first (its filling then counts as growth)",
    )
    parser.add_argument(
        "--out", type=Path, default=BENCH / "soak", help="writes OUT.md and OUT.json"
    )
    args = parser.parse_args(argv)
    if args.stores is None:
        args.stores = [SQLITE] + ([MONGO] if importlib.util.find_spec("nx_27017") else [])
    else:
        args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
        if set(args.stores) - {SQLITE, MONGO}:
            parser.error("--stores: sqlite and/or mongodb")
    if args.minutes * 60 < 30:
        parser.error("--minutes: at least 0.5, for enough samples in the last third")
    args.loadgen = pick_tool(args.loadgen)
    return args


def stop_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM unwinds as Ctrl-C does: every `finally` stops the processes it started
    (vhod, nx-27017, the fake VK, the loads), none is left running."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    info = machine(describe_tool(options.loadgen))
    results = []
    with tempfile.TemporaryDirectory(prefix="vhod-soak-") as name:
        folder = Path(name)
        fake, vk = start_fake_vk(folder)
        try:
            for store in options.stores:
                results.append(soak_store(store, options, folder, vk["section"]))
        finally:
            fake.stop()
    write_report(results, options, info)
    print(f"written: {options.out.with_suffix('.md')}, {options.out.with_suffix('.json')}")
    return 0 if all(r.flat and not r.cycle_errors for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
