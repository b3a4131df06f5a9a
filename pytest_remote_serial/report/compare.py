"""Change against an earlier report, and the gate CI sets on it, made so that it does not cry wolf.

Modelled on pytest-benchmark's ``--benchmark-compare`` / ``--benchmark-compare-fail``:
``roundtrip_p50:25%`` fails a cell (a test id on a target) only when *all* of these hold,
because one median of three calls on a shared 2-core machine moves by hundreds of percent
between identical runs:

- both reports hold at least ``MIN_SAMPLES`` ok calls for it;
- after taking out its target's drift (below), its median moved by at least ``MIN_ABS_S``
  (an absolute floor: 25% of 0.2 ms is noise);
- the bootstrap 95% interval of that change of the median lies wholly past the threshold,
  after also dividing out how far the target's *other* cells strayed from its drift.

Calls within one run are not independent: measured here, every cell of py3.13 and py3.14 came
out 70-200% slower in an identical rerun while py3.9's came out faster, each with a tight
interval. So a cell is judged against its own target's drift (the median change of that
target's cells, thin ones included; the whole run's when the target has fewer than
``MIN_CELLS``; a shared speed-up is never divided out): it fails when it got slower than the
rest of its target, by more than those others scatter among themselves. A shift that every
cell shares cannot be told from the machine's load with one pair of runs (docs/architecture.md,
"Performance floors": only ratios measured side by side in one run mean anything); it is printed
as the drift, not failed.

``cold_start:0.5`` (seconds) compares each target's cold start(s), plainly: one sample per run.

Calls of different tests are never pooled into one median: a mixture's median depends on which
tests land near its middle, and moved by +225% between identical runs here. What every cell
shares (a busier machine, or the common call path) is reported as the run's drift: the median
change over every cell both reports hold, thin ones included.
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
MIN_CELLS = 3
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

    def interval(self, drift: float = 1.0) -> tuple[float, float]:
        """Bootstrap 95% interval of ``after / drift - before`` (seconds), resampling both sides;
        seeded by the cell, so a report compared twice gives the same answer."""
        rng = random.Random(f"{self.row}|{self.target}|{len(self.old)}|{len(self.new)}")
        diffs = sorted(statistics.median(rng.choices(self.new, k=len(self.new))) / drift
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
    for key in sorted(old.keys() & new.keys()):
        changes.append(Change("roundtrip_p50", key[0], key[1], tuple(old[key]), tuple(new[key])))
    old_cold, new_cold = _cold(before), _cold(after)
    for name in sorted(old_cold.keys() & new_cold.keys()):
        changes.append(Change("cold_start", "", name, tuple(old_cold[name]), tuple(new_cold[name])))
    return changes


def drifts(changes: list[Change]) -> dict[str, float]:
    """Per target, the factor every cell of it moved by: the median of after/before over its cells
    with enough samples (over all its cells when fewer than ``MIN_CELLS`` have enough)."""
    ratios: dict[str, list[float]] = defaultdict(list)
    solid: dict[str, list[float]] = defaultdict(list)  # from cells with enough samples
    for c in changes:
        if c.metric == "roundtrip_p50" and c.before > 0 and c.after > 0:
            ratios[c.target].append(c.after / c.before)
            if c.enough:
                solid[c.target].append(c.after / c.before)
    every = [r for values in ratios.values() for r in values]
    run = statistics.median(every) if every else 1.0
    out = {}
    for target, values in ratios.items():
        best = solid[target] if len(solid[target]) >= MIN_CELLS else values
        out[target] = statistics.median(best) if len(best) >= MIN_CELLS else run
    return out


def spreads(changes: list[Change], drift: dict[str, float]) -> dict[int, float]:
    """Per cell, how far the *other* cells of its target strayed from the target's drift
    (the largest factor, >= 1): a run in which identical cells scatter by 1.5x cannot call a
    cell 1.3x slower a regression."""
    by_target: dict[str, list[Change]] = defaultdict(list)
    for c in changes:
        if c.metric == "roundtrip_p50" and c.before > 0 and c.after > 0:
            by_target[c.target].append(c)
    out: dict[int, float] = {}
    for target, cells in by_target.items():
        d = drift.get(target, 1.0)
        factors = [max(c.after / c.before / d, d * c.before / c.after) for c in cells]
        for i, c in enumerate(cells):
            others = factors[:i] + factors[i + 1:]
            out[id(c)] = max(others) if others else 1.0
    return out


def failures(changes: list[Change], thresholds: list[Threshold]) -> list[Flag]:
    """The cells past a threshold, each with the reason in words."""
    out = []
    drift = drifts(changes)
    spread = spreads(changes, drift)
    for c in changes:
        for t in thresholds:
            if t.metric != c.metric or not c.enough or not t.past(c.before, c.after):
                continue
            if c.metric == "cold_start":
                out.append(Flag(c, t, f"went from {c.before:.3f}s to {c.after:.3f}s, more than {t.value:g}"
                                + ("%" if t.relative else "s")))
                continue
            d = max(1.0, drift.get(c.target, 1.0))  # a shared speed-up never makes a cell fail
            noise = spread.get(id(c), 1.0)
            after = c.after / d / noise
            if after - c.before < MIN_ABS_S or not t.past(c.before, after):
                continue
            low, high = c.interval(d * noise)
            if not t.past(c.before, c.before + low):
                continue
            out.append(Flag(c, t, f"median {c.before * 1000:.3f} ms -> {c.after * 1000:.3f} ms "
                                  f"({_pct(c.percent)}; {_pct((d - 1) * 100)} of it is {c.target}'s drift and "
                                  f"{_pct((noise - 1) * 100)} the scatter of its other cells; "
                                  f"{_rel(after - c.before, c.before)} beyond both, 95% interval "
                                  f"{_rel(low, c.before)}..{_rel(high, c.before)}, all past {t.value:g}"
                                  f"{'%' if t.relative else 's'}; moved {(after - c.before) * 1000:.2f} ms "
                                  f">= {MIN_ABS_S * 1000:g} ms; {len(c.old)}/{len(c.new)} samples)"))
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def _rel(delta: float, base: float) -> str:
    return _pct(None if base <= 0 else delta / base * 100)


def render(changes: list[Change], baseline: str, failed: list[Flag]) -> list[str]:
    if not changes:
        return [f"nothing to compare with {baseline}: no test and target ran ok in both"]
    lines = [f"against {baseline}: the median round trip of each test id on each target (ok calls only), "
             "and the cold start of each target",
             f"a cell is flagged only with >= {MIN_SAMPLES} samples on both sides and, beyond its target's drift, "
             f"a change of the median of >= {MIN_ABS_S * 1000:g} ms whose bootstrap 95% interval lies wholly "
             "past the threshold"]
    compared = [c for c in changes if c.enough]
    thin = [c for c in changes if not c.enough]
    marked = {id(f.change) for f in failed}
    if compared:
        name_w = min(max([len(c.row) for c in compared] + [len("roundtrip_p50")]) + 2, 60)
        target_w = max(len(c.target) for c in compared) + 2
        lines.append("metric / test".ljust(name_w) + "target".ljust(target_w)
                     + f"{'n':>9} {'before':>10}{'now':>10}{'change':>10}")
        for metric in METRICS:
            for c in (c for c in compared if c.metric == metric):
                label = c.row or metric
                if len(label) > name_w - 2:
                    label = "…" + label[-(name_w - 3):]
                scale, unit = (1000, "ms") if metric == "roundtrip_p50" else (1, "s")
                counts = f"{len(c.old)}/{len(c.new)}".rjust(9) + " "
                lines.append(label.ljust(name_w) + c.target.ljust(target_w) + counts
                             + f"{c.before * scale:>8.2f}{unit:<2}{c.after * scale:>8.2f}{unit:<2}"
                             + f"{_pct(c.percent):>10}" + ("  FAIL" if id(c) in marked else ""))
    if thin:
        lines.append(f"not compared: {len(thin)} cell(s) with fewer than {MIN_SAMPLES} ok calls on a side "
                     "(a median of so few calls is noise here)")
    for target, factor in sorted(drifts(changes).items()):
        lines.append(f"drift of {target}: its cells moved {_pct((factor - 1) * 100)} together (the machine's load, "
                     "or the common call path: not failed, compare side by side in one run to tell)")
    for f in failed:
        lines.append(f"FAIL {f.threshold}: {f.change.row or f.change.metric} on {f.change.target}: {f.why}")
    if failed:
        lines.append(f"remote-serial: this run fails (exit 1) on the {len(failed)} cell(s) above, "
                     "though its tests may all have passed")
    return lines
