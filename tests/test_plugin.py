"""Plugin behaviour through pytester: options, marker, parametrization, the summary."""

from __future__ import annotations

import pytest


def test_marker_is_registered_and_validated(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.remote(serializer="dill", timeout=5)
        def test_ok(remote):
            assert remote.roundtrip(abs, -2).serializer == "dill"

        @pytest.mark.remote(serialiser="dill")
        def test_typo(remote):
            pass
    """)
    result = pytester.runpytest_subprocess("--strict-markers")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*::test_typo: @pytest.mark.remote: unknown argument(s) serialiser; "
                                 "use serializer, targets*"])


@pytest.mark.parametrize(("argument", "says"), [
    ("timeout=0", "timeout=0): give a positive number of seconds"),
    ("timeout=-1", "timeout=-1): give a positive number of seconds"),
    ("timeout='soon'", "timeout='soon'): give a positive number of seconds"),
    ("timeout=1e308", "timeout=1e+308): give a positive number of seconds up to 86400 (a day)"),
    ("timeout=float('nan')", "timeout=nan): give a positive number of seconds"),
    ("isolate='no'", "isolate='no'): give True or False"),
    ("targets='a'", "targets='a'): give a list of target names, e.g. targets=['a']"),
    ("targets=['nope']", "names unknown target(s) 'nope'; known: a, b, local"),
    ("serializer='pickel'", "serializer='pickel'): use one of auto, pickle"),
    ("expect='syntax_error'", "expect='syntax_error'): give a dict of target name -> outcome"),
    ("expect={'a': 'ok'}", "'ok' is not an outcome a round trip can be expected to end in ('ok' is what every"),
    ("expect={'a': 'sintax_error'}", "'sintax_error' is not an outcome * use one of dump_error, load_error"),
    ("expect={'a': []}", "give an outcome name or a list of them"),
    ("expect={'nope': 'crash'}", "remote(expect=...) names unknown target(s) 'nope'; known: a, b, local"),
])
@pytest.mark.parametrize("matrix", [False, True])
def test_bad_marker_arguments_are_usage_errors_naming_the_test(pytester, argument, says, matrix):
    pytester.makefile(".toml", **{"matrix/targets": '[targets.a]\nimage = "x"\n[targets.b]\nimage = "y"\n'})
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.remote({argument})
        def test_bad(remote):
            pass
    """)
    result = pytester.runpytest_subprocess(*(["--remote-targets=b"] if matrix else []))
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([f"ERROR: *::test_bad*: *{says.replace('[', '[[]')}*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_marker_targets_that_miss_the_selection_skip_with_the_reason(pytester):
    """One-job-per-target CI: a test pinned to py3.9 in the py3.11 job is skipped, not a crash."""
    pytester.makefile(".toml", **{"matrix/targets": '[targets.a]\nimage = "x"\n[targets.b]\nimage = "y"\n'})
    pytester.makepyfile("""
        import pytest

        @pytest.mark.remote(targets=["a"])
        def test_only_a(remote):
            pass

        def test_plain():
            pass
    """)
    result = pytester.runpytest_subprocess("--remote-targets=b", "-rs")
    result.assert_outcomes(skipped=1, passed=1)
    result.stdout.fnmatch_lines(["SKIPPED*targets=[[]'a'] selects none of the chosen targets (b)*"])
    assert "INTERNALERROR" not in result.stdout.str()


def test_ids_carry_the_target_and_marker_targets_narrow(pytester):
    pytester.makefile(".toml", **{"matrix/targets": '[targets.a]\nimage = "x"\n[targets.b]\nimage = "y"\n'})
    pytester.makepyfile("""
        import pytest

        def test_all(remote):
            pass

        @pytest.mark.remote(targets=["b"])
        def test_only_b(remote):
            pass

        def test_plain():
            pass
    """)
    result = pytester.runpytest("--remote-matrix", "--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "*::test_all[[]local[]]", "*::test_all[[]a[]]", "*::test_all[[]b[]]", "*::test_only_b[[]b[]]",
        "*::test_plain", "5 tests collected*",
    ])


def test_without_matrix_everything_runs_on_local(pytester):
    pytester.makepyfile("""
        def test_local(remote):
            assert remote.target.name == "local"
            assert remote.call(sum, [1, 2, 3]) == 6
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    # One row that passed alike: counted, not drawn (-v draws it).
    result.stdout.fnmatch_lines(["*remote-serial: local only*", "*remote-serial matrix*",
                                 "1 more passed alike*✓ 1", "local: Python *, cold start *"])


def test_functions_from_the_test_module_are_missing_on_local(pytester):
    pytester.makepyfile("""
        import pytest
        import pytest_remote_serial as prs

        def helper():
            return 1

        def test_by_reference(remote):
            with pytest.raises(prs.MissingModuleError) as info:
                remote.call(helper, serializer="cloudpickle")
            assert info.value.module == "test_functions_from_the_test_module_are_missing_on_local"
            assert remote.call(helper, serializer="cloudpickle-by-value") == 1
    """)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_disabled_with_p_no(pytester):
    pytester.makepyfile("def test_x(remote): pass")
    result = pytester.runpytest("-p", "no:remote_serial")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'remote' not found*"])


def _report(calls: list[tuple[str, str, str]], verdict: str = "passed") -> dict:
    """A report of (nodeid, target, outcome) calls, each test with ``verdict``."""
    return {"calls": [{"test": t, "target": target, "outcome": o, "phases_s": {"total": 0.002}}
                      for t, target, o in calls],
            "tests": [{"nodeid": t, "target": target, "verdict": verdict, "outcomes": [o], "duration_s": 0.1}
                      for t, target, o in calls]}


def test_summary_wraps_wide_matrices():
    from pytest_remote_serial.report.record import cells
    from pytest_remote_serial.report.terminal import parse_matrix, plain, render_matrix

    targets = [f"target-{i}" for i in range(12)]
    report = _report([(f"tests/test_a.py::test_{n}[{t}]", t, "ok") for t in targets for n in ("one", "two")])
    lines = plain(render_matrix(cells(report), targets, width=100, every_row=True))
    assert max(len(line) for line in lines) <= 100
    assert "" in lines  # wrapped into blocks
    parsed = parse_matrix(lines)
    assert parsed["test_one"] == {t: "✓ ok" for t in targets}


def test_summary_groups_rows_by_file_and_keeps_parameters():
    from pytest_remote_serial.report.record import cells
    from pytest_remote_serial.report.terminal import parse_matrix, plain, render_matrix

    long = "test_" + "x" * 60
    report = _report([(f"suite/{file}::{name}[{t}]", t, outcome)
                      for t, outcome in (("a", "ok"), ("b", "crash"))
                      for file, name in (("test_one.py", "test_x"), ("test_two.py", "test_x"),
                                         ("test_two.py", long))]
                     + [(f"suite/test_two.py::test_p[{p}-{t}]", t, "ok") for t in ("a", "b") for p in (1, 2)])
    report["tests"][-1]["verdict"] = "failed"
    lines = plain(render_matrix(cells(report), ["a", "b"], width=80, every_row=True))
    assert lines[0].startswith("suite/") and lines[1] == "test_one.py" and lines[2].startswith("  test_x ")
    assert any(line.startswith("  …") and "xxx " in line for line in lines)  # the end of a long name stays
    parsed = parse_matrix(lines)
    assert parsed["test_one.py::test_x"] == parsed["test_two.py::test_x"] == {
        "a": "✓ ok 2.0ms", "b": "✓ crash 2.0ms"}
    # One row per test id: the target's own parameter goes, the others stay.
    assert parsed["test_two.py::test_p[1]"] == {"a": "✓ ok 2.0ms", "b": "✓ ok 2.0ms"}
    assert parsed["test_two.py::test_p[2]"] == {"a": "✓ ok 2.0ms", "b": "✗ ok 2.0ms"}
    # By default only the rows with something to say: outcomes that change between targets, a
    # verdict other than passed; test_p[1] passed alike and is counted.
    parsed = parse_matrix(plain(render_matrix(cells(report), ["a", "b"], width=100)))
    assert set(parsed) == {"test_one.py::test_x", "test_two.py::test_x", f"test_two.py::{long}",
                           "test_two.py::test_p[2]", "1 more passed alike"}
    assert parsed["1 more passed alike"] == {"a": "✓ 1", "b": "✓ 1"}


def test_row_of_drops_only_the_targets_parameter():
    from pytest_remote_serial.report.record import row_of

    assert row_of("t.py::test_x[py3.9]", "py3.9") == "t.py::test_x"
    assert row_of("t.py::test_x[1-py3.9]", "py3.9") == "t.py::test_x[1]"
    assert row_of("t.py::test_x[py3.9-1]", "py3.9") == "t.py::test_x[1]"
    assert row_of("t.py::test_x[a-cuda-py3.11-b]", "cuda-py3.11") == "t.py::test_x[a-b]"
    assert row_of("t.py::test_x[1]", "local") == "t.py::test_x[1]"
    assert row_of("t.py::test_x", "local") == "t.py::test_x"


@pytest.mark.parametrize("calls", ["[1]", '[{"target": 3}]', '[{"target": "a", "outcome": "ok", "phases_s": 5}]'])
def test_a_malformed_baseline_is_a_usage_error(pytester, calls):
    pytester.makefile(".json", base=f'{{"version": 1, "calls": {calls}, "targets": []}}')
    pytester.makepyfile("def test_x(remote): pass")
    result = pytester.runpytest_subprocess("--remote-compare=base.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*base.json: not a usable pytest-remote-serial report: calls*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_missing_matrix_file_is_ignored_without_the_matrix_and_an_error_with_it(pytester):
    pytester.makepyfile("def test_x(remote): pass")
    pytester.runpytest_subprocess("--remote-matrix-file=nope.toml").assert_outcomes(passed=1)
    pytester.runpytest_subprocess("--remote-matrix", "--remote-matrix-file=nope.toml").stderr.fnmatch_lines(
        ["*--remote-matrix-file: */nope.toml does not exist*"])


@pytest.mark.parametrize(("option", "says"), [
    ("--remote-targets=", "--remote-targets='' names no target: give target names separated by commas, "
                          "e.g. --remote-targets=py3.9,py3.11, use --remote-matrix for every target, or leave "
                          "the option out to run on local only"),
    ("--remote-targets= , ", "--remote-targets=' , ' names no target*"),
    ("--remote-targets=a,,b", "--remote-targets='a,,b' has an empty name between its commas: give target names "
                              "separated by single commas, e.g. --remote-targets=a,b"),
    ("--remote-targets=a,", "--remote-targets='a,' has an empty name*e.g. --remote-targets=a"),
    ("--remote-targets=a,nope", "--remote-targets=a,nope: unknown target(s) 'nope'*known: local, a, b"),
])
def test_a_bad_target_list_is_a_usage_error_before_anything_runs(pytester, option, says):
    pytester.makefile(".toml", **{"matrix/targets": '[targets.a]\nimage = "x"\n[targets.b]\nimage = "y"\n'})
    pytester.makepyfile("def test_x(remote):\n    open('ran', 'w').close()\n")
    result = pytester.runpytest_subprocess(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([f"ERROR: {says.replace('[', '[[]')}"])
    assert not (pytester.path / "ran").exists()


def test_a_target_list_naming_a_target_twice_runs_it_once(pytester):
    pytester.makepyfile("def test_x(remote):\n    assert remote.call(abs, -1) == 1\n")
    result = pytester.runpytest_subprocess("--remote-targets=local,local", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_x[[]local[]] PASSED*"])


@pytest.mark.parametrize(("option", "says"), [
    ("--remote-html=out", "--remote-html=out names a folder; name the file to write in it, e.g. "
                          "--remote-html=out/report.html"),
    ("--remote-markdown=out", "--remote-markdown=out names a folder; * e.g. --remote-markdown=out/matrix.md"),
    ("--remote-report=new/", "--remote-report=new/ names a folder; * e.g. --remote-report=new/report.json"),
    ("--remote-report=afile/r.json", "--remote-report=afile/r.json cannot be written: */afile is a file, not a "
                                     "folder; name a file in a folder you can write, e.g. --remote-report=report.json"),
    ("--remote-html=/proc/prs/r.html", "--remote-html=/proc/prs/r.html cannot be written: * (/proc)*"),
    ("--remote-html=same --remote-report=same", "--remote-html=same: --remote-report writes that file too; give "
                                                "each report a file of its own"),
])
def test_a_report_path_that_cannot_be_written_is_a_usage_error_before_anything_runs(pytester, option, says):
    (pytester.path / "out").mkdir()
    (pytester.path / "afile").write_text("")
    pytester.makepyfile("def test_x(remote):\n    open('ran', 'w').close()\n")
    result = pytester.runpytest_subprocess(*option.split())
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([f"ERROR: {says}"])
    assert not (pytester.path / "ran").exists() and not (pytester.path / "new").exists()
    assert not list(pytester.path.glob("**/.prs-check-*"))  # the check leaves nothing


def test_report_paths_that_can_be_written_are_written(pytester):
    (pytester.path / "report.json").write_text("old")  # an existing file is replaced, as before
    pytester.makepyfile("def test_x(remote):\n    assert remote.call(abs, -1) == 1\n")
    result = pytester.runpytest_subprocess("--remote-report=report.json", "--remote-html=deep/er/r.html",
                                           "--remote-markdown=m.md")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "report.json").read_text().startswith("{")
    assert (pytester.path / "deep" / "er" / "r.html").is_file() and (pytester.path / "m.md").is_file()


@pytest.mark.parametrize("value", ["soon", "-5", "20000", "1.5"])
def test_a_bad_spin_window_is_a_usage_error_naming_the_variable(pytester, monkeypatch, value):
    monkeypatch.setenv("PYTEST_REMOTE_SERIAL_SPIN_US", value)
    pytester.makepyfile("""
        def test_ok(remote):
            assert remote.call(abs, -1) == 1
    """)
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([f"ERROR: PYTEST_REMOTE_SERIAL_SPIN_US='{value}': give a whole number of "
                                 "microseconds from 0 (never spin before sleeping) to 10000*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("value", ["0", "350"])
def test_a_spin_window_in_range_runs_the_calls(pytester, monkeypatch, value):
    monkeypatch.setenv("PYTEST_REMOTE_SERIAL_SPIN_US", value)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.remote(isolate=False)
        def test_inline(remote):
            assert [remote.call(abs, -i) for i in range(20)] == list(range(20))

        def test_isolated(remote):
            assert [remote.call(abs, -i) for i in range(5)] == list(range(5))
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)
