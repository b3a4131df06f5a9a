"""The cross-version table: every row of issue 3 on every target, by every serializer.

Each cell's outcome is asserted. The expectation is one literal column per serializer for a
target with the host's Python, plus the few rules (written out in ``expected``) that say what
crossing a Python or numpy version does, so a reader can check both against the outcomes table (docs/architecture.md).
"""

from __future__ import annotations

import platform
import sys

import pytest
from source_cases import CASES

from pytest_remote_serial.host.codecs import get_codec
from pytest_remote_serial.remote.diagnosis import carries_code
from pytest_remote_serial.remote.envelope import python_name

TARGETS = ["local", "py3.9", "py3.11", "py3.13", "py3.14", "py3.15", "pypy3.11"]
NUMPY1 = {"py3.9", "py3.11"}  # Debian's numpy 1.19 and 1.24; the host pickles numpy 2 arrays
NO_NUMPY = {"pypy3.11"}  # Debian has no numpy for PyPy
HOST_MINOR = platform.python_version().rsplit(".", 1)[0]
HOST_IMPLEMENTATION = sys.implementation.name
SERIALIZERS = ["auto", "source", "json", "pickle", "cloudpickle", "cloudpickle-by-value", "dill", "dill-recurse"]
CODE_SERIALIZERS = {"cloudpickle", "cloudpickle-by-value", "dill", "dill-recurse"}

OK, REF, DUMP, RES = "ok", "missing_module", "dump_error", "result_error"
# Outcomes on a target with the host's Python and numpy 2, one column per serializer, in the
# order of CASES. REF: the function went by reference to `source_cases`, which no target has.
SAME_MINOR = {
    #                        clos  lamb  help rec  wrap inst  meth np    gen  kw   match lc    exec
    "auto":                 [OK,   OK,   OK,  OK,  OK,  OK,   OK,  OK,   RES, OK,  OK,   OK,   OK],
    "source":               [OK,   OK,   OK,  OK,  OK,  OK,   OK,  OK,   RES, OK,  OK,   OK,   DUMP],
    # json: tuples and generators do not survive JSON; a Point or an ndarray argument is refused
    "json":                 [OK,   OK,   OK,  OK,  RES, DUMP, OK,  DUMP, RES, OK,  OK,   OK,   DUMP],
    "pickle":               [DUMP, DUMP, REF, REF, REF, REF,  REF, REF,  REF, REF, REF,  DUMP, DUMP],
    "cloudpickle":          [OK,   OK,   REF, REF, REF, REF,  REF, REF,  REF, REF, REF,  OK,   OK],
    "cloudpickle-by-value": [OK,   OK,   OK,  OK,  OK,  OK,   OK,  OK,   RES, OK,  OK,   OK,   OK],
    "dill":                 [REF,  REF,  REF, REF, REF, REF,  REF, REF,  REF, REF, REF,  OK,   OK],
    "dill-recurse":         [OK,   OK,   REF, REF, REF, REF,  REF, REF,  REF, REF, REF,  OK,   OK],
}


def same_bytecode(python: str, implementation: str) -> bool:
    """Does the target run the host's bytecode: the same implementation and minor (PyPy 3.11 does not)?"""
    return implementation == HOST_IMPLEMENTATION and python.rsplit(".", 1)[0] == HOST_MINOR


def holds_code(case: str, serializer: str) -> bool:
    func, args, kwargs, _ = CASES[case]
    return carries_code(bytes(get_codec(serializer).dumps((func, args, kwargs))[0]))


def expected(case: str, target: str, serializer: str, python: str, implementation: str = HOST_IMPLEMENTATION) -> str:
    """The outcomes table applied to a cell: the same-minor outcome, then what crossing versions
    (or implementations) does."""
    outcome = SAME_MINOR[serializer][list(CASES).index(case)]
    same_minor = same_bytecode(python, implementation)
    if not same_minor and serializer in CODE_SERIALIZERS and outcome != DUMP and holds_code(case, serializer):
        return "load_error"  # code objects of another Python are refused before anything is loaded
    if not same_minor and serializer == "auto" and case == "exec, no source":
        return DUMP  # auto goes straight to source there, and there is none
    if outcome == OK and case == "numpy argument" and target in NUMPY1 | NO_NUMPY:
        return REF  # numpy._core: numpy 2 pickles on numpy 1; numpy itself where there is none
    if outcome == OK and case == "match statement" and python.startswith("3.9."):
        return "syntax_error"
    return outcome


@pytest.mark.docker
@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", list(CASES))
def test_table(table_remotes, case, target, serializer):
    func, args, kwargs, result = CASES[case]
    remote = table_remotes[target]
    rt = remote.roundtrip(func, *args, serializer=serializer, **kwargs)
    want = expected(case, target, serializer, remote.target.python, remote.target.implementation)
    assert rt.outcome == want, rt.describe()
    if want == "ok":
        assert rt.result == result
    if serializer == "auto" and not same_bytecode(remote.target.python, remote.target.implementation):
        assert rt.serializer == "source" and rt.fallback_from == []
    if want == REF:
        by_reference = SAME_MINOR[serializer][list(CASES).index(case)] == REF
        numpy = "numpy" if target in NO_NUMPY else "numpy._core"
        assert rt.module == ("source_cases" if by_reference else numpy), rt.describe()
    if want == "load_error" and serializer in CODE_SERIALIZERS:
        there = python_name(remote.target.implementation, remote.target.python, minor=True)  # "PyPy 3.11"
        assert f"CPython {HOST_MINOR} bytecode on {there}" in rt.error["diagnosis"], rt.error["diagnosis"]
        assert f"written by CPython {platform.python_version()}" in rt.error["diagnosis"]
        assert "use serializer='source'" in rt.error["diagnosis"]
    if rt.error and serializer in ("source", "json", "pickle"):
        assert "bytecode" not in str(rt.error.get("diagnosis")), rt.describe()  # they carry none
    if want == RES and serializer == "json" and case != "generator function":
        assert "arrive as a list" in rt.error["message"] and rt.result == list(result)
    if want == "syntax_error":
        assert "does not compile on Python 3.9" in rt.error["diagnosis"] and "match value" in rt.error["diagnosis"]
    if want == DUMP and case == "exec, no source" and serializer in ("auto", "source", "json"):
        assert "no source exists" in rt.error["message"]
    if want == DUMP and case in ("class instance arg", "numpy argument") and serializer == "json":
        assert "JSON cannot carry" in rt.error["message"]
