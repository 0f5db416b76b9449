"""The `saturation` scenario: validate/access latency while logins keep hashing busy, on
the measured server and on one that hashes on a single thread (limits.hash_workers: 1)."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from bench import model
from bench.drivers import Load, combine
from bench.loadgen import LoadResult
from bench.model import SQLITE
from bench.seed import collect_access_tokens, seed_users

if TYPE_CHECKING:
    from bench.scenarios import Bench


def saturation(bench: Bench, port: int, pair: dict[str, str]) -> None:
    """validate/access latency, idle and while logins keep every hashing worker busy;
    then the same on a server hashing on one thread, to show what the others cost."""
    rows = (model.ACCESS_IDLE, model.ACCESS_LOADED, model.LOGIN_SATURATING)
    loaded, idle = saturate(bench, port, pair, rows)
    with contextlib.ExitStack() as stack:
        extra = {"VHOD_LIMITS__HASH_WORKERS": "1"}
        one, url = bench.vhod("vhod-one-hasher", bench.o.password_hash, extra=extra)
        stack.callback(one.stop)
        seed_users(url, 0, bench.o.small_users, bench.seed_hash)
        rows = (model.ACCESS_IDLE_ONE, model.ACCESS_LOADED_ONE, model.LOGIN_SATURATING_ONE)
        loaded_one, idle_one = saturate(bench, one.port, bench.register(one.port), rows)
    bench.scenario("saturation", SQLITE)
    bench.report.notes.append(
        f"Saturation: validate/access p99 while logins saturate hashing ÷ idle p99 is"
        f" {loaded / idle:.2f} with a hashing thread per core ({bench.cores}) and"
        f" {loaded_one / idle_one:.2f} with limits.hash_workers: 1 (the logins/s of each"
        " are in the rows)."
    )


def saturate(
    bench: Bench, port: int, pair: dict[str, str], rows: tuple[str, str, str]
) -> tuple[float, float]:
    """Idle and loaded validate/access rounds, interleaved, and the logins beside them,
    added as `rows`; the loaded and idle p99 (ms)."""
    tokens = collect_access_tokens(port, pair["refresh"], 64, bench.folder / f"probe-{port}.txt")
    probe = bench.spec(
        port,
        "/validate/jwt/access",
        body_kind="tokens",
        tokens_file=str(tokens),
        connections=2,
    )
    runs: dict[str, list[LoadResult]] = {"idle": [], "loaded": [], "logins": []}
    # Idle and loaded in interleaved rounds, each p99 the median of its rounds: one
    # short run's p99 moves by a factor of two on a shared machine.
    for _ in range(bench.o.rounds):
        runs["idle"].append(bench.drive(probe))
        logins = bench.logins(port, duration=bench.o.duration + 2)
        background = Load(logins, bench.o.loadgen)
        try:
            time.sleep(1.0)  # every hashing worker busy, the queue filled
            runs["loaded"].append(bench.drive(probe))
        finally:
            runs["logins"].append(background.result())
    idle, loaded = combine(runs["idle"]), combine(runs["loaded"])
    bench.add_row(rows[0], SQLITE, idle)
    bench.add_row(rows[1], SQLITE, loaded)
    bench.add_row(rows[2], SQLITE, combine(runs["logins"]))
    return loaded.p99_ms, idle.p99_ms
