"""Where a token check's time goes, in process: `python bench/profile_miss.py [--label after]`.

Builds vhod's services from the shipped config.yaml (ES256 on a new install, SQLite in a
temporary folder, as server.py builds them) and calls the services the /validate/jwt/
handlers call, with no HTTP in between:

- `miss`: validate/access over `--tokens` distinct freshly issued access tokens, more than the
  cache of verified tokens holds, so that every check verifies a signature;
- `hit`: validate/access of tokens already in that cache;
- `refresh`: validate/refresh (a store read and an access token signed), one refresh token.

Each runs once bare (µs per call, the best of `--repeat` rounds) and once under cProfile,
whose top functions are listed with their cumulative µs per call (cProfile's own overhead
inflates these, more for many small calls than for one signature check). The results of
each `--label` (say `before` from a checkout of the old code, and `after`) are kept in
OUT.json and all of them written to OUT.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import machine
from core.config import load_config
from core.signing import tokens as token_module
from core.signing.tokens import ACCESS
from server import build_services

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "cache_miss_profile"
TOP = 14  # functions listed per path
PATHS = ("miss", "hit", "refresh")


def settings(folder: Path) -> dict[str, str]:
    """The shipped configuration with a throwaway data folder and store."""
    return {
        "VHOD_SERVER__DATA_DIR": str(folder / "data"),
        "VHOD_STORAGE__URL": f"sqlite:///{folder / 'vhod.db'}",
        "VHOD_PASSWORDS__ALGORITHM": "bcrypt",
        "VHOD_PASSWORDS__BCRYPT_ROUNDS": "4",
    }


def rows_of(profiler: cProfile.Profile, calls: int) -> list[dict[str, Any]]:
    """The top functions of a profiled round of `calls` requests: cumulative and own µs a
    request, and calls a request."""
    raw: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        where = Path(filename).name
        if where == "profile_miss.py" or name == "<lambda>" or "disable" in name:
            continue  # this script's own frames say nothing about the service
        rows.append(
            {
                "function": name if filename == "~" else f"{where}:{line}({name})",
                "calls_per_request": round(ncalls / calls, 2),
                "cumulative_us": round(cumtime / calls * 1e6, 2),
                "own_us": round(tottime / calls * 1e6, 2),
            }
        )
    rows.sort(key=lambda r: -r["cumulative_us"])
    return rows[:TOP]


async def timed(run: Callable[[], Awaitable[int]], repeat: int) -> dict[str, Any]:
    """µs a request (the fastest of `repeat` bare rounds), then one round under cProfile."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        calls = await run()
        best = min(best, (time.perf_counter() - began) / calls * 1e6)
    profiler = cProfile.Profile()
    profiler.enable()
    calls = await run()
    profiler.disable()
    return {"us_per_request": round(best, 2), "top": rows_of(profiler, calls)}


def distinct_tokens(services: Any, count: int) -> list[str]:
    """`count` fresh access tokens, each of its own user and session, as refreshes make."""
    issue = services.accounts.tokens.issue
    return [
        issue(ACCESS, f"user-{n}", f"user{n}@bench.example", session=f"s{n}").token
        for n in range(count)
    ]


async def measure(options: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vhod-profile-") as name:
        config = load_config(ROOT / "config.yaml", environ=settings(Path(name)))
        services = await build_services(config)
        try:
            accounts = services.accounts
            fresh = distinct_tokens(services, options.tokens)
            cached = fresh[-min(1000, token_module.VERIFIED_CACHE_SIZE) :]
            pair = await accounts.register("+7 925 000-00-01", "bench@example.com", "bench pw 1")

            async def miss() -> int:
                accounts.tokens._verified.clear()  # the cache holds none of them
                for token in fresh:
                    if not accounts.validate_access(token):
                        raise RuntimeError("a fresh token did not validate")
                return len(fresh)

            async def hit() -> int:
                rounds = 20
                for _ in range(rounds):
                    for token in cached:
                        accounts.validate_access(token)
                return rounds * len(cached)

            async def refresh() -> int:
                for _ in range(options.refreshes):
                    await accounts.refresh(pair["refresh"])
                return options.refreshes

            await hit()  # fills the cache with `cached`
            runs = {"miss": miss, "hit": hit, "refresh": refresh}
            return {path: await timed(runs[path], options.repeat) for path in PATHS}
        finally:
            await services.close()


def render(runs: dict[str, Any]) -> str:
    lines = [
        "# Where a token check's time goes (in process)",
        "",
        "`python bench/profile_miss.py --label LABEL`: the services the /validate/jwt/"
        " handlers call, on the shipped config.yaml (ES256, SQLite), with no HTTP around"
        " them. `miss`: validate/access over distinct fresh tokens, each verified;"
        " `hit`: tokens in the cache of verified tokens; `refresh`: validate/refresh"
        " (a store read, an access token signed). µs a request: the best of the bare"
        " rounds; the tables: one round under cProfile (its overhead inflates many small"
        " calls more than one signature check), cumulative and own µs a request.",
        "",
        "| label | date | miss µs | hit µs | refresh µs |",
        "|---|---|---|---|---|",
    ]
    for label, run in runs.items():
        r = run["paths"]
        lines.append(
            f"| {label} | {run['machine']['date']} | {r['miss']['us_per_request']:.1f}"
            f" | {r['hit']['us_per_request']:.2f} | {r['refresh']['us_per_request']:.1f} |"
        )
    for label, run in runs.items():
        if run.get("note"):
            lines += ["", f"{label}: {run['note']}"]
    for path in PATHS:
        for label, run in runs.items():
            result = run["paths"][path]
            lines += [
                "",
                f"## {path}, {label}: {result['us_per_request']:.2f} µs a request bare",
                "",
                "| function | calls/request | cumulative µs | own µs |",
                "|---|---|---|---|",
            ]
            lines += [
                f"| `{row['function']}` | {row['calls_per_request']:g}"
                f" | {row['cumulative_us']:.2f} | {row['own_us']:.2f} |"
                for row in result["top"]
            ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--label", default="after", help="the name of this run (default after)")
    parser.add_argument("--note", default="", help="a sentence kept with the run")
    parser.add_argument(
        "--tokens", type=int, default=20_000, help="distinct tokens of the miss path"
    )
    parser.add_argument("--refreshes", type=int, default=2_000, help="refreshes a round")
    parser.add_argument("--repeat", type=int, default=3, help="bare rounds (the best counts)")
    parser.add_argument("--out", type=Path, default=OUT, help="keeps OUT.json, writes OUT.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    paths = asyncio.run(measure(options))
    for path in PATHS:
        print(f"{path}: {paths[path]['us_per_request']:.2f} µs a request", flush=True)
    store = options.out.with_suffix(".json")
    runs = json.loads(store.read_text()) if store.exists() else {}
    runs[options.label] = {"machine": machine("none"), "note": options.note, "paths": paths}
    store.write_text(json.dumps(runs, indent=1) + "\n")
    options.out.with_suffix(".md").write_text(render(runs))
    print(f"written: {options.out.with_suffix('.md')}, {store}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
