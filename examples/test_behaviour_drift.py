"""Behaviour drift: the same function, another Python or numpy, another answer (issue 15).

Each function here survives the trip fine; what changes is what it computes. With
``compare_host=True`` every ``remote.call`` also runs in a fresh host process, and a
different answer fails the test as ``differs``; ``expect`` declares the targets where that is
known, so the matrix shows the drift column by column and CI fails only on new ones.
"""

import copy
import enum
import fractions
import gc
import itertools
import sys

import pytest

from pytest_remote_serial import assert_same_as_host


def float_sum():
    return sum([0.1] * 10)  # 3.12 made sum() of floats compensated: 1.0, not 0.9999999999999999


class Config:
    _name = "cfg"

    @classmethod
    @property
    def name(cls):  # chaining classmethod over property worked 3.9-3.12; 3.13 removed it
        return cls._name


def classmethod_property():
    return repr(Config.name)[:20]


def copied_iterator():
    counter = itertools.count(5)
    clone = copy.copy(counter)  # itertools lost copy/pickle support in 3.14
    return next(clone), next(counter)


class Level(enum.IntEnum):
    HIGH = 5


class Colour(str, enum.Enum):
    RED = "red"


def enum_text():
    return str(Level.HIGH), format(Level.HIGH), format(Colour.RED), f"{Colour.RED}"


def union_repr():
    import typing

    return repr(typing.Optional[int]), repr(typing.Union[int, str])


def fraction_format():
    try:
        return format(fractions.Fraction(1, 3), ".3f")  # Fraction learned format specs in 3.12
    except (TypeError, ValueError) as exc:
        return type(exc).__name__


def numpy_scalar_repr():
    import numpy as np

    return repr(np.float64(1.5)), repr(np.int64(3))  # numpy 2 shows the type: np.float64(1.5)


def numpy_promotion():
    import numpy as np

    return str((np.float32(3) + 3.0).dtype)  # NEP 50 (numpy 2): a Python float no longer widens float32


# What people meet moving code from CPython to PyPy (another implementation of the same 3.11):
# its garbage collector has no reference counts, and what CPython leaves to the implementation
# is done otherwise there.


class Resource:
    closed: list = []

    def __del__(self):
        Resource.closed.append("closed")


def finalizer_timing():
    del Resource.closed[:]
    Resource()  # the last reference is gone at once: CPython finalizes here, PyPy at its next collection
    now = list(Resource.closed)
    gc.collect()
    return now, list(Resource.closed)


def size_of_a_list():
    return sys.getsizeof([1, 2, 3]) > 0  # PyPy: TypeError, "getsizeof(...) not implemented" by design


def identity_of_equal_values():
    big = 10 ** 6
    parsed = int("1000000")
    joined = "".join(["hel", "lo"])
    # PyPy compares ints (and floats) by value under `is` and `id`; CPython caches small ints only
    return big is parsed, id(big) == id(parsed), joined is "".join(["hel", "lo"])


def set_order_after_deletions():
    seen = {5, 1, 3}
    seen.discard(1)
    seen.add(2)
    return list(seen)  # CPython: by hash slot, [2, 3, 5]; PyPy's sets keep insertion order, [5, 3, 2]


def recursion_past_the_limit():
    def down(n):
        return 0 if n == 0 else 1 + down(n - 1)

    try:
        return sys.getrecursionlimit(), down(1200)  # the same limit of 1000 on both...
    except RecursionError:
        return sys.getrecursionlimit(), "RecursionError"  # ...which CPython counts in frames, PyPy otherwise


# Known drift, declared per target: CI fails only on a new difference, and on a difference
# that went away ("now works on ...: remove the expectation"). Measured on the default matrix:
# host 3.11.7 with numpy 2; py3.9/py3.11 images have numpy 1; the py3.10/py3.12 interpreters
# none, nor has Debian's PyPy (pypy3.11).
NO_NUMPY = {"py3.10": "call_error", "py3.12": "call_error", "pypy3.11": "call_error"}
PYPY = {"pypy3.11": "differs"}


@pytest.mark.remote(compare_host=True, expect={"py3.12": "differs", "py3.13": "differs", "py3.14": "differs",
                                              "py3.15": "differs"})
def test_sum_of_floats(remote):
    remote.call(float_sum)


@pytest.mark.remote(compare_host=True, expect={"py3.13": "differs", "py3.14": "differs", "py3.15": "differs"})
def test_classmethod_wrapping_property(remote):
    remote.call(classmethod_property)


@pytest.mark.remote(compare_host=True, expect={"py3.14": "call_error", "py3.15": "call_error"})
def test_copying_an_itertools_iterator(remote):
    remote.call(copied_iterator)


@pytest.mark.remote(compare_host=True, expect={"py3.9": "differs", "py3.10": "differs"})
def test_str_and_format_of_enums(remote):
    remote.call(enum_text)


@pytest.mark.remote(compare_host=True, expect={"py3.14": "differs", "py3.15": "differs"})
def test_repr_of_unions(remote):
    remote.call(union_repr)


@pytest.mark.remote(compare_host=True, expect={"py3.12": "differs", "py3.13": "differs", "py3.14": "differs",
                                              "py3.15": "differs"})
def test_fraction_format_specs(remote):
    remote.call(fraction_format)


@pytest.mark.remote(compare_host=True, expect={"py3.9": "differs", "py3.11": "differs", **NO_NUMPY})
def test_numpy_scalar_repr(remote):
    remote.call(numpy_scalar_repr)


@pytest.mark.remote(compare_host=True, expect={"py3.9": "differs", "py3.11": "differs", **NO_NUMPY})
def test_numpy_promotion_nep50(remote):
    remote.call(numpy_promotion)


@pytest.mark.remote(compare_host=True, expect=PYPY)
def test_finalizer_runs_when_the_last_reference_goes(remote):
    remote.call(finalizer_timing)


@pytest.mark.remote(compare_host=True, expect={"pypy3.11": "call_error"})
def test_sys_getsizeof(remote):
    remote.call(size_of_a_list)


@pytest.mark.remote(compare_host=True, expect=PYPY)
def test_identity_of_equal_ints_and_strings(remote):
    remote.call(identity_of_equal_values)


@pytest.mark.remote(compare_host=True, expect=PYPY)
def test_set_iteration_order_after_deletions(remote):
    remote.call(set_order_after_deletions)


@pytest.mark.remote(compare_host=True, expect=PYPY)
def test_recursion_past_the_same_limit(remote):
    remote.call(recursion_past_the_limit)


def test_assert_same_as_host_passes_with_a_tolerance(remote):
    assert_same_as_host(float_sum, rtol=1e-12)
