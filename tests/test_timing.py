"""Timing helpers: warm-ups are untimed, repeats are counted, threads are pinned and restored."""

from __future__ import annotations

import time
import types

import pytest
import torch

import qpbench.timing
from qpbench.timing import (
    TimingStats,
    calibration_time,
    interleaved_ratio,
    measure,
    pinned_threads,
    synchronize,
    timed_call,
)


def test_measure_runs_warmups_untimed_then_repeats() -> None:
    calls: list[int] = []

    def work() -> int:
        calls.append(len(calls))
        time.sleep(0.002)
        return len(calls)

    result, stats = measure(work, repeats=3, warmups=2)
    assert len(calls) == 5 and result == 5
    assert stats.repeats == 3 and len(stats.times) == 3
    assert all(t >= 0.002 for t in stats.times)
    assert stats.min <= stats.median <= stats.max


def test_timing_stats_median_min_max() -> None:
    stats = TimingStats((3.0, 1.0, 2.0, 10.0))
    assert (stats.median, stats.min, stats.max) == (2.5, 1.0, 10.0)
    with pytest.raises(ValueError, match="times"):
        TimingStats(())


def test_measure_rejects_bad_counts() -> None:
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="warmups"):
        measure(lambda: None, repeats=1, warmups=-1)


def test_pinned_threads_sets_and_restores() -> None:
    before = torch.get_num_threads()
    with pinned_threads(1) as used:
        assert used == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pinned_threads(None) as used:
        assert used == before
    with pytest.raises(ValueError, match="threads"), pinned_threads(-1):
        pass


def test_timed_call_returns_result_and_seconds() -> None:
    result, seconds = timed_call(lambda: sum(range(10)), "cpu")
    assert result == 45 and seconds >= 0
    _, slept = timed_call(lambda: time.sleep(0.002), "cpu")
    assert 0.002 <= slept < 1.0  # the call itself is inside the clock
    synchronize(None)  # no device: nothing to wait for


def test_calibration_time_is_a_positive_median_and_checks_sizes() -> None:
    seconds = calibration_time(4, 8)
    assert isinstance(seconds, float) and 0 < seconds < 5
    assert calibration_time(2, 4, dtype=torch.float32) > 0
    with pytest.raises(ValueError, match="batch_size"):
        calibration_time(0, 8)


def test_interleaved_ratio_times_both_each_round_in_alternating_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """One ratio per round, other over reference, with the order alternating. The clock is the
    test's own (each call advances it by a fixed amount), so the ratios are exact and do not
    depend on how loaded the machine is."""
    clock = [0.0]
    monkeypatch.setattr(qpbench.timing, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    calls: list[str] = []

    def fast() -> None:
        calls.append("ref")
        clock[0] += 0.002

    def slow() -> None:
        calls.append("other")
        clock[0] += 0.008

    stats = interleaved_ratio(fast, slow, rounds=4)
    assert stats.repeats == 4
    assert calls == ["ref", "other", "other", "ref", "ref", "other", "other", "ref"]
    assert stats.times == pytest.approx((4.0, 4.0, 4.0, 4.0))
    with pytest.raises(ValueError, match="rounds"):
        interleaved_ratio(fast, slow, rounds=0)
