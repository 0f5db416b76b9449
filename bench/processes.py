"""The `processes` scenario: validate/access with `server.processes: 2` on SQLite, against
the single-process bare Tornado app (the target's reference) and the same app forked into
two processes on one port (what two cores can give a Tornado server here), in interleaved
rounds so that a shared machine's drift hits all three alike."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING

from bench import model
from bench.cluster import start_baseline
from bench.drivers import combine
from bench.loadgen import LoadResult
from bench.model import SQLITE

if TYPE_CHECKING:
    from bench.scenarios import Bench

PROCESSES = 2


def several_processes(bench: Bench) -> None:
    print(f"validate/access with server.processes: {PROCESSES} (SQLite):", flush=True)
    with contextlib.ExitStack() as stack:
        extra = {"VHOD_SERVER__PROCESSES": str(PROCESSES)}
        vhod, _ = bench.vhod("vhod-processes", bench.o.password_hash, extra=extra)
        stack.callback(vhod.stop)
        two, two_port = start_baseline(bench.folder, processes=PROCESSES)
        stack.callback(two.stop)
        pair = bench.register(vhod.port)
        access = bench.bearer(vhod.port, "/validate/jwt/access", pair["access"])
        runs: list[LoadResult] = []
        for _ in range(bench.o.rounds):
            bench.baseline_round(model.BASELINE_PROCESSES, access)
            runs.append(bench.drive(access))
            two_run = bench.drive(replace(access, port=two_port))
            bench.baseline_runs.setdefault(model.BASELINE_TWO, []).append(two_run)
        bench.add_row(model.ACCESS_PROCESSES, SQLITE, combine(runs))
        bench.scenario("processes", SQLITE)
        bench.report.notes.append(
            f"processes: vhod with server.processes: {PROCESSES} on one SQLite file, the bare"
            f" Tornado app in one process (the target's reference) and in {PROCESSES} forked"
            " processes on one port, measured in interleaved rounds."
        )
