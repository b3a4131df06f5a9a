"""CuPy arrays as arguments and results: dtype, shape, memory order and values survive."""

from __future__ import annotations

import numpy as np
import pytest

from . import kernels

pytestmark = pytest.mark.remote(gpu=True, isolate=False)  # one CUDA context per target, kept

ORDERS = ["C", "F"]
DTYPES = ["float32", "float64", "int64", "complex64", "bool"]


def _sample(cupy, dtype, order):
    base = cupy.arange(2 * 3 * 4).reshape(2, 3, 4)
    arr = (base % 2 == 0) if dtype == "bool" else base.astype(dtype) * 1.5 if dtype != "int64" else base
    return cupy.asfortranarray(arr) if order == "F" else cupy.ascontiguousarray(arr)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_argument_and_result_keep_dtype_shape_order_values(remote, cupy, dtype, order):
    arr = _sample(cupy, dtype, order)
    assert remote.call(kernels.describe, arr) == (
        "cupy", arr.dtype.str, arr.shape, order == "C", order == "F")
    back = remote.call(lambda a: a, arr)
    assert isinstance(back, cupy.ndarray)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert (back.flags.c_contiguous, back.flags.f_contiguous) == (order == "C", order == "F")
    assert bool((back == arr).all())


def test_result_made_there_comes_back_in_fortran_order(remote, cupy):
    back = remote.call(kernels.make_fortran, 3, 4)
    assert isinstance(back, cupy.ndarray) and back.flags.f_contiguous and not back.flags.c_contiguous
    np.testing.assert_array_equal(cupy.asnumpy(back), np.arange(12, dtype=np.float32).reshape(3, 4))


@pytest.mark.parametrize("serializer", ["cloudpickle-by-value", "source"])
def test_elementwise_kernel_round_trips(remote, cupy, serializer):
    x = cupy.linspace(0, 1, 1000, dtype=cupy.float32)
    y = cupy.full(1000, 0.25, dtype=cupy.float32)
    got = remote.call(kernels.scaled_difference, x, y, cupy.float32(3), serializer=serializer)
    np.testing.assert_allclose(cupy.asnumpy(got), (cupy.asnumpy(x) - 0.25) * 3, rtol=1e-6)


@pytest.mark.parametrize("serializer", ["cloudpickle-by-value", "source"])
def test_reduction_kernel_round_trips(remote, cupy, serializer):
    x = cupy.asfortranarray(cupy.arange(12, dtype=cupy.float64).reshape(3, 4))
    got = remote.call(kernels.l2_norm, x, 0, serializer=serializer)
    np.testing.assert_allclose(cupy.asnumpy(got), np.sqrt((cupy.asnumpy(x) ** 2).sum(axis=0)))


def test_device_copies_are_timed_apart_from_serialization(remote, cupy):
    arr = cupy.ones((1024, 1024), dtype=cupy.float32)
    rt = remote.roundtrip(lambda a: a * 2, arr)
    assert rt.ok, rt.describe()
    device = rt.device
    # The host copies the argument off its device and the result back on; the target the reverse.
    assert device is not None and device["arrays"] == 4 and not device["converted"]
    assert device["h2d_s"] > 0 and device["d2h_s"] > 0
    record = rt.as_record()
    assert record["device"] == device and set(record["phases_s"]) == {
        "dump", "send", "load", "call", "result", "total"}
    assert sum(record["phases_s"][p] for p in ("dump", "send", "load", "call", "result")) \
        + device["h2d_s"] + device["d2h_s"] <= record["phases_s"]["total"] * 1.05
