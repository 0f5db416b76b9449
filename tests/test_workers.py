"""`server.processes` in parts: the setting and its refusals, the restart bound, each
worker's share of the hashing threads, whole log lines from several processes on one pipe,
and the request tables the workers add up (tests/test_processes.py runs the whole server)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.config import ConfigError, load_config
from core.infra.log_writer import LineFormatter, whole_line_chunks
from core.infra.metrics import RequestMetrics, StorageMetrics
from core.infra.supervisor import describe
from core.infra.workers import (
    RestartBudget,
    hash_workers,
    parse_processes,
    processes_problem,
    worker_count,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("written", "normal"),
    [(1, 1), (4, 4), ("2", 2), (" 3 ", 3), ("auto", "auto"), ("AUTO", "auto")],
)
def test_processes_reads_a_number_or_auto(written, normal):
    assert parse_processes(written) == normal


@pytest.mark.parametrize("written", [0, -1, "0", "many", "2.5", 2.5, True, None, ""])
def test_processes_refuses_anything_else(written):
    with pytest.raises(ValueError, match=r"server\.processes: must be a whole number"):
        parse_processes(written)


def test_auto_is_the_cpu_count():
    assert worker_count("auto", cpu_count=6) == 6
    assert worker_count(3, cpu_count=6) == 3


def test_processes_above_one_are_refused_where_they_cannot_work():
    file = "sqlite:///data/vhod.db"
    assert processes_problem(2, file, can_fork=True) is None
    assert processes_problem(1, "sqlite:///:memory:", can_fork=False) is None  # today's path
    no_fork = processes_problem(2, file, can_fork=False)
    assert no_fork is not None and "os.fork" in no_fork and "\n" not in no_fork
    memory = processes_problem(2, "sqlite:///:memory:", can_fork=True)
    assert memory is not None and "in-memory" in memory and "\n" not in memory
    assert processes_problem("auto", "sqlite:///:memory:", can_fork=True, cpu_count=1) is None
    assert processes_problem("auto", "sqlite:///:memory:", can_fork=True, cpu_count=2)


def test_the_environment_sets_processes_as_a_number(tmp_path):
    config = load_config(None, environ={"VHOD_SERVER__PROCESSES": "2"})
    assert config.server.processes == 2
    assert load_config(None, environ={"VHOD_SERVER__PROCESSES": "auto"}).server.processes == "auto"
    assert load_config(None, environ={}).server.processes == 1
    with pytest.raises(ConfigError, match=r"server\.processes"):
        load_config(None, environ={"VHOD_SERVER__PROCESSES": "0"})


def test_check_config_refuses_a_store_the_workers_cannot_share_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VHOD_")}
    env |= {"VHOD_SERVER__PROCESSES": "2", "VHOD_STORAGE__URL": "sqlite:///:memory:"}
    command = [sys.executable, str(ROOT / "server.py"), "--check-config"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("vhod: configuration error: server.processes: 2 workers need a store")


def test_the_restart_bound_counts_a_sliding_minute():
    budget = RestartBudget(2, window=60.0)
    assert budget.allow(0.0) and budget.allow(10.0)
    assert not budget.allow(59.0)  # a third within the minute: refused, not counted
    assert budget.allow(60.5)  # the first has left the window
    assert not budget.allow(65.0)
    assert budget.recent == 2


def test_workers_share_the_cores_for_hashing_unless_told():
    assert hash_workers(None, 1, cpu_count=8) is None  # one process: the hasher's own default
    assert hash_workers(None, 2, cpu_count=8) == 4
    assert hash_workers(None, 4, cpu_count=2) == 1
    assert hash_workers(3, 4, cpu_count=2) == 3  # a set number is each worker's


def test_wait_statuses_in_words():
    assert describe(0) == "exit 0"
    assert describe(1 << 8) == "exit 1"
    assert describe(9) == "killed by SIGKILL"


def test_lines_name_their_worker_in_both_formats():
    text = LineFormatter("text", worker=2).line(0.0, "INFO", "vhod", "hi", {"request_id": "r"})
    assert re.fullmatch(r"\S+ \S+ INFO vhod worker=2 \[r\] hi", text)
    entry = json.loads(LineFormatter("json", worker=2).line(0.0, "INFO", "vhod", "hi", {}))
    assert entry["worker"] == 2
    assert "worker" not in LineFormatter("text").line(0.0, "INFO", "vhod", "hi", {})


def test_chunks_hold_whole_lines_within_the_atomic_size():
    lines = [f"line {i} " + "x" * (i * 7) for i in range(200)]
    chunks = whole_line_chunks(lines, limit=512)
    assert b"".join(chunks).decode().splitlines() == lines
    for chunk in chunks:
        assert chunk.endswith(b"\n")
        assert len(chunk) <= 512 or chunk.count(b"\n") == 1  # a longer line goes alone


WRITER = """
import logging, sys
from core.infra.log_writer import BatchStream, LineFormatter
n = int(sys.argv[1])
stream = BatchStream(shared=True)
stream.setFormatter(LineFormatter("text", worker=n))
batch = [
    logging.makeLogRecord(
        {"msg": f"w{n} {i} " + "x" * 300, "request_id": "-", "levelname": "INFO", "name": "vhod"}
    )
    for i in range(400)
]
for _ in range(10):
    stream.write_batch(batch)
"""


def test_workers_on_one_pipe_never_cut_into_each_others_lines():
    read, write = os.pipe()
    received: list[bytes] = []

    def drain() -> None:
        with os.fdopen(read, "rb") as pipe:
            while chunk := pipe.read(1000):  # a slow reader: the pipe fills up
                received.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(n)], cwd=ROOT, stderr=write)
        for n in range(1, 5)
    ]
    os.close(write)
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    reader.join(timeout=120)
    lines = b"".join(received).decode().splitlines()
    assert len(lines) == 4 * 400 * 10
    whole = re.compile(r"\S+ \S+ INFO vhod worker=(\d) \[-\] w(\d) \d+ x{300}")
    for line in lines:
        match = whole.fullmatch(line)
        assert match and match.group(1) == match.group(2), line[:120]


def test_request_tables_of_several_workers_add_up():
    one, two = RequestMetrics(), RequestMetrics()
    one.observe("/healthz", "GET", 200, 0.002)
    two.observe("/healthz", "GET", 200, 0.2)
    two.observe("/metrics", "GET", 200, 0.002)
    total = RequestMetrics()
    for worker in (one, two):
        total.add(json.loads(json.dumps(worker.snapshot())))  # as written to the shared folder
    assert total.counts == {("/healthz", "GET", 200): 2, ("/metrics", "GET", 200): 1}
    table = total.latency[("/healthz", "GET")]
    assert sum(table[:-1]) == 2 and table[-1] == pytest.approx(0.202)

    store_one, store_two = StorageMetrics(), StorageMetrics()
    store_one.observe("find_user", 0.001)
    store_two.observe("find_user", 0.003)
    store_total = StorageMetrics()
    for worker in (store_one, store_two):
        store_total.add(json.loads(json.dumps(worker.snapshot())))
    assert sum(store_total.latency["find_user"][:-1]) == 2


def test_a_starting_workers_empty_metrics_file_neither_breaks_a_start_nor_a_scrape(tmp_path):
    """A worker creates its metrics file empty and sizes it a moment later; the library's
    collector fails on it (a start of another worker then died in CI), ours skips it."""
    import struct

    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    from core.infra.multiprocess_files import SettledFilesCollector

    (tmp_path / "counter_4242.db").write_bytes(b"")
    with pytest.raises(struct.error):
        MultiProcessCollector(CollectorRegistry(auto_describe=True), path=str(tmp_path))
    registry = CollectorRegistry(auto_describe=True)
    SettledFilesCollector(registry, str(tmp_path))
    assert list(registry.collect()) == []
