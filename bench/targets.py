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


# Where the profile of a target that misses is, and what it showed when it was measured
# (links relative to bench/, where the reports live). A report lists these under its
# targets for each MISS, so that a miss never stands without its explanation.
PROFILED: dict[str, str] = {
    "validate/access throughput": (
        "[http_profile.md](http_profile.md) measures the CPU each server process spends a"
        " request, no profiler: 233 µs for vhod against 192 µs for the bare app (2026-12-08),"
        " so one core allows 0.83 at best. The 41 µs are spread thin (its cProfile tables):"
        " the access log line and request metrics, prepare() (request id, context, security"
        " headers), the token check and revocation lookup, the body cap, a longer route table"
        " and more response headers; no one item above about 7 µs."
    ),
    "ES256 validate/access, one repeated token": (
        "The same request as validate/access: see its line; 0.83 of the bare app's CPU a"
        " request at best ([http_profile.md](http_profile.md))."
    ),
    "validate/access throughput, processes: 2": (
        "Two workers keep vhod's single-process share: the bare app in two processes"
        " reaches 1.6 to 1.8 × one process here (wrk shares the two cores; the rows above),"
        " and vhod's share of a bare process is 0.83 at best"
        " ([http_profile.md](http_profile.md)): 0.83 × 1.76 = 1.46. Before each worker had"
        " a socket of its own (SO_REUSEPORT), one worker took most connections and this"
        " ratio was 0.79."
    ),
    "validate/refresh throughput": (
        "[http_profile.md](http_profile.md): 478 µs of CPU a refresh against 192 µs for the"
        " bare app: a P-256 signature (28 µs in OpenSSL alone), the store read on the SQLite"
        " thread (token with its family's revocation, user, identities), the claims, jti and"
        " JSON of a new access token, and `no-store` headers. vhod as it was at 404f31a (the"
        " run that measured 0.51) costs the same beside it: 463 µs, per-round median ratio"
        " 0.985; the 0.51 came from a faster minute of this shared machine."
    ),
    "validate/access p99 while logins saturate hashing": (
        "The saturation rows with `(limits.hash_workers: 1)`: the same logins a second with"
        " one hashing thread keep the loaded p99 near idle. The second Argon2id thread (19 MiB"
        " a hash) shares the two cores and their cache with the event loop and wrk; lowering"
        " its priority further (nice 19, SCHED_IDLE) did not help (docs/benchmarks.md)."
    ),
    "login throughput at the configured password hash": (
        "The hashing limit is cores ÷ one hash timed alone; two Argon2id hashes at once each"
        " take longer (they share memory bandwidth), and the event loop's own work for each"
        " login (about 0.5 ms of CPU: the email's normal form, the store calls, two tokens"
        " signed) and wrk run on the same two cores. bench/password_login.py, which measures"
        " only this, reached 0.90 ([password_login.md](password_login.md))."
    ),
    "ES256 validate/access, distinct tokens (cache misses)": (
        "[cache_miss_profile.md](cache_miss_profile.md): a miss is one P-256 verification"
        " (about 66 µs in OpenSSL) beside the cached path."
    ),
}
