"""Recording and reporting (issue 5): the JSON report, baselines, and pytest-xdist workers."""

from __future__ import annotations

import json

import pytest
from helpers import label, our_containers

from pytest_remote_serial.report.terminal import parse_matrix

CALLS = """
    def add(a, b):
        return a + b

    def test_add(remote):
        assert remote.call(add, 1, 2) == 3

    def test_fails_there(remote):
        remote.roundtrip(int, "x")
"""
CALL_KEYS = {"test", "target", "function", "serializer", "fallback_from", "outcome", "error",
             "payload_bytes", "result_bytes", "phases_s"}
TARGET_KEYS = {"name", "python", "image", "image_id", "gpu", "available", "reason", "cold_start_s", "packages"}


def test_json_report_has_the_design_schema(pytester):
    pytester.makepyfile(CALLS)
    result = pytester.runpytest_subprocess("--remote-report=out/report.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["remote-serial: wrote out/report.json"])
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    assert report["version"] == 1
    assert {"python", "platform", "packages"} <= set(report["host"])
    assert {"cloudpickle", "dill"} <= set(report["host"]["packages"])
    (target,) = report["targets"]
    assert TARGET_KEYS <= set(target) and target["name"] == "local" and target["available"]
    assert target["cold_start_s"] > 0
    by_test = {c["test"].rpartition("::")[2]: c for c in report["calls"]}
    assert all(CALL_KEYS <= set(c) for c in report["calls"])
    ok = by_test["test_add"]
    # The test module is not importable there: auto went on from cloudpickle, and says so.
    assert (ok["outcome"], ok["serializer"], ok["fallback_from"], ok["error"]) == (
        "ok", "cloudpickle-by-value", ["cloudpickle"], None)
    assert set(ok["phases_s"]) == {"dump", "send", "load", "call", "result", "total"}
    assert ok["payload_bytes"] > 0 and ok["result_bytes"] > 0 and ok["function"].endswith("add")
    bad = by_test["test_fails_there"]
    assert bad["outcome"] == "call_error" and bad["error"]["type"] == "builtins.ValueError"
    assert "Traceback" in bad["error"]["traceback"]


MANY = """
    import pytest

    def add(a, b):
        return a + b

    @pytest.mark.parametrize("n", range(3))
    def test_many(remote, n):
        for i in range(8):
            assert remote.call(add, i, n) == i + n

    def test_once(remote):
        assert remote.call(add, 1, 2) == 3
"""


def _baseline(pytester, total: float | None = None, only: str = "") -> str:
    """A real report of MANY; with ``total``, the time of every call of tests matching ``only``
    replaced by it."""
    pytester.makepyfile(MANY)
    pytester.runpytest_subprocess("--remote-report=base.json", "-p", "no:cacheprovider")
    path = pytester.path / "base.json"
    report = json.loads(path.read_text())
    for call in report["calls"]:
        if total is not None and only in call["test"]:
            call["phases_s"]["total"] = total
    path.write_text(json.dumps(report))
    return str(path)


def test_compare_prints_what_it_compared_and_passes_a_speed_up(pytester):
    base = _baseline(pytester, total=10.0)  # ten seconds: anything now is faster
    result = pytester.runpytest_subprocess(f"--remote-compare={base}", "--remote-compare-fail=roundtrip_p50:25%",
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([
        "*remote-serial compare*",
        f"against {base}: the median round trip of each test id on each target (ok calls only), and the cold*",
        "a cell is flagged only with >= 5 samples on both sides and, beyond its target's drift, a change of the "
        "median of >= 1 ms whose bootstrap 95% interval lies wholly past the threshold",
        "*test_many[[]0[]]*local*8/8*10000.00ms*",
        "not compared: 1 cell(s) with fewer than 5 ok calls on a side*",  # test_once: one call
        "drift of local: its cells moved -*% together*",
    ])
    assert "FAIL" not in result.stdout.str()


def test_compare_fail_flags_a_real_slowdown_and_says_why(pytester):
    # One test was a microsecond in the baseline: now it is slower by far more than 1 ms, while the
    # other tests of its target moved as the machine did.
    base = _baseline(pytester, total=1e-6, only="test_many[0]")
    # And really slower now, by far more than any machine's scatter: 30 ms a call.
    pytester.makepyfile(MANY.replace("return a + b", "import time\n        time.sleep(0.03 if b == 0 else 0)\n"
                                                     "        return a + b"))
    result = pytester.runpytest_subprocess(f"--remote-compare={base}", "--remote-compare-fail=roundtrip_p50:25%",
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([
        "FAIL roundtrip_p50:25%: *test_many[[]0[]] on local: median 0.001 ms -> * ms (+*%; *% of it is local's "
        "drift and +*% the scatter of its other cells; +*% beyond both, 95% interval +*%..+*%, all past 25%; "
        "moved * ms >= 1 ms; 8/8 samples)",
        "remote-serial: this run fails (exit 1) on the 1 cell(s) above, though its tests may all have passed",
    ])


def test_an_identical_rerun_does_not_cry_wolf(pytester):
    """The same suite twice on this noisy machine: no cell is flagged (issue 13)."""
    base = _baseline(pytester)
    result = pytester.runpytest_subprocess(f"--remote-compare={base}", "--remote-compare-fail=roundtrip_p50:25%",
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "FAIL" not in result.stdout.str()


@pytest.mark.parametrize("args, message", [
    (["--remote-compare=nope.json"], "*nope.json: no such report; write one first with --remote-report=nope.json*"),
    (["--remote-compare-fail=roundtrip_p50:25%"], "*--remote-compare-fail needs a baseline*"),
    (["--remote-compare=base.json", "--remote-compare-fail=speed:5%"], "*use METRIC:PERCENT% or METRIC:SECONDS*"),
    (["--remote-compare=bad.json"], "*bad.json: not a JSON report*"),
])
def test_bad_compare_input_is_a_usage_error(pytester, args, message):
    pytester.makepyfile("def test_x(remote): pass")
    (pytester.path / "base.json").write_text(json.dumps({"version": 1, "calls": [], "targets": []}))
    (pytester.path / "bad.json").write_text("{not json")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.docker
def test_xdist_workers_report_to_the_controller_and_leave_nothing(pytester, docker_client):
    pytester.makepyfile(**{f"test_{i}": CALLS for i in range(3)})
    result = pytester.runpytest_subprocess("-n", "2", "--remote-targets=local,py3.9", "--remote-strict",
                                           "--remote-report=r.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=12)
    report = json.loads((pytester.path / "r.json").read_text())
    assert len(report["calls"]) == 12  # every call of both workers reached the controller
    assert {c["target"] for c in report["calls"]} == {"local", "py3.9"}
    targets = {t["name"]: t for t in report["targets"]}
    assert targets["py3.9"]["available"] and targets["py3.9"]["python"].startswith("3.9.")
    assert len(targets["py3.9"].get("cold_starts_s", [0])) <= 2  # at most one container per worker
    result.stdout.fnmatch_lines(["*remote-serial matrix*", "py3.9: Python 3.9.*"])
    assert report["run"] and not run_containers(docker_client, report["run"])


def run_containers(client, run: str) -> list[dict]:
    """The containers of one run (its controller's and its workers'): never another suite's."""
    return [c for c in our_containers(client) if label(c, "run") == run]


KILLED = """
    import os, signal

    def test_first(remote):
        assert remote.call(abs, -1) == 1

    def test_second(remote):
        assert remote.call(abs, -2) == 2
        if remote.target.name == "py3.9" and not os.path.exists("killed-once"):
            open("killed-once", "w").close()
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies, as under the OOM killer or kill -9
"""


@pytest.mark.docker
def test_a_killed_xdist_worker_keeps_its_rows_and_leaves_no_container(pytester, docker_client):
    pytester.makepyfile(test_killed=KILLED, test_other=CALLS)
    # No worker replaces the dead one (whose start would reap what it left): the controller must.
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadfile", "--max-worker-restart=0",
                                           "--remote-targets=local,py3.9", "--remote-report=r.json",
                                           "--remote-all-rows", "-p", "no:cacheprovider")
    report = json.loads((pytester.path / "r.json").read_text())
    assert "crashed while running 'test_killed.py::test_second[py3.9]'" in result.stdout.str()
    passed = {t["nodeid"] for t in report["tests"] if t["verdict"] == "passed"}
    # Every test the dead worker finished keeps its row, its calls and its verdict.
    assert {"test_killed.py::test_first[local]", "test_killed.py::test_first[py3.9]",
            "test_killed.py::test_second[local]"} <= passed, report["tests"]
    called = {c["test"] for c in report["calls"]}
    assert {"test_killed.py::test_first[py3.9]", "test_killed.py::test_second[local]"} <= called
    (crashed,) = [t for t in report["tests"] if t["nodeid"] == "test_killed.py::test_second[py3.9]"]
    assert crashed["verdict"] == "failed"
    assert {t["name"] for t in report["targets"] if t["available"]} == {"local", "py3.9"}
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "remote-serial matrix" in line) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(("local:", "py3")))
    matrix = parse_matrix(lines[start:end])
    assert matrix["test_killed.py::test_first"]["py3.9"].startswith("✓ ok")
    assert not run_containers(docker_client, report["run"])


def test_html_report_of_a_real_run(pytester):
    pytester.makepyfile(CALLS)
    result = pytester.runpytest_subprocess("--remote-html=out/report.html", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    page = (pytester.path / "out" / "report.html").read_text()
    # test_fails_there passes: its call_error is the text of a green (passed) cell.
    assert 'class="cell verdict-passed outcome-ok"' in page and 'class="cell verdict-passed outcome-call_error"' in page
    assert 'id="phase-chart"' in page and "test_html_report_of_a_real_run.py::test_add" in page
