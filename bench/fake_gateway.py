"""The test suite's strict fake SMS.ru in a process of its own, for code sign-in under load.

Prints one JSON line (`{"channel": <an sms.channels entry>}`) once it listens on 127.0.0.1,
then serves until SIGTERM or SIGINT. `GET /bench/codes` answers (and forgets) the last code each
number received since the last call, so the benchmark can sign in with them.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.sms_gateways import SmsRuFake

_CODE = re.compile(r"\b(\d{4,10})\b")


class BenchSmsRu(SmsRuFake):
    """SmsRuFake keeping only the last code per number and no request log, so a long load
    grows it by one entry per number."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: dict[str, str] = {}
        self.requests = _Discard()

    def handle(
        self, path: str, params: dict[str, str] | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        if path == "/bench/codes":  # taken once: the next load's codes are its own
            taken, self.codes = self.codes, {}
            return 200, taken
        status, answer = super().handle(path, params, headers)
        while self.delivered:  # pop is atomic: the server's threads share the list
            phone, text = self.delivered.pop()
            self.codes[phone] = _CODE.search(text).group(1)  # type: ignore[union-attr]
        return status, answer


class _Discard(list):  # type: ignore[type-arg]
    def append(self, item: object) -> None:
        return None


def main() -> int:
    fake = BenchSmsRu().start()
    print(json.dumps({"channel": fake.config()}), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
