"""The matrix as GitHub-flavoured Markdown, for ``$GITHUB_STEP_SUMMARY`` (``--remote-markdown``).

GitHub strips colour from Markdown, so the verdict is a symbol plus its word; the outcome
follows as text, like the terminal and HTML matrices. Rendering only.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from ..remote.envelope import python_name
from .record import VERDICTS, cells

SYMBOLS = {"passed": "✅", "failed": "❌", "error": "💥", "xfailed": "☑️", "xpassed": "⚠️", "skipped": "⏭️"}


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def render_markdown(report: dict[str, Any], title: str = "pytest-remote-serial matrix") -> str:
    grid = cells(report)
    targets = [t for t in report.get("targets") or [] if isinstance(t, dict) and t.get("name")]
    names = [t["name"] for t in targets if any(key[1] == t["name"] for key in grid)]
    names += sorted({target for _, target in grid} - set(names))
    lines = [f"### {title}", ""]
    if not grid:
        return "\n".join(lines + ["No test used a target.", ""])
    counts = Counter(c.verdict for c in grid.values() if c.verdict)
    lines.append(" · ".join(f"{SYMBOLS.get(v, '')} {counts[v]} {v}" for v in reversed(VERDICTS) if counts.get(v)))
    lines += ["", "| test | " + " | ".join(_escape(n) for n in names) + " |",
              "|---|" + "---|" * len(names)]
    for row in sorted({row for row, _ in grid}):
        out = []
        for name in names:
            cell = grid.get((row, name))
            if cell is None:
                out.append("")
                continue
            median = cell.median_s
            timing = f" {median * 1000:.1f} ms" if median is not None else ""
            expected = " (expected)" if cell.verdict == "xfailed" and cell.expected else ""
            verdict = cell.verdict or "?"
            out.append(f"{SYMBOLS.get(verdict, '')} {verdict} · `{_escape(cell.label)}`{expected}{timing}")
        lines.append(f"| `{_escape(row)}` | " + " | ".join(out) + " |")
    lines.append("")
    for t in targets:
        if t["name"] not in names:
            continue
        how = ", ".join(f"{k} {t[k]}" for k in ("backend", "engine", "transport") if t.get(k))
        python = python_name(t.get("implementation"), t.get("python"), cpython="Python")
        state = (python + (f", {how}" if how else "")) if t.get("available") \
            else f"unavailable: {str(t.get('reason') or '?').splitlines()[0]}"
        lines.append(f"- **{_escape(t['name'])}**: {_escape(state)}")
    lines += ["", "Verdict first (the test's result), then the round trips' outcome(s); "
              "☑️ xfailed marks an outcome declared in `expect=` (a known gap).", ""]
    return "\n".join(lines)


def write_markdown(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Appended, not overwritten: ``$GITHUB_STEP_SUMMARY`` collects every step's output."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as fh:
        fh.write(render_markdown(report) + "\n")
    return out
