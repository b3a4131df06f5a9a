"""The cross-version table: every row of issue 3 on every CPU target, by ``source`` and ``auto``.

Each cell's outcome is asserted; the rule for the expectation is written out below so that
a reader can check it against DESIGN §4 rather than against a copied table.
"""

from __future__ import annotations

import platform

import pytest
from helpers import ROOT
from source_cases import CASES

from pytest_remote_serial.fixture import CallOptions, Remote
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import load_matrix

TARGETS = ["local", "py3.9", "py3.11", "py3.13", "py3.14"]
NUMPY1 = {"py3.9", "py3.11"}  # Debian's numpy 1.19 and 1.24; the host pickles numpy 2 arrays
HOST_MINOR = platform.python_version().rsplit(".", 1)[0]


def expected(case: str, target: str, serializer: str, python: str) -> str:
    same_minor = python.rsplit(".", 1)[0] == HOST_MINOR
    if case == "generator function":
        return "result_error"  # a generator object cannot travel back, whatever shipped it
    if case == "numpy argument" and target in NUMPY1:
        return "missing_module"  # numpy._core: numpy 2 pickles on numpy 1
    if case == "match statement" and python.startswith("3.9."):
        return "syntax_error"
    if case == "exec, no source":
        return "ok" if serializer == "auto" and same_minor else "dump_error"
    return "ok"


@pytest.fixture(scope="module")
def remotes(docker_client):
    ctl = Controller(load_matrix(ROOT).select(TARGETS), print)
    ctl.start_all()
    records: list = []
    yield {t: Remote(ctl.get(t), CallOptions(timeout=20), False, records.append) for t in TARGETS}
    ctl.shutdown()


@pytest.mark.docker
@pytest.mark.parametrize("serializer", ["source", "auto"])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", list(CASES))
def test_table(remotes, case, target, serializer):
    func, args, kwargs, result = CASES[case]
    remote = remotes[target]
    rt = remote.roundtrip(func, *args, serializer=serializer, **kwargs)
    want = expected(case, target, serializer, remote.target.python)
    assert rt.outcome == want, rt.describe()
    if want == "ok":
        assert rt.result == result
    if serializer == "auto" and not remote.target.python.startswith(HOST_MINOR + "."):
        assert rt.serializer == "source" and rt.fallback_from == []
    if want == "syntax_error":
        assert "does not compile on Python 3.9" in rt.error["diagnosis"] and "match value" in rt.error["diagnosis"]
    if want == "dump_error":
        assert "no source exists" in rt.error["message"]
