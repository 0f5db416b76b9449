"""bench/soak.py: its verdict (RSS growth over the last third of a run), and its stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.soak import StoreSoak, judge

ROOT = Path(__file__).resolve().parent.parent


def run_of(rss_kib: list[int], seconds: float = 300.0) -> StoreSoak:
    result = StoreSoak("mongodb", seconds / 60)
    step = seconds / (len(rss_kib) - 1)
    result.samples = [(round(i * step, 1), kib) for i, kib in enumerate(rss_kib)]
    result.cycles_at = [(round(i * step, 1), 10 * i) for i in range(len(rss_kib))]
    return result


def test_a_flat_last_third_passes_whatever_came_before():
    # Growth while the caches fill (the first two thirds) is not counted.
    result = run_of([60_000 + 300 * i for i in range(100)] + [90_000] * 51)
    judge(result, 300.0)
    assert result.flat and result.growth_percent == 0.0


def test_growth_over_the_last_third_fails_past_two_percent():
    result = run_of([80_000] * 100 + [80_000 + 60 * i for i in range(51)])
    judge(result, 300.0)
    assert not result.flat
    assert result.growth_percent == pytest.approx(3.4, abs=0.3)
    assert result.bytes_per_cycle > 0


def test_too_few_samples_are_no_verdict():
    with pytest.raises(RuntimeError):
        judge(run_of([1, 2]), 300.0)


def descendants(pid: int) -> set[int]:
    """The processes below `pid`, from /proc (Linux)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc")
def test_sigterm_to_the_soak_stops_every_process_it_started(tmp_path):
    # The soak used to die at once on SIGTERM, leaving vhod and its load generator running.
    command = [sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "1"]
    command += ["--stores", "sqlite", "--loadgen", "python", "--no-warm-up"]
    command += ["--out", str(tmp_path / "soak")]
    soak = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        # Until vhod and the check load both run (the load starts once vhod answers).
        while time.monotonic() < deadline and soak.poll() is None:
            children = descendants(soak.pid)
            commands = " ".join(
                Path(f"/proc/{pid}/cmdline").read_text(errors="replace") for pid in children
            )
            if "server.py" in commands and "loadgen.py" in commands:
                break
            time.sleep(0.2)
        assert soak.poll() is None, soak.stderr.read() if soak.stderr else ""
        assert len(children) >= 3  # the fake VK, vhod, the load
        soak.send_signal(signal.SIGTERM)
        soak.wait(timeout=60)
        gone = time.monotonic() + 15
        while time.monotonic() < gone and any(alive(pid) for pid in children):
            time.sleep(0.2)
        assert not [pid for pid in children if alive(pid)]
    finally:
        if soak.poll() is None:
            soak.kill()
        for pid in children | descendants(soak.pid):  # what a failed run left behind
            if alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
