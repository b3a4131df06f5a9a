"""The printed table and the verdicts on the performance targets (docs/architecture.md), from one run's figures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .stats import Series


def fmt_s(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


@dataclass
class Verdict:
    what: str
    measured: float
    limit: float
    at_most: bool  # True: measured must be <= limit; False: >= limit

    @property
    def passed(self) -> bool:
        return self.measured <= self.limit if self.at_most else self.measured >= self.limit

    def line(self) -> str:
        sign = "≤" if self.at_most else "≥"
        word = "PASS" if self.passed else "MISS"
        if self.passed:
            margin = ""
        elif self.at_most:
            margin = f" ({self.measured / self.limit:.2f}× over the limit)"
        else:
            margin = f" ({self.limit / self.measured:.2f}× short of the limit)"
        return f"  {word}  {self.what}: {self.measured:.2f} (target {sign} {self.limit:g}){margin}"

    def as_json(self) -> dict[str, Any]:
        return {"what": self.what, "measured": self.measured, "limit": self.limit,
                "at_most": self.at_most, "passed": self.passed}


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [f"\n{title}", line, "-+-".join("-" * w for w in widths)]
    for row in rows:
        out.append(" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(out)


def series_rows(series: list[Series], floor: float, labels: dict[str, str]) -> list[list[str]]:
    return [[labels.get(s.name, s.name), str(s.n), fmt_s(s.median),
             f"{fmt_s(s.quantile(0.1))} – {fmt_s(s.quantile(0.9))}", f"{ratio(s.median, floor):.2f}×"]
            for s in series]


def throughput_rows(series: list[Series], nbytes: int, floor_mbs: float,
                    labels: dict[str, str]) -> list[list[str]]:
    rows = []
    for s in series:
        mbs = 2 * nbytes / s.median / 1e6
        rows.append([labels.get(s.name, s.name), str(s.n), fmt_s(s.median), f"{mbs:,.0f}",
                     f"{ratio(mbs, floor_mbs):.2f}×"])
    return rows
