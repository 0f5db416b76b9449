"""The command line of bench/run.py and the settings of one run."""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.drivers import PYTHON, WRK, pick_tool
from bench.hashes import PasswordHash
from bench.model import MONGO, SQLITE

BENCH = Path(__file__).resolve().parent


@dataclass
class Options:
    quick: bool
    loadgen: str  # "wrk" or "python"
    stores: list[str]
    duration: float  # seconds per throughput load
    login_duration: float  # seconds per load whose requests each cost one password hash
    rounds: int  # baseline / validate rounds, interleaved so that drift hits both alike
    connections: int
    password_hash: PasswordHash  # of the servers measured (not of the issuance comparison)
    small_users: int
    large_users: int
    mongo_load_seconds: float  # time budget for the bulk load on the wire server
    memory_requests: int
    token_pool: int  # distinct tokens: more than the server's verified-token cache holds
    results: Path
    chart: bool
    latest: bool
    strict: bool


# --quick stays a smoke run of seconds: the default Argon2id would take its logins to a few
# dozen a second, and the configuration refuses anything cheaper than OWASP's minimum.
QUICK_HASH = "bcrypt:4"


def parse_args(argv: list[str] | None = None, description: str = "") -> Options:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            f"a short smoke run (seconds, small tables, --password-hash {QUICK_HASH});"
            " not written to bench/latest.*"
        ),
    )
    parser.add_argument(
        "--loadgen",
        choices=("auto", WRK, PYTHON),
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
        "--password-hash",
        default=None,
        metavar="default|bcrypt:COST|argon2id:MEMORY_KIB,ITERATIONS,LANES",
        help=(
            "the hash of the measured servers and their seeded users (default: config.yaml's,"
            f" Argon2id; --quick: {QUICK_HASH})"
        ),
    )
    parser.add_argument(
        "--users", type=int, default=None, help="the large user count (default 1,000,000)"
    )
    parser.add_argument(
        "--token-pool",
        type=int,
        default=None,
        help="distinct tokens for the cache-miss loads (default 20,000)",
    )
    parser.add_argument(
        "--mongo-load-seconds",
        type=float,
        default=None,
        help="time budget for the bulk load on the wire server (default 120)",
    )
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    charts = parser.add_mutually_exclusive_group()
    charts.add_argument("--chart", dest="chart", action="store_true", default=None)
    charts.add_argument("--no-chart", dest="chart", action="store_false")
    parser.add_argument(
        "--latest",
        dest="latest",
        action="store_true",
        default=None,
        help="write bench/latest.{md,json,png} (default: full runs)",
    )
    parser.add_argument("--no-latest", dest="latest", action="store_false")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    if args.loadgen == WRK and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), or use --loadgen python")
    if args.stores:
        stores = [s.strip() for s in args.stores.split(",") if s.strip()]
        unknown = set(stores) - {SQLITE, MONGO}
        if unknown:
            parser.error(f"unknown stores: {', '.join(sorted(unknown))}")
    else:
        stores = [SQLITE] + ([MONGO] if importlib.util.find_spec("nx_27017") else [])
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    chart = args.chart
    if chart is None:
        chart = has_matplotlib or not args.quick  # a full run always draws its chart
    if chart and not has_matplotlib:
        parser.error("the chart needs matplotlib: pip install -r bench/requirements.txt")
    quick = args.quick
    try:
        password_hash = PasswordHash.parse(
            args.password_hash or (QUICK_HASH if quick else "default")
        )
    except ValueError as exc:
        parser.error(f"--password-hash {exc}")
    duration = args.duration or (1.0 if quick else 5.0)
    return Options(
        quick=quick,
        loadgen=pick_tool(args.loadgen),
        stores=stores,
        duration=duration,
        login_duration=duration if quick else 2 * duration,
        rounds=1 if quick else 4,
        connections=16,
        password_hash=password_hash,
        small_users=200 if quick else 1_000,
        large_users=args.users or (5_000 if quick else 1_000_000),
        mongo_load_seconds=args.mongo_load_seconds or (30.0 if quick else 120.0),
        memory_requests=2_000 if quick else 100_000,
        token_pool=args.token_pool or (300 if quick else 20_000),
        results=args.results,
        chart=chart,
        latest=(not quick) if args.latest is None else args.latest,
        strict=args.strict,
    )
