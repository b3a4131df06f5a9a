"""Change against an earlier report, and the gate CI sets on it, made so that it does not cry wolf.

Modelled on pytest-benchmark's ``--benchmark-compare`` / ``--benchmark-compare-fail``:
``roundtrip_p50:25%`` fails a cell (a test id on a target, and each target's calls together)
only when *all* of these hold, because one median of three calls on a shared 2-core machine
moves by hundreds of percent between identical runs:

- both reports hold at least ``MIN_SAMPLES`` ok calls for it;
- its median moved by at least ``MIN_ABS_S`` (an absolute floor: 25% of 0.2 ms is noise);
- the bootstrap 95% interval of the change of the median lies wholly past the threshold.

``cold_start:0.5`` (seconds) compares each target's cold start(s), plainly: one sample per run.
"""

from __future__ import annotations

import random
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .record import row_of

METRICS = ("roundtrip_p50", "cold_start")
MIN_SAMPLES = 5
MIN_ABS_S = 0.001
RESAMPLES = 1000
ALL = "(all tests)"  # the row that pools every ok call on a target
_THRESHOLD = re.compile(r"^(?P<metric>[a-z_0-9]+):(?P<value>[0-9]*\.?[0-9]+)(?P<pct>%?)$")


class CompareError(ValueError):
    """A malformed --remote-compare-fail value; the message shows the accepted form."""


@dataclass(frozen=True)
class Threshold:
    metric: str
    value: float
    relative: bool

    def past(self, before: float, after: float) -> bool:
        """Whether a change from ``before`` to ``after`` is past this threshold."""
        if self.relative:
            return before > 0 and (after - before) / before * 100 > self.value
        return after - before > self.value

    def __str__(self) -> str:
        return f"{self.metric}:{self.value:g}{'%' if self.relative else 's'}"


def parse_threshold(text: str) -> Threshold:
    match = _THRESHOLD.match(text.strip())
    if not match or match["metric"] not in METRICS:
        raise CompareError(f"--remote-compare-fail={text!r}: use METRIC:PERCENT% or METRIC:SECONDS with "
                           f"METRIC one of {', '.join(METRICS)}, e.g. roundtrip_p50:25% or cold_start:0.5")
    return Threshold(match["metric"], float(match["value"]), bool(match["pct"]))


@dataclass(frozen=True)
class Change:
    metric: str
    row: str  # the test id without its target (roundtrip_p50), ALL, or "" (cold_start)
    target: str
    old: tuple[float, ...]
    new: tuple[float, ...]

    @property
    def before(self) -> float:
        return statistics.median(self.old)

    @property
    def after(self) -> float:
        return statistics.median(self.new)

    @property
    def percent(self) -> float | None:
        return None if self.before <= 0 else (self.after - self.before) / self.before * 100

    @property
    def enough(self) -> bool:
        need = MIN_SAMPLES if self.metric == "roundtrip_p50" else 1
        return len(self.old) >= need and len(self.new) >= need

    def interval(self) -> tuple[float, float]:
        """Bootstrap 95% interval of ``after - before`` (seconds), resampling both sides;
        seeded by the cell, so a report compared twice gives the same answer."""
        rng = random.Random(f"{self.row}|{self.target}|{len(self.old)}|{len(self.new)}")
        diffs = sorted(statistics.median(rng.choices(self.new, k=len(self.new)))
                       - statistics.median(rng.choices(self.old, k=len(self.old))) for _ in range(RESAMPLES))
        return diffs[int(0.025 * RESAMPLES)], diffs[int(0.975 * RESAMPLES) - 1]


@dataclass(frozen=True)
class Flag:
    change: Change
    threshold: Threshold
    why: str


def _samples(report: dict[str, Any]) -> dict[tuple[str, str], list[float]]:
    totals: dict[tuple[str, str], list[float]] = defaultdict(list)
    for call in report.get("calls", []):
        total = (call.get("phases_s") or {}).get("total")
        if call.get("outcome") == "ok" and total is not None:
            totals[(row_of(call.get("test"), call["target"]), call["target"])].append(float(total))
            totals[(ALL, call["target"])].append(float(total))
    return totals


def _cold(report: dict[str, Any]) -> dict[str, list[float]]:
    out = {}
    for t in report.get("targets", []):
        if t.get("available") and t.get("cold_start_s") is not None:
            out[t["name"]] = [float(v) for v in t.get("cold_starts_s") or [t["cold_start_s"]]]
    return out


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """Every cell present in both reports (ok calls only: a failure's time means nothing)."""
    changes = []
    old, new = _samples(before), _samples(after)
    for key in sorted(old.keys() & new.keys(), key=lambda k: (k[0] != ALL, k)):
        changes.append(Change("roundtrip_p50", key[0], key[1], tuple(old[key]), tuple(new[key])))
    old_cold, new_cold = _cold(before), _cold(after)
    for name in sorted(old_cold.keys() & new_cold.keys()):
        changes.append(Change("cold_start", "", name, tuple(old_cold[name]), tuple(new_cold[name])))
    return changes


def failures(changes: list[Change], thresholds: list[Threshold]) -> list[Flag]:
    """The cells past a threshold, each with the reason in words."""
    out = []
    for c in changes:
        for t in thresholds:
            if t.metric != c.metric or not c.enough or not t.past(c.before, c.after):
                continue
            if c.metric == "cold_start":
                out.append(Flag(c, t, f"went from {c.before:.3f}s to {c.after:.3f}s, more than {t.value:g}"
                                + ("%" if t.relative else "s")))
                continue
            if c.after - c.before < MIN_ABS_S:
                continue
            low, high = c.interval()
            if not t.past(c.before, c.before + low):
                continue
            out.append(Flag(c, t, f"median {c.before * 1000:.3f} ms -> {c.after * 1000:.3f} ms "
                                  f"({_pct(c.percent)}; 95% interval of the change "
                                  f"{_rel(low, c.before)}..{_rel(high, c.before)}, all past {t.value:g}"
                                  f"{'%' if t.relative else 's'}; moved {(c.after - c.before) * 1000:.2f} ms "
                                  f">= {MIN_ABS_S * 1000:g} ms; {len(c.old)}/{len(c.new)} samples)"))
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def _rel(delta: float, base: float) -> str:
    return _pct(None if base <= 0 else delta / base * 100)


def render(changes: list[Change], baseline: str, failed: list[Flag]) -> list[str]:
    if not changes:
        return [f"nothing to compare with {baseline}: no test and target ran ok in both"]
    lines = [f"against {baseline}: the median round trip of each test id on each target and of all its ok "
             f"calls together ({ALL}), ok calls only; cold start per target",
             f"a cell is flagged only with >= {MIN_SAMPLES} samples on both sides, a change of the median of "
             f">= {MIN_ABS_S * 1000:g} ms, and its bootstrap 95% interval wholly past the threshold"]
    compared = [c for c in changes if c.enough]
    thin = [c for c in changes if not c.enough]
    marked = {id(f.change) for f in failed}
    if compared:
        name_w = min(max([len(c.row) for c in compared] + [len("roundtrip_p50")]) + 2, 60)
        target_w = max(len(c.target) for c in compared) + 2
        lines.append("metric / test".ljust(name_w) + "target".ljust(target_w)
                     + f"{'n':>9}{'before':>10}{'now':>10}{'change':>10}")
        for metric in METRICS:
            for c in (c for c in compared if c.metric == metric):
                label = c.row or metric
                if len(label) > name_w - 2:
                    label = "…" + label[-(name_w - 3):]
                scale, unit = (1000, "ms") if metric == "roundtrip_p50" else (1, "s")
                lines.append(label.ljust(name_w) + c.target.ljust(target_w) + f"{len(c.old)}/{len(c.new)}".rjust(9)
                             + f"{c.before * scale:>8.2f}{unit:<2}{c.after * scale:>8.2f}{unit:<2}"
                             + f"{_pct(c.percent):>10}" + ("  FAIL" if id(c) in marked else ""))
    if thin:
        lines.append(f"not compared: {len(thin)} cell(s) with fewer than {MIN_SAMPLES} ok calls on a side "
                     f"(their medians are noise; {ALL} pools them per target)")
    for f in failed:
        lines.append(f"FAIL {f.threshold}: {f.change.row or f.change.metric} on {f.change.target}: {f.why}")
    if failed:
        lines.append(f"remote-serial: this run fails (exit 1) on the {len(failed)} cell(s) above, "
                     "though its tests may all have passed")
    return lines
