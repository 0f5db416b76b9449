"""The benchmark runs end to end in its shortest mode (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import model
from bench.model import SCENARIO_STORES, SCENARIOS, SQLITE, TORNADO, Report, Row, ScenarioRun
from bench.targets import TARGETS, judge

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_quick_benchmark_reports_every_scenario_and_target(tmp_path):
    # The asyncio load generator, so that wrk need not be installed; a chart only when
    # matplotlib is (it is in bench/requirements.txt, not in the test requirements).
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--loadgen", "python"]
    # Short loads (each connection of bench/loadgen.py sends its first request at once, and
    # its answer counts however late it comes) and fewer distinct tokens to collect for the
    # cache-miss loads: nothing here reads a rate.
    command += ["--duration", "0.1", "--token-pool", "100", "--results", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    (result,) = tmp_path.glob("*-quick.json")
    report = json.loads(result.read_text())
    ran = {(s["name"], s["store"]) for s in report["scenarios"] if s["status"] == "ran"}
    skipped = {
        (s["name"], s["store"]): s["reason"] for s in report["scenarios"] if s["status"] != "ran"
    }
    every = {(name, store) for name, stores in SCENARIO_STORES.items() for store in stores}
    assert set(SCENARIO_STORES) == set(SCENARIOS)
    assert ran | set(skipped) == every and not ran & set(skipped)
    assert ("throughput", SQLITE) in ran
    # Every measure of every scenario that ran has its row, all of its answers 2xx.
    rows = {(row["measure"], row["store"]): row for row in report["rows"]}
    for name, store in ran:
        for measure in SCENARIOS[name]:
            key = (measure, TORNADO if measure in model.BASELINES else store)
            assert rows[key]["requests"] > 0 and rows[key]["errors"] == 0, key
    # vhod without ES256 (until its signing keys exist) skips that scenario, saying why.
    es256 = skipped.get(("es256", SQLITE), "")
    assert es256 in ("", "skipped: ES256 not supported by this server")

    verdicts = {t["name"]: t for t in report["targets"]}
    assert list(verdicts) == [target.name for target in TARGETS]
    for target in TARGETS:
        verdict = verdicts[target.name]
        assert verdict["rule"] == target.rule
        was_skipped = (target.scenario, target.store) in skipped
        assert verdict["verdict"] in ({"SKIP"} if was_skipped else {"PASS", "MISS"})

    machine = report["machine"]
    assert {"cpu", "cores", "python", "tornado", "load generator", "date"} <= set(machine)
    assert machine["load generator"].startswith("bench/loadgen.py")
    table = result.with_suffix(".md").read_text()
    assert all(f"| {target.name} | {target.rule} |" in table for target in TARGETS)
    assert "access log at `info`, metrics on" in table
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert result.with_suffix(".png").exists() == has_matplotlib


def test_every_benchmark_module_stays_under_400_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "bench").glob("*.py")}
    assert {name: n for name, n in sizes.items() if n >= 400} == {}


def row(measure: str, store: str, rps: float) -> Row:
    return Row(measure, store, rps, p50_ms=1.0, p99_ms=2.0, requests=10, errors=0)


def test_targets_pass_miss_or_skip_with_the_scenarios_reason():
    report = Report(machine={}, settings={})
    report.rows += [
        row(model.BASELINE, TORNADO, 1000.0),
        row(model.ACCESS, SQLITE, 950.0),
        row(model.REFRESH, SQLITE, 400.0),
    ]
    report.scenarios.append(ScenarioRun("es256", SQLITE, "skipped", model.ES256_UNSUPPORTED))

    verdicts = {v.name: v for v in judge(report)}

    assert len(verdicts) == len(TARGETS)
    access = verdicts["validate/access throughput"]
    assert (access.verdict, access.ratio, access.rule) == ("PASS", 0.95, "≥ 0.9 × baseline")
    assert verdicts["validate/refresh throughput"].verdict == "MISS"
    es256 = [v for name, v in verdicts.items() if name.startswith("ES256")]
    assert len(es256) == 3
    assert {(v.verdict, v.detail) for v in es256} == {("SKIP", model.ES256_UNSUPPORTED)}
    memory = verdicts["RSS across the memory run"]
    assert (memory.verdict, memory.ratio) == ("SKIP", None)


def test_the_in_process_profile_reports_each_token_path(tmp_path):
    command = [sys.executable, str(ROOT / "bench" / "profile_miss.py"), "--label", "smoke"]
    command += ["--tokens", "50", "--refreshes", "5", "--repeat", "1"]
    command += ["--out", str(tmp_path / "profile")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    runs = json.loads((tmp_path / "profile.json").read_text())
    paths = runs["smoke"]["paths"]
    assert set(paths) == {"miss", "hit", "refresh"}
    for result in paths.values():
        assert result["us_per_request"] > 0 and result["top"]
    # The miss path checks a signature on every call; the hit path on none.
    functions = {path: {row["function"] for row in paths[path]["top"]} for path in paths}
    assert any("verify" in f for f in functions["miss"])
    assert not any("verify" in f for f in functions["hit"])
    text = (tmp_path / "profile.md").read_text()
    assert "## miss, smoke" in text and "## refresh, smoke" in text


def test_the_password_login_bench_compares_argon2id_with_bcrypt_12(tmp_path):
    out = tmp_path / "password_login.md"
    command = [
        sys.executable,
        str(ROOT / "bench" / "password_login.py"),
        *("--duration", "1", "--rounds", "1", "--users", "5", "--loadgen", "python"),
        *("--out", str(out)),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = out.read_text()
    for row in ("| login/email, argon2id |", "| login/email, bcrypt12 |"):
        line = next(line for line in report.splitlines() if line.startswith(row))
        assert float(line.split("|")[2]) > 0, line  # answered logins
        assert line.split("|")[-2].strip() == "0", line  # and no errors
    assert "÷ login at bcrypt cost 12" in report and "÷ hashing limit" in report
