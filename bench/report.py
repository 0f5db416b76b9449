"""The report of a run: the machine it ran on, a Markdown table, JSON, and a chart."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import tornado

from bench.model import (
    MONGO,
    NX_27017,
    SCENARIOS,
    SQLITE,
    STORE_TITLES,
    TORNADO,
    Report,
    Row,
    ScenarioRun,
    Verdict,
)
from bench.targets import PROFILED

BENCH = Path(__file__).resolve().parent
HEADING = "# Latest benchmark\n\n![throughput and targets](latest.png)\n\n"
CHARTED = SCENARIOS["throughput"] + SCENARIOS["es256"][:3]


def machine(load_generator: str) -> dict[str, Any]:
    """What the numbers depend on: CPU model and cores, memory, OS, Python, Tornado, the tool."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, IndexError, ValueError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "tornado": tornado.version,
        "load generator": load_generator,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def listed_overrides(report: Report) -> str:
    """Each override with the servers it was set on, unless it was set on all of them."""
    servers: dict[str, dict[str, str]] = report.settings.get("vhod overrides", {})
    where: dict[tuple[str, str], list[str]] = {}
    for name, overrides in servers.items():
        for key, value in overrides.items():
            where.setdefault((key, value), []).append(name)
    return ", ".join(
        f"`{key}={value}`" + ("" if len(names) == len(servers) else f" (on {', '.join(names)})")
        for (key, value), names in sorted(where.items())
    )


def markdown(report: Report, command: str) -> str:
    m = report.machine
    lines = [
        f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), {m['memory']}, {m['os']},"
        f" Python {m['python']}, Tornado {m['tornado']}; load from {m['load generator']}.",
        f"Command: `{command}` ({report.elapsed_s:.0f} s).",
        "",
        "vhod ran on the shipped `config.yaml` (access log at `info`, metrics on) with"
        f" {listed_overrides(report) or 'no overrides'}, plus the run's own data directory, storage"
        " URL, the fake VK's endpoints and the fake SMS.ru's channel. The baseline is a bare"
        " Tornado app answering `true`.",
        NX_27017,
        "",
        "| measure | server | req/s | p50 ms | p99 ms | requests | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in report.rows:
        lines.append(
            f"| {r.measure} | {STORE_TITLES.get(r.store, r.store)} | {r.rps:,.1f} |"
            f" {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.requests:,} | {r.errors:,} |"
        )
    lines += ["", *report.notes, "", "| scenario | server | ran |", "|---|---|---|"]
    for s in report.scenarios:
        lines.append(f"| {s.name} | {STORE_TITLES[s.store]} | {s.reason or 'yes'} |")
    lines += ["", "| target | rule | ratio | verdict | measured |", "|---|---|---:|---|---|"]
    for t in report.targets:
        ratio = "-" if t.ratio is None else f"{t.ratio:.4f}"
        lines.append(f"| {t.name} | {t.rule} | {ratio} | {t.verdict} | {t.detail} |")
    missed = [t for t in report.targets if t.verdict == "MISS"]
    if missed:
        lines += ["", "## Misses and their profiles", ""]
        for t in missed:
            lines.append(f"- **{t.name}**: {PROFILED.get(t.name, 'no profile of it yet.')}")
    return "\n".join(lines) + "\n"


def chart(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stores = [s for s in (TORNADO, SQLITE, MONGO) if any(r.store == s for r in report.rows)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.6), width_ratios=[3, 2])
    names = list(CHARTED)
    width = 0.8 / (len(stores) or 1)
    for i, store in enumerate(stores):
        values = [(report.row(name, store).rps if report.row(name, store) else 0) for name in names]
        xs = [n + (i - (len(stores) - 1) / 2) * width for n in range(len(names))]
        bars = left.bar(xs, values, width, label=STORE_TITLES[store])
        left.bar_label(bars, labels=[f"{v:,.0f}" if v else "" for v in values], fontsize=6)
    left.set_yscale("log")
    left.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=7)
    left.set_ylabel("requests per second (log scale)")
    left.set_title("Throughput")
    left.legend(fontsize=7)
    judged = [t for t in report.targets if t.ratio is not None]
    ys = range(len(judged))
    colours = ["tab:green" if t.verdict == "PASS" else "tab:red" for t in judged]
    right.barh(ys, [t.ratio for t in judged], color=colours)
    right.set_yticks(ys, [f"{t.name}\n{t.rule}" for t in judged], fontsize=6)
    right.invert_yaxis()
    right.set_xlabel("measured ratio (green: PASS, red: MISS; skipped targets left out)")
    right.set_title("Targets")
    for y, t in zip(ys, judged, strict=True):
        right.annotate(
            f"{t.ratio:.4f}", (t.ratio, y), fontsize=6, va="center", xytext=(3, 0),
            textcoords="offset points",
        )  # fmt: skip
    m = report.machine
    fig.suptitle(
        f"vhod benchmark, {m['date']}: {m['cores']} cores, {m['cpu']}, Python {m['python']},"
        f" Tornado {m['tornado']}; {m['load generator']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(
    report: Report, results: Path, command: str, *, quick: bool, draw: bool, latest: bool
) -> dict[str, Path]:
    """The run's JSON, table (and chart) under `results`; with `latest`, bench/latest.*."""
    results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = results / f"{stamp}{'-quick' if quick else ''}"
    paths = {"json": stem.with_suffix(".json"), "table": stem.with_suffix(".md")}
    paths["json"].write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n")
    table = markdown(report, command)
    paths["table"].write_text(table)
    if draw:
        paths["chart"] = stem.with_suffix(".png")
        chart(report, paths["chart"])
    if latest:
        (BENCH / "latest.md").write_text(HEADING + table)
        shutil.copyfile(paths["json"], BENCH / "latest.json")
        if "chart" in paths:
            shutil.copyfile(paths["chart"], BENCH / "latest.png")
    return paths


def report_from_json(path: Path) -> Report:
    """A run's Report read back from the JSON write_outputs wrote."""
    data = json.loads(path.read_text())
    return Report(
        machine=data["machine"],
        settings=data["settings"],
        rows=[Row(**row) for row in data["rows"]],
        scenarios=[ScenarioRun(**run) for run in data["scenarios"]],
        values=data["values"],
        notes=data["notes"],
        targets=[Verdict(**verdict) for verdict in data["targets"]],
        elapsed_s=data["elapsed_s"],
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.report`: write bench/latest.md again from bench/latest.json, as the
    run wrote it, with this code's wording (say, a profile added for a miss)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--command", default="python bench/run.py", help="the run's command")
    options = parser.parse_args(argv)
    report = report_from_json(BENCH / "latest.json")
    (BENCH / "latest.md").write_text(HEADING + markdown(report, options.command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
