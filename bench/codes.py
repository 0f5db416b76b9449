"""The code sign-in scenario: code/send and code/login through the fake SMS.ru, and token
checks while one client floods code/send against the budgets."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from bench import model
from bench.cluster import http
from bench.drivers import Load, combine
from bench.loadgen import LoadResult
from bench.model import SQLITE, STORE_TITLES
from bench.seed import collect_access_tokens

if TYPE_CHECKING:
    from bench.scenarios import Bench


def code_sign_in(bench: Bench, store: str, port: int, pair: dict[str, str]) -> None:
    """Code sign-in through the fake SMS.ru: code/send to new numbers, code/login with
    codes each used once, and validate/access latency while one client floods code/send
    for one number (refused by that number's budget after its first codes)."""
    send = bench.spec(
        port,
        "/authorization/code/send",
        method="POST",
        body_kind="code_send",
        start=1_000_000 if store == SQLITE else 3_000_000,
    )
    sent = bench.drive(send)
    bench.add_row(model.CODE_SEND, store, sent)
    # A code is stored before it goes to the gateway: every code the fake holds works.
    status, codes = http(bench.sms_port, "GET", "/bench/codes")
    if status != 200 or not codes:
        raise RuntimeError(f"the fake gateway has no codes: {status}")
    bodies = bench.folder / f"code-logins-{store}.txt"
    # Only the numbers of this load: the gateway also saw the flood's and the other store's.
    first = send.start
    mine = {
        phone: code
        for phone, code in codes.items()
        if phone.startswith("+7925") and first <= int(phone[5:]) < first + 2_000_000
    }
    lines = [json.dumps({"phone_number": p, "code": c}) for p, c in mine.items()]
    bodies.write_text("\n".join(lines) + "\n", encoding="utf-8")
    login = bench.spec(
        port, "/authorization/code/login", method="POST", body_kind="bodies",
        tokens_file=str(bodies), max_requests=len(lines),
    )  # fmt: skip
    bench.add_row(model.CODE_LOGIN, store, bench.drive(login))
    tokens = collect_access_tokens(port, pair["refresh"], 64, bench.folder / "probe2.txt")
    probe = bench.spec(
        port, "/validate/jwt/access", body_kind="tokens",
        tokens_file=str(tokens), connections=2,
    )  # fmt: skip
    flood = bench.spec(
        port, "/authorization/code/send", method="POST",
        body=json.dumps({"phone_number": "+7 925 999-99-99"}),
        duration=bench.o.duration + 2,
    )  # fmt: skip
    runs: dict[str, list[LoadResult]] = {"idle": [], "loaded": [], "flood": []}
    for _ in range(bench.o.rounds):
        runs["idle"].append(bench.drive(probe))
        background = Load(flood, bench.o.loadgen)
        try:
            time.sleep(1.0)
            runs["loaded"].append(bench.drive(probe))
        finally:
            runs["flood"].append(background.result())
    bench.add_row(model.ACCESS_IDLE_CODES, store, combine(runs["idle"]))
    bench.add_row(model.ACCESS_CODE_FLOOD, store, combine(runs["loaded"]))
    flood_run = combine(runs["flood"])
    refused = flood_run.errors
    bench.report.notes.append(
        f"Code flood ({STORE_TITLES[store]}): {flood_run.requests:,} code/send requests for"
        f" one number from one client at {flood_run.rps:,.0f} req/s, {refused:,} refused"
        f" by the number's budget (429), p99 {flood_run.p99_ms:.1f} ms."
    )
    bench.scenario("codes", store)
