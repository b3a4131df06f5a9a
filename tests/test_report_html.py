"""The HTML report: rendered from a hand-made report dict, then opened in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import time
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pytest_remote_serial.report.html import COLOURS, VERDICT_COLOURS, render_html, write_html

INSTALL = "apt-get install chromium (Debian; `./dev` and `.ci/run` install it when run as root)"
EVIL = "<script>alert('pwned')</script>"


def _call(test: str, target: str, outcome: str = "ok", total: float = 0.0004, error: dict | None = None,
          serializer: str = "cloudpickle", fallback_from: list[str] | None = None) -> dict:
    part = total / 5
    return {"test": test, "target": target, "function": "pkg.mod.work", "serializer": serializer,
            "fallback_from": fallback_from or [], "outcome": outcome, "error": error,
            "payload_bytes": 812, "result_bytes": 40 if outcome == "ok" else 0,
            "phases_s": {"dump": part * 0.5, "send": part * 0.5, "load": part * 2, "call": part,
                         "result": part, "total": total}}


def make_report() -> dict:
    """Three available targets and one unavailable, one row per kind of finding."""
    t_add = "tests/test_x.py::test_add"
    t_lambda = "tests/test_x.py::test_lambda"
    t_numpy = "tests/test_y.py::test_numpy"
    t_crash = "tests/test_y.py::test_segfault"
    calls = [
        _call(f"{t_add}[py3.9]", "py3.9", total=0.001),
        _call(f"{t_add}[py3.9]", "py3.9", total=0.002),
        _call(f"{t_add}[py3.9]", "py3.9", total=0.010),
        _call(f"{t_add}[py3.12]", "py3.12", total=0.0008),
        _call(f"{t_add}[py3.13]", "py3.13", total=0.0009),
        _call(f"{t_lambda}[py3.9]", "py3.9", "call_error", error={
            "phase": "call", "type": "ValueError", "message": "bad <value> & more", "python": "3.9.2",
            "diagnosis": "the function raised on the target",
            "traceback": f'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: {EVIL}\n'}),
        _call(f"{t_lambda}[py3.12]", "py3.12", "load_error", serializer="source", fallback_from=["cloudpickle"],
              error={"phase": "load", "type": "TypeError", "message": "code() argument 13 must be str",
                     "diagnosis": "bytecode of 3.11 does not load on 3.12", "python": "3.12.1"}),
        _call(f"{t_lambda}[py3.13]", "py3.13", "syntax_error", serializer="source",
              error={"phase": "load", "type": "SyntaxError", "message": "invalid syntax", "python": "3.13.0"}),
        _call(f"{t_numpy}[py3.9]", "py3.9", "missing_module",
              error={"phase": "load", "type": "ModuleNotFoundError", "message": "No module named 'numpy'",
                     "module": "numpy", "python": "3.9.2"}),
        _call(f"{t_numpy}[py3.12]", "py3.12", "dump_error", error={"phase": "dump", "type": "PicklingError",
                                                                   "message": "cannot pickle 'generator'"}),
        _call(f"{t_numpy}[py3.13]", "py3.13", "result_error",
              error={"phase": "result", "type": "PicklingError", "message": "result does not pickle"}),
        _call(f"{t_crash}[py3.9]", "py3.9", "crash", error={"phase": "call", "type": "TargetCrashed",
                                                            "message": "killed by SIGSEGV", "signal": 11}),
        _call(f"{t_crash}[py3.12]", "py3.12", "timeout", total=2.0,
              error={"phase": "call", "type": "RemoteTimeout", "message": "no answer in 2 s"}),
        _call(f"{t_crash}[py3.13]", "py3.13"),
    ]
    targets = [
        {"name": "py3.9", "python": "3.9.2", "image": "prs/py3.9:1", "image_id": "sha256:" + "a" * 64,
         "gpu": False, "available": True, "reason": None, "cold_start_s": 0.43, "build_s": None,
         "packages": {"numpy": "1.19.5"}},
        {"name": "py3.12", "python": "3.12.1", "image": "prs/py3.12:1", "image_id": "sha256:" + "b" * 64,
         "gpu": False, "available": True, "reason": None, "cold_start_s": 0.51, "build_s": 61.2,
         "packages": {}},
        {"name": "py3.13", "python": "3.13.0", "image": "prs/py3.13:1", "image_id": "sha256:" + "c" * 64,
         "gpu": False, "available": True, "reason": None, "cold_start_s": 0.38, "build_s": None,
         "packages": {}},
        {"name": "cuda12", "python": "3.11.9", "image": "prs/cuda12:1", "image_id": None, "gpu": True,
         "available": False, "reason": "no GPU: nvidia runtime missing", "cold_start_s": None, "build_s": None,
         "packages": {}},
    ]
    verdicts = {  # the test's own result, which the outcome alone does not tell
        (t_add, "py3.9"): "passed", (t_add, "py3.12"): "passed", (t_add, "py3.13"): "passed",
        (t_lambda, "py3.9"): "passed",  # it expected the exception: call_error, yet green
        (t_lambda, "py3.12"): "failed", (t_lambda, "py3.13"): "xfailed",  # declared in expect=
        (t_numpy, "py3.9"): "failed", (t_numpy, "py3.12"): "error", (t_numpy, "py3.13"): "failed",
        (t_crash, "py3.9"): "xfailed", (t_crash, "py3.12"): "failed", (t_crash, "py3.13"): "xpassed",
    }
    tests = [{"nodeid": f"{test}[{target}]", "target": target, "verdict": verdict,
              "outcomes": list(dict.fromkeys(c["outcome"] for c in calls if c["test"] == f"{test}[{target}]")),
              "duration_s": 0.01, "expected": ["syntax_error"] if (test, target) == (t_lambda, "py3.13") else None,
              "reason": None} for (test, target), verdict in verdicts.items()]
    return {"version": 1, "created": "2024-05-01T12:00:00Z",
            "host": {"python": "3.11.7", "platform": "Linux-6.1-x86_64",
                     "packages": {"cloudpickle": "3.1.2", "dill": "0.4.1"}},
            "targets": targets, "calls": calls, "tests": tests}


class Elements(HTMLParser):
    """Every start tag with its attributes, in document order (stdlib only)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def find(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and (cls is None or cls in a.get("class", "").split())]


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(make_report())


def test_grid_has_a_cell_per_test_and_target_coloured_by_verdict_labelled_by_outcome(page: str) -> None:
    doc = Elements(page)
    assert len(doc.find("table")) >= 1 and any(a.get("id") == "grid" for a in doc.find("table"))
    cells = {(a["data-test"], a["data-target"]): (a["data-verdict"], a["data-outcomes"], a["class"])
             for a in doc.find("td", "cell")}
    # Rows drop the target's [param]; columns keep the report's order, the unavailable one greyed in every row.
    assert len(cells) == 4 * 4
    assert cells[("tests/test_x.py::test_add", "py3.9")] == ("passed", "ok", "cell verdict-passed outcome-ok")
    # A test that expects the exception passes: green, with call_error as its text.
    assert cells[("tests/test_x.py::test_lambda", "py3.9")][:2] == ("passed", "call_error")
    assert cells[("tests/test_x.py::test_lambda", "py3.12")][:2] == ("failed", "load_error")
    assert cells[("tests/test_x.py::test_lambda", "py3.13")][:2] == ("xfailed", "syntax_error")
    assert cells[("tests/test_y.py::test_numpy", "py3.9")][:2] == ("failed", "missing_module")
    assert cells[("tests/test_y.py::test_numpy", "py3.12")][:2] == ("error", "dump_error")
    assert cells[("tests/test_y.py::test_segfault", "py3.9")][:2] == ("xfailed", "crash")
    assert cells[("tests/test_y.py::test_segfault", "py3.13")][:2] == ("xpassed", "ok")
    assert {v[1] for (_, t), v in cells.items() if t == "cuda12"} == {"unavailable"}
    heads = re.findall(r"<th scope=\"col\"[^>]*>([^<]+)", page)
    assert heads == ["test", "py3.9", "py3.12", "py3.13", "cuda12"]


def test_cell_shows_verdict_outcome_and_median_total_in_ms(page: str) -> None:
    cell = re.search(r'<td class="cell verdict-passed outcome-ok" data-test="tests/test_x.py::test_add" '
                     r'data-target="py3.9".*?</td>', page)
    assert cell is not None
    assert '<span class="verdict">passed</span><span class="outcome">ok</span>' in cell.group(0)
    assert "2.00 ms · 3 calls" in cell.group(0)  # median of 1, 2 and 10 ms
    xfail = re.search(r'<td class="cell verdict-xfailed[^"]*" data-test="tests/test_x.py::test_lambda" '
                      r'data-target="py3.13".*?</td>', page)
    assert xfail is not None and "syntax_error (expected)" in xfail.group(0)


def test_parametrized_tests_keep_one_row_per_test_id() -> None:
    report = make_report()
    for param in ("a", "b"):
        for target in ("py3.9", "py3.12"):
            nodeid = f"tests/test_p.py::test_param[{param}-{target}]"
            report["calls"].append(_call(nodeid, target))
            report["tests"].append({"nodeid": nodeid, "target": target, "verdict": "passed" if param == "a"
                                    else "failed", "outcomes": ["ok"], "duration_s": 0.1})
    doc = Elements(render_html(report))
    rows = {(a["data-test"], a["data-target"]): a["data-verdict"] for a in doc.find("td", "cell")
            if "test_param" in a["data-test"]}
    assert rows == {("tests/test_p.py::test_param[a]", "py3.9"): "passed",
                    ("tests/test_p.py::test_param[a]", "py3.12"): "passed",
                    ("tests/test_p.py::test_param[b]", "py3.9"): "failed",
                    ("tests/test_p.py::test_param[b]", "py3.12"): "failed",
                    ("tests/test_p.py::test_param[a]", "cuda12"): "unknown",
                    ("tests/test_p.py::test_param[b]", "cuda12"): "unknown"}


def test_mixed_cell_lists_every_outcome() -> None:
    report = make_report()
    report["calls"].append(_call("tests/test_x.py::test_add[py3.9]", "py3.9", "crash",
                                 error={"type": "TargetCrashed", "message": "exit 139", "exit_code": 139}))
    doc = Elements(render_html(report))
    cell = [a for a in doc.find("td", "cell") if a["data-test"].endswith("test_add") and a["data-target"] == "py3.9"]
    assert cell[0]["class"] == "cell verdict-passed outcome-crash"
    assert cell[0]["data-outcomes"] == "ok crash"


def test_details_list_every_call_and_escape_the_traceback(page: str) -> None:
    doc = Elements(page)
    details = {(a["data-test"], a["data-target"]): a for a in doc.find("details", "cell-details")}
    assert len(details) == 16
    cell_ids = {a["data-details"] for a in doc.find("td", "cell")}
    assert cell_ids == {a["id"] for a in details.values()}
    # The traceback lands in a <pre>, escaped: the only <script> elements are the page's own two.
    assert "<pre class=\"traceback\">" in page
    assert "ValueError: &lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in page
    assert EVIL not in page
    assert len(doc.find("script")) == 2
    assert "bad &lt;value&gt; &amp; more" in page
    for text in ("the function raised on the target", "bytecode of 3.11 does not load on 3.12",
                 "cloudpickle", "812 B", "PicklingError", "signal <code>11</code>", "module <code>numpy</code>",
                 "no GPU: nvidia runtime missing"):
        assert text in page, text
    block = page[page.index('id="d-0"'):]
    block = block[: block.index("</details>")]
    assert block.count('class="call outcome-ok"') == 3
    for phase in ("dump", "send", "load", "call", "result", "total"):
        assert f"<th>{phase}</th>" in block


def test_embedded_data_round_trips_without_closing_its_script(page: str) -> None:
    raw = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert raw is not None
    assert "<" not in raw.group(1)
    assert json.loads(raw.group(1)) == make_report()


def test_phase_chart_has_one_stacked_bar_per_available_target(page: str) -> None:
    doc = Elements(page)
    assert len(doc.find("svg")) == 1 and doc.find("svg")[0]["id"] == "phase-chart"
    bars = [a["data-target"] for a in doc.find("g", "bar")]
    assert bars == ["py3.9", "py3.12", "py3.13"]
    segments = doc.find("rect", "seg")
    assert len(segments) == 3 * 5
    assert [s["data-phase"] for s in segments[:5]] == ["dump", "send", "load", "call", "result"]
    # py3.9's ok calls total 1, 2, 10 ms, each split 10/10/40/20/20 %: load's median is 0.8 ms.
    py39 = {s["data-phase"]: s for s in segments[:5]}
    widths = {p: float(s["width"]) for p, s in py39.items()}
    assert widths["load"] == pytest.approx(4 * widths["dump"])
    assert "py3.9 load: 0.800 ms" in page
    assert "median per phase over ok calls (ms)" in page
    assert len(doc.find("rect", "swatch")) == 5


def test_targets_table_lists_cold_start_and_build_time(page: str) -> None:
    table = page[page.index('<table id="targets">'):]
    table = table[: table.index("</table>")]
    assert "0.43 s" in table and "61.20 s" in table
    assert table.count("<tr data-target=") == 4
    assert "unavailable: no GPU: nvidia runtime missing" in table


def test_header_and_summary(page: str) -> None:
    assert "3.11.7" in page and "Linux-6.1-x86_64" in page and "cloudpickle&nbsp;3.1.2" in page
    assert "2024-05-01T12:00:00Z" in page
    doc = Elements(page)
    chips = {a["data-outcome"] for a in doc.find("li", "chip") if "data-outcome" in a}
    verdicts = {a["data-verdict"] for a in doc.find("li", "chip") if "data-verdict" in a}
    assert verdicts == {"passed", "failed", "error", "xfailed", "xpassed"}
    assert re.search(r'data-verdict="passed"><b>4</b>', page)
    assert chips == {"ok", "call_error", "load_error", "syntax_error", "missing_module", "dump_error",
                     "result_error", "crash", "timeout"}
    assert re.search(r'data-outcome="ok"><b>6</b>', page)


def test_page_needs_no_network(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    for ref in re.findall(r"\b(?:src|href)\s*=\s*[\"']?([^\"'\s>]*)", page):
        assert ref.startswith("#"), ref
    assert "@import" not in page and "url(" not in page


def test_empty_report_and_write_html(tmp_path: Path) -> None:
    assert "No calls were recorded" in render_html({"version": 1, "host": {}, "targets": [], "calls": []})
    out = tmp_path / "sub" / "report.html"
    write_html(make_report(), out)
    assert out.read_text(encoding="utf-8") == render_html(make_report())


# --- in a real browser ------------------------------------------------------------------------


def _chromium(pytestconfig: pytest.Config) -> str:
    """The browser; under --remote-strict (CI) its absence fails the test, elsewhere it skips."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        message = f"chromium is not installed: {INSTALL}"
        if pytestconfig.getoption("remote_strict"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def _headless(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless run in its own process group, so nothing it spawned outlives the test."""
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--window-size=1400,1000", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"chromium did not finish in 60 s: {err[-2000:]}", pytrace=False)
    finally:
        _reap(proc.pid)
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, err[-2000:]
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _reap(pgid: int) -> None:
    """Kill whatever of the group is left (helpers, zygotes) and wait until it is gone."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the raw rows of an 8-bit, non-interlaced RGB(A) PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line[j] for j in range(stride) if j % bpp < 3) if bpp == 4 else bytes(line))
        prev = line
    return width, height, rows


def _has_colour(rows: list[bytes], hex_colour: str) -> int:
    rgb = bytes.fromhex(hex_colour.lstrip("#"))
    return sum(row[i:i + 3] == rgb for row in rows for i in range(0, len(row), 3))


def test_page_renders_in_headless_chromium(pytestconfig: pytest.Config, tmp_path: Path) -> None:
    chromium = _chromium(pytestconfig)
    html_file = tmp_path / "report.html"
    write_html(make_report(), html_file)
    url = html_file.as_uri()
    started = time.monotonic()
    dom = _headless(chromium, tmp_path / "profile-dom", "--dump-dom", url).stdout
    png = tmp_path / "report.png"
    _headless(chromium, tmp_path / "profile-shot", f"--screenshot={png}", url)
    elapsed = time.monotonic() - started

    # The script ran: it marked the page and put the first failing cell's calls in the panel.
    assert 'data-js="ready"' in dom
    doc = Elements(dom)
    assert len(doc.find("td", "cell")) == 16
    assert len(doc.find("rect", "seg")) == 15
    assert len(doc.find("td", "selected")) == 1
    panel = dom[dom.index('<aside id="panel"'):]
    panel = panel[: panel.index("</aside>")]
    # The first failing verdict is shown: test_lambda on py3.12 (its load_error), not the passing call_error.
    assert 'data-target="py3.12"' in panel and "code() argument 13 must be str" in panel
    assert len(doc.find("script")) == 2  # the traceback's <script> stayed text

    data = png.read_bytes()
    assert len(data) > 20_000, len(data)
    width, height, rows = _png_pixels(data)
    assert (width, height) == (1400, 1000)
    # The colours drawn are the verdicts': green passed, red failed, the xfailed slate, the orange
    # xpassed and the grey of an unavailable target; the outcomes are the cells' text.
    for colour in (VERDICT_COLOURS["passed"][0], VERDICT_COLOURS["failed"][0], VERDICT_COLOURS["xfailed"][0],
                   VERDICT_COLOURS["xpassed"][0], COLOURS["unavailable"][0]):
        assert _has_colour(rows, colour) > 500, colour
    for text in ('<span class="verdict">failed</span><span class="outcome">load_error</span>',
                 '<span class="verdict">xfailed</span><span class="outcome">syntax_error (expected)</span>',
                 '<span class="verdict">passed</span><span class="outcome">call_error</span>'):
        assert text in dom, text
    artifacts = os.environ.get("PRS_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(artifacts) / "report_html.png")
        shutil.copy(html_file, Path(artifacts) / "report_html.html")
    print(f"headless chromium: {elapsed:.1f} s for dump-dom and screenshot; screenshot at {png}")


def test_device_copies_are_shown_apart_from_the_phases() -> None:
    report = make_report()
    call = _call("tests/test_gpu.py::test_k[py3.9]", "py3.9", "ok", 0.004)
    call["device"] = {"h2d_s": 0.0021, "d2h_s": 0.0013, "arrays": 2,
                      "converted": ["a cupy.ndarray float32 (3, 4) arrived as numpy.ndarray: CuPy <none>"]}
    report["calls"].append(call)
    html = render_html(report)
    assert "<caption>device copies (not in phases)</caption>" in html
    assert "<th>host→device</th><td>2.10 ms</td>" in html and "<th>arrays</th><td>2</td>" in html
    assert "arrived as numpy.ndarray: CuPy &lt;none&gt;" in html
