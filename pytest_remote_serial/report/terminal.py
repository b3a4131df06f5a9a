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

from ..outcomes import RoundTrip

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
    title = prefix or "function"
    # Rows of several files are grouped under a line naming the file, names indented.
    rows: list[tuple[str | None, str]] = []
    group: str | None = None
    for row in sorted(grid):
        rest = row[len(prefix):]
        file, sep, name = rest.rpartition("::")
        if sep and file != group:
            group = file
            rows.append((None, file))
        rows.append((row, "  " + name if sep else rest))
    label_w = min(max([len(title)] + [len(text) for _, text in rows]) + 2, max(24, width // 2))
    col_w = max([len(c) for c in columns] + [len(v) for r in grid.values() for v in r.values()]) + 2
    per_block = max(1, (width - label_w) // col_w)
    lines: list[str] = []
    for start in range(0, len(columns), per_block):
        block = columns[start:start + per_block]
        if lines:
            lines.append("")
        lines.append(_fit(title, label_w) + "".join(c.ljust(col_w) for c in block).rstrip())
        for key, text in rows:
            if key is None:
                lines.append(text)
                continue
            lines.append(_fit(text, label_w) + "".join(
                grid[key].get(c, "-").ljust(col_w) for c in block).rstrip())
    return lines


def _fit(text: str, width: int) -> str:
    """Left-justified in ``width``, keeping the informative end of a long name."""
    if len(text) > width - 2:
        indent = len(text) - len(text.lstrip())
        text = " " * indent + "…" + text[-(width - 3 - indent):]
    return text.ljust(width)


def _common_file(rows: list[str]) -> str:
    files = {row.rpartition("::")[0] for row in rows}
    if len(files) == 1 and "::" in rows[0]:
        return files.pop() + "::"
    common = os.path.commonprefix(rows)
    return common[: common.rfind("/") + 1]


def parse_matrix(lines: list[str]) -> dict[str, dict[str, str]]:
    """Read a rendered matrix back into ``{row: {target: cell}}`` (for tests and tools).

    Rows under a file line are keyed ``file::name``.
    """
    out: dict[str, dict[str, str]] = defaultdict(dict)
    header: list[tuple[str, int]] = []
    group = ""
    for line in lines:
        if not line.strip():
            header = []
            group = ""
            continue
        if not header:
            pos = len(line.split()[0])
            for name in line.split()[1:]:  # each searched after the previous one
                pos = line.index(" " + name, pos) + 1
                header.append((name, pos))
            continue
        if not line.startswith(" ") and not line[header[0][1]:].strip():
            group = line.strip()
            continue
        row = line[: header[0][1]].strip()
        row = f"{group}::{row}" if group else row
        for i, (name, start) in enumerate(header):
            end = header[i + 1][1] if i + 1 < len(header) else len(line)
            out[row][name] = line[start:end].strip()
    return dict(out)
