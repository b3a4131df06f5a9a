"""The terminal matrix: a row per test id, a column per target, each cell the test's verdict
beside its round trips' outcomes and their median time.

Rendering only: it draws the ``record.cells`` of a report dictionary, as pytest-benchmark keeps
the data it records apart from the tables it draws.
"""

from __future__ import annotations

import os
from collections import defaultdict

from .record import Cell

Segment = tuple[str, "str | None"]  # text, and the verdict that colours it (None: plain)

# Terminal colours by verdict (pytest's own: green passed, red failed, yellow x-results).
MARKUP: dict[str, dict[str, bool]] = {
    "passed": {"green": True}, "failed": {"red": True, "bold": True}, "error": {"red": True, "bold": True},
    "xfailed": {"yellow": True}, "xpassed": {"yellow": True, "bold": True}, "skipped": {"yellow": True},
}
LEGEND = ("cells: verdict (coloured), then the round trips' outcome(s) and median time; "
          "xfailed = an outcome declared in expect= (a known gap)")


def cell_text(cell: Cell) -> str:
    """``passed ok 0.4ms``, ``xfailed syntax_error``, ``skipped unavailable``, ``failed -``."""
    text = f"{cell.verdict or '?'} {cell.label}"
    median = cell.median_s
    return f"{text} {median * 1000:.1f}ms" if median is not None and len(cell.label) <= 14 else text


def render_matrix(cells: dict[tuple[str, str], Cell], targets: list[str], width: int = 100) -> list[list[Segment]]:
    """Lines of segments; columns that do not fit in ``width`` wrap into further blocks."""
    grid: dict[str, dict[str, tuple[str, str | None]]] = defaultdict(dict)
    for (row, target), cell in cells.items():
        grid[row][target] = (cell_text(cell), cell.verdict)
    if not grid:
        return []
    columns = [t for t in targets if any(t in row for row in grid.values())]
    columns += sorted({t for row in grid.values() for t in row} - set(columns))
    prefix = _common_file(list(grid))
    title = prefix or "test"
    # Rows of several files are grouped under a line naming the file, names indented.
    rows: list[tuple[str | None, str]] = []
    group: str | None = None
    for row in sorted(grid):
        rest = row[len(prefix):]
        file, sep, name = rest.partition("::") if "::" in rest else ("", "", rest)
        if sep and file != group:
            group = file
            rows.append((None, file))
        rows.append((row, "  " + name if sep else rest))
    label_w = min(max([len(title)] + [len(text) for _, text in rows]) + 2, max(24, width // 2))
    col_w = max([len(c) for c in columns] + [len(v[0]) for r in grid.values() for v in r.values()]) + 2
    per_block = max(1, (width - label_w) // col_w)
    lines: list[list[Segment]] = []
    for start in range(0, len(columns), per_block):
        block = columns[start:start + per_block]
        if lines:
            lines.append([])
        lines.append([(_fit(title, label_w) + "".join(c.ljust(col_w) for c in block).rstrip(), None)])
        for key, text in rows:
            if key is None:
                lines.append([(text, None)])
                continue
            line: list[Segment] = [(_fit(text, label_w), None)]
            for i, c in enumerate(block):
                value, verdict = grid[key].get(c, ("-", None))
                line.append((value if i == len(block) - 1 else value.ljust(col_w), verdict))
            lines.append(line)
    return lines


def plain(lines: list[list[Segment]]) -> list[str]:
    """The rendered matrix as text lines (Markdown, tests, tools)."""
    return ["".join(text for text, _ in line).rstrip() for line in lines]


def _fit(text: str, width: int) -> str:
    """Left-justified in ``width``, keeping the informative end of a long name."""
    if len(text) > width - 2:
        indent = len(text) - len(text.lstrip())
        text = " " * indent + "…" + text[-(width - 3 - indent):]
    return text.ljust(width)


def _common_file(rows: list[str]) -> str:
    files = {row.partition("::")[0] for row in rows}
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
