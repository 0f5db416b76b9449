"""Does a password reset tell, by timing, that an account exists? `python bench/reset_timing.py`

Starts vhod as a process (on SQLite, then on the nx-27017 wire server; `--storage` picks
one) with a local SMTP sink in a process of its own, registers one account, then alternates
resets for that account and for an unknown address. Each round, from one keep-alive
connection, times:

- `reset`: POST /authorization/password/reset itself;
- `next`: the request sent right after the reset's answer (a token check), which shares
  the event loop with whatever the reset still does after answering (sending the code);
- `next5`: that request and the four after it, back to back (work that starts a little
  after the answer, such as an SMTP conversation, lands on one of these);
- `confirm`: POST /authorization/password/reset/confirm with a wrong code, after a pause.

It prints the median of each, known and unknown, and their difference. Medians over many
alternating rounds, so that drift on a busy machine hits both sides alike; still only a
measurement, never a test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import BENCH_KEK, PER_IP_PER_MINUTE, nx_server, start_vhod
from tests.processes import Child, accepts_connections, free_port

KNOWN = "known@example.com"
UNKNOWN = "nobody@example.com"
PAUSE = 0.03  # lets the work of one step finish before the next is timed


class Client:
    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def timed(self, method: str, path: str, body: Any = None) -> tuple[float, int]:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data else {}
        start = time.perf_counter()
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        response.read()
        return (time.perf_counter() - start) * 1000, response.status


# The mail sink runs in a process of its own, at low priority: in this one, its work on
# each known reset's message would slow the client's own timing of the requests after it,
# and at full priority it competes with vhod for the cores (a real mail server is elsewhere).
_SINK = (
    "import sys, threading; from aiosmtpd.controller import Controller; "
    "from tests.fakes.channels import SmtpInbox; "
    "Controller(SmtpInbox(), hostname='127.0.0.1', port=int(sys.argv[1])).start(); "
    "threading.Event().wait()"
)


@contextmanager
def smtp_sink(folder: Path) -> Iterator[int]:
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    command = ["nice", "-n", "19", sys.executable, "-c", _SINK, str(port)]
    child = Child(command, folder / "smtp-sink.log", cwd=root)
    try:
        child.wait_until(lambda: accepts_connections(port), 30, "the SMTP sink")
        yield port
    finally:
        child.stop()


@contextmanager
def vhod(folder: Path, storage: str, smtp_port: int) -> Iterator[int]:
    mongo = nx_server(folder) if storage == "mongodb" else nullcontext(None)
    with mongo as mongo_url:
        url = f"{mongo_url}vhod_reset_timing" if mongo_url else f"sqlite:///{folder}/vhod.db"
        env = {
            "VHOD_SERVER__DATA_DIR": str(folder),
            "VHOD_STORAGE__URL": url,
            "VHOD_PASSWORDS__BCRYPT_ROUNDS": "10",
            "VHOD_LIMITS__PER_IP_PER_MINUTE": PER_IP_PER_MINUTE,
            "VHOD_ACCOUNTS__CODE_SENDS_PER_HOUR": "1000000",
            "VHOD_ACCOUNTS__CODE_SENDS_PER_CLIENT_PER_HOUR": "1000000",
            "VHOD_EMAIL__SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "VHOD_EMAIL__FROM": "vhod@example.com",
            "VHOD_LOGGING__LEVEL": "warning",
        }
        if mongo_url:
            env["VHOD_JWT__KEY_ENCRYPTION_KEY"] = BENCH_KEK
        server = start_vhod(folder, "vhod", env)
        try:
            yield server.port
        finally:
            server.stop()


def measure(port: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    client = Client(port)
    user = {"email": KNOWN, "phone_number": "+79160000001", "hash_password": "a long secret"}
    assert client.timed("POST", "/authorization/registration", user)[1] == 200
    times: dict[str, dict[str, list[float]]] = {
        kind: {"reset": [], "next": [], "next5": [], "confirm": []} for kind in ("known", "unknown")
    }
    for index in range(rounds * 2):
        kind = ("known", "unknown")[(index + index // 2) % 2]  # K U U K K U …: no order bias
        email = KNOWN if kind == "known" else UNKNOWN
        time.sleep(PAUSE)
        spent, status = client.timed("POST", "/authorization/password/reset", {"email": email})
        assert status == 200, status
        times[kind]["reset"].append(spent)
        following = [client.timed("GET", "/validate/jwt/access?access=x")[0] for _ in range(5)]
        times[kind]["next"].append(following[0])
        times[kind]["next5"].append(sum(following))
        time.sleep(PAUSE)
        body = {"email": email, "code": "000000", "new_password": "another secret"}
        spent, status = client.timed("POST", "/authorization/password/reset/confirm", body)
        assert status == 400, status
        times[kind]["confirm"].append(spent)
    return times


def report(storage: str, times: dict[str, dict[str, list[float]]]) -> None:
    print(f"\n{storage}: median ms over {len(times['known']['reset'])} rounds each")
    print(f"{'':10}{'known':>9}{'unknown':>9}{'diff':>9}")
    for step in ("reset", "next", "next5", "confirm"):
        known = statistics.median(times["known"][step])
        unknown = statistics.median(times["unknown"][step])
        print(f"{step:10}{known:9.2f}{unknown:9.2f}{known - unknown:+9.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="per kind (default 300)")
    parser.add_argument(
        "--storage", choices=["sqlite", "mongodb", "both"], default="both", help="default both"
    )
    options = parser.parse_args(argv)
    stores = ("sqlite", "mongodb") if options.storage == "both" else (options.storage,)
    with (
        tempfile.TemporaryDirectory(prefix="vhod-reset-timing-") as folder,
        smtp_sink(Path(folder)) as smtp_port,
    ):
        for storage in stores:
            with vhod(Path(folder) / storage, storage, smtp_port) as port:
                report(storage, measure(port, options.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
