"""The terminal matrix: a row per test function, a column per target.

Rendering only; the records come from the plugin, as pytest-benchmark keeps the data it
records apart from the tables it draws.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable

from .outcomes import RoundTrip

WIDTH = 100
_PARAM = re.compile(r"\[[^\]]*\]$")


def test_function(nodeid: str | None) -> str:
    return _PARAM.sub("", nodeid or "?")


def cell(records: list[RoundTrip]) -> str:
    outcomes = list(dict.fromkeys(r.outcome for r in records))
    label = "+".join(outcomes)
    ms = statistics.median(r.phases.get("total", 0.0) for r in records) * 1000
    return f"{label} {ms:.1f}ms" if len(label) < 12 else label


def render_matrix(records: Iterable[RoundTrip], targets: list[str],
                  skipped: dict[tuple[str, str], str] | None = None, width: int = WIDTH) -> list[str]:
    grid: dict[str, dict[str, list[RoundTrip]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        grid[test_function(rec.test)][rec.target].append(rec)
    for (row, target), outcome in (skipped or {}).items():
        grid[row].setdefault(target, [])
    if not grid:
        return []
    targets = [t for t in targets if any(t in cells for cells in grid.values())]
    cells = {row: {t: (cell(recs) if recs else (skipped or {}).get((row, t), "-"))
                   for t, recs in grid[row].items()} for row in grid}
    col = max([len(t) for t in targets] + [len(c) for r in cells.values() for c in r.values()]) + 2
    per_block = max(1, (width - 32) // col)
    label_w = width - per_block * col if len(targets) > per_block else \
        min(max(len(r) for r in grid) + 2, width - len(targets) * col)
    lines: list[str] = []
    for start in range(0, len(targets), per_block):
        block = targets[start:start + per_block]
        lines.append("function".ljust(label_w) + "".join(t.ljust(col) for t in block))
        for row in sorted(grid):
            name = row if len(row) < label_w - 1 else "…" + row[-(label_w - 3):]
            lines.append(name.ljust(label_w) + "".join(
                cells[row].get(t, "-").ljust(col) for t in block))
        lines.append("")
    return lines[:-1]
