"""vhod's benchmark: `python bench/run.py [--quick]` measures vhod and checks its speed targets.

It starts vhod as real processes on its shipped configuration (on SQLite, and on the
nx-27017 wire server when that is installed), a bare Tornado baseline and a fake VK ID,
drives them from a separate load process (wrk when installed, else bench/loadgen.py), all
on 127.0.0.1, and writes JSON, a Markdown table and a chart under bench/results/. A full
run also writes bench/latest.md, bench/latest.json and bench/latest.png.

The parts: bench/options.py (this command line), bench/cluster.py (the processes, started
with tests/processes.py), bench/seed.py (users through the store's bulk loader, tokens
from the server), bench/drivers.py (wrk or loadgen.py), bench/scenarios.py (what is
measured), bench/targets.py (the targets, one table), bench/report.py (the output).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

# The project root, so that `python bench/run.py` finds the bench, tests and storage packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.drivers import describe_tool
from bench.model import Report
from bench.options import QUICK_HASH, parse_args
from bench.report import machine, write_outputs
from bench.scenarios import Bench
from bench.targets import judge


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv, description=(__doc__ or "").splitlines()[0])
    command = "python bench/run.py" + (" --quick" if options.quick else "")
    if options.password_hash.spec != (QUICK_HASH if options.quick else "default"):
        command += f" --password-hash {options.password_hash.spec}"
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}
    settings["password_hash"] = options.password_hash.label  # not the other algorithm's costs
    report = Report(machine=machine(describe_tool(options.loadgen)), settings=settings)
    print(f"vhod benchmark{' (quick)' if options.quick else ''}: {report.machine}", flush=True)
    with tempfile.TemporaryDirectory(prefix="vhod-bench-") as folder:
        Bench(options, Path(folder), report).run()
    report.targets = judge(report)
    paths = write_outputs(
        report,
        options.results,
        command,
        quick=options.quick,
        draw=options.chart,
        latest=options.latest,
    )
    print()
    for t in report.targets:
        ratio = "-" if t.ratio is None else f"{t.ratio:.4f}"
        print(f"{t.verdict}  {t.name}: {ratio} ({t.rule}; {t.detail})")
    print(
        f"\n{len(report.rows)} measurements in {report.elapsed_s:.0f} s; written:"
        f" {', '.join(str(p) for p in paths.values())}"
    )
    if options.latest:
        print("and bench/latest.md, bench/latest.json" + (", bench/latest.png" * options.chart))
    missed = any(t.verdict == "MISS" for t in report.targets)
    return 1 if options.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
