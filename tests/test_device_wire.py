"""How device arrays cross the wire, run on every machine with a small stand-in for CuPy.

The real thing is tests/gpu (CuPy on a CUDA device); these check the protocol around it
where no GPU exists: persistent ids carry the numpy copy and the memory order, the
receiver rebuilds on its device or says why it kept numpy, and the copies are counted.
"""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest

from pytest_remote_serial.host import replies
from pytest_remote_serial.remote import buffers, payloads


class StandInArray:
    """Just enough of cupy.ndarray: device memory is a private numpy array."""

    def __init__(self, data: np.ndarray) -> None:
        self._data = data
        self.flags, self.dtype, self.shape = data.flags, data.dtype, data.shape


@pytest.fixture
def device(monkeypatch):
    lib = types.ModuleType("cupy")
    lib.ndarray = StandInArray
    lib.asnumpy = lambda a, order="C": np.array(a._data, order=order)
    lib.array = lambda host, order="K": StandInArray(np.array(host, order=order))
    stream = types.SimpleNamespace(synchronize=lambda: None)
    lib.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
                                     get_current_stream=lambda: stream)
    monkeypatch.setitem(sys.modules, "cupy", lib)
    monkeypatch.setattr(buffers, "device_problem", lambda: None)
    return lib


def _fortran() -> StandInArray:
    return StandInArray(np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)))


@pytest.mark.parametrize("pickler", ["pickle", "cloudpickle", "dill"])
def test_argument_keeps_order_and_is_counted(device, pickler):
    cls = {"pickle": pickle.Pickler}.get(pickler) or __import__(pickler).Pickler
    host = buffers.DeviceCopies()
    sent = buffers.dump_with_buffers(cls, (abs, (_fortran(),), {}), host)
    assert host.arrays == 1 and host.d2h >= 0
    loader = payloads.LOADERS["dill" if pickler == "dill" else "pickle"]
    buffers.CALL_COPIES.reset()  # as run_call does for each call
    _, (arg,), _ = loader(sent[0], sent[1:], {"device_arrays": host.arrays})
    assert type(arg) is StandInArray and arg.flags.f_contiguous and not arg.flags.c_contiguous
    np.testing.assert_array_equal(arg._data, np.arange(12, dtype=np.float32).reshape(3, 4))
    assert buffers.CALL_COPIES.arrays == 1


def test_result_rebuilt_on_the_hosts_device(device):
    buffers.CALL_COPIES.reset()
    out = payloads.dump_result({"r": _fortran()}, buffers.PICKLE_PROTOCOL)
    assert buffers.CALL_COPIES.as_dict()["arrays"] == 1
    host = buffers.DeviceCopies()
    got = replies.load_result(out, host)["r"]
    assert type(got) is StandInArray and got.flags.f_contiguous
    assert host.arrays == 1 and host.converted == []


def test_result_for_a_host_without_a_device_is_numpy_and_says_why(device, monkeypatch):
    buffers.CALL_COPIES.reset()
    out = payloads.dump_result(_fortran(), buffers.PICKLE_PROTOCOL)
    monkeypatch.setattr(buffers, "device_problem", lambda: "CuPy sees no CUDA device")
    host = buffers.DeviceCopies()
    got = replies.load_result(out, host)
    assert type(got) is np.ndarray and got.flags.f_contiguous and got.dtype == np.float32
    assert host.converted == ["a cupy.ndarray float32 (3, 4) arrived as numpy.ndarray: "
                              "CuPy sees no CUDA device"]


def test_without_cupy_loaded_nothing_changes(monkeypatch):
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    copies = buffers.DeviceCopies()
    sent = buffers.dump_with_buffers(pickle.Pickler, [1, 2], copies)
    assert pickle.loads(sent[0]) == [1, 2] and copies.as_dict() is None
