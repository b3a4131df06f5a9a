"""A CuPy result for a host that cannot hold it arrives as numpy, and the record says so."""

from __future__ import annotations

import json

INNER = """
import sys

sys.modules["cupy"] = None  # this host process cannot import CuPy; its local target still can

import numpy as np


def make_fortran():
    import cupy

    return cupy.asfortranarray(cupy.arange(12, dtype=cupy.float32).reshape(3, 4))


def test_arrives_as_numpy(remote):
    rt = remote.roundtrip(make_fortran, isolate=False)
    assert rt.ok, rt.describe()
    assert type(rt.result) is np.ndarray
    assert rt.result.flags.f_contiguous and rt.result.dtype == np.float32
    np.testing.assert_array_equal(rt.result, np.arange(12, dtype=np.float32).reshape(3, 4))
    assert "arrived as numpy.ndarray: CuPy is not importable" in rt.device["converted"][0]
"""


def test_cupy_result_arrives_as_numpy_on_a_host_without_cupy(gpu_host, pytester):
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("--remote-report=report.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    call = json.loads((pytester.path / "report.json").read_text())["calls"][0]
    assert call["device"]["arrays"] == 2 and call["device"]["d2h_s"] > 0
    assert "CuPy is not importable" in call["device"]["converted"][0]
