"""The speed targets, as one table of data, and how a report is judged against them.

A target is a ratio of two quantities measured in the same run (so that the machine's
speed cancels out) compared with a limit. A quantity is a row's rps / p50 / p99, or a
named number a scenario recorded (the hashing limit, RSS readings).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from bench.model import (
    ACCESS,
    ACCESS_CODE_FLOOD,
    ACCESS_IDLE,
    ACCESS_IDLE_CODES,
    ACCESS_LOADED,
    ACCESS_PROCESSES,
    BASELINE,
    BASELINE_ES256,
    BASELINE_PROCESSES,
    ES256_DISTINCT,
    ES256_ONE,
    ISSUE_ES256,
    ISSUE_HS256,
    LOGIN,
    LOGIN_LARGE,
    LOGIN_SMALL,
    MONGO,
    REFRESH,
    SQLITE,
    STORE_TITLES,
    TORNADO,
    Report,
    Verdict,
)

UNITS = {"rps": "req/s", "p50_ms": "ms", "p99_ms": "ms"}
COMPARE = {"≥": operator.ge, "≤": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Quantity:
    kind: str  # "rps", "p50_ms", "p99_ms" of the row (measure, store); "value": report.values
    measure: str
    store: str = SQLITE
    unit: str = ""

    def read(self, report: Report) -> float | None:
        if self.kind == "value":
            return report.values.get(self.measure)
        row = report.row(self.measure, self.store)
        return None if row is None else float(getattr(row, self.kind))

    @property
    def units(self) -> str:
        return self.unit or UNITS.get(self.kind, "")


@dataclass(frozen=True)
class Target:
    name: str
    measured: Quantity
    reference: Quantity
    op: str  # a key of COMPARE
    limit: float
    against: str  # what the reference is, for the rule's wording
    scenario: str  # a key of bench.model.SCENARIOS: its skip is this target's skip
    store: str = SQLITE

    @property
    def rule(self) -> str:
        return f"{self.op} {self.limit:g} × {self.against}"


def _rps(measure: str, store: str = SQLITE) -> Quantity:
    return Quantity("rps", measure, store)


_BASELINE = _rps(BASELINE, TORNADO)
_BASELINE_ES256 = _rps(BASELINE_ES256, TORNADO)

TARGETS: tuple[Target, ...] = (
    Target(
        "validate/access throughput",
        _rps(ACCESS), _BASELINE, "≥", 0.9, "baseline", "throughput",
    ),
    Target(
        "validate/access throughput, processes: 2",
        _rps(ACCESS_PROCESSES), _rps(BASELINE_PROCESSES, TORNADO),
        "≥", 1.5, "single-process baseline", "processes",
    ),
    Target(
        "validate/refresh throughput",
        _rps(REFRESH), _BASELINE, "≥", 0.5, "baseline", "throughput",
    ),
    Target(
        "validate/access p99 while logins saturate hashing",
        Quantity("p99_ms", ACCESS_LOADED),
        Quantity("p99_ms", ACCESS_IDLE),
        "≤", 3.0, "idle p99", "saturation",
    ),
    Target(
        "validate/access p99 while a code flood runs against the budgets",
        Quantity("p99_ms", ACCESS_CODE_FLOOD),
        Quantity("p99_ms", ACCESS_IDLE_CODES),
        "≤", 3.0, "idle p99", "codes",
    ),
    Target(
        "ES256 validate/access, one repeated token",
        _rps(ES256_ONE), _BASELINE_ES256, "≥", 0.9, "baseline", "es256",
    ),
    Target(
        "ES256 validate/access, distinct tokens (cache misses)",
        _rps(ES256_DISTINCT), _BASELINE_ES256, "≥", 0.6, "baseline", "es256",
    ),
    Target(
        "ES256 token issuance (login at bcrypt cost 4)",
        _rps(ISSUE_ES256), _rps(ISSUE_HS256), "≥", 0.9, "HS256", "es256",
    ),
    Target(
        "login throughput at the configured password hash",
        _rps(LOGIN),
        Quantity("value", "hash_limit_per_s", unit="logins/s"),
        "≥", 0.85, "hashing limit (cores ÷ one hash)", "throughput",
    ),
    Target(
        "RSS across the memory run",
        Quantity("value", "rss_after_kib", unit="KiB"),
        Quantity("value", "rss_before_kib", unit="KiB"),
        "<", 1.10, "RSS before", "memory",
    ),
    *(
        Target(
            f"login p50, large vs small user table ({STORE_TITLES[store]})",
            Quantity("p50_ms", LOGIN_LARGE, store),
            Quantity("p50_ms", LOGIN_SMALL, store),
            "≤", 1.5, "small table", "users", store,
        )
        for store in (SQLITE, MONGO)
    ),
)  # fmt: skip


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def judge(report: Report) -> list[Verdict]:
    """One verdict per target, in table order: PASS, MISS, or SKIP with the reason."""
    verdicts = []
    for target in TARGETS:
        skipped = report.skipped(target.scenario, target.store)
        measured = target.measured.read(report)
        reference = target.reference.read(report)
        if skipped is not None or measured is None or not reference:
            reason = skipped or f"skipped: the {target.scenario} scenario measured nothing"
            verdicts.append(Verdict(target.name, target.rule, None, "SKIP", reason))
            continue
        ratio = measured / reference
        passed = COMPARE[target.op](ratio, target.limit)
        units = target.measured.units
        detail = f"{_number(measured)} vs {_number(reference)} {units}".rstrip()
        verdicts.append(
            Verdict(target.name, target.rule, round(ratio, 4), "PASS" if passed else "MISS", detail)
        )
    return verdicts
