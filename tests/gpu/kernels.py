"""Functions a GPU library ships: they build and launch CuPy kernels where they run."""

from __future__ import annotations


def scaled_difference(x, y, a):
    import cupy as cp

    kernel = cp.ElementwiseKernel("T x, T y, T a", "T z", "z = (x - y) * a", "prs_scaled_difference")
    return kernel(x, y, a)


def l2_norm(x, axis=None):
    import cupy as cp

    kernel = cp.ReductionKernel("T x", "T y", "x * x", "a + b", "y = sqrt(a)", "0", "prs_l2_norm")
    return kernel(x, axis=axis)


def describe(a):
    """What arrived, as plain values: the type, and what the trip must keep."""
    return (type(a).__module__.split(".")[0], a.dtype.str, a.shape,
            bool(a.flags.c_contiguous), bool(a.flags.f_contiguous))


def make_fortran(rows, cols):
    import cupy as cp

    return cp.asfortranarray(cp.arange(rows * cols, dtype=cp.float32).reshape(rows, cols))
