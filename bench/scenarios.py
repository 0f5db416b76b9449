"""The scenarios of one run (names and measures in bench.model.SCENARIOS), in order.

Per store (SQLite, then the nx-27017 wire server when installed): throughput and the user
table's size; on SQLite also the latency under hashing saturation and the memory run; then
ES256 against HS256 on two fresh SQLite servers. The baseline is measured in rounds
interleaved with the loads it is compared with, so that drift of a shared machine hits both:
once beside the HS256 token checks on SQLite, once beside the ES256 ones.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import model
from bench.cluster import (
    VhodRefused,
    http,
    nx_server,
    rss_kib,
    start_baseline,
    start_fake_gateway,
    start_fake_vk,
    start_vhod,
    vhod_overrides,
)
from bench.codes import code_sign_in
from bench.drivers import combine, drive
from bench.hashes import PASSWORD, PasswordHash
from bench.loadgen import LoadResult, LoadSpec
from bench.model import MONGO, SQLITE, STORE_TITLES, TORNADO, Report, Row, ScenarioRun
from bench.options import Options
from bench.processes import several_processes
from bench.saturation import saturation
from bench.seed import collect_access_tokens, lookup_median_us, seed_users, user_email
from tests.processes import Server

LOGIN_STRIDE = 100_003  # a prime: logins at the large size read users all over the table
# The ES256 / HS256 issuance comparison measures token signing, not hashing: its logins run
# on the cheapest bcrypt, whatever hash the rest of the run measures (its rows say so).
ISSUANCE_HASH = PasswordHash.bcrypt(4)
# Overrides the report lists; the others are this run's paths and the fakes' endpoints.
_SHOWN = ("VHOD_LIMITS", "VHOD_PASSWORDS", "VHOD_JWT", "VHOD_ACCOUNTS", "VHOD_SMS")
_UNSHOWN = ("VHOD_SMS__CHANNELS",)  # the fake SMS.ru's endpoint


class Bench:
    """One benchmark run: the servers, the scenarios, the numbers."""

    def __init__(self, options: Options, folder: Path, report: Report) -> None:
        self.o = options
        self.folder = folder
        self.report = report
        self.cores = os.cpu_count() or 1
        self.baseline_runs: dict[str, list[LoadResult]] = {}  # by its row's measure
        self.baseline_port = 0
        self.vk: dict[str, Any] = {}
        self.sms_channel: dict[str, str] | None = None
        self.sms_port = 0
        self.seed_hash = ""  # of PASSWORD, at the measured servers' hash

    # --- plumbing ---

    def spec(self, port: int, path: str, **kwargs: Any) -> LoadSpec:
        kwargs.setdefault("connections", self.o.connections)
        kwargs.setdefault("duration", self.o.duration)
        return LoadSpec(port=port, path=path, **kwargs)

    def drive(self, spec: LoadSpec) -> LoadResult:
        return drive(spec, self.o.loadgen)

    def bearer(self, port: int, path: str, token: str, **kwargs: Any) -> LoadSpec:
        return self.spec(port, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)

    def logins(self, port: int, **kwargs: Any) -> LoadSpec:
        """Logins of the seeded users; by default enough connections to keep hashing busy."""
        kwargs.setdefault("connections", 2 * self.cores + 4)
        kwargs.setdefault("duration", self.o.login_duration)
        kwargs.setdefault("users", self.o.small_users)
        kwargs.setdefault("stride", 7)
        path = "/authorization/login/email"
        return self.spec(port, path, method="POST", body_kind="login", **kwargs)

    def baseline_round(self, measure: str, like: LoadSpec) -> None:
        """The same request bytes as `like`, sent to the bare Tornado app."""
        run = self.drive(replace(like, port=self.baseline_port))
        self.baseline_runs.setdefault(measure, []).append(run)

    def add_row(self, measure: str, store: str, result: LoadResult) -> None:
        self.report.rows.append(
            Row(
                measure,
                store,
                round(result.rps, 1),
                round(result.p50_ms, 2),
                round(result.p99_ms, 2),
                result.requests,
                result.errors,
            )
        )
        print(
            f"  {measure:<42} {model.STORE_TITLES[store]:<42} {result.rps:9.1f} req/s"
            f"  p50 {result.p50_ms:8.2f} ms  p99 {result.p99_ms:8.2f} ms"
            f"  ({result.requests} requests, {result.errors} errors)",
            flush=True,
        )

    def scenario(self, name: str, store: str, reason: str = "") -> None:
        status = "skipped" if reason else "ran"
        self.report.scenarios.append(ScenarioRun(name, store, status, reason))
        if reason:
            print(f"  {name} ({model.STORE_TITLES[store]}): {reason}", flush=True)

    def register(self, port: int, email: str = "main@bench.example") -> dict[str, str]:
        body = {"phone_number": "+7 925 000-00-01", "email": email, "hash_password": PASSWORD}
        status, pair = http(port, "POST", "/authorization/registration", body)
        if status != 200:
            raise RuntimeError(f"registration answered {status}: {pair}")
        return pair

    def vhod(
        self,
        name: str,
        passwords: PasswordHash,
        algorithm: str | None = None,
        url: str = "",
        extra: dict[str, str] | None = None,
    ) -> tuple[Server, str]:
        """vhod on `url`, by default a SQLite file of its own; returns it and that URL."""
        url = url or f"sqlite:///{self.folder / name / 'vhod.db'}"
        data = self.folder / name / "data"
        overrides = vhod_overrides(
            data, url, passwords, self.vk["section"], algorithm, self.sms_channel
        )
        overrides.update(extra or {})
        server = start_vhod(self.folder, name, overrides)
        shown = {
            k: v for k, v in overrides.items() if k.split("__")[0] in _SHOWN and k not in _UNSHOWN
        }
        shown.update(extra or {})
        self.report.settings.setdefault("vhod overrides", {})[name] = shown
        return server, url

    # --- the run ---

    def run(self) -> None:
        began = time.perf_counter()
        passwords = self.o.password_hash
        self.seed_hash = passwords.hash_password()  # once: every seeded user shares it
        hash_seconds = passwords.verify_seconds(self.seed_hash)
        limit = self.cores / hash_seconds
        self.report.values["hash_limit_per_s"] = round(limit, 2)
        if not passwords.default:
            self.report.notes.append(
                f"The measured servers ran on {passwords.label}, not config.yaml's default hash"
                f" ({'--quick keeps to a cheap one' if self.o.quick else '--password-hash'}):"
                " their login rows and the hashing limit are that hash's."
            )
            print(f"  {self.report.notes[-1]}", flush=True)
        self.report.notes.append(
            f"Password hash: {passwords.label}. One verification (vhod's own check, median of"
            f" 5): {hash_seconds * 1000:.1f} ms, so the hashing limit is {self.cores} cores"
            f" ÷ that = {limit:.2f} logins/s."
        )
        print(f"  {self.report.notes[-1]}", flush=True)
        with contextlib.ExitStack() as stack:
            fake, self.vk = start_fake_vk(self.folder)
            stack.callback(fake.stop)
            gateway, self.sms_channel = start_fake_gateway(self.folder)
            self.sms_port = int(self.sms_channel["url"].rsplit(":", 1)[1])
            stack.callback(gateway.stop)
            baseline, self.baseline_port = start_baseline(self.folder)
            stack.callback(baseline.stop)
            for store in (SQLITE, MONGO):
                if store in self.o.stores:
                    self.on_store(store)
                else:
                    installed = store != MONGO or importlib.util.find_spec("nx_27017")
                    why = "not in --stores" if installed else "nx-27017 is not installed"
                    for name, stores in model.SCENARIO_STORES.items():
                        if store in stores and name != "es256":  # es256 has servers of its own
                            self.scenario(name, store, f"skipped: {why}")
            if SQLITE in self.o.stores:
                several_processes(self)
            self.es256()
        for measure, runs in reversed(self.baseline_runs.items()):
            self.add_row(measure, TORNADO, combine(runs))
            self.report.rows.insert(0, self.report.rows.pop())  # the references first
        self.report.elapsed_s = round(time.perf_counter() - began, 1)

    def on_store(self, store: str) -> None:
        print(f"{STORE_TITLES[store]}:", flush=True)
        with contextlib.ExitStack() as stack:
            url = ""
            if store == MONGO:
                url = stack.enter_context(nx_server(self.folder)) + "vhod_bench"
            vhod, url = self.vhod(f"vhod-{store}", self.o.password_hash, url=url)
            stack.callback(vhod.stop)
            small, seconds = seed_users(url, 0, self.o.small_users, self.seed_hash)
            print(f"  bulk-loaded {small:,} users in {seconds:.1f} s", flush=True)
            p50_small = self.login_one_at_a_time(vhod.port, small, store, model.LOGIN_SMALL)
            lookup_small = lookup_median_us(url, self.sample_emails(small))

            pair = self.register(vhod.port)
            status, answer = http(vhod.port, "GET", f"/vk/registration?{self.vk_query()}")
            if status != 200:
                raise RuntimeError(f"VK registration answered {status}: {answer}")
            self.throughput(store, vhod.port, pair)
            self.scenario("throughput", store)
            code_sign_in(self, store, vhod.port, pair)
            if store == SQLITE:
                saturation(self, vhod.port, pair)
                self.memory(vhod, pair)

            budget = self.o.mongo_load_seconds if store == MONGO else float("inf")
            large, seconds = seed_users(url, small, self.o.large_users, self.seed_hash, budget)
            print(f"  bulk-loaded up to {large:,} users in {seconds:.1f} s", flush=True)
            p50_large = self.login_one_at_a_time(vhod.port, large, store, model.LOGIN_LARGE)
            lookup_large = lookup_median_us(url, self.sample_emails(large))
            self.scenario("users", store)
            short = "" if large >= self.o.large_users else (
                f"; only {large:,} of {self.o.large_users:,} loaded in the"
                f" {self.o.mongo_load_seconds:.0f} s budget"
            )  # fmt: skip
            self.report.notes.append(
                f"{model.STORE_TITLES[store]}: login p50 {p50_small:.1f} ms at {small:,} users,"
                f" {p50_large:.1f} ms at {large:,}; the store's own lookup by email, median"
                f" {lookup_small:.0f} µs and {lookup_large:.0f} µs (bulk load"
                f" {seconds:.1f} s{short})."
            )

    def vk_query(self) -> str:
        return f"access_token={self.vk['token']}"

    def sample_emails(self, users: int, count: int = 200) -> list[str]:
        return [user_email("u", n * LOGIN_STRIDE % users) for n in range(count)]

    def login_one_at_a_time(self, port: int, users: int, store: str, measure: str) -> float:
        """Login latency with no queueing, users spread over the whole table; its p50."""
        stride = LOGIN_STRIDE if users > LOGIN_STRIDE else 7
        result = self.drive(self.logins(port, users=users, stride=stride, connections=1))
        self.add_row(measure, store, result)
        if result.errors:
            raise RuntimeError(f"{result.errors} logins failed at {users:,} users ({store})")
        return result.p50_ms

    def throughput(self, store: str, port: int, pair: dict[str, str]) -> None:
        access = self.bearer(port, "/validate/jwt/access", pair["access"])
        refresh = self.bearer(port, "/validate/jwt/refresh", pair["refresh"])
        runs: dict[str, list[LoadResult]] = {"access": [], "refresh": []}
        for _ in range(self.o.rounds if store == SQLITE else 1):
            if store == SQLITE:
                self.baseline_round(model.BASELINE, access)
            runs["access"].append(self.drive(access))
            runs["refresh"].append(self.drive(refresh))
        self.add_row(model.ACCESS, store, combine(runs["access"]))
        self.add_row(model.REFRESH, store, combine(runs["refresh"]))
        self.add_row(model.LOGIN, store, self.drive(self.logins(port)))
        register = self.spec(
            port,
            "/authorization/registration",
            method="POST",
            body_kind="register",
            user_prefix=f"r-{store}-",
            connections=2 * self.cores + 4,
            duration=self.o.login_duration,
        )
        self.add_row(model.REGISTRATION, store, self.drive(register))
        provider = self.spec(port, f"/vk/login?{self.vk_query()}")
        self.add_row(model.PROVIDER_LOGIN, store, self.drive(provider))

    def memory(self, vhod: Server, pair: dict[str, str]) -> None:
        """RSS of the vhod process across `memory_requests` validations of distinct tokens,
        after a warm-up that fills the verified-token cache."""
        pool = self.folder / "memory-tokens.txt"
        collect_access_tokens(vhod.port, pair["refresh"], self.o.token_pool, pool)
        spec = self.spec(
            vhod.port, "/validate/jwt/access", body_kind="tokens", tokens_file=str(pool)
        )
        _, rate = self.requests_of(spec, self.o.token_pool, rate=1000.0)
        before = rss_kib(vhod.pid)
        runs, rate = self.requests_of(spec, self.o.memory_requests, rate)
        after = rss_kib(vhod.pid)
        self.add_row(model.ACCESS_MEMORY, SQLITE, combine(runs))
        done = sum(r.requests for r in runs)
        self.report.values.update(rss_before_kib=before, rss_after_kib=after)
        self.report.notes.append(
            f"Memory run: RSS {before:,} KiB before and {after:,} KiB after {done:,}"
            f" validations of {self.o.token_pool:,} distinct tokens."
        )
        self.scenario("memory", SQLITE)

    def requests_of(
        self, spec: LoadSpec, count: int, rate: float
    ) -> tuple[list[LoadResult], float]:
        """Loads of `spec` until at least `count` answers came back (wrk runs for a time,
        so its duration is worked out from the last rate seen)."""
        done, runs = 0, []
        while done < count:
            remaining = count - done
            seconds = min(60.0, max(1.0, 1.05 * remaining / rate))
            result = self.drive(replace(spec, duration=seconds, max_requests=remaining))
            if result.requests == 0:
                raise RuntimeError("a memory run made no progress")
            runs.append(result)
            done += result.requests
            rate = max(result.rps, 1.0)
        return runs, rate

    def es256(self) -> None:
        """ES256 checks (one token; distinct tokens) and issuance against HS256."""
        print("ES256 and HS256 on SQLite:", flush=True)
        with contextlib.ExitStack() as stack:
            try:
                es, es_url = self.vhod("vhod-es256", ISSUANCE_HASH, "ES256")
            except VhodRefused as refused:
                if "algorithm" not in str(refused):
                    raise
                print(f"  vhod refused ES256: {str(refused).strip()[-300:]}", flush=True)
                self.scenario("es256", SQLITE, model.ES256_UNSUPPORTED)
                return
            stack.callback(es.stop)
            hs, hs_url = self.vhod("vhod-hs256", ISSUANCE_HASH, "HS256")
            stack.callback(hs.stop)
            hashed = ISSUANCE_HASH.hash_password()
            for url in (es_url, hs_url):
                seed_users(url, 0, self.o.small_users, hashed)
            pair = self.register(es.port)
            pool = self.folder / "es256-tokens.txt"
            collect_access_tokens(es.port, pair["refresh"], self.o.token_pool, pool)
            one = self.bearer(es.port, "/validate/jwt/access", pair["access"])
            distinct = replace(one, headers={}, body_kind="tokens", tokens_file=str(pool))
            runs: dict[str, list[LoadResult]] = {"one": [], "distinct": [], "hs": [], "es": []}
            for _ in range(self.o.rounds):
                self.baseline_round(model.BASELINE_ES256, one)
                runs["one"].append(self.drive(one))
                runs["distinct"].append(self.drive(distinct))
            for _ in range(self.o.rounds):
                runs["hs"].append(self.drive(self.logins(hs.port, duration=self.o.duration)))
                runs["es"].append(self.drive(self.logins(es.port, duration=self.o.duration)))
            self.add_row(model.ES256_ONE, SQLITE, combine(runs["one"]))
            self.add_row(model.ES256_DISTINCT, SQLITE, combine(runs["distinct"]))
            self.add_row(model.ISSUE_HS256, SQLITE, combine(runs["hs"]))
            self.add_row(model.ISSUE_ES256, SQLITE, combine(runs["es"]))
            self.scenario("es256", SQLITE)
            self.report.notes.append(
                f"ES256: {self.o.token_pool:,} distinct tokens for the cache-miss load; issuance"
                f" compared on two fresh servers at {ISSUANCE_HASH.label} (it measures token"
                " signing, not the hash)."
            )
