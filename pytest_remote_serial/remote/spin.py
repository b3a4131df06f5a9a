"""Spin-then-block: on a VM, waking a sleeping process costs more than a small call's whole
work, so a wait that is usually short spins first (yielding the CPU to anything else runnable)
and sleeps only past a window. Adaptive at both ends: a run of spins that ran out stops it.

Both ends import this module: the host spins for answers, the agent for the request after a
non-isolated call, in the window the host's call header gives.
"""

from __future__ import annotations

import os
import select
import time


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


SPIN_MAX_S = 0.01  # the longest spin window either end accepts: never a long burn


def spin_window(value) -> float:
    """The spin window a request's header asks for, in seconds: never a long burn, whatever the
    header says (past the cap is the cap; NaN, a negative or a non-number is none)."""
    try:
        w = float(value or 0)
    except (TypeError, ValueError):
        return 0.0
    return w if 0.0 < w <= SPIN_MAX_S else SPIN_MAX_S if w > SPIN_MAX_S else 0.0


class QuickWaits:
    """When a wait is worth spinning for (both ends use it; the host keeps one per kind of
    request). Spin while not all of the last ``MISSES`` spins ran out: one hiccup (a preempted
    process, a slow call) does not stop it, a run of slow answers does. After a wait that
    slept, quick again if the answer came within twice the window: what spinning would have
    caught, the wake-up it saves included."""

    MISSES = 3

    def __init__(self) -> None:
        self.misses = 0

    def worth(self) -> bool:
        return self.misses < self.MISSES

    def spun(self, caught: bool) -> None:
        self.misses = 0 if caught else self.misses + 1

    def slept(self, waited: float, window: float) -> None:
        if waited < 2 * window:
            self.misses = 0


class RequestSpin:
    """Spin-then-block for the request after a non-isolated call, in the window the host's call
    header gives (``spin``, seconds; none: never). On a VM, waking a sleeping process costs
    more than a small call's whole work; a tight loop of calls never sleeps. Adaptive (see
    ``QuickWaits``); the CPU is yielded to anything else runnable while it spins."""

    def __init__(self) -> None:
        self.window = 0.0
        self.since: float | None = None  # when the last non-isolated call was answered (None: not just now)
        self.waits = QuickWaits()
        self.spinning = False

    def answered(self, window) -> None:
        self.window = spin_window(window)
        self.since = time.perf_counter() if self.window else None

    def wait(self, fd: int) -> None:
        since = self.since
        self.spinning = since is not None and self.waits.worth()
        if since is None or not self.spinning:
            return
        until = since + self.window
        while not readable(fd):
            if time.perf_counter() >= until:
                self.waits.spun(False)
                self.spinning = False
                return
            os.sched_yield()
        self.waits.spun(True)

    def arrived(self) -> None:
        if self.since is not None and not self.spinning:
            self.waits.slept(time.perf_counter() - self.since, self.window)
        self.since = None
