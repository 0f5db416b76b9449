"""bench/soak.py's verdict: RSS growth over the last third of a run (no process is started)."""

from __future__ import annotations

import pytest

from bench.soak import StoreSoak, judge


def run_of(rss_kib: list[int], seconds: float = 300.0) -> StoreSoak:
    result = StoreSoak("mongodb", seconds / 60)
    step = seconds / (len(rss_kib) - 1)
    result.samples = [(round(i * step, 1), kib) for i, kib in enumerate(rss_kib)]
    result.cycles_at = [(round(i * step, 1), 10 * i) for i in range(len(rss_kib))]
    return result


def test_a_flat_last_third_passes_whatever_came_before():
    # Growth while the caches fill (the first two thirds) is not counted.
    result = run_of([60_000 + 300 * i for i in range(100)] + [90_000] * 51)
    judge(result, 300.0)
    assert result.flat and result.growth_percent == 0.0


def test_growth_over_the_last_third_fails_past_two_percent():
    result = run_of([80_000] * 100 + [80_000 + 60 * i for i in range(51)])
    judge(result, 300.0)
    assert not result.flat
    assert result.growth_percent == pytest.approx(3.4, abs=0.3)
    assert result.bytes_per_cycle > 0


def test_too_few_samples_are_no_verdict():
    with pytest.raises(RuntimeError):
        judge(run_of([1, 2]), 300.0)
