"""The terminal matrix: a row per test function, a column per target.

Rendering only; the records come from the plugin, as pytest-benchmark keeps the data it
records apart from the tables it draws.
"""

from __future__ import annotations

import os
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable

from .outcomes import RoundTrip

_PARAM = re.compile(r"\[[^\]]*\]$")


def test_function(nodeid: str | None) -> str:
    return _PARAM.sub("", nodeid or "?")


def cell(records: list[RoundTrip]) -> str:
    """Every distinct outcome of the test's calls there, and their median round trip."""
    label = "+".join(dict.fromkeys(r.outcome for r in records))
    ms = statistics.median(r.phases.get("total", 0.0) for r in records) * 1000
    return f"{label} {ms:.1f}ms" if len(label) <= 14 else label


def render_matrix(records: Iterable[RoundTrip], targets: list[str],
                  skipped: dict[tuple[str, str], str] | None = None, width: int = 100) -> list[str]:
    """Lines of the matrix; columns that do not fit in ``width`` wrap into further blocks."""
    skipped = skipped or {}
    grid: dict[str, dict[str, str]] = defaultdict(dict)
    by_cell: dict[tuple[str, str], list[RoundTrip]] = defaultdict(list)
    for rec in records:
        by_cell[(test_function(rec.test), rec.target)].append(rec)
    for (row, target), recs in by_cell.items():
        grid[row][target] = cell(recs)
    for (row, target), text in skipped.items():
        grid[row].setdefault(target, text)
    if not grid:
        return []
    columns = [t for t in targets if any(t in cells for cells in grid.values())]
    prefix = _common_file(list(grid))
    labels = {row: row[len(prefix):] for row in grid}
    title = prefix or "function"
    label_w = min(max([len(title)] + [len(x) for x in labels.values()]) + 2, max(24, width // 2))
    col_w = max([len(c) for c in columns] + [len(v) for r in grid.values() for v in r.values()]) + 2
    per_block = max(1, (width - label_w) // col_w)
    lines: list[str] = []
    for start in range(0, len(columns), per_block):
        block = columns[start:start + per_block]
        if lines:
            lines.append("")
        lines.append(_fit(title, label_w) + "".join(c.ljust(col_w) for c in block).rstrip())
        for row in sorted(grid):
            lines.append(_fit(labels[row], label_w) + "".join(
                grid[row].get(c, "-").ljust(col_w) for c in block).rstrip())
    return lines


def _fit(text: str, width: int) -> str:
    """Left-justified in ``width``, keeping the informative end of a long name."""
    if len(text) > width - 2:
        text = "…" + text[-(width - 3):]
    return text.ljust(width)


def _common_file(rows: list[str]) -> str:
    files = {row.rpartition("::")[0] for row in rows}
    if len(files) == 1 and "::" in rows[0]:
        return files.pop() + "::"
    common = os.path.commonprefix(rows)
    return common[: common.rfind("/") + 1]


def parse_matrix(lines: list[str]) -> dict[str, dict[str, str]]:
    """Read a rendered matrix back into ``{row: {target: cell}}`` (for tests and tools)."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    header: list[tuple[str, int]] = []
    for line in lines:
        if not line.strip():
            header = []
            continue
        if not header:
            pos = len(line.split()[0])
            for name in line.split()[1:]:  # each searched after the previous one
                pos = line.index(" " + name, pos) + 1
                header.append((name, pos))
            continue
        row = line[: header[0][1]].strip()
        for i, (name, start) in enumerate(header):
            end = header[i + 1][1] if i + 1 < len(header) else len(line)
            out[row][name] = line[start:end].strip()
    return dict(out)
