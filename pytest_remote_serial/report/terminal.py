"""The terminal matrix: a row per test id, a column per target, each cell a glyph for the test's
verdict beside its round trips' outcomes (and their median time where the width allows).

It scales with the suite: by default only rows with something to say are drawn (a verdict other
than passed, a ``differs``, or outcomes that change from target to target) and the others are
counted per target in one row; a target where every test was skipped as unavailable is named
once instead of filling a column. Cells get shorter until the grid fits the terminal: first the
time goes, then the outcome's long name. Every row and every column with ``every_row`` (``-v``).

Rendering only: it draws the ``record.cells`` of a report dictionary, as pytest-benchmark keeps
the data it records apart from the tables it draws; the JSON, HTML and Markdown reports keep
every cell.
"""

from __future__ import annotations

import os
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field

from ..outcomes import DIFFERS
from .record import Cell

Segment = tuple[str, "str | None"]  # text, and the verdict that colours it (None: plain)

# Terminal colours by verdict (pytest's own: green passed, red failed, yellow x-results).
MARKUP: dict[str, dict[str, bool]] = {
    "passed": {"green": True}, "failed": {"red": True, "bold": True}, "error": {"red": True, "bold": True},
    "xfailed": {"yellow": True}, "xpassed": {"yellow": True, "bold": True}, "skipped": {"yellow": True},
}
# One character per verdict; pytest's own letters except for passed and failed, which read better.
GLYPHS = {"passed": "✓", "failed": "✗", "error": "E", "xfailed": "x", "xpassed": "X", "skipped": "s"}
ASCII_GLYPHS = {**GLYPHS, "passed": ".", "failed": "F"}
# The outcomes' names as the narrowest cells write them (four letters at most: with the glyph
# a cell is as wide as a target's name, so eight targets fit 80 columns).
SHORT = {"dump_error": "dump", "load_error": "load", "missing_module": "miss", "syntax_error": "syn",
         "call_error": "call", "result_error": "res", "timeout": "time", "unavailable": "n/a",
         DIFFERS: "diff"}
FORMS = ("full", "bare", "short")  # with the median time; without it; with the short names
SEP = {"full": 2, "bare": 2, "short": 1}
UNAVAILABLE = "unavailable"


def glyph(verdict: str | None, ascii_only: bool = False) -> str:
    return (ASCII_GLYPHS if ascii_only else GLYPHS).get(verdict or "", "?")


def cell_text(cell: Cell, form: str = "full", ascii_only: bool = False) -> str:
    """``✓ ok 0.4ms`` (full), ``x missing_module`` (bare), ``x miss`` (short)."""
    label = cell.label if form != "short" else "+".join(SHORT.get(o, o) for o in cell.outcomes) or "-"
    text = f"{glyph(cell.verdict, ascii_only)} {label}"
    median = cell.median_s
    if form == "full" and median is not None:
        text += f" {median * 1000:.1f}ms"
    return text


def says_something(row: list[Cell]) -> bool:
    """A row worth drawing: a verdict other than passed, a result that differs from the host's,
    or outcomes that change from one target to another (behaviour drift)."""
    return (any(c.verdict != "passed" for c in row) or any(DIFFERS in c.outcomes for c in row)
            or len({tuple(c.outcomes) for c in row}) > 1)


def _unavailable(cells: list[Cell]) -> bool:
    return bool(cells) and all(c.verdict == "skipped" and c.outcomes == [UNAVAILABLE] for c in cells)


@dataclass
class MatrixView:
    """What is drawn, decided once: the rows, the columns, the cell form and the label width."""

    title: str
    rows: list[tuple[str | None, str]]  # (row key, label); a None key is a file's group line
    columns: list[str]
    grid: dict[str, dict[str, Cell]]
    hidden: dict[str, int] = field(default_factory=dict)  # per column: cells of rows not drawn
    hidden_rows: int = 0
    collapsed: list[str] = field(default_factory=list)  # targets where every test was unavailable
    form: str = "full"
    label_w: int = 24
    blocks: list[list[str]] = field(default_factory=list)
    ascii_only: bool = False

    def text(self, row: str, column: str) -> tuple[str, str | None]:
        cell = self.grid[row].get(column)
        if cell is None:
            return "-", None
        return cell_text(cell, self.form, self.ascii_only), cell.verdict

    def count_label(self) -> str:
        return f"{self.hidden_rows} more passed alike"

    def count_text(self, column: str) -> str:
        return f"{glyph('passed', self.ascii_only)} {self.hidden[column]}" if self.hidden.get(column) else "-"

    def widths(self, form: str) -> dict[str, int]:
        saved, self.form = self.form, form
        try:
            out = {}
            for c in self.columns:
                texts = [self.text(r, c)[0] for r, _ in self.rows if r is not None]
                texts += [self.count_text(c)] if self.hidden_rows else []
                out[c] = max([len(c)] + [len(t) for t in texts]) + SEP[form]
            return out
        finally:
            self.form = saved

    def lines(self) -> list[list[Segment]]:
        widths = self.widths(self.form)
        out: list[list[Segment]] = []
        for block in self.blocks:
            if out:
                out.append([])
            header = "".join(c.ljust(widths[c]) for c in block).rstrip()
            out.append([(_fit(self.title, self.label_w, self.ascii_only) + header, None)])
            for key, label in self.rows:
                if key is None:
                    out.append([(label, None)])
                    continue
                line: list[Segment] = [(_fit(label, self.label_w, self.ascii_only), None)]
                for i, c in enumerate(block):
                    value, verdict = self.text(key, c)
                    line.append((value if i == len(block) - 1 else value.ljust(widths[c]), verdict))
                out.append(line)
            if self.hidden_rows:
                line = [(_fit(self.count_label(), self.label_w, self.ascii_only), None)]
                for i, c in enumerate(block):
                    value = self.count_text(c)
                    line.append((value if i == len(block) - 1 else value.ljust(widths[c]),
                                 "passed" if self.hidden.get(c) else None))
                out.append(line)
        return out

    def notes(self, width: int = 100, every_row_hint: str = "-v") -> list[str]:
        """What was left out and how to see it, then the legend; wrapped to ``width``."""
        g = GLYPHS if not self.ascii_only else ASCII_GLYPHS
        out = []
        if self.hidden_rows:
            out.append(f"{self.hidden_rows} row(s) that passed with the same outcome on every target are "
                       f"counted, not drawn; {every_row_hint} draws every row")
        if self.collapsed:
            out.append(f"not drawn: {', '.join(self.collapsed)}: every test there was skipped as unavailable "
                       "(the reason is below)")
        legend = (f"cells: {g['passed']} passed, {g['failed']} failed, {g['error']} error, {g['xfailed']} xfailed "
                  f"(an outcome declared in expect=, a known gap), {g['xpassed']} xpassed, {g['skipped']} skipped; "
                  "then the round trips' outcome(s)")
        legend += " and median time" if self.form == "full" else ""
        if self.form == "short":
            drawn = [self.grid[key].get(c) for key, _ in self.rows if key is not None for c in self.columns]
            used = {o for cell in drawn if cell is not None for o in cell.outcomes}
            names = [f"{short} = {name}" for name, short in SHORT.items() if name in used]
            legend += f" ({', '.join(names)})" if names else ""
        return [line for note in out + [legend] for line in textwrap.wrap(note, max(width, 40))]


def layout(cells: dict[tuple[str, str], Cell], targets: list[str], width: int = 100, every_row: bool = False,
           ascii_only: bool = False) -> MatrixView | None:
    """Decide what to draw in ``width`` columns; None when there is nothing."""
    grid: dict[str, dict[str, Cell]] = defaultdict(dict)
    for (row, target), cell in cells.items():
        grid[row][target] = cell
    if not grid:
        return None
    columns = [t for t in targets if any(t in row for row in grid.values())]
    columns += sorted({t for row in grid.values() for t in row} - set(columns))
    collapsed: list[str] = []
    if not every_row:
        collapsed = [c for c in columns if _unavailable([row[c] for row in grid.values() if c in row])]
        if len(collapsed) == len(columns):
            collapsed = []  # nothing else ran: the skips are the whole story
        columns = [c for c in columns if c not in collapsed]
    shown: list[str] = []
    hidden = {c: 0 for c in columns}
    hidden_rows = 0
    for key in sorted(grid):
        present = [grid[key][c] for c in columns if c in grid[key]]
        if every_row or says_something(present):
            shown.append(key)
        elif present:  # (a row only on collapsed targets is said by their note)
            hidden_rows += 1
            for c in columns:
                hidden[c] += c in grid[key]
    prefix = _common_file(list(grid))
    view = MatrixView(title=prefix or "test", rows=_labels(shown, prefix), columns=columns, grid=grid,
                      hidden=hidden, hidden_rows=hidden_rows, collapsed=collapsed, ascii_only=ascii_only)
    _fit_width(view, width)
    return view


def _labels(rows: list[str], prefix: str) -> list[tuple[str | None, str]]:
    """Rows of several files are grouped under a line naming the file, names indented."""
    out: list[tuple[str | None, str]] = []
    group: str | None = None
    for row in rows:
        rest = row[len(prefix):]
        file, sep, name = rest.partition("::") if "::" in rest else ("", "", rest)
        if sep and file != group:
            group = file
            out.append((None, file))
        out.append((row, "  " + name if sep else rest))
    return out


def _fit_width(view: MatrixView, width: int) -> None:
    """The richest cell form whose one block fits ``width`` beside a readable label; else the
    shortest form, its columns wrapped into blocks that each fit."""
    labels = [len(view.title)] + [len(text) for _, text in view.rows]
    if view.hidden_rows:
        labels.append(len(view.count_label()))
    longest = max(labels) + 2
    # The count's label is never cut: its number is the point.
    least = len(view.count_label()) + 2 if view.hidden_rows else 16
    floor = min(longest, max(least, width // 4))
    for form in FORMS:
        total = sum(view.widths(form).values())
        if floor + total <= width:
            view.form, view.label_w, view.blocks = form, min(longest, width - total), [view.columns]
            return
    view.form = "short"
    view.label_w = min(longest, max(least, width // 3))
    widths = view.widths("short")
    view.blocks = []
    for c in view.columns:
        if view.blocks and view.label_w + sum(widths[x] for x in view.blocks[-1]) + widths[c] <= width:
            view.blocks[-1].append(c)
        else:
            view.blocks.append([c])


def render_matrix(cells: dict[tuple[str, str], Cell], targets: list[str], width: int = 100,
                  every_row: bool = False) -> list[list[Segment]]:
    """Lines of segments that fit in ``width``: the grid only (see ``layout`` for its notes)."""
    view = layout(cells, targets, width, every_row)
    return view.lines() if view is not None else []


def plain(lines: list[list[Segment]]) -> list[str]:
    """The rendered matrix as text lines (Markdown, tests, tools)."""
    return ["".join(text for text, _ in line).rstrip() for line in lines]


def _fit(text: str, width: int, ascii_only: bool = False) -> str:
    """Left-justified in ``width``, keeping the informative end of a long name."""
    if len(text) > width - 2:
        indent = len(text) - len(text.lstrip())
        mark = "~" if ascii_only else "…"
        text = " " * indent + mark + text[-(width - 3 - indent):]
    return text.ljust(width)


def _common_file(rows: list[str]) -> str:
    files = {row.partition("::")[0] for row in rows}
    if len(files) == 1 and "::" in rows[0]:
        return files.pop() + "::"
    common = os.path.commonprefix(rows)
    return common[: common.rfind("/") + 1]


def parse_matrix(lines: list[str]) -> dict[str, dict[str, str]]:
    """Read a rendered matrix back into ``{row: {target: cell}}`` (for tests and tools).

    Rows under a file line are keyed ``file::name``; the count of rows not drawn is a row of
    its own, keyed by its label (``N more passed alike``).
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
        row = f"{group}::{row}" if group and line.startswith(" ") else row
        for i, (name, start) in enumerate(header):
            end = header[i + 1][1] if i + 1 < len(header) else len(line)
            out[row][name] = line[start:end].strip()
    return dict(out)
