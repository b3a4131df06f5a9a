"""Timing primitives: many calls, medians, and interleaved rounds.

On a noisy 2-core VM a burst of CPU steal can double one measurement for a few seconds, so
the cheap cases are run in rounds, each round taking a slice of every case in turn: noise
then lands on all of them alike and the ratios between them stay meaningful.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Series:
    """The timings of one path, in seconds."""

    name: str
    times: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    def quantile(self, q: float) -> float:
        if len(self.times) < 2:
            return self.median
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def as_json(self) -> dict[str, Any]:
        return {"n": self.n, "median_s": self.median, "p10_s": self.quantile(0.1),
                "p90_s": self.quantile(0.9), "min_s": min(self.times) if self.times else None}


def time_calls(fn: Callable[[], Any], n: int, pace_s: float = 0.0) -> list[float]:
    """``n`` timed calls; with ``pace_s`` an untimed sleep before each (lets background work finish)."""
    out: list[float] = []
    clock = time.perf_counter
    sleep = time.sleep
    for _ in range(n):
        if pace_s:
            sleep(pace_s)
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


@dataclass
class Case:
    """One warm path: a call to time, how many per round, and an optional pacing sleep."""

    name: str
    fn: Callable[[], Any]
    per_round: int
    warmup: int = 20
    pace_s: float = 0.0


def interleaved(cases: list[Case], rounds: int, progress: Callable[[str], None]) -> dict[str, Series]:
    """Warm every case up, then ``rounds`` rounds of ``per_round`` calls of each case in turn."""
    for case in cases:
        time_calls(case.fn, case.warmup, case.pace_s)
    series = {case.name: Series(case.name) for case in cases}
    for r in range(rounds):
        for case in cases:
            gc.collect()
            series[case.name].times += time_calls(case.fn, case.per_round, case.pace_s)
        progress(f"warm calls: round {r + 1}/{rounds} done")
    return series
