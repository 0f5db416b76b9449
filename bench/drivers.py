"""Load drivers: one load in a process of its own, by wrk (with a Lua script) or bench/loadgen.py.

The load generator never shares a process with a server it measures, so its own CPU use
shows up as what it is: another process on the same cores.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from bench.loadgen import LoadResult, LoadSpec

BENCH = Path(__file__).resolve().parent
WRK, PYTHON = "wrk", "python"
SCRIPTS = {
    "static": "static.lua",
    "register": "register.lua",
    "login": "login.lua",
    "code_send": "code_send.lua",
}
# Loads whose every request must differ and that must stop at max_requests, which wrk
# cannot do: the asyncio generator drives them whatever the run's tool.
PYTHON_ONLY = frozenset({"bodies"})


def pick_tool(wanted: str) -> str:
    """`auto`: wrk when it is installed (Debian: apt-get install wrk), else the asyncio one."""
    if wanted == "auto":
        return WRK if shutil.which("wrk") else PYTHON
    return wanted


def describe_tool(tool: str) -> str:
    """The load generator as the report names it, with its version."""
    if tool == PYTHON:
        return "bench/loadgen.py (asyncio, one process; wrk is not installed or not chosen)"
    banner = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return (banner.split("[")[0].strip() or "wrk") + ", 1 thread"


class Load:
    """One load run in its own process; result() waits for it and reads its numbers."""

    def __init__(self, spec: LoadSpec, tool: str) -> None:
        self.spec = spec
        self.tool = tool = PYTHON if spec.body_kind in PYTHON_ONLY else tool
        if tool == WRK:
            command, env = wrk_command(spec)
        else:
            command = [sys.executable, str(BENCH / "loadgen.py"), json.dumps(asdict(spec))]
            env = dict(os.environ)
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def result(self) -> LoadResult:
        out, err = self.process.communicate(timeout=self.spec.duration + 120)
        if self.process.returncode != 0:
            raise RuntimeError(f"{self.tool} failed ({self.process.returncode}): {err}{out}")
        if self.tool == PYTHON:
            return LoadResult(**json.loads(out.strip().splitlines()[-1]))
        line = next((x for x in out.splitlines() if x.startswith("BENCH_RESULT ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result: {err}{out}")
        raw = json.loads(line.removeprefix("BENCH_RESULT "))
        seconds = raw["duration_us"] / 1e6
        return LoadResult(
            requests=raw["requests"],
            duration=round(seconds, 3),
            rps=round(raw["requests"] / seconds, 2) if seconds else 0.0,
            p50_ms=raw["p50_us"] / 1000,
            p99_ms=raw["p99_us"] / 1000,
            errors=raw["non2xx"] + raw["socket_errors"],
            statuses={},
            tool=WRK,
        )


def wrk_command(spec: LoadSpec) -> tuple[list[str], dict[str, str]]:
    """wrk's command line and environment for `spec` (the Lua scripts read BENCH_*)."""
    env = dict(os.environ)
    env.update(
        BENCH_THREADS="1",
        BENCH_PREFIX=spec.user_prefix,
        BENCH_START=str(spec.start),
        BENCH_USERS=str(spec.users),
        BENCH_STRIDE=str(spec.stride),
        BENCH_PASSWORD=spec.password,
        BENCH_METHOD=spec.method,
        BENCH_BODY=spec.body or "",
        BENCH_TOKENS=spec.tokens_file or "",
    )
    script = SCRIPTS.get(spec.body_kind, "tokens.lua")
    command = ["wrk", "-t1", f"-c{spec.connections}", f"-d{max(1, round(spec.duration))}s"]
    command += ["--timeout", "30s", "-s", str(BENCH / script)]
    for name, value in spec.headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(f"http://{spec.host}:{spec.port}{spec.path}")
    return command, env


def drive(spec: LoadSpec, tool: str) -> LoadResult:
    return Load(spec, tool).result()


def combine(results: list[LoadResult]) -> LoadResult:
    """Several runs of one load as one: total rate, median percentiles."""
    requests = sum(r.requests for r in results)
    seconds = sum(r.duration for r in results)
    return LoadResult(
        requests=requests,
        duration=round(seconds, 3),
        rps=round(requests / seconds, 2) if seconds else 0.0,
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
        statuses={},
        tool=results[0].tool,
    )
