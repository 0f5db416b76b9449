"""The test suite's strict fake VK ID in a process of its own, for provider sign-in under load.

Prints one JSON line (`{"section": <providers.vk config>, "token": <a VK access token>}`)
once it listens on 127.0.0.1, then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.providers import FakeVK


class BenchVK(FakeVK):
    """FakeVK that keeps no record of each request, so a long load does not grow it."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = _Discard()


class _Discard(list):  # type: ignore[type-arg]
    def append(self, item: object) -> None:
        return None


async def serve() -> None:
    fake = BenchVK().start()
    token = fake.mint_token("default")
    print(json.dumps({"section": fake.section(), "token": token}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await fake.aclose()


def main() -> int:
    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
