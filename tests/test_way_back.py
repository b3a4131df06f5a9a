"""The way back (issue 3): results and exceptions from another Python or numpy load on the host.

The agent returns plain protocol-5 pickles, which any Python >= 3.8 loads; classes and
functions it rebuilt from host source travel back as references to the host's own objects.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ROOT

import pytest_remote_serial as prs
from pytest_remote_serial.fixture import CallOptions, Remote
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import load_matrix

pytestmark = pytest.mark.docker
TARGETS = ["py3.9", "py3.11", "py3.13", "py3.14"]


class Reading:
    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return type(other) is type(self) and other.value == self.value


class SensorFault(Exception):
    pass


def make_reading(v):
    return Reading(v)


def fail_with_fault(v):
    raise SensorFault(f"sensor {v} is out of range")


def array_from_target(n):
    import numpy

    return numpy.arange(n, dtype=numpy.float64) * 2, numpy.__version__


def object_only_the_target_has():
    import sys
    import types

    module = types.ModuleType("only_there")
    exec("class Thing:\n    pass\n", module.__dict__)
    sys.modules["only_there"] = module
    return module.Thing()


@pytest.fixture(scope="module")
def remotes(docker_client):
    ctl = Controller(load_matrix(ROOT).select(TARGETS), print)
    ctl.start_all()
    yield {t: Remote(ctl.get(t), CallOptions(timeout=20), False, lambda rt: None) for t in TARGETS}
    ctl.shutdown()


@pytest.mark.parametrize("target", TARGETS)
def test_an_instance_of_a_shipped_class_comes_back_as_the_hosts_class(remotes, target):
    rt = remotes[target].roundtrip(make_reading, 7, serializer="source")
    assert rt.outcome == "ok", rt.describe()
    assert type(rt.result) is Reading and rt.result.value == 7


@pytest.mark.parametrize("target", TARGETS)
def test_an_exception_of_a_shipped_class_is_rebuilt_as_the_hosts_class(remotes, target):
    rt = remotes[target].roundtrip(fail_with_fault, 9, serializer="source")
    assert rt.outcome == "call_error"
    assert type(rt.exception) is SensorFault and str(rt.exception) == "sensor 9 is out of range"
    with pytest.raises(SensorFault, match="out of range"):
        rt.raise_for_outcome()


@pytest.mark.parametrize("n", [5, 1 << 16])  # inside the pickle, and out of band
@pytest.mark.parametrize("target", TARGETS)
def test_arrays_from_the_targets_numpy_load_on_the_hosts(remotes, target, n):
    rt = remotes[target].roundtrip(array_from_target, n, serializer="source")
    assert rt.outcome == "ok", rt.describe()
    array, their_numpy = rt.result
    np.testing.assert_array_equal(array, np.arange(n, dtype=np.float64) * 2)
    assert their_numpy == remotes[target].target.packages["numpy"]


def test_numpy_1_arrays_really_were_made_by_numpy_1(remotes):
    assert remotes["py3.9"].target.packages["numpy"].startswith("1.")
    assert np.__version__.startswith("2.")


@pytest.mark.parametrize("target", ["py3.9", "py3.14"])
def test_a_result_the_host_cannot_load_is_result_error_naming_why(remotes, target):
    rt = remotes[target].roundtrip(object_only_the_target_has, serializer="source")
    assert rt.outcome == "result_error"
    assert "module 'only_there' exists on the target but not on the host" in rt.error["message"]
    assert f"came back from Python {remotes[target].target.python}" in rt.error["message"]
    with pytest.raises(prs.ResultError):
        rt.raise_for_outcome()
