"""prometheus_client's multiprocess collector, reading only the workers' files that are
ready: a worker that is starting creates its file empty and sizes it a moment later, and
reading it in that moment raises struct.error (prometheus_client 0.26), which would fail a
scrape, or the start of another worker that registers the collector."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import CollectorRegistry


class SettledFilesCollector(MultiProcessCollector):
    def __init__(self, registry: CollectorRegistry | None, path: str) -> None:
        self.files_path = path
        super().__init__(registry, path=path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        files = [
            name for name in glob.glob(os.path.join(self.files_path, "*.db")) if _size(name) > 0
        ]
        return self.merge(files, accumulate=True)  # type: ignore[no-any-return,no-untyped-call]


def _size(name: str) -> int:
    try:
        return os.path.getsize(name)
    except OSError:  # removed by mark_process_dead meanwhile
        return 0
