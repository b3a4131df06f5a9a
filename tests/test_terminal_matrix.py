"""The terminal matrix scales: rows with something to say, the rest counted, in the terminal's width."""

from __future__ import annotations

import random
import re
import textwrap

import pytest

from pytest_remote_serial.report.record import cells
from pytest_remote_serial.report.terminal import GLYPHS, SHORT, layout, parse_matrix, plain, says_something

TARGETS = ["local", "py3.9", "py3.10", "py3.11", "py3.12", "py3.13", "py3.14"]
# (verdict, outcome) a generated cell may have; most pass with ok, as in a real suite.
ODD = [("xfailed", "load_error"), ("xfailed", "missing_module"), ("failed", "ok"), ("passed", "call_error"),
       ("xfailed", "differs"), ("error", "crash"), ("skipped", "unavailable"), ("xpassed", "ok"),
       ("failed", "timeout"), ("passed", "differs")]


def _suite(rows: int, seed: int = 7, unavailable: tuple[str, ...] = ()) -> dict:
    """A report of ``rows`` tests over TARGETS: about one row in ten has an odd cell."""
    rng = random.Random(seed)
    calls, tests = [], []
    for i in range(rows):
        odd = rng.random() < 0.1
        for target in TARGETS:
            verdict, outcome = ("skipped", "unavailable") if target in unavailable else \
                rng.choice(ODD) if odd and rng.random() < 0.4 else ("passed", "ok")
            nodeid = f"tests/test_gen_{i // 50}.py::test_{i:03d}[{target}]"
            if outcome != "unavailable":  # a target that could not start made no round trip
                calls.append({"test": nodeid, "target": target, "outcome": "ok" if outcome == "differs" else outcome,
                              "same_as_host": False if outcome == "differs" else None,
                              "phases_s": {"total": 0.0004 + i * 1e-5}})
            tests.append({"nodeid": nodeid, "target": target, "verdict": verdict, "outcomes": [outcome],
                          "duration_s": 0.01})
    return {"calls": calls, "tests": tests}


def _row_of(nodeid: str) -> str:
    """``tests/test_gen_0.py::test_001[py3.9]`` as parse_matrix keys it: ``test_gen_0.py::test_001``."""
    return nodeid.split("/", 1)[1].rsplit("[", 1)[0]


def _odd_rows(report: dict, columns: list[str]) -> set[str]:
    by_row: dict[str, list] = {}
    for key, cell in cells(report).items():
        if key[1] in columns:
            by_row.setdefault(key[0], []).append(cell)
    return {row.split("/", 1)[1] for row, row_cells in by_row.items() if says_something(row_cells)}


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_the_matrix_fits_the_width_and_keeps_every_row_that_did_not_pass_alike(width):
    report = _suite(300)
    view = layout(cells(report), TARGETS, width)
    lines = plain(view.lines())
    assert max(len(line) for line in lines + view.notes(width)) <= width
    parsed = parse_matrix(lines)
    odd = _odd_rows(report, TARGETS)
    assert 10 < len(odd) < 60  # the generator made some, and far fewer than 300
    counted = f"{300 - len(odd)} more passed alike"
    assert set(parsed) == odd | {counted}
    # Each drawn cell is the glyph of its verdict and its outcome, as short as the width needs.
    for test in report["tests"]:
        row = _row_of(test["nodeid"])
        if row in odd:
            shown = parsed[row][test["target"]].split()
            outcome = test["outcomes"][0]
            assert shown[0] == GLYPHS[test["verdict"]], (row, test)
            assert shown[1] in (outcome, SHORT.get(outcome)), (row, test)
    assert parsed[counted] == {t: f"✓ {300 - len(odd)}" for t in TARGETS}
    if width >= 200:  # room for the long names and the median time
        assert view.form == "full" and "x load_error" in "\n".join(lines) and "ms" in lines[2]
    if width <= 80:
        assert view.form == "short"


def test_every_row_draws_all_300_rows():
    report = _suite(300)
    view = layout(cells(report), TARGETS, 80, every_row=True)
    parsed = parse_matrix(plain(view.lines()))
    assert len(parsed) == 300 and not view.hidden_rows
    assert max(len(line) for line in plain(view.lines())) <= 80


def test_a_target_where_everything_was_unavailable_is_named_once_not_drawn():
    report = _suite(120, unavailable=("py3.12",))
    columns = [t for t in TARGETS if t != "py3.12"]
    view = layout(cells(report), TARGETS, 80)
    parsed = parse_matrix(plain(view.lines()))
    assert view.collapsed == ["py3.12"]
    assert all("py3.12" not in row for row in parsed.values())
    assert set(parsed) - {f"{120 - len(_odd_rows(report, columns))} more passed alike"} == _odd_rows(report, columns)
    assert any("py3.12" in note and "unavailable" in note for note in view.notes(80))
    # Drawn when asked for every cell.
    every = parse_matrix(plain(layout(cells(report), TARGETS, 200, every_row=True).lines()))
    assert {row["py3.12"] for row in every.values()} == {"s unavailable"}


def test_a_row_that_passed_with_different_outcomes_or_a_difference_is_drawn():
    def report(outcomes: dict[str, tuple[str, bool | None]]) -> dict:
        return {"calls": [{"test": f"t.py::test_x[{t}]", "target": t, "outcome": o, "same_as_host": same}
                          for t, (o, same) in outcomes.items()],
                "tests": [{"nodeid": f"t.py::test_x[{t}]", "target": t, "verdict": "passed",
                           "outcomes": [o], "duration_s": 0.1} for t, (o, _) in outcomes.items()]}

    def drawn(r: dict) -> set[str]:
        return set(parse_matrix(plain(layout(cells(r), ["a", "b"], 80).lines())))

    assert drawn(report({"a": ("call_error", None), "b": ("call_error", None)})) == {"1 more passed alike"}
    assert drawn(report({"a": ("ok", None), "b": ("call_error", None)})) == {"test_x"}  # drift: it changed
    assert drawn(report({"a": ("ok", False), "b": ("ok", False)})) == {"test_x"}  # differs from the host


def test_ascii_terminals_get_ascii_glyphs():
    view = layout(cells(_suite(60)), TARGETS, 80, ascii_only=True)
    text = "\n".join(plain(view.lines()) + view.notes(80))
    assert text.isascii() and " F " in text or " . " in text


def _suite_files(pytester: pytest.Pytester) -> None:
    body = "\n".join(f"def test_pass_{i:02d}(remote):\n    assert remote.call(abs, -{i}) == {i}\n" for i in range(55))
    pytester.makepyfile(test_many=body + textwrap.dedent("""
        import pytest

        def boom():
            raise ValueError("boom")

        def test_fails(remote):
            assert remote.call(abs, -1) == 2

        @pytest.mark.remote(expect={"local": "call_error"})
        def test_known_gap(remote):
            remote.call(boom)

        @pytest.mark.remote(serializer="pickle")
        def test_by_reference_is_missing(remote):
            remote.call(boom)
    """))


def test_the_plugin_draws_only_what_did_not_pass_alike_at_80_columns(pytester, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    _suite_files(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=55, failed=2, xfailed=1)
    lines = result.stdout.lines
    start = lines.index(next(line for line in lines if "remote-serial matrix" in line)) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("55 row(s)"))
    matrix = {row: {t: re.sub(r" [0-9.]+ms$", "", text) for t, text in cells.items()}
              for row, cells in parse_matrix(lines[start:end]).items()}  # one target: room for the time
    assert matrix == {"test_by_reference_is_missing": {"local": "✗ missing_module"},
                      "test_fails": {"local": "✗ ok"}, "test_known_gap": {"local": "x call_error"},
                      "55 more passed alike": {"local": "✓ 55"}}
    # The plugin's section only: pytest's own short summary is not cut to the width when CI is set.
    section_end = next(i for i in range(start, len(lines)) if "short test summary info" in lines[i])
    assert all(len(line) <= 80 for line in lines[start - 1:section_end])
    result.stdout.fnmatch_lines(["55 row(s) that passed with the same outcome on every target are counted, not",
                                 "drawn; -v or --remote-all-rows draws every row"])


@pytest.mark.parametrize("flag", ["-v", "--remote-all-rows"])
def test_the_plugin_draws_every_row_when_asked(pytester, monkeypatch, flag):
    monkeypatch.setenv("COLUMNS", "80")
    _suite_files(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", flag)
    lines = result.stdout.lines
    start = lines.index(next(line for line in lines if "remote-serial matrix" in line)) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("cells:"))
    matrix = parse_matrix(lines[start:end])
    assert len(matrix) == 58 and matrix["test_pass_07"] == {"local": matrix["test_pass_07"]["local"]}
    assert matrix["test_pass_07"]["local"].startswith("✓ ok ")  # one target: room for the time
    assert not any("more passed alike" in line for line in lines)
