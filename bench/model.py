"""The names a run measures under and the report it builds: shared by scenarios, targets, report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SQLITE, MONGO, TORNADO = "sqlite", "mongodb", "tornado"
STORE_TITLES = {
    SQLITE: "SQLite",
    MONGO: "nx-27017 (SQLite behind MongoDB protocol)",
    TORNADO: "bare Tornado",
}
NX_27017 = (
    "nx-27017 speaks MongoDB's wire protocol but is a Python server that keeps its data in"
    " SQLite, not MongoDB: its rows measure vhod's MongoDB code path, not MongoDB's speed."
)

# Measures (rows of the report), by the scenario that makes them.
BASELINE = "baseline"
BASELINE_ES256 = "baseline, beside the ES256 checks"
BASELINE_PROCESSES = "baseline, beside processes: 2"
BASELINE_TWO = "baseline in 2 processes, one port"
# rows of the bare Tornado app, not of vhod
BASELINES = (BASELINE, BASELINE_ES256, BASELINE_PROCESSES, BASELINE_TWO)
ACCESS = "validate/access"
REFRESH = "validate/refresh"
LOGIN = "login/email"
REGISTRATION = "registration"
PROVIDER_LOGIN = "provider login (vk)"
ACCESS_IDLE = "validate/access, idle, 2 conns"
ACCESS_LOADED = "validate/access, logins saturating"
LOGIN_SATURATING = "login/email, saturating"
# The same on a second server that hashes on one thread (limits.hash_workers: 1): what
# the second hashing thread costs the token checks on this machine.
ONE_HASHER = " (limits.hash_workers: 1)"
ACCESS_IDLE_ONE = ACCESS_IDLE + ONE_HASHER
ACCESS_LOADED_ONE = ACCESS_LOADED + ONE_HASHER
LOGIN_SATURATING_ONE = LOGIN_SATURATING + ONE_HASHER
ACCESS_MEMORY = "validate/access, memory run"
LOGIN_SMALL = "login/email, 1 at a time, small user table"
LOGIN_LARGE = "login/email, 1 at a time, large user table"
ES256_ONE = "validate/access, ES256, one repeated token"
ES256_DISTINCT = "validate/access, ES256, distinct tokens"
ISSUE_HS256 = "login/email at bcrypt cost 4, HS256"
ISSUE_ES256 = "login/email at bcrypt cost 4, ES256"
CODE_SEND = "code/send, a new number each"
CODE_LOGIN = "code/login, each code once"
ACCESS_IDLE_CODES = "validate/access, idle, 2 conns (codes)"
ACCESS_CODE_FLOOD = "validate/access, code flood on one number"
ACCESS_PROCESSES = "validate/access, processes: 2"

# Every scenario a run has, with the measures it makes; a report names each one as run or
# skipped (with the reason), per store where it runs per store.
SCENARIOS: dict[str, tuple[str, ...]] = {
    "throughput": (BASELINE, ACCESS, REFRESH, LOGIN, REGISTRATION, PROVIDER_LOGIN),
    "saturation": (
        ACCESS_IDLE,
        ACCESS_LOADED,
        LOGIN_SATURATING,
        ACCESS_IDLE_ONE,
        ACCESS_LOADED_ONE,
        LOGIN_SATURATING_ONE,
    ),
    "memory": (ACCESS_MEMORY,),
    "users": (LOGIN_SMALL, LOGIN_LARGE),
    "es256": (BASELINE_ES256, ES256_ONE, ES256_DISTINCT, ISSUE_HS256, ISSUE_ES256),
    "codes": (CODE_SEND, CODE_LOGIN, ACCESS_IDLE_CODES, ACCESS_CODE_FLOOD),
    "processes": (BASELINE_PROCESSES, BASELINE_TWO, ACCESS_PROCESSES),
}
# The stores each scenario runs on (the ES256 comparison: two fresh SQLite servers).
SCENARIO_STORES: dict[str, tuple[str, ...]] = {
    "throughput": (SQLITE, MONGO),
    "saturation": (SQLITE,),
    "memory": (SQLITE,),
    "users": (SQLITE, MONGO),
    "es256": (SQLITE,),
    "codes": (SQLITE, MONGO),
    "processes": (SQLITE,),
}
ES256_UNSUPPORTED = "skipped: ES256 not supported by this server"


@dataclass
class Row:
    measure: str
    store: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


@dataclass
class ScenarioRun:
    name: str
    store: str
    status: str  # "ran" or "skipped"
    reason: str = ""


@dataclass
class Verdict:
    name: str
    rule: str
    ratio: float | None
    verdict: str  # PASS, MISS or SKIP
    detail: str


@dataclass
class Report:
    machine: dict[str, Any]
    settings: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    scenarios: list[ScenarioRun] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)  # named numbers targets read
    notes: list[str] = field(default_factory=list)  # sentences under the table
    targets: list[Verdict] = field(default_factory=list)
    elapsed_s: float = 0.0

    def row(self, measure: str, store: str) -> Row | None:
        return next((r for r in self.rows if r.measure == measure and r.store == store), None)

    def skipped(self, scenario: str, store: str) -> str | None:
        """The reason `scenario` did not run on `store`, or None when it ran."""
        for run in self.scenarios:
            if run.name == scenario and run.store == store and run.status == "skipped":
                return run.reason
        return None
