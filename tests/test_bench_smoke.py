"""The benchmark harness runs end to end in its shortest mode (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
MEASURES = {
    "baseline",
    "validate/access",
    "validate/refresh",
    "login/email",
    "registration",
    "provider login (vk)",
}


def test_quick_benchmark_writes_its_results(tmp_path):
    # The asyncio load generator, so that wrk need not be installed; a chart only when
    # matplotlib is (it is in bench/requirements.txt, not in the test requirements).
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--loadgen", "python"]
    command += ["--duration", "0.3", "--results", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    (result,) = tmp_path.glob("*-quick.json")
    report = json.loads(result.read_text())
    measured = {row["measure"] for row in report["rows"] if row["store"] in ("sqlite", "tornado")}
    assert measured >= MEASURES
    assert all(row["requests"] > 0 for row in report["rows"])
    assert {"cores", "cpu", "python", "date"} <= set(report["machine"])
    verdicts = {target["name"]: target["verdict"] for target in report["targets"]}
    assert len(verdicts) >= 6 and set(verdicts.values()) <= {"PASS", "MISS"}
    assert "PASS" in done.stdout or "MISS" in done.stdout
    assert result.with_suffix(".md").read_text().count("|") > 20
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert result.with_suffix(".png").exists() == has_matplotlib
