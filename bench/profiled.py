"""A Python script run under cProfile switched on and off by signals, for bench/profile_http.py.

`PROFILE_SCRIPT=server.py PROFILE_OUT=out.prof python bench/profiled.py [the script's args]`:
SIGUSR1 starts a fresh profile of the main thread (the event loop); SIGUSR2 stops it and
writes PROFILE_OUT (pstats format). Between the two signals the script runs at full speed.
"""

from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys
from pathlib import Path
from types import FrameType


def main() -> None:
    script = os.environ["PROFILE_SCRIPT"]
    out = os.environ["PROFILE_OUT"]
    profiler = cProfile.Profile()

    def start(signum: int, frame: FrameType | None) -> None:
        profiler.clear()
        profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(out + ".part")
        os.replace(out + ".part", out)  # whole, once the reader sees it

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.path.insert(0, str(Path(script).resolve().parent))  # as `python SCRIPT` would
    sys.argv = [script, *sys.argv[1:]]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
