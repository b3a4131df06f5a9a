"""Seed 003: a remote-function API with JSON and pickle modes, closures, globals, errors.

JSON mode silently turns tuples into lists; here that is a ``result_error`` that says so.
"""

import pytest

import pytest_remote_serial as prs
from pytest_remote_serial import assert_roundtrip

multiplier = 10
CONFIG = {"threshold": 0.5}


def multiply(x):
    return x * multiplier


def check_value(x):
    return x > CONFIG["threshold"]


def compute(x, y):
    return x + y


def min_max(values):
    return min(values), max(values)


def failing_function():
    raise ValueError("Something went wrong")


def test_json_mode_round_trips_json_values(remote):
    assert remote.call(compute, 2, 3, serializer="json") == 5
    assert remote.call(check_value, 0.7, serializer="json") is True


def test_json_mode_reports_a_tuple_turned_into_a_list(remote):
    rt = remote.roundtrip(min_max, [3, 1, 2], serializer="json")
    assert rt.outcome == "result_error" and rt.result == [1, 3]
    assert "result is a tuple and would arrive as a list" in rt.error["message"]


def test_pickle_mode_keeps_the_tuple(remote):
    assert_roundtrip(min_max, [3, 1, 2], expected=(1, 3))


def test_globals_and_closures_travel(remote):
    assert_roundtrip(multiply, 5, expected=50)
    assert_roundtrip(check_value, 0.7, expected=True)


def test_map_keeps_order(remote):
    assert remote.map(compute, [(1, 2), (3, 4), (5, 6)]) == [3, 7, 11]


def test_remote_exceptions_propagate_as_themselves(remote):
    with pytest.raises(ValueError, match="Something went wrong") as info:
        remote.call(failing_function)
    assert "remote traceback" in str(info.value.__cause__)
    with pytest.raises(AssertionError, match="outcome 'call_error'"):
        assert_roundtrip(failing_function)
    assert issubclass(prs.RemoteCallError, prs.RemoteError)
