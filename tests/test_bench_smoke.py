"""The benchmark runs end to end in its shortest mode (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from bench import model
from bench.cluster import vhod_overrides
from bench.hashes import PASSWORD, PasswordHash
from bench.model import SCENARIO_STORES, SCENARIOS, SQLITE, TORNADO, Report, Row, ScenarioRun
from bench.options import parse_args
from bench.report import listed_overrides, markdown, report_from_json
from bench.targets import PROFILED, TARGETS, judge
from core.config import load_config
from core.domain.passwords import Hasher, check_password

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
    # --quick keeps to a cheap hash, and the report says which and that it is not the default.
    assert "Password hash: bcrypt cost 4. One verification" in table
    assert "not config.yaml's default hash" in table
    assert "`VHOD_PASSWORDS__ALGORITHM=bcrypt`," in table  # on every server, so no "(on …)"
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


def test_each_miss_is_listed_with_its_profile_and_a_report_reads_back_from_json(tmp_path):
    machine = dict.fromkeys(("date", "cores", "cpu", "memory", "os", "python", "tornado"), "x")
    report = Report(machine={**machine, "load generator": "wrk"}, settings={})
    report.rows += [
        row(model.BASELINE, TORNADO, 1000.0),
        row(model.ACCESS, SQLITE, 950.0),
        row(model.REFRESH, SQLITE, 400.0),
    ]
    report.targets = judge(report)
    assert set(PROFILED) <= {target.name for target in TARGETS}  # no stale name

    table = markdown(report, "python bench/run.py")
    misses = table.split("## Misses and their profiles", 1)[1]
    assert f"- **validate/refresh throughput**: {PROFILED['validate/refresh throughput']}" in misses
    assert "validate/access throughput**" not in misses  # it passed
    (tmp_path / "run.json").write_text(json.dumps(asdict(report)))
    assert report_from_json(tmp_path / "run.json") == report


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


def test_the_http_profile_reports_cpu_a_request_and_where_vhods_extra_time_goes(tmp_path):
    command = [sys.executable, str(ROOT / "bench" / "profile_http.py"), "--rounds", "1"]
    command += ["--seconds", "1", "--also", "HEAD", "--out", str(tmp_path / "http")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    run = json.loads((tmp_path / "http.json").read_text())
    assert set(run["cpu_us"]) == {
        "bare Tornado",
        "vhod access",
        "vhod refresh",
        "vhod at HEAD access",
        "vhod at HEAD refresh",
    }
    assert all(us > 0 for us in run["cpu_us"].values())
    groups = run["profiles"]["vhod refresh"]["groups"]
    # A refresh signs a token and reads the store: both show where they live.
    assert groups["PyJWT and cryptography"] > 0 and groups["vhod: storage/"] > 0
    assert "vhod: core/" not in run["profiles"]["bare Tornado"]["groups"]
    assert "## CPU a request, no profiler" in (tmp_path / "http.md").read_text()


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


def test_the_measured_servers_run_on_config_yamls_hash_and_quick_on_bcrypt_4():
    full, quick = parse_args(["--no-chart"]), parse_args(["--quick", "--no-chart"])
    assert full.password_hash.default and full.password_hash.algorithm == "argon2id"
    assert (
        full.password_hash.argon2 == load_config(ROOT / "config.yaml", environ={}).passwords.argon2
    )
    assert quick.password_hash == PasswordHash.bcrypt(4)
    assert (
        parse_args(["--password-hash", "bcrypt:12", "--no-chart"]).password_hash.spec == "bcrypt:12"
    )
    with pytest.raises(SystemExit):
        parse_args(["--bcrypt-rounds", "12", "--no-chart"])  # replaced by --password-hash

    vk = {key: "http://fake" for key in ("client_id", "authorize_url", "token_url", "userinfo_url")}
    default = vhod_overrides(ROOT, "sqlite:///x.db", full.password_hash, vk, None)
    assert not [key for key in default if key.startswith("VHOD_PASSWORDS")]
    cheap = vhod_overrides(ROOT, "sqlite:///x.db", quick.password_hash, vk, None)
    assert cheap["VHOD_PASSWORDS__ALGORITHM"] == "bcrypt"
    assert cheap["VHOD_PASSWORDS__BCRYPT_ROUNDS"] == "4"


def test_the_seeded_hash_is_vhods_own_at_the_configured_costs_so_no_login_rehashes():
    passwords = load_config(ROOT / "config.yaml", environ={}).passwords
    server = Hasher(passwords.algorithm, rounds=passwords.bcrypt_rounds, argon2=passwords.argon2)
    try:
        for chosen in (PasswordHash.shipped(), PasswordHash.parse("argon2id:19456,2,1")):
            hashed = chosen.hash_password()
            assert check_password(PASSWORD.encode(), hashed)
            assert not server.needs_rehash(hashed)
            assert chosen.verify_seconds(hashed, samples=1) > 0
    finally:
        server.close()
    assert PasswordHash.shipped().label.startswith("Argon2id (19,456 KiB, 2 iterations, 1 lane)")


def test_the_reports_overrides_name_the_servers_they_were_set_on():
    report = Report(machine={}, settings={})
    report.settings["vhod overrides"] = {
        "vhod-sqlite": {"VHOD_LIMITS__PER_IP_PER_MINUTE": "9"},
        "vhod-es256": {
            "VHOD_LIMITS__PER_IP_PER_MINUTE": "9",
            "VHOD_PASSWORDS__ALGORITHM": "bcrypt",
        },
    }
    line = listed_overrides(report)
    assert "`VHOD_LIMITS__PER_IP_PER_MINUTE=9`," in line
    assert line.endswith("`VHOD_PASSWORDS__ALGORITHM=bcrypt` (on vhod-es256)")
