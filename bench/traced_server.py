"""server.py under tracemalloc, for the soak's `--tracemalloc`: SIGUSR1 writes a snapshot.

`python bench/traced_server.py FOLDER [server.py's arguments]` starts tracing before vhod
imports anything, and on each SIGUSR1 writes `FOLDER/snapshot-N.tracemalloc` (N = 1, 2, ...)
and `FOLDER/counts-N.json` (live objects by type, malloc's totals). Environment:
SOAK_TRACE_FRAMES frames a trace (default 8; 0: no tracing, at full speed, counts only);
SOAK_VERIFIED_CACHE shrinks the cache of verified tokens so that it fills at once. Tracing
slows the server down; it is for finding a leak, not for measuring speed.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import runpy
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

FRAMES = int(os.environ.get("SOAK_TRACE_FRAMES", "8"))  # enough to see which caller holds it


def counts() -> dict[str, Any]:
    """Live objects by type, Python's allocated blocks, and malloc's own totals: whether a
    growth is Python objects (and of which type) or memory malloc keeps but does not use."""
    by_type = Counter(type(o).__qualname__ for o in gc.get_objects())
    result: dict[str, Any] = {
        "allocated_blocks": sys.getallocatedblocks(),
        "types": dict(by_type.most_common(300)),
    }
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")

        class Mallinfo2(ctypes.Structure):
            _fields_ = [
                (name, ctypes.c_size_t)
                for name in (
                    "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                    "fsmblks", "uordblks", "fordblks", "keepcost",
                )
            ]  # fmt: skip

        libc.mallinfo2.restype = Mallinfo2
        info = libc.mallinfo2()
        result["malloc"] = {name: getattr(info, name) for name, _ in Mallinfo2._fields_}
    return result


def main() -> None:
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parent.parent
    sys.argv = [str(root / "server.py"), *sys.argv[2:]]
    sys.path.insert(0, str(root))
    taken = 0

    def snapshot(signum: int, frame: FrameType | None) -> None:
        nonlocal taken
        taken += 1
        gc.collect()  # what is still held, not garbage waiting for the collector
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(str(folder / f"snapshot-{taken}.tracemalloc"))
        (folder / f"counts-{taken}.json").write_text(json.dumps(counts()))
        (folder / f"snapshot-{taken}.done").touch()

    if size := os.environ.get("SOAK_VERIFIED_CACHE"):
        # A small cache of verified tokens fills in seconds, so that a short traced run
        # shows what grows once it is full (its filling would hide everything else).
        import core.signing.tokens

        core.signing.tokens.VERIFIED_CACHE_SIZE = int(size)
    if FRAMES:  # 0: no tracing (full speed), only the counts
        tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR1, snapshot)
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
