"""A self-contained HTML page drawn from the JSON report.

One file that opens anywhere, offline, as a CI artifact: CSS, JS and the SVG chart are inline,
nothing is fetched. Like terminal.py this only renders; it reads the report dictionary and
never touches Docker or the plugin's state.
"""

from __future__ import annotations

import datetime
import html
import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

from .record import Cell, call_outcome
from .record import cells as report_cells

__all__ = ["render_html", "write_html"]

PathLike = Union[str, Path]

CHART_PHASES = ("dump", "send", "load", "call", "result")

# Most serious first: a cell holding several outcomes takes the colour of its worst one.
SEVERITY = ("crash", "timeout", "missing_module", "syntax_error", "load_error", "dump_error",
            "result_error", "call_error", "unavailable", "ok")

# (background, accent) per outcome; unknown outcomes fall back to the grey of "unavailable".
COLOURS = {
    "ok": ("#d3f0db", "#2e8b47"),
    "call_error": ("#ffe2bf", "#d9780a"),
    "crash": ("#f9c9c9", "#c62828"),
    "timeout": ("#f5c4d4", "#a3123f"),
    "load_error": ("#e5d7f6", "#7440b8"),
    "missing_module": ("#d2e4fb", "#1f63c4"),
    "syntax_error": ("#cdeeee", "#00808c"),
    "dump_error": ("#fbf0b3", "#a88700"),
    "result_error": ("#f0dccd", "#8a5433"),
    "unavailable": ("#e6e6e6", "#7a7a7a"),
}
# (background, accent) per verdict: what the cell is coloured by; the outcome is its text.
VERDICT_COLOURS = {
    "passed": ("#d3f0db", "#2e8b47"),
    "failed": ("#f9c9c9", "#c62828"),
    "error": ("#f5c4d4", "#a3123f"),
    "xfailed": ("#e3e8f0", "#5a6b85"),
    "xpassed": ("#ffe2bf", "#d9780a"),
    "skipped": ("#ececec", "#8a8a8a"),
}
PHASE_COLOURS = {"dump": "#4e79a7", "send": "#f28e2b", "load": "#e15759", "call": "#76b7b2",
                 "result": "#59a14f"}

ERROR_FIELDS = ("phase", "python", "module", "signal", "exit_code")


def render_html(report: dict[str, Any]) -> str:
    """The whole page as one string; every value from the report is escaped on the way in."""
    host = report.get("host") or {}
    calls = [c for c in report.get("calls") or [] if isinstance(c, dict)]
    targets = _targets(report.get("targets") or [], calls)
    cells = _cells(report, targets)
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<title>pytest-remote-serial report</title>\n<style>", _css(), "</style>\n</head>\n<body>\n",
        _header(host, report.get("created")),
        _summary(calls, targets, report.get("tests") or []),
        "<main class=\"layout\">\n<section class=\"grid-wrap\">\n<h2>Matrix</h2>\n",
        _grid(cells, targets),
        "</section>\n<aside id=\"panel\" aria-live=\"polite\">"
        "<p class=\"hint\">Click a cell to see its calls.</p></aside>\n</main>\n",
        "<section id=\"overhead\">\n<h2>Overhead per target</h2>\n",
        _chart(calls, targets),
        _targets_table(calls, targets),
        "</section>\n",
        _details(cells),
        "<script type=\"application/json\" id=\"report-data\">", _embed(report), "</script>\n",
        "<script>", _JS, "</script>\n</body>\n</html>\n",
    ]
    return "".join(parts)


def write_html(report: dict[str, Any], path: PathLike) -> None:
    """Write the page as UTF-8, creating parent folders, so a CI step can just name a file."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(report), encoding="utf-8")


# --- data -----------------------------------------------------------------------------------


def _targets(declared: Iterable[Any], calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's targets in its order, plus any target only the calls name (e.g. "local")."""
    out = [t for t in declared if isinstance(t, dict) and t.get("name")]
    known = {t["name"] for t in out}
    for call in calls:
        name = call.get("target")
        if name and name not in known:
            known.add(name)
            out.append({"name": name, "available": True})
    return out


def _available(target: dict[str, Any]) -> bool:
    return target.get("available", True) is not False


def _worst(outcomes: list[str]) -> str:
    return min(outcomes, key=lambda o: SEVERITY.index(o) if o in SEVERITY else -1) if outcomes else "unavailable"


def _cells(report: dict[str, Any], targets: list[dict[str, Any]]) -> dict[tuple[str, str], Cell]:
    """The report's cells in row order, targets in the report's order; an unavailable target
    gets a grey cell in every row that has none."""
    found = report_cells(report)
    rows = sorted({row for row, _ in found})
    names = [t["name"] for t in targets] + sorted({t for _, t in found} - {t["name"] for t in targets})
    out: dict[tuple[str, str], Cell] = {}
    down = {t["name"] for t in targets if not _available(t)}
    for row in rows:
        for name in names:
            cell = found.get((row, name))
            if cell is None and name in down:
                cell = Cell(row, name, outcomes=["unavailable"])
            if cell is not None:
                out[(row, name)] = cell
    return out


def _cell_id(index: int) -> str:
    return f"d-{index}"


def _phase(call: dict[str, Any], name: str) -> float | None:
    value = (call.get("phases_s") or {}).get(name)
    return float(value) if isinstance(value, (int, float)) else None


def _phase_medians(calls: list[dict[str, Any]]) -> dict[str, float]:
    """Median of each phase over the ok calls; a phase no call timed counts as zero."""
    out = {}
    for name in (*CHART_PHASES, "total"):
        values = [v for v in (_phase(c, name) for c in calls if c.get("outcome") == "ok") if v is not None]
        out[name] = statistics.median(values) if values else 0.0
    return out


# --- formatting -----------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _ms(seconds: float | None) -> str:
    """Milliseconds with three significant figures or so: 0.412 ms, 12.3 ms, 431 ms."""
    if seconds is None:
        return "—"
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    if ms >= 1:
        return f"{ms:.2f} ms"
    return f"{ms:.3f} ms"


def _seconds(value: Any) -> str:
    return f"{float(value):.2f} s" if isinstance(value, (int, float)) else "—"


def _bytes(value: Any) -> str:
    if not isinstance(value, int):
        return "—"
    return f"{value} B" if value < 1024 else f"{value / 1024:.1f} KiB"


def _created(value: Any) -> str | None:
    """The report's timestamp, whether it was stored as epoch seconds or as text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        stamp = datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
        return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value) if value else None


def _css_name(outcome: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", outcome)


def _packages(packages: Any, injected: Any = None, shadowed: Any = None) -> str:
    """Each as a call imports it; those the host injected say so, with the target's own version
    they hide."""
    if not isinstance(packages, dict) or not packages:
        return "—"
    injected = injected if isinstance(injected, dict) else {}
    shadowed = shadowed if isinstance(shadowed, dict) else {}

    def note(name: str) -> str:
        if name not in injected:
            return ""
        hides = f", hiding the target's {_e(shadowed[name])}" if name in shadowed else ""
        return f"&nbsp;(injected{hides})"

    return ", ".join(f"{_e(k)}&nbsp;{_e(v)}{note(k)}" for k, v in sorted(packages.items()))


def _embed(report: dict[str, Any]) -> str:
    """The report as JSON that cannot close its <script> element or open a comment."""
    text = json.dumps(report, default=str, ensure_ascii=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


# --- sections -------------------------------------------------------------------------------


def _header(host: dict[str, Any], created: Any) -> str:
    items = [("Host Python", _e(host.get("python") or "?")), ("Platform", _e(host.get("platform") or "?")),
             ("Packages", _packages(host.get("packages")))]
    stamp = _created(created)
    if stamp:
        items.append(("Generated", _e(stamp)))
    meta = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in items)
    return f"<header>\n<h1>pytest-remote-serial report</h1>\n<dl class=\"meta\">{meta}</dl>\n</header>\n"


def _summary(calls: list[dict[str, Any]], targets: list[dict[str, Any]], tests: list[Any]) -> str:
    verdicts = Counter(str(t.get("verdict")) for t in tests if isinstance(t, dict))
    chips = "".join(
        f"<li class=\"chip verdict-{_css_name(v)}\" data-verdict=\"{_e(v)}\"><b>{verdicts[v]}</b> {_e(v)}</li>"
        for v in VERDICT_COLOURS if verdicts.get(v))
    counts = Counter(call_outcome(c) for c in calls)
    order = sorted(counts, key=lambda o: (SEVERITY[::-1].index(o) if o in SEVERITY else 99, o))
    chips += "".join(
        f"<li class=\"chip outcome-{_css_name(o)}\" data-outcome=\"{_e(o)}\">"
        f"<b>{counts[o]}</b> {_e(o)}</li>" for o in order)
    down = [t for t in targets if not _available(t)]
    note = ""
    if down:
        names = ", ".join(f"<b>{_e(t['name'])}</b> ({_e(t.get('reason') or 'no reason given')})" for t in down)
        note = f"<p class=\"down\">Unavailable targets: {names}</p>"
    return (f"<section id=\"summary\">\n<h2>Summary</h2>\n<p>{len(tests)} tests, {len(calls)} calls on {len(targets)} "
            "targets. Cells are coloured by the test's verdict; the text is its round trips' outcome(s).</p>"
            f"<ul class=\"chips\">{chips}</ul>{note}\n</section>\n")


def _grid(cells: dict[tuple[str, str], Cell], targets: list[dict[str, Any]]) -> str:
    rows = sorted({row for row, _ in cells})
    if not rows:
        return "<p class=\"empty\">No calls were recorded.</p>\n"
    head = "".join(
        f"<th scope=\"col\" class=\"{'' if _available(t) else 'down'}\">{_e(t['name'])}"
        f"<small>{_e(t.get('python') or '')}</small></th>" for t in targets)
    extra = sorted({t for _, t in cells} - {t["name"] for t in targets})
    head += "".join(f"<th scope=\"col\">{_e(name)}</th>" for name in extra)
    columns = [t["name"] for t in targets] + extra
    ids = {key: _cell_id(i) for i, key in enumerate(cells)}
    out = [f"<table id=\"grid\">\n<thead><tr><th scope=\"col\">test</th>{head}</tr></thead>\n<tbody>\n"]
    for row in rows:
        file, sep, name = row.rpartition("::")
        label = f"<span class=\"file\">{_e(file)}::</span><span class=\"fn\">{_e(name)}</span>" if sep else _e(row)
        out.append(f"<tr><th scope=\"row\" title=\"{_e(row)}\">{label}</th>")
        for name in columns:
            cell = cells.get((row, name))
            out.append(_grid_cell(cell, ids[(row, name)]) if cell else "<td class=\"nocell\">–</td>")
        out.append("</tr>\n")
    out.append("</tbody>\n</table>\n")
    return "".join(out)


def _grid_cell(cell: Cell, cell_id: str) -> str:
    label = cell.label
    n = len(cell.calls)
    median = cell.median_s
    timing = _ms(median) if median is not None else ""
    count = f" · {n} calls" if n > 1 else ""
    verdict = cell.verdict or "unknown"
    expected = " (expected)" if cell.verdict == "xfailed" and cell.expected else ""
    title = f"{cell.row} on {cell.target}: {verdict}, outcome {label}{expected}"
    if median is not None:
        title += f", median {timing} over {n} call{'s' if n != 1 else ''}"
    if cell.reason:
        title += f" ({cell.reason})"
    return (f"<td class=\"cell verdict-{_css_name(verdict)} outcome-{_css_name(_worst(cell.outcomes))}\" "
            f"data-test=\"{_e(cell.row)}\" data-target=\"{_e(cell.target)}\" data-verdict=\"{_e(verdict)}\" "
            f"data-outcomes=\"{_e(' '.join(cell.outcomes))}\" data-details=\"{cell_id}\" tabindex=\"0\" "
            f"title=\"{_e(title)}\"><a href=\"#{cell_id}\">"
            + (f"<span class=\"verdict\">{_e(verdict)}</span>" if cell.verdict else "")
            + f"<span class=\"outcome\">{_e(label)}{_e(expected)}</span>"
            f"<span class=\"ms\">{_e(timing)}{count}</span></a></td>")


def _details(cells: dict[tuple[str, str], Cell]) -> str:
    """Every cell's calls in a <details>: the no-JS view, and what the side panel copies."""
    out = ["<section id=\"calls\">\n<h2>Calls by cell</h2>\n"]
    for index, cell in enumerate(cells.values()):  # built row by row, targets in the report's order
        verdict = cell.verdict or "unknown"
        out.append(f"<details id=\"{_cell_id(index)}\" class=\"cell-details verdict-{_css_name(verdict)}\" "
                   f"data-test=\"{_e(cell.row)}\" data-target=\"{_e(cell.target)}\">"
                   f"<summary><span class=\"dot\"></span>{_e(cell.row)} <b>@ {_e(cell.target)}</b>"
                   f" — {_e(verdict)}: {_e(cell.label)}</summary>\n<div class=\"body\">"
                   f"<h3>{_e(cell.row)} <span>@ {_e(cell.target)}</span></h3>"
                   f"<p class=\"verdict-line\">test <b>{_e(verdict)}</b>; round trips: {_e(cell.label)}"
                   + (f"; declared expect: {_e(' or '.join(cell.expected))}" if cell.expected else "")
                   + (f"<br><span class=\"reason\">{_e(cell.reason)}</span>" if cell.reason else "") + "</p>")
        if not cell.calls and "unavailable" in cell.outcomes:
            out.append("<p class=\"down\">Target unavailable</p>")
        for number, call in enumerate(cell.calls, 1):
            out.append(_call(number, call))
        out.append("</div></details>\n")
    out.append("</section>\n")
    return "".join(out)


def _call(number: int, call: dict[str, Any]) -> str:
    outcome = call_outcome(call)
    fallback = call.get("fallback_from") or []
    version = call.get("serializer_version")
    rows = [("serializer", _e(call.get("serializer") or "?") + (f" {_e(version)}" if version else "")),
            ("fallback from", _e(", ".join(map(str, fallback))) if fallback else "—"),
            ("payload", _bytes(call.get("payload_bytes"))), ("result", _bytes(call.get("result_bytes")))]
    facts = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    phases = call.get("phases_s") or {}
    names = [p for p in (*CHART_PHASES, "total") if p in phases] + sorted(
        p for p in phases if p not in (*CHART_PHASES, "total"))
    timing = "".join(f"<tr><th>{_e(p)}</th><td>{_ms(_phase(call, p))}</td></tr>" for p in names)
    out = [f"<div class=\"call outcome-{_css_name(outcome)}\"><h4>#{number} <code>{_e(call.get('function'))}</code>"
           f" <span class=\"tag\">{_e(outcome)}</span></h4><div class=\"tables\">"
           f"<table class=\"facts\">{facts}</table>"]
    if timing:
        out.append(f"<table class=\"phases\"><caption>phases</caption>{timing}</table>")
    device = call.get("device")
    if isinstance(device, dict):
        copies = [("host→device", _ms(device.get("h2d_s"))), ("device→host", _ms(device.get("d2h_s"))),
                  ("arrays", _e(device.get("arrays")))]
        rows_html = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in copies)
        out.append(f"<table class=\"device\"><caption>device copies (not in phases)</caption>{rows_html}</table>")
    out.append("</div>")
    notes = device.get("converted") if isinstance(device, dict) else None
    for note in notes or []:
        out.append(f"<p class=\"converted\">{_e(note)}</p>")
    error = call.get("error")
    if isinstance(error, dict) and error:
        out.append(f"<div class=\"error\"><p class=\"etype\"><b>{_e(error.get('type') or 'error')}</b>: "
                   f"{_e(error.get('message') or '')}</p>")
        extra = [(k, error[k]) for k in ERROR_FIELDS if error.get(k) is not None]
        if extra:
            out.append("<p class=\"efields\">" + " · ".join(f"{_e(k)} <code>{_e(v)}</code>" for k, v in extra)
                       + "</p>")
        for key, label in (("diagnosis", "cause"), ("hint", "fix")):
            if error.get(key):
                out.append(f"<p class=\"{key}\"><b>{label}:</b> {_e(error[key])}</p>")
        if error.get("traceback"):
            out.append(f"<pre class=\"traceback\">{_e(error['traceback'])}</pre>")
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


def _nice_step(span: float, ticks: int = 5) -> float:
    """A 1/2/5 × 10^k step that cuts ``span`` into about ``ticks`` parts."""
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * power:
            return mult * power
    return 10 * power


def _chart(calls: list[dict[str, Any]], targets: list[dict[str, Any]]) -> str:
    """Stacked horizontal bars: the median of each phase over a target's ok calls, in ms."""
    live = [t for t in targets if _available(t)]
    if not live:
        return "<p class=\"empty\">No available target to chart.</p>\n"
    medians = {t["name"]: _phase_medians([c for c in calls if c.get("target") == t["name"]]) for t in live}
    ok_counts = Counter(c.get("target") for c in calls if c.get("outcome") == "ok")
    widest = max(sum(m[p] for p in CHART_PHASES) for m in medians.values()) * 1000
    step = _nice_step(widest) if widest > 0 else 0.1
    top = step * max(1, math.ceil(widest / step - 1e-9))
    left, plot_w, right, bar_h, gap, head = 150, 640, 150, 22, 12, 40
    height = head + len(live) * (bar_h + gap) + 46
    width = left + plot_w + right
    scale = plot_w / top
    out = [f"<svg id=\"phase-chart\" role=\"img\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" "
           f"height=\"{height}\" aria-labelledby=\"phase-chart-title\">"
           "<title id=\"phase-chart-title\">Median time per phase over each target's ok calls, in ms</title>"]
    # Legend across the top.
    x = left
    out.append("<g class=\"legend\">")
    for phase in CHART_PHASES:
        out.append(f"<rect class=\"swatch phase-{phase}\" x=\"{x}\" y=\"10\" width=\"12\" height=\"12\" "
                   f"fill=\"{PHASE_COLOURS[phase]}\"></rect><text x=\"{x + 17}\" y=\"20\">{phase}</text>")
        x += 90
    out.append("</g>")
    # Grid lines and tick labels.
    axis_y = head + len(live) * (bar_h + gap)
    out.append("<g class=\"axis\">")
    n_ticks = round(top / step)
    for i in range(n_ticks + 1):
        value = i * step
        tx = left + value * scale
        out.append(f"<line x1=\"{tx:.1f}\" y1=\"{head - 6}\" x2=\"{tx:.1f}\" y2=\"{axis_y}\"></line>"
                   f"<text x=\"{tx:.1f}\" y=\"{axis_y + 16}\" text-anchor=\"middle\">{_tick(value, step)}</text>")
    out.append(f"<text class=\"axis-title\" x=\"{left + plot_w / 2:.1f}\" y=\"{axis_y + 38}\" "
               "text-anchor=\"middle\">median per phase over ok calls (ms)</text></g>")
    for i, target in enumerate(live):
        name = target["name"]
        y = head + i * (bar_h + gap)
        m = medians[name]
        out.append(f"<g class=\"bar\" data-target=\"{_e(name)}\">"
                   f"<text class=\"label\" x=\"{left - 10}\" y=\"{y + bar_h / 2 + 4:.1f}\" "
                   f"text-anchor=\"end\">{_e(name)}</text>")
        if not ok_counts.get(name):
            out.append(f"<text class=\"none\" x=\"{left + 6}\" y=\"{y + bar_h / 2 + 4:.1f}\">no ok calls</text></g>")
            continue
        x0 = float(left)
        for phase in CHART_PHASES:
            w = m[phase] * 1000 * scale
            out.append(f"<rect class=\"seg phase-{phase}\" data-phase=\"{phase}\" x=\"{x0:.2f}\" y=\"{y}\" "
                       f"width=\"{w:.2f}\" height=\"{bar_h}\" fill=\"{PHASE_COLOURS[phase]}\">"
                       f"<title>{_e(name)} {phase}: {_ms(m[phase])} (median of {ok_counts[name]} ok calls)"
                       "</title></rect>")
            x0 += w
        out.append(f"<text class=\"total\" x=\"{x0 + 8:.1f}\" y=\"{y + bar_h / 2 + 4:.1f}\">"
                   f"{_ms(sum(m[p] for p in CHART_PHASES))}</text></g>")
    out.append("</svg>\n")
    return "".join(out)


def _tick(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:.{decimals}f}"


def _targets_table(calls: list[dict[str, Any]], targets: list[dict[str, Any]]) -> str:
    build = any(t.get("build_s") is not None for t in targets)
    head = ("<tr><th>target</th><th>Python</th><th>image</th><th>backend · engine · transport</th>"
            "<th>status</th><th>cold start</th>"
            + ("<th>build</th>" if build else "") + "<th>ok calls</th><th>median round trip</th>"
            "<th>packages</th></tr>")
    out = [f"<table id=\"targets\">\n<caption>Targets</caption>\n<thead>{head}</thead>\n<tbody>\n"]
    for t in targets:
        mine = [c for c in calls if c.get("target") == t["name"]]
        ok = [c for c in mine if c.get("outcome") == "ok"]
        total = _phase_medians(mine)["total"] if ok else None
        image_id = str(t.get("image_id") or "")
        image = _e(t.get("image") or "—") + (f" <code title=\"{_e(image_id)}\">{_e(image_id[:19])}</code>"
                                             if image_id else "")
        status = ("available" + (" · GPU" if t.get("gpu") else "") if _available(t)
                  else f"<span class=\"down\">unavailable: {_e(t.get('reason') or '?')}</span>")
        out.append(f"<tr data-target=\"{_e(t['name'])}\"><th>{_e(t['name'])}</th><td>{_e(t.get('python') or '—')}"
                   f"</td><td>{image}</td><td class=\"how\">{_how(t)}</td><td>{status}</td>"
                   f"<td class=\"num\">{_seconds(t.get('cold_start_s'))}</td>"
                   + (f"<td class=\"num\">{_seconds(t.get('build_s'))}</td>" if build else "")
                   + f"<td class=\"num\">{len(ok)}/{len(mine)}</td><td class=\"num\">{_ms(total)}</td>"
                   f"<td class=\"pkgs\">{_packages(t.get('packages'), t.get('injected'), t.get('shadowed'))}"
                   "</td></tr>\n")
    out.append("</tbody>\n</table>\n")
    return "".join(out)


def _how(target: dict[str, Any]) -> str:
    """How the target was reached, as far as the report's target record says."""
    parts = [str(target[k]) for k in ("backend", "engine", "transport") if target.get(k)]
    return _e(" · ".join(parts)) if parts else "—"


def _css() -> str:
    outcome_rules = "".join(
        f".outcome-{o}{{--bg:{bg};--fg:{fg}}}" for o, (bg, fg) in COLOURS.items())
    verdict_rules = "".join(  # after the outcome rules: a cell is coloured by its verdict
        f".verdict-{v}{{--bg:{bg};--fg:{fg}}}" for v, (bg, fg) in VERDICT_COLOURS.items())
    return _CSS + outcome_rules + verdict_rules


_CSS = """
:root{--bg:#e6e6e6;--fg:#7a7a7a;color-scheme:light}
*{box-sizing:border-box}
body{margin:0;padding:0 24px 40px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1f2328;background:#fafbfc}
header{padding:18px 0 8px;border-bottom:1px solid #d8dee4}
h1{font-size:22px;margin:0 0 8px}
h2{font-size:17px;margin:22px 0 10px}
h3{font-size:15px;margin:0 0 10px;word-break:break-all}h3 span{color:#57606a;font-weight:normal}
h4{font-size:13px;margin:0 0 6px}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.meta{display:flex;flex-wrap:wrap;gap:6px 28px;margin:0}.meta dt{font-size:11px;text-transform:uppercase;
 color:#57606a;letter-spacing:.04em}.meta dd{margin:0}
.chips{list-style:none;display:flex;flex-wrap:wrap;gap:8px;padding:0;margin:8px 0}
.chip{background:var(--bg);border-left:4px solid var(--fg);padding:3px 10px;border-radius:4px}
.down{color:#8c1d18}
.layout{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.grid-wrap{flex:1 1 max-content;max-width:100%;min-width:0;overflow-x:auto}
#grid{border-collapse:separate;border-spacing:3px}
#grid th{font-weight:600;text-align:left;padding:4px 8px;vertical-align:bottom;white-space:nowrap}
#grid thead th small{display:block;font-weight:normal;color:#57606a}
#grid thead th.down{color:#7a7a7a}
#grid tbody th{font-weight:normal;vertical-align:middle;max-width:360px;overflow:hidden;text-overflow:ellipsis}
#grid .file{color:#8b949e}#grid .fn{font-weight:600}
.cell{background:var(--bg);border-left:4px solid var(--fg);border-radius:4px;padding:0;min-width:112px;
 cursor:pointer;vertical-align:top}
.cell a{display:block;padding:5px 8px;color:inherit;text-decoration:none}
.cell .verdict{display:block;font-weight:700;color:var(--fg);filter:brightness(.7);text-transform:uppercase;
 font-size:11px;letter-spacing:.04em}
.cell .outcome{display:block;font-weight:600;color:#1f2328}
.verdict-line{margin:0 0 8px}.verdict-line .reason{color:#57606a}
.cell .ms{display:block;font-size:12px;color:#3d444d}
.cell:hover,.cell:focus{outline:2px solid var(--fg);outline-offset:1px}
.cell.selected{outline:3px solid #1f2328;outline-offset:1px}
.nocell{color:#b0b7bf;text-align:center}
#panel{flex:1 0 400px;max-width:560px;position:sticky;top:12px;max-height:calc(100vh - 24px);overflow:auto;
 background:#fff;border:1px solid #d8dee4;border-radius:6px;padding:14px;margin-top:44px}
#panel .hint{color:#57606a;margin:0}
.call{border-left:4px solid var(--fg);background:#fff;padding:8px 10px;margin:0 0 10px;border-radius:3px;
 box-shadow:0 0 0 1px #eaeef2}
.tag{background:var(--bg);color:#1f2328;border-radius:10px;padding:0 8px;font-weight:normal}
.tables{display:flex;gap:16px;flex-wrap:wrap}
.tables table{border-collapse:collapse;font-size:12px}.tables th{text-align:left;color:#57606a;font-weight:normal;
 padding:1px 10px 1px 0}.tables td{padding:1px 0;text-align:right;font-variant-numeric:tabular-nums}
.tables caption{text-align:left;color:#57606a;font-size:11px;text-transform:uppercase}
.error{margin-top:8px}.error p{margin:4px 0}.etype{color:#8c1d18}.efields{color:#57606a;font-size:12px}
pre.traceback{background:#f6f8fa;border:1px solid #eaeef2;padding:8px;overflow:auto;max-height:320px;
 white-space:pre;margin:6px 0 0}
#overhead{margin-top:12px}
#phase-chart{max-width:100%;height:auto;background:#fff;border:1px solid #d8dee4;border-radius:6px;
 font-size:12px}
#phase-chart text{fill:#1f2328}#phase-chart .axis line{stroke:#eaeef2}#phase-chart .axis text{fill:#57606a}
#phase-chart .axis-title{font-size:12px}#phase-chart .label{font-weight:600}#phase-chart .none{fill:#8b949e}
#targets{border-collapse:collapse;margin-top:14px;background:#fff;border:1px solid #d8dee4}
#targets caption{text-align:left;font-weight:600;padding:4px 0}
#targets th,#targets td{padding:5px 10px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
#targets .num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
#targets .pkgs{font-size:12px;color:#57606a}
#calls details{background:#fff;border:1px solid #eaeef2;border-radius:4px;margin:4px 0;padding:4px 10px}
#calls summary{cursor:pointer}#calls .body{padding:8px 0}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;background:var(--fg);margin-right:6px}
#calls details:target{border-color:#1f2328}
.empty{color:#57606a}
@media (max-width:1100px){.layout{flex-direction:column}#panel{position:static;flex:none;width:100%;margin-top:0}}
"""

# Clicking (or Enter on) a cell copies its <details> body into the side panel; the first
# failing cell is shown at load so the page opens on what matters. Marks <html data-js>
# so a headless check can tell the script ran.
_JS = """
(function () {
  var panel = document.getElementById('panel');
  var grid = document.getElementById('grid');
  function show(cell) {
    var details = document.getElementById(cell.getAttribute('data-details'));
    if (!details || !panel) { return; }
    var prev = document.querySelector('.cell.selected');
    if (prev) { prev.classList.remove('selected'); }
    cell.classList.add('selected');
    panel.innerHTML = '';
    panel.appendChild(details.querySelector('.body').cloneNode(true));
    panel.setAttribute('data-test', cell.getAttribute('data-test'));
    panel.setAttribute('data-target', cell.getAttribute('data-target'));
    panel.scrollTop = 0;
  }
  if (grid) {
    grid.addEventListener('click', function (ev) {
      var cell = ev.target.closest('.cell');
      if (cell) { ev.preventDefault(); show(cell); }
    });
    grid.addEventListener('keydown', function (ev) {
      var cell = ev.target.closest('.cell');
      if (cell && (ev.key === 'Enter' || ev.key === ' ')) { ev.preventDefault(); show(cell); }
    });
    var first = grid.querySelector('.cell.verdict-failed, .cell.verdict-error, .cell.verdict-xpassed') ||
                grid.querySelector('.cell:not(.outcome-ok):not(.outcome-unavailable)') ||
                grid.querySelector('.cell');
    if (first) { show(first); }
  }
  document.documentElement.setAttribute('data-js', 'ready');
})();
"""
