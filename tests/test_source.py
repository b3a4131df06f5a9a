"""The cross-version table: every row of issue 3 on every target, by every serializer.

Each cell's outcome is asserted. The expectation is one literal column per serializer for a
target with the host's Python, plus the few rules (written out in ``expected``) that say what
crossing a Python or numpy version does, so a reader can check both against the outcomes table (docs/architecture.md).
"""

from __future__ import annotations

import platform

import pytest
from source_cases import CASES

TARGETS = ["local", "py3.9", "py3.11", "py3.13", "py3.14"]
NUMPY1 = {"py3.9", "py3.11"}  # Debian's numpy 1.19 and 1.24; the host pickles numpy 2 arrays
HOST_MINOR = platform.python_version().rsplit(".", 1)[0]
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


def expected(case: str, target: str, serializer: str, python: str) -> str:
    """The outcomes table applied to a cell: the same-minor outcome, then what crossing versions does."""
    outcome = SAME_MINOR[serializer][list(CASES).index(case)]
    same_minor = python.rsplit(".", 1)[0] == HOST_MINOR
    if not same_minor and serializer in CODE_SERIALIZERS and outcome != REF:
        return "load_error"  # code objects are refused on another minor, whatever they hold
    if not same_minor and serializer == "auto" and case == "exec, no source":
        return DUMP  # auto goes straight to source there, and there is none
    if outcome == OK and case == "numpy argument" and target in NUMPY1:
        return REF  # numpy._core: numpy 2 pickles on numpy 1
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
    want = expected(case, target, serializer, remote.target.python)
    assert rt.outcome == want, rt.describe()
    if want == "ok":
        assert rt.result == result
    if serializer == "auto" and not remote.target.python.startswith(HOST_MINOR + "."):
        assert rt.serializer == "source" and rt.fallback_from == []
    if want == REF:
        by_reference = SAME_MINOR[serializer][list(CASES).index(case)] == REF
        assert rt.module == ("source_cases" if by_reference else "numpy._core"), rt.describe()
    if want == "load_error" and serializer in CODE_SERIALIZERS:
        assert f"written by Python {platform.python_version()}" in rt.error["diagnosis"]
        assert "use serializer='source'" in rt.error["diagnosis"]
    if want == RES and serializer == "json" and case != "generator function":
        assert "arrive as a list" in rt.error["message"] and rt.result == list(result)
    if want == "syntax_error":
        assert "does not compile on Python 3.9" in rt.error["diagnosis"] and "match value" in rt.error["diagnosis"]
    if want == DUMP and case == "exec, no source" and serializer in ("auto", "source", "json"):
        assert "no source exists" in rt.error["message"]
    if want == DUMP and case in ("class instance arg", "numpy argument") and serializer == "json":
        assert "JSON cannot carry" in rt.error["message"]
