"""The soak's tracing: vhod under bench/traced_server.py, and what grew between two of its
tracemalloc snapshots (with the process's memory map), to find what holds memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from bench.cluster import BENCH
from tests.processes import ROOT, Server, clean_env, free_port, status_of


def start_traced(folder: Path, overrides: dict[str, str], snapshots: Path) -> Server:
    """vhod under bench/traced_server.py; a Server whose process is the traced one."""
    port = free_port()
    server = Server.__new__(Server)
    server.port = port
    server.stderr = folder / f"server-{port}.log"
    command = [sys.executable, str(BENCH / "traced_server.py"), str(snapshots)]
    command += ["--port", str(port), "--config", str(ROOT / "config.yaml")]
    folder.mkdir(parents=True, exist_ok=True)
    server.log_path = server.stderr
    server.terminated = False
    with server.stderr.open("wb") as err:
        server.process = subprocess.Popen(
            command, cwd=folder, env=clean_env(**overrides), stdout=subprocess.DEVNULL, stderr=err
        )
    server.wait_until(lambda: status_of(server.url("/readyz")) == 200, 120, "traced server")
    return server


def take_snapshot(server: Server, snapshots: Path, number: int) -> Path:
    # The process's memory map too: which mappings grew (malloc's heaps, Python's arenas).
    smaps = Path(f"/proc/{server.pid}/smaps").read_text()
    (snapshots / f"smaps-{number}.txt").write_text(smaps)
    os.kill(server.pid, signal.SIGUSR1)
    done = snapshots / f"snapshot-{number}.done"
    deadline = time.monotonic() + 300
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    return snapshots / f"snapshot-{number}.tracemalloc"


def counts_file(snapshot: Path) -> Path:
    return snapshot.with_name(snapshot.name.replace("snapshot", "counts")).with_suffix(".json")


def growth_lines(first: Path, second: Path, count: int = 25) -> list[str]:
    """What grew between two snapshots: malloc's totals, live objects by type, and (when
    traced) the lines that allocated what grew."""
    a, b = (json.loads(counts_file(p).read_text()) for p in (first, second))
    lines = [f"allocated blocks {b['allocated_blocks'] - a['allocated_blocks']:+d}"]
    if "malloc" in a:
        grew = [
            f"{k} {(b['malloc'][k] - a['malloc'][k]) / 1024:+.0f} KiB"
            for k in ("arena", "hblkhd", "uordblks", "fordblks")
        ]
        lines.append("malloc (main arena): " + ", ".join(grew))
    grown = {k: b["types"].get(k, 0) - a["types"].get(k, 0) for k in b["types"]}
    top = sorted(grown.items(), key=lambda item: -abs(item[1]))[:12]
    lines.append("objects: " + ", ".join(f"{k} {v:+d}" for k, v in top if v))
    if not first.exists():
        return lines
    old = tracemalloc.Snapshot.load(str(first))
    new = tracemalloc.Snapshot.load(str(second))
    for stat in new.compare_to(old, "traceback")[:count]:
        frames = [f"{f.filename.replace(str(ROOT) + '/', '')}:{f.lineno}" for f in stat.traceback]
        lines.append(
            f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  "
            + " <- ".join(reversed(frames))
        )
    return lines
