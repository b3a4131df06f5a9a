"""The helpers and ``remote.call`` tell the truth across versions (issue 23): a payload holding
code objects is not portable to another minor, and a failed call says how to fix it, as the
helpers do."""

from __future__ import annotations

import pytest
from helpers import ROOT

from pytest_remote_serial.fixture import CallOptions, Remote
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import local_target
from pytest_remote_serial.outcomes import MissingModuleError


def test_module_function(x):
    return x + 1


test_module_function.__test__ = False  # a plain function of a test module, not a test


def test_remote_call_carries_the_fix_the_helpers_give():
    """A test module's function under cloudpickle goes by reference, and the worker has no test
    module: the error says which serializer works there, having tried it."""
    ctl = Controller([local_target()], print)
    try:
        remote = Remote(ctl.get("local"), CallOptions(serializer="cloudpickle", timeout=10.0), False,
                        lambda rt: None)
        with pytest.raises(MissingModuleError) as info:
            remote.call(test_module_function, 1)
    finally:
        ctl.shutdown()
    message = str(info.value)
    assert "No module named 'test_portability'" in message
    assert "fix: serializer='cloudpickle-by-value' works (tried on the target: ok)" in message
    assert "serializer='source' works (tried on the target: ok)" in message
    assert info.value.roundtrip.error["hint"].startswith("serializer='cloudpickle-by-value' works")


PORTABLE = """
    import pytest
    from pytest_remote_serial import assert_portable

    def make_scaler(factor):
        def scale(x):
            return x * factor
        return scale

    def test_closure_by_value(remote):
        assert_portable(make_scaler(3))

    def test_builtin_by_reference(remote):
        import math
        assert_portable(math.fsum)
"""


@pytest.mark.docker
def test_assert_portable_fails_where_the_bytecode_cannot_run(pytester, docker_client):
    """Before: it checked module references only, and passed on py3.13 where ``remote.call``
    with the same serializer is a load_error (another Python's bytecode)."""
    pytester.makepyfile(PORTABLE)
    result = pytester.runpytest_subprocess("--remote-targets=py3.11,py3.13", "--remote-strict",
                                           "-p", "no:cacheprovider",
                                           f"--remote-matrix-file={ROOT / 'matrix' / 'targets.toml'}")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*test_closure_by_value?py3.13?*",
        "*is not portable to py3.13 (Python 3.13.*): its cloudpickle payload holds code objects*which the "
        "target's Python (magic *) cannot run*",
        "*serializer='source' (checked: the target compiles its source*",
    ])
    assert "cloudpickle-by-value" not in "\n".join(line for line in result.outlines if "checked" in line)
