"""Change against an earlier report, and the gate CI sets on it.

Modelled on pytest-benchmark's ``--benchmark-compare`` / ``--benchmark-compare-fail``:
``roundtrip_p50:25%`` fails when a cell's median round trip grew by more than 25%,
``cold_start:0.5`` when a target's cold start grew by more than 0.5 s.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .record import row_of

METRICS = ("roundtrip_p50", "cold_start")
_THRESHOLD = re.compile(r"^(?P<metric>[a-z_0-9]+):(?P<value>[0-9]*\.?[0-9]+)(?P<pct>%?)$")


class CompareError(ValueError):
    """A malformed --remote-compare-fail value; the message shows the accepted form."""


@dataclass(frozen=True)
class Threshold:
    metric: str
    value: float
    relative: bool

    def exceeded(self, before: float, after: float) -> bool:
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
    row: str  # the test function (roundtrip_p50) or "" (cold_start)
    target: str
    before: float
    after: float

    @property
    def percent(self) -> float | None:
        return None if self.before <= 0 else (self.after - self.before) / self.before * 100


def _p50(report: dict[str, Any]) -> dict[tuple[str, str], float]:
    totals: dict[tuple[str, str], list[float]] = defaultdict(list)
    for call in report.get("calls", []):
        total = (call.get("phases_s") or {}).get("total")
        if call.get("outcome") == "ok" and total is not None:
            totals[(row_of(call.get("test"), call["target"]), call["target"])].append(float(total))
    return {key: statistics.median(values) for key, values in totals.items()}


def _cold(report: dict[str, Any]) -> dict[str, float]:
    return {t["name"]: float(t["cold_start_s"]) for t in report.get("targets", [])
            if t.get("available") and t.get("cold_start_s") is not None}


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """Every metric present in both reports (ok calls only: a failure's time means nothing)."""
    changes = []
    old, new = _p50(before), _p50(after)
    for key in sorted(old.keys() & new.keys()):
        changes.append(Change("roundtrip_p50", key[0], key[1], old[key], new[key]))
    old_cold, new_cold = _cold(before), _cold(after)
    for name in sorted(old_cold.keys() & new_cold.keys()):
        changes.append(Change("cold_start", "", name, old_cold[name], new_cold[name]))
    return changes


def failures(changes: list[Change], thresholds: list[Threshold]) -> list[tuple[Change, Threshold]]:
    return [(c, t) for c in changes for t in thresholds if t.metric == c.metric and t.exceeded(c.before, c.after)]


def render(changes: list[Change], baseline: str, failed: list[tuple[Change, Threshold]]) -> list[str]:
    if not changes:
        return [f"nothing to compare with {baseline}: no test and target ran ok in both"]
    marked = {id(c) for c, _ in failed}
    name_w = min(max([len(c.row) for c in changes] + [len("roundtrip_p50")]) + 2, 60)
    target_w = max(len(c.target) for c in changes) + 2
    lines = [f"against {baseline}",
             "metric / test".ljust(name_w) + "target".ljust(target_w) + f"{'before':>10}{'now':>10}{'change':>10}"]
    for metric in METRICS:
        for c in (c for c in changes if c.metric == metric):
            label = c.row or metric
            if len(label) > name_w - 2:
                label = "…" + label[-(name_w - 3):]
            scale, unit = (1000, "ms") if metric == "roundtrip_p50" else (1, "s")
            pct = "n/a" if c.percent is None else f"{c.percent:+.1f}%"
            lines.append(label.ljust(name_w) + c.target.ljust(target_w)
                         + f"{c.before * scale:>8.2f}{unit:<2}{c.after * scale:>8.2f}{unit:<2}{pct:>10}"
                         + ("  FAIL" if id(c) in marked else ""))
    for c, t in failed:
        lines.append(f"FAIL {t}: {c.row or c.metric} on {c.target} went from {c.before:.6f}s to {c.after:.6f}s")
    return lines
