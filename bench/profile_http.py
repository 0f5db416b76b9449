"""Where vhod's time goes beyond a bare Tornado handler, through HTTP.

`python bench/profile_http.py [--rounds 5 --seconds 4]`.

The speed targets compare vhod with bench/baseline.py, a bare Tornado app answering `true`
to the very same request bytes. This script explains a ratio below a target:

1. **CPU a request, no profiler.** vhod (the shipped config.yaml: ES256, access log at info,
   metrics on; SQLite) and the bare app each take wrk loads in interleaved rounds; the CPU
   time the server process spent (utime + stime from /proc) divided by the requests it
   answered. Unlike req/s, this does not depend on how much of the machine the load
   generator and the neighbours left over.
2. **Where it goes.** The same loads once more with cProfile on in each server's event loop
   (bench/profiled.py); own time a request, grouped by where the code lives, vhod minus the
   bare app. cProfile's own cost inflates every call about alike, so the groups' shares are
   what to read, not their absolute µs.

Writes bench/http_profile.md and .json (the docs site publishes the page).
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import BENCH, PER_IP_PER_MINUTE, http
from bench.drivers import WRK, describe_tool, drive, pick_tool
from bench.loadgen import LoadSpec
from bench.report import machine
from tests.processes import ROOT, Child, Server, accepts_connections, free_port

OUT = BENCH / "http_profile"
# Where a function lives, first match wins: vhod's own code, then what it runs on.
GROUPS = (
    ("vhod: handlers/", "/handlers/"),
    ("vhod: core/", "/core/"),
    ("vhod: storage/", "/storage/"),
    ("Tornado", "/tornado/"),
    ("asyncio and selectors", "/asyncio/"),
    ("asyncio and selectors", "selectors.py"),
    ("PyJWT and cryptography", "/jwt/"),
    ("PyJWT and cryptography", "/cryptography/"),
    ("prometheus_client", "/prometheus_client/"),
    ("logging", "/logging/"),
    ("json", "/json/"),
)
LOADS = ("access", "refresh")
TOP = 15  # functions listed a load
PATHS = {"access": "/validate/jwt/access", "refresh": "/validate/jwt/refresh"}


def group_of(filename: str) -> str:
    if filename == "~":
        return "built-ins (C: sockets, hashing, dict and str methods)"
    for name, marker in GROUPS:
        if marker in filename:
            return name
    return "other standard library"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_servers(folder: Path) -> tuple[Child, int, Server]:
    env = {**os.environ, "PROFILE_SCRIPT": str(BENCH / "baseline.py")}
    env["PROFILE_OUT"] = str(folder / "baseline.prof")
    port = free_port()
    command = [sys.executable, str(BENCH / "profiled.py"), "--port", str(port)]
    baseline = Child(command, folder / "baseline.log", env=env)
    baseline.wait_until(lambda: accepts_connections(port), 30, "the baseline")
    profiled = {"PROFILE_SCRIPT": str(ROOT / "server.py"), "PROFILE_OUT": str(folder / "vhod.prof")}
    return baseline, port, start_vhod(folder, ROOT, BENCH / "profiled.py", profiled)


def start_vhod(folder: Path, tree: Path, script: Path, extra: dict[str, str]) -> Server:
    """vhod from `tree`'s config.yaml on a SQLite file in `folder`, started by `script`."""
    settings: dict[str, Any] = {
        "VHOD_SERVER__DATA_DIR": str(folder / "data"),
        "VHOD_STORAGE__URL": f"sqlite:///{folder / 'vhod.db'}",
        "VHOD_LIMITS__PER_IP_PER_MINUTE": PER_IP_PER_MINUTE,
        **extra,
    }
    server = Server(folder, "--config", str(tree / "config.yaml"), script=script, **settings)
    server.wait_ready(timeout=60)
    return server


def start_revision(folder: Path, revision: str) -> Server:
    """vhod as it was at git `revision` (its server.py and config.yaml), unprofiled."""
    tree = folder / f"at-{revision}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return start_vhod(tree, tree, tree / "server.py", {})


def register(port: int) -> dict[str, str]:
    body = {"phone_number": "+7 925 000-00-01", "email": "p@bench.example"}
    status, pair = http(
        port, "POST", "/authorization/registration", {**body, "hash_password": "bench pw 12345"}
    )
    if status != 200:
        raise RuntimeError(f"registration answered {status}: {pair}")
    return dict(pair)


def per_request(path: Path, requests: int) -> dict[str, Any]:
    """Own µs a request by group and by function, from one profiled load."""
    raw: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    groups: dict[str, float] = defaultdict(float)
    functions: dict[str, float] = {}
    for (filename, line, name), (_cc, _calls, own, _cum, _callers) in raw.items():
        if filename.endswith(("profiled.py", "runpy.py")):
            continue
        us = own / requests * 1e6
        groups[group_of(filename)] += us
        where = name if filename == "~" else f"{Path(filename).name}:{line}({name})"
        functions[where] = functions.get(where, 0.0) + us
    return {"groups": dict(groups), "functions": functions}


def profiled_load(child: Child, out: Path, spec: LoadSpec, tool: str) -> dict[str, Any]:
    out.unlink(missing_ok=True)
    os.kill(child.pid, signal.SIGUSR1)
    result = drive(spec, tool)
    os.kill(child.pid, signal.SIGUSR2)
    child.wait_until(out.exists, 30, "the profile")
    time.sleep(0.2)
    return per_request(out, result.requests)


def measure(options: argparse.Namespace) -> dict[str, Any]:
    tool = pick_tool("auto")
    with tempfile.TemporaryDirectory(prefix="vhod-http-profile-") as name:
        folder = Path(name)
        baseline, baseline_port, vhod = start_servers(folder)
        older = [start_revision(folder, revision) for revision in options.also]
        try:
            pairs = {vhod.port: register(vhod.port)}
            pairs.update({server.port: register(server.port) for server in older})
            pairs[baseline_port] = pairs[vhod.port]  # the same request bytes

            def spec(load: str, port: int) -> LoadSpec:
                # The refresh token's bytes to the bare app as well: the same request size.
                token = pairs[port]["refresh" if load == "refresh" else "access"]
                return LoadSpec(
                    port=port,
                    path=PATHS[load],
                    headers={"Authorization": f"Bearer {token}"},
                    duration=options.seconds,
                )

            cpu: dict[str, list[float]] = defaultdict(list)
            rates: dict[str, list[float]] = defaultdict(list)
            targets = [("bare Tornado", baseline.pid, baseline_port, "access")]
            targets += [(f"vhod {load}", vhod.pid, vhod.port, load) for load in LOADS]
            for revision, server in zip(options.also, older, strict=True):
                targets += [
                    (f"vhod at {revision} {load}", server.pid, server.port, load) for load in LOADS
                ]
            for _ in range(options.rounds):
                for label, pid, port, load in targets:
                    before = cpu_seconds(pid)
                    result = drive(spec(load, port), tool)
                    cpu[label].append((cpu_seconds(pid) - before) / result.requests * 1e6)
                    rates[label].append(result.rps)
            profiles = {
                "bare Tornado": profiled_load(
                    baseline, folder / "baseline.prof", spec("access", baseline_port), tool
                )
            }
            for load in LOADS:
                profiles[f"vhod {load}"] = profiled_load(
                    vhod, folder / "vhod.prof", spec(load, vhod.port), tool
                )
        finally:
            for server in older:
                server.stop()
            vhod.stop()
            baseline.stop()
    return {
        "machine": machine(describe_tool(tool) if tool == WRK else tool),
        "rounds": options.rounds,
        "seconds": options.seconds,
        "cpu_us": {label: statistics.median(values) for label, values in cpu.items()},
        "cpu_us_rounds": cpu,
        "rps": {label: statistics.median(values) for label, values in rates.items()},
        "profiles": profiles,
    }


def render(run: dict[str, Any]) -> str:
    m = run["machine"]
    bare = run["cpu_us"]["bare Tornado"]
    lines = [
        "# Where a request's time goes, through HTTP",
        "",
        f"`python bench/profile_http.py`, {m['date']}, on {m['cores']} cores ({m['cpu']}),"
        f" Python {m['python']}, Tornado {m['tornado']}; load from {m['load generator']},"
        f" 16 connections, {run['rounds']} interleaved rounds of {run['seconds']:g} s."
        " vhod runs the shipped config.yaml (ES256, access log at info, metrics on) on SQLite.",
        "",
        "## CPU a request, no profiler",
        "",
        "| server, load | CPU µs a request (median) | ÷ bare Tornado's | req/s (median) |",
        "|---|---:|---:|---:|",
    ]
    for label, us in run["cpu_us"].items():
        lines.append(f"| {label} | {us:.0f} | {bare / us:.2f} | {run['rps'][label]:,.0f} |")
    lines += [
        "",
        "The middle column is the throughput ratio one core allows when the server is the only"
        " thing using it: what the speed targets ask of vhod, without the load generator's and"
        " the neighbours' share of the machine.",
        "",
        "## Where vhod's extra time goes (cProfile, own µs a request)",
        "",
    ]
    profiles = run["profiles"]
    names = sorted({g for p in profiles.values() for g in p["groups"]})
    labels = list(profiles)
    lines.append("| group | " + " | ".join(labels) + " | access − bare | refresh − bare |")
    lines.append("|---|" + "---:|" * (len(labels) + 2))
    for group in sorted(names, key=lambda g: -profiles["vhod refresh"]["groups"].get(g, 0.0)):
        values = [profiles[label]["groups"].get(group, 0.0) for label in labels]
        extra = [values[1] - values[0], values[2] - values[0]]
        cells = " | ".join(f"{v:.1f}" for v in [*values, *extra])
        lines.append(f"| {group} | {cells} |")
    for load in LOADS:
        mine, base = profiles[f"vhod {load}"]["functions"], profiles["bare Tornado"]["functions"]
        added = {f: us - base.get(f, 0.0) for f, us in mine.items()}
        top = sorted(added.items(), key=lambda item: -item[1])[:TOP]
        lines += ["", f"### vhod {load}: the functions that add most", ""]
        lines += ["| function | own µs a request, vhod − bare |", "|---|---:|"]
        lines += [f"| `{f}` | {us:.1f} |" for f, us in top]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved unprofiled rounds")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds a load")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="REV",
        help="also measure vhod as it was at this git revision (CPU a request only)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="writes OUT.md and OUT.json")
    options = parser.parse_args(argv)
    run = measure(options)
    options.out.with_suffix(".json").write_text(json.dumps(run, indent=1) + "\n")
    options.out.with_suffix(".md").write_text(render(run))
    print(render(run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
