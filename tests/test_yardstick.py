"""A differential yardstick for the source capsule (issue 25, docs/architecture.md "What by value means").

Every shape of tests/test_capsule_shapes.py and of tests/yardstick_shapes.py runs through the
capsule (``serializer="source"``) on every bundled target, and is compared with two references:

- cloudpickle by value on the host's own Python (the ``local`` target, a fresh host process):
  where cloudpickle carries the shape, the capsule must give the same result;
- the module imported natively on the same target (``paths``, the function pickled by name):
  the capsule must give what the worker's own import gives, except for the module state the
  README lists under "What by value means", for which ``test_by_value_differences`` asserts
  the difference as the README states it.

A cell that says ``ok`` with another result than its reference is the defect this file exists
to catch. ``auto`` is checked too where it differs from ``source`` (the host's minor).
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PRS_YARDSTICK_MODE", "host")  # read at import by the shape module
import test_capsule_shapes as capsule_shapes  # noqa: E402
import yardstick_shapes as ys  # noqa: E402

TARGETS = ["local", "py3.9", "py3.10", "py3.11", "py3.12", "py3.13", "py3.14", "py3.15", "pypy3.11"]
HOST_MINOR = platform.python_version().rsplit(".", 1)[0]

# Module state computed at import: the capsule carries the host's, as cloudpickle by value does;
# native import computes it on the worker. Compared with the by-value reference only, and the
# difference itself asserted in test_by_value_differences.
BY_VALUE = {"flag from sys.version_info", "value from os.environ", "import-time sys.setrecursionlimit",
            "warm lru_cache", "__getstate__ of a global", "copyreg reducer of a global",
            "nan identity (nan in [nan])", "set order after deletions"}
# cloudpickle by value gets these wrong on the host's own Python (measured); the reference is
# then the module imported natively.
CLOUDPICKLE_LOSES = {"enum alias and _missing_", "enum tuple values unpacked by __init__",
                     "__slots__ with __weakref__", "inspect.getsource of itself",
                     "globals()[name], eval, sys.modules[__name__]", "string annotation through get_type_hints",
                     "pickles its module's class inside the call",
                     "stdlib class new on the target (calendar.Day)", "nested class __qualname__",
                     "closure cell shared by two functions", "class attribute order"}
# Where auto keeps cloudpickle's by-value answer on the host's minor though it differs from the
# module imported there (README, "Serializers"): detecting them would send nearly every class to
# source. Its answer there is cloudpickle by value's, asserted as such.
AUTO_KEEPS_CLOUDPICKLE = {"nested class __qualname__", "class attribute order"}
# Beyond cloudpickle: module globals it refuses (a fresh one is what importing gives).
CLOUDPICKLE_REFUSES = {"struct.Struct global", "threading.Lock global", "ContextVar global",
                       "WeakValueDictionary cache global"}
# Shapes whose result differs between Pythons (a set's order, and float identity, on PyPy):
# compared with the by-value reference on the host's own Python only.
PER_PYTHON = {"set order after deletions", "nan identity (nan in [nan])"}
# What no by-value copy can carry to some Pythons though importing there works: diagnosed by
# name and version (3.14 removed the pickling of itertools iterators).
BY_VALUE_FAILS = {"itertools iterator global"}
# What auto must ship as source on the host's minor, and why (host/losses.py).
AUTO_SOURCE = {"enum alias and _missing_": "aliases", "enum tuple values unpacked by __init__": "__init__",
               "__slots__ with __weakref__": "__slots__", "inspect.getsource of itself": "source of",
               "closure cell shared by two functions": "closure cell",
               "globals()[name], eval, sys.modules[__name__]": "looks up by name",
               "string annotation through get_type_hints": "looks up by name",
               "pickles its module's class inside the call": "pickling its own module"}

# Cells still failing for the capsule mechanism's pending work (issue 25, branch issue-25):
# shape -> the reason. Strict: a fix makes them fail until they are taken off this list.
_MECHANISM = "issue 25 item 1, the capsule mechanism (branch issue-25): "
PENDING: dict[str, tuple[set[str], str]] = {
    "globals()[name], eval, sys.modules[__name__]": (
        {"py3.14", "py3.15"}, _MECHANISM + "the globals carried for lookups by name include the module's "
        "itertools.cycle, which 3.14 cannot load (load_error), though the function never reads it"),
    "string annotation through get_type_hints": (
        {"py3.14", "py3.15"}, _MECHANISM + "the globals carried for lookups by name include the module's "
        "itertools.cycle, which 3.14 cannot load (load_error), though the function never reads it"),
}


def _shapes() -> dict[str, tuple]:
    both = {f"capsule_shapes: {name}": spec for name, spec in capsule_shapes.SHAPES.items()}
    both.update({name: spec for name, spec in ys.SHAPES.items()})
    return both


SHAPES = _shapes()


def python_at_least(python: str, minor: int) -> bool:
    major, mnr = (int(p) for p in python.split(".")[:2])
    return (major, mnr) >= (3, minor)


def expected(shape: str, target: str, python: str, implementation: str) -> str:
    """The outcome a cell must end in: ok, except where a Python lacks what the shape needs."""
    if shape.startswith("capsule_shapes: "):
        return capsule_shapes.expected(shape.partition(": ")[2], python, "source", implementation)
    if shape == "exception raised with a cause":
        return "call_error"
    if shape == "stdlib class new on the target (calendar.Day)":
        return "result_error" if python_at_least(python, 12) else "call_error"
    if shape == "itertools iterator global" and python_at_least(python, 14):
        return "load_error"
    return "ok"


@pytest.fixture(scope="module")
def capsules(docker_client):
    """One agent per target, nothing of the project on it: the worker without the user's code."""
    from helpers import ROOT, remote_on

    from pytest_remote_serial.host.controller import Controller
    from pytest_remote_serial.host.matrix import load_matrix

    ctl = Controller(load_matrix(ROOT).select(TARGETS), print)
    ctl.start_all()
    yield {t: remote_on(ctl, t, 30.0) for t in TARGETS}
    ctl.shutdown()


@pytest.fixture(scope="module")
def natives(docker_client, tmp_path_factory):
    """One agent per target with the shape module on ``paths``: the worker with the code installed."""
    from helpers import ROOT, remote_on

    from pytest_remote_serial.host.controller import Controller
    from pytest_remote_serial.host.matrix import load_matrix

    root = tmp_path_factory.mktemp("native")
    (root / "code").mkdir()
    shutil.copy(Path(ys.__file__), root / "code" / "yardstick_shapes.py")
    matrix = root / "targets.toml"
    matrix.write_text('paths = ["code"]\n' + (ROOT / "matrix" / "targets.toml").read_text())
    ctl = Controller(load_matrix(ROOT, str(matrix)).select(TARGETS), print)
    ctl.start_all()
    yield {t: remote_on(ctl, t, 30.0) for t in TARGETS}
    ctl.shutdown()


_REFERENCE: dict[str, object] = {}


def by_value_reference(capsules, shape):
    """cloudpickle by value on the host's own Python, once per shape."""
    if shape not in _REFERENCE:
        func, args, kwargs = SHAPES[shape]
        _REFERENCE[shape] = capsules["local"].roundtrip(func, *args, serializer="cloudpickle-by-value", **kwargs)
    return _REFERENCE[shape]


def native(natives, target, shape):
    """The shape's module imported on the target itself; None where it cannot be (a test module
    imports pytest, which a worker does not have)."""
    if shape.startswith("capsule_shapes: "):
        return None
    func, args, kwargs = SHAPES[shape]
    rt = natives[target].roundtrip(func, *args, serializer="pickle", **kwargs)
    assert rt.outcome != "dump_error", rt.describe()  # every yardstick shape is found by name
    assert rt.outcome != "missing_module", rt.describe()  # the module is on paths there
    return rt


def same(a, b) -> bool:
    return a == b and type(a) is type(b)


def check_cell(rt, shape, want, reference, native_rt):
    """One call of the capsule (or auto) against its references."""
    assert rt.outcome == want, rt.describe()
    if want == "ok":
        bare = shape.removeprefix("capsule_shapes: ")
        loses = shape in CLOUDPICKLE_LOSES or bare in capsule_shapes.LOSES_SLOTS or \
            bare in capsule_shapes.BY_VALUE_CALL_ERRORS
        if native_rt is not None and shape not in BY_VALUE:
            assert native_rt.outcome == "ok", native_rt.describe()
            assert same(rt.result, native_rt.result), f"capsule {rt.result!r} != native import {native_rt.result!r}"
        if reference.outcome == "ok" and not loses and (shape not in PER_PYTHON or rt.target == "local"):
            assert same(rt.result, reference.result), \
                f"capsule {rt.result!r} != cloudpickle by value on the host {reference.result!r}"
        if native_rt is None and (loses or reference.outcome != "ok"):
            func, args, kwargs = SHAPES[shape]
            assert same(rt.result, func(*args, **kwargs)), "the capsule answered differently from the host"
    elif native_rt is not None and shape not in BY_VALUE_FAILS:
        assert native_rt.outcome == want, native_rt.describe()  # it fails natively too
    if want == "call_error" and native_rt is not None:
        assert type(rt.exception) is type(native_rt.exception), (rt.exception, native_rt.exception)
        assert str(rt.exception) == str(native_rt.exception)
    if want == "result_error":
        assert "the host's Python has no such class" in rt.error["diagnosis"], rt.describe()
        assert "trusted" not in rt.error["message"], rt.describe()
    if want == "load_error" and shape == "itertools iterator global":
        assert "Python 3.14 removed the pickling of itertools" in rt.error["diagnosis"], rt.describe()
        assert "itertools.cycle" in rt.error["diagnosis"], rt.describe()


@pytest.mark.docker
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_yardstick(capsules, natives, shape, target, request):
    if target in PENDING.get(shape, ((), ""))[0]:
        request.applymarker(pytest.mark.xfail(strict=True, reason=PENDING[shape][1]))
    func, args, kwargs = SHAPES[shape]
    remote = capsules[target]
    want = expected(shape, target, remote.target.python, remote.target.implementation)
    reference = by_value_reference(capsules, shape)
    if shape in CLOUDPICKLE_REFUSES:  # beyond cloudpickle: the capsule makes them afresh, as an import does
        assert reference.outcome == "dump_error", reference.describe()
    native_rt = native(natives, target, shape)
    rt = remote.roundtrip(func, *args, serializer="source", **kwargs)
    check_cell(rt, shape, want, reference, native_rt)
    same_python = remote.target.python.startswith(HOST_MINOR + ".") and \
        remote.target.implementation == sys.implementation.name
    if same_python and not shape.startswith("capsule_shapes: "):  # auto's cloudpickle rungs run here
        auto = remote.roundtrip(func, *args, serializer="auto", **kwargs)
        if shape in AUTO_KEEPS_CLOUDPICKLE and auto.serializer == "cloudpickle-by-value":
            assert auto.outcome == "ok" and same(auto.result, reference.result), auto.describe()
            assert not same(auto.result, native_rt.result)  # the documented difference, still there
        else:
            check_cell(auto, shape, want, reference, native_rt)
        if shape in AUTO_SOURCE:
            assert auto.serializer == "source" and AUTO_SOURCE[shape] in (auto.auto_chose_source or ""), \
                auto.describe()
            assert auto.auto_chose_source in auto.describe()
            record = auto.as_record()  # the JSON report says why too, and reads back
            assert type(auto).from_record(record).auto_chose_source == record["auto_chose_source"]


def test_the_yardstick_has_the_shapes_it_promises():
    assert set(capsule_shapes.SHAPES) <= {s.removeprefix("capsule_shapes: ") for s in SHAPES}
    assert len(ys.SHAPES) >= 40 + len(BY_VALUE)


# ----------------------------------------------------------------------------- what by value means
# Each difference the README lists under "What by value means", asserted as it is stated there:
# shape -> (what the capsule gives, what the module imported on the worker gives), for a target.

CONTAINERS = [t for t in TARGETS if t != "local"]


def _by_value_statements(python: str, implementation: str, own_environment: bool) -> dict[str, tuple]:
    pypy = implementation == "pypy"
    return {
        # a flag computed from sys.version_info: the host's (3.11) on every worker
        "flag from sys.version_info": (False, python_at_least(python, 12)),
        # a value read from os.environ at import: the host's environment, not the worker's (an
        # interpreter target runs on this machine with its environment: there they agree)
        "value from os.environ": ("host", "unset" if own_environment else "host"),
        # import-time calls do not run on the worker: its own default limit stays
        "import-time sys.setrecursionlimit": ("default", 4321),
        # a warm lru_cache arrives empty: the first call there is a miss
        "warm lru_cache": (0, 1),
        # __getstate__ and copyreg reducers apply to globals as to any pickled object
        "__getstate__ of a global": (("ann", {}), ("ann", {"conn": 1})),
        "copyreg reducer of a global": (("kWh", 0), ("kWh", 42)),
        # float identity is not kept: nan in [nan] is False after the trip (PyPy compares floats
        # by value in `is`, so there it stays True)
        "nan identity (nan in [nan])": ((True, 0) if pypy else (False, -1), (True, 0)),
        # a set is rebuilt from its items: its iteration order after deletions may change
        "set order after deletions": ("rebuilt", "native"),
    }


@pytest.mark.docker
@pytest.mark.parametrize("target", CONTAINERS)
@pytest.mark.parametrize("shape", sorted(BY_VALUE))
def test_by_value_differences(capsules, natives, shape, target):
    """The capsule gives cloudpickle by value's answer; the worker's own import gives another,
    exactly as the README says."""
    func, args, kwargs = SHAPES[shape]
    remote = capsules[target]
    container = not remote._running.target.is_interpreter
    by_value, installed = _by_value_statements(remote.target.python, remote.target.implementation, container)[shape]
    rt = remote.roundtrip(func, *args, serializer="source", **kwargs)
    there = native(natives, target, shape)
    assert rt.outcome == there.outcome == "ok", (rt.describe(), there.describe())
    if by_value == "default":
        assert rt.result != installed and rt.result == capsules[target].call(sys.getrecursionlimit,
                                                                             serializer="pickle")
        assert there.result == installed
    elif by_value == "rebuilt":
        import pickle

        if remote.target.implementation == "cpython":
            assert rt.result == list(pickle.loads(pickle.dumps(ys.TAGS)))  # the host's set, rebuilt
            assert there.result == list(ys.TAGS) != rt.result
        else:  # PyPy's sets keep insertion order: rebuilt in the host's order, it keeps it
            assert rt.result == list(ys.TAGS)
    else:
        assert (rt.result, there.result) == (by_value, installed)


@pytest.mark.parametrize("trusted", [False, True])
def test_a_newer_pythons_stdlib_class_is_named_not_refused(trusted):
    """A reply naming calendar.Day (3.12+) on a 3.11 host: the cause is the host's Python, on a
    trusted target too, never a trust setting to change."""
    from pytest_remote_serial.host.client import _result_load_error
    from pytest_remote_serial.host.trust import Policy, load_reply
    from pytest_remote_serial.remote.diagnosis import MissingHere

    if sys.version_info >= (3, 12):
        pytest.skip("the host's Python has calendar.Day")
    reply = bytearray(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x08calendar\x8c\x03Day\x93.")
    with pytest.raises(MissingHere) as info:
        load_reply([reply], Policy(trusted=trusted))
    error = _result_load_error(info.value, {"envelope": {"python": "3.13.5", "implementation": "cpython"},
                                            "outcome": "ok", "result_type": "calendar.Day"})
    assert "calendar.Day is a class of CPython 3.13.5's standard library" in error["diagnosis"]
    assert "the host's Python has no such class" in error["diagnosis"]
    assert "trusted" not in error["message"] + error["diagnosis"]
