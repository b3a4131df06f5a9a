"""Behaviour drift (issue 15): the target computes something else than the host."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pytest_remote_serial import BehaviourDrift, assert_same_as_host
from pytest_remote_serial.drift import value_diff


def float_sum():
    return sum([0.1] * 10)  # compensated summation from 3.12: 1.0 there, 0.9999999999999999 before


def drifting_list():
    return [1, 2, sum([0.1] * 10)]


# ----------------------------------------------------------------------------- the comparison itself


def test_value_diff_names_the_first_difference_by_path():
    assert value_diff([1, {"a": (2, 3)}], [1, {"a": (2, 4)}], "result", None, None) == \
        "result[1]['a'][1]: host 3, target 4"
    assert value_diff(1, 1.0, "result", None, None) == "result: host int 1, target float 1.0"
    assert value_diff({"a": 1}, {"b": 1}, "result", None, None).startswith("result: keys differ")
    assert value_diff([1, 2], [1], "result", None, None) == "result: host has 2 items, target 1"
    assert value_diff(math.nan, math.nan, "result", None, None) is None


def test_floats_are_exact_unless_given_a_tolerance():
    assert value_diff(0.9999999999999999, 1.0, "r", None, None) == "r: host 0.9999999999999999, target 1.0"
    assert value_diff(0.9999999999999999, 1.0, "r", 1e-12, None) is None
    assert value_diff(1.0, 1.001, "r", None, 1e-2) is None


def test_arrays_compare_dtype_shape_then_values():
    a = np.arange(6.0).reshape(2, 3)
    assert value_diff(a, a.astype(np.float32), "r", None, None) == "r: dtype host float64, target float32"
    assert value_diff(a, a.reshape(3, 2), "r", None, None) == "r: shape host (2, 3), target (3, 2)"
    b = a.copy()
    b[1, 2] += 1e-9
    assert value_diff(a, b, "r", None, None) == \
        "r[1, 2]: host np.float64(5.0), target np.float64(5.000000001) (1 of 6 elements differ)"
    assert value_diff(a, b, "r", 1e-6, None) is None
    with_nan = np.array([np.nan, 1.0])
    assert value_diff(with_nan, with_nan.copy(), "r", None, None) is None


# ----------------------------------------------------------------------------- on real targets


@pytest.mark.docker
def test_compare_shows_the_drift_and_both_answers(table_remotes):
    found = table_remotes["py3.13"].compare(drifting_list)
    assert not found.same and found.target.outcome == "ok" and found.host.outcome == "ok"
    assert found.diff == "result[2]: host 0.9999999999999999, target 1.0"
    assert (found.host_python.rsplit(".", 1)[0], found.target_python.rsplit(".", 1)[0]) == ("3.11", "3.13")
    assert found.target.same_as_host is False and found.target.host_result_repr == "[1, 2, 0.9999999999999999]"
    assert table_remotes["py3.13"].compare(drifting_list, rtol=1e-12).same
    assert table_remotes["py3.9"].compare(drifting_list).same


@pytest.mark.docker
def test_a_different_outcome_is_a_difference(table_remotes):
    import copy
    import itertools

    def copied():
        return next(copy.copy(itertools.count(5)))  # itertools lost copy support in 3.14

    found = table_remotes["py3.14"].compare(copied)
    assert not found.same
    assert found.diff.startswith("outcome: host ok (5), target call_error (builtins.TypeError:")


@pytest.mark.docker
def test_assert_same_as_host_fails_with_the_diff_and_both_versions(table_remotes):
    from pytest_remote_serial import current

    token = current.set_current(table_remotes["py3.13"])
    try:
        with pytest.raises(AssertionError) as info:
            assert_same_as_host(float_sum)
        assert_same_as_host(float_sum, rtol=1e-12)
    finally:
        current.reset_current(token)
    message = str(info.value)
    assert "on py3.13 (Python 3.13" in message and "on the host (Python 3.11" in message
    assert "result: host 0.9999999999999999, target 1.0" in message
    assert "expect={'py3.13': 'differs'}" in message


COMPARE_HOST = """
    import pytest

    def float_sum():
        return sum([0.1] * 10)

    @pytest.mark.remote(compare_host=True)
    def test_sum(remote):
        remote.call(float_sum)
"""


@pytest.mark.docker
def test_compare_host_marker_fails_on_drift_and_reports_it(pytester):
    pytester.makepyfile(COMPARE_HOST)
    result = pytester.runpytest_subprocess("--remote-targets=py3.9,py3.13", "--remote-report=r.json",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*BehaviourDrift*float_sum computes something else on py3.13*",
                                 "*result: host 0.9999999999999999, target 1.0*"])
    calls = {c["target"]: c for c in json.loads((pytester.path / "r.json").read_text())["calls"]}
    assert set(calls) == {"py3.9", "py3.13"}  # the host's own runs are not matrix cells
    assert calls["py3.13"]["same_as_host"] is False
    assert calls["py3.13"]["host_result_repr"] == "0.9999999999999999"
    assert calls["py3.9"]["same_as_host"] is True


def test_behaviour_drift_is_an_assertion_error():
    assert issubclass(BehaviourDrift, AssertionError)


@pytest.mark.docker
def test_a_declared_drift_is_xfailed_and_shown_as_differs(pytester):
    pytester.makepyfile("""
        import pytest

        def float_sum():
            return sum([0.1] * 10)

        @pytest.mark.remote(compare_host=True, expect={"py3.13": "differs"})
        def test_sum(remote):
            remote.call(float_sum)
    """)
    result = pytester.runpytest_subprocess("--remote-targets=py3.9,py3.13", "--remote-report=r.json",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*test_sum*✓ ok*x diff*"])  # drawn: its outcome changes between targets
    tests = {t["target"]: t for t in json.loads((pytester.path / "r.json").read_text())["tests"]}
    assert (tests["py3.13"]["verdict"], tests["py3.13"]["outcomes"]) == ("xfailed", ["differs"])
