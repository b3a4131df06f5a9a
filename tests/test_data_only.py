"""The way back is data (issue 24): no target-chosen code on the host, no control of its session,
no amplification. Each route of the second campaign, on real targets: the call on the target
replaces the agent's reply with bytes the test chose (the call can rewrite the agent's reply
path), and the host must refuse them without running anything; each test asserts the marker
the route would have written on the host does not exist.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tracemalloc
import uuid
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT

import pytest_remote_serial as prs
from pytest_remote_serial.fixture import CallOptions, Remote
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import load_matrix
from pytest_remote_serial.host.trust import Policy, ReplyTooLarge, UnsafeGlobal, load_reply

CONTAINERS = ["py3.9", "py3.11", "py3.13", "py3.14", "py3.15", "pypy3.11"]
INTERPRETER = "py3.12"  # on this machine, as the host's user: only refusals on the host are probed there
TARGETS = [*CONTAINERS, INTERPRETER]


def sh(command):
    """A helper a test module might well have: it runs a command."""
    os.system(command)


class Calls:
    """Pickles as a call of ``func(*args)`` (what a hostile reply writes)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def calling(func, *args, by_host_ref=False):
    """A pickle of ``func(*args)``, naming ``func`` by its global name or, as the agent names
    what the host sent, by a host reference."""
    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("host", func.__module__, func.__qualname__) if by_host_ref and obj is func else None

    out = io.BytesIO()
    Pickler(out, 4).dump(Calls(func, *args))
    return out.getvalue()


def reply_with(raw):
    """Runs on the target: the agent's reply becomes ``raw``, whatever the call returns."""
    import sys

    call = sys.modules["_prs_agent.call"]
    call.dump_result = lambda obj, protocol: [raw]
    return 1


def raise_with(raw):
    """Runs on the target: raises, and the reply's exception becomes ``raw``."""
    import sys

    call = sys.modules["_prs_agent.call"]
    call.dump_exception = lambda exc: [raw]
    raise RuntimeError("replaced")


@pytest.fixture(scope="module")
def remotes(docker_client):
    matrix = load_matrix(ROOT)
    ctl = Controller(matrix.select(TARGETS), print)
    ctl.start_all()
    yield {t: Remote(ctl.get(t), CallOptions(timeout=30), False, lambda rt: None) for t in TARGETS}
    ctl.shutdown()


def remote_for(remotes, target):
    remote = remotes[target]
    rt = remote.roundtrip(abs, -1)
    if rt.outcome == "unavailable":
        pytest.skip(f"{target}: {rt.error}")
    return remote


def marker(tmp_path: Path) -> Path:
    return tmp_path / f"marker-{uuid.uuid4().hex}"


@pytest.mark.parametrize("by_host_ref", [True, False], ids=["host-ref", "global"])
@pytest.mark.parametrize("target", TARGETS)
def test_a_function_of_the_test_module_is_never_called(remotes, target, by_host_ref, tmp_path):
    touched = marker(tmp_path)
    raw = calling(sh, f"touch {touched}", by_host_ref=by_host_ref)
    assert b"sh" in raw and __name__.encode() in raw  # names this module's helper
    rt = remote_for(remotes, target).roundtrip(reply_with, raw, serializer="source")
    assert not touched.exists(), "the host ran the target's command through the test module's helper"
    assert rt.outcome == "result_error", rt.describe()
    message = rt.error["message"]
    assert f"{__name__}.sh" in message and "never a function" in message and "trusted = true" in message
    with pytest.raises(prs.ResultError):
        rt.raise_for_outcome()


@pytest.mark.parametrize("target", TARGETS)
def test_a_memory_mapped_array_never_writes_a_host_file(remotes, target, tmp_path):
    pth = tmp_path / "site" / "evil.pth"
    pth.parent.mkdir()
    raw = pickle.dumps(Calls(np.memmap, str(pth), "uint8", "w+", 0, (64,)), protocol=4)
    rt = remote_for(remotes, target).roundtrip(reply_with, raw, serializer="source")
    assert not pth.exists(), "the host wrote the file the target chose"
    assert rt.outcome == "result_error", rt.describe()
    assert "numpy.memmap" in rt.error["message"] and "trusted = true" in rt.error["message"]


@pytest.mark.parametrize("target", TARGETS)
def test_a_reply_never_makes_the_host_import_a_module(remotes, target):
    assert "venv.__main__" not in sys.modules
    raw = b"\x80\x02cvenv.__main__\nmain\nq\x00."
    rt = remote_for(remotes, target).roundtrip(reply_with, raw, serializer="source")
    assert "venv.__main__" not in sys.modules, "the host imported (ran) venv.__main__"
    assert rt.outcome == "result_error", rt.describe()
    assert "'venv.__main__'" in rt.error["message"] and "has not imported" in rt.error["message"]


@pytest.mark.parametrize("target", TARGETS)
def test_a_small_reply_cannot_make_the_host_allocate_gigabytes(remotes, target):
    raw = pickle.dumps(Calls(list, range(5 * 10**7)), protocol=5)
    assert len(raw) < 64
    remote = remote_for(remotes, target)
    tracemalloc.start()
    try:
        rt = remote.roundtrip(reply_with, raw, serializer="source")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"a {len(raw)}-byte reply raised the host's peak by {peak >> 20} MiB"
    assert rt.outcome == "result_error", rt.describe()
    assert "256 MiB" in rt.error["message"] and "reply_memory_cap" in rt.error["message"]


@pytest.mark.parametrize("target", ["py3.11", INTERPRETER])
def test_an_exception_that_calls_a_helper_is_refused(remotes, target, tmp_path):
    touched = marker(tmp_path)
    raw = calling(sh, f"touch {touched}", by_host_ref=True)
    rt = remote_for(remotes, target).roundtrip(raise_with, raw, serializer="source")
    assert not touched.exists()
    assert rt.outcome == "result_error" and f"{__name__}.sh" in rt.error["message"], rt.describe()


# ------------------------------------------------------------------ the session stays the host's

SESSION = r'''
import pickle
import pytest
from _pytest.outcomes import Exit

def reply_exception(raw):
    import sys
    sys.modules["_prs_agent.call"].dump_exception = lambda exc: [raw]
    raise RuntimeError("replaced")

def interrupt():
    raise KeyboardInterrupt("from the target")

def system_exit():
    raise SystemExit(0)

def test_a_interrupt(remote):
    remote.call(interrupt)

def test_b_exit(remote):
    remote.call(reply_exception, pickle.dumps(Exit("forged exit", returncode=0)))

def forged_skipped():
    """Skipped says its module is builtins: a reply names where it lives."""
    msg = b"forged skip"
    text = b"X" + len(msg).to_bytes(4, "little") + msg
    return b"\x80\x02c_pytest.outcomes\nSkipped\n" + text + b"\x85R}X\x03\x00\x00\x00msg" + text + b"sb."

def test_c_skipped(remote):
    remote.call(reply_exception, forged_skipped())

def test_d_system_exit(remote):
    remote.call(system_exit)

def test_e_later_test_still_runs():
    assert False, "the run reached this test"
'''


def test_the_target_never_steers_the_hosts_session(pytester, docker_client):
    """A remote KeyboardInterrupt, a forged ``Exit(returncode=0)``, a forged ``Skipped``, a
    SystemExit: each fails its own test as a RemoteCallError naming it; the run goes on and
    ends with the failures' exit code."""
    pytester.makepyfile(test_session=SESSION)
    every = ["local", *CONTAINERS, INTERPRETER]
    targets = ",".join(every)
    result = pytester.runpytest_subprocess(f"--remote-targets={targets}", "--remote-strict", "-p", "no:cacheprovider",
                                           "-rf", "--tb=line")
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-3000:]
    assert outcomes.get("failed") == 4 * len(every) + 1, outcomes
    assert not outcomes.get("skipped") and not outcomes.get("passed"), outcomes
    text = result.stdout.str()
    for target in every:
        for name in ("builtins.KeyboardInterrupt: from the target", "_pytest.outcomes.Exit: forged exit",
                     "Skipped: forged skip", "builtins.SystemExit: 0"):
            assert f"{name} (raised on target {target};" in text, (target, name, text[-3000:])
    assert "the run reached this test" in text


# ------------------------------------------------------------------ in this process


class ForgedDtype:
    def __init__(self, code, state):
        self.code, self.state = code, state

    def __reduce__(self):
        return (np.dtype, (self.code, False, True), self.state)


@pytest.mark.parametrize(("code", "state"), [
    ("f8", (3, "|", None, None, None, -1, -1, 63)),  # object flags on a float: raw bytes as pointers
    ("O8", (3, "|", None, None, None, -1, -1, 0)),  # an object dtype that says it holds none
    ("V8", (3, "|", None, ("a",), {"a": (np.dtype("O"), 4)}, 8, 1, 0)),  # an object field past the end
])
def test_a_forged_dtype_state_is_refused(code, state):
    with pytest.raises(UnsafeGlobal, match="dtype state") as info:
        load_reply([pickle.dumps(ForgedDtype(code, state), protocol=4)], Policy())
    assert "trusted = true" in str(info.value)


@pytest.mark.parametrize("value", [np.dtype("O"), np.dtype([("a", "i4"), ("b", "O")]), np.dtype("M8[3s]"),
                                   np.dtype(("f4", (2, 3))), np.dtype([("a", "i4"), ("b", "f8")], align=True),
                                   np.dtype({"names": ["a"], "formats": ["i4"], "offsets": [4], "titles": ["T"],
                                             "itemsize": 12}), np.dtype(">U3")])
def test_the_dtypes_numpy_writes_load(value):
    assert load_reply([pickle.dumps(value, protocol=5)], Policy()) == value


def test_the_memory_cap_is_the_matrix_keys_and_a_multiple_of_the_reply():
    raw = pickle.dumps(Calls(bytes, 3 << 20), protocol=5)
    with pytest.raises(ReplyTooLarge, match=r"limit of 2 MiB .*reply_memory_cap"):
        load_reply([raw], Policy(memory_cap=2 << 20))
    assert len(load_reply([raw], Policy(memory_cap=4 << 20))) == 3 << 20
    big = pickle.dumps([Calls(bytes, 1 << 10)] * 1 + [b"x" * (1 << 20)], protocol=5)
    assert len(load_reply([big], Policy(memory_cap=1))[0]) == 1 << 10  # within 64x its own bytes


class Spawn(subprocess.Popen):
    """A class of the test module, whose __init__ (inherited) runs a command."""


def test_an_own_class_runs_only_methods_of_classes_a_reply_may_build(tmp_path):
    touched = marker(tmp_path)
    with pytest.raises(UnsafeGlobal, match=r"Spawn\.__init__, .*inherited from subprocess\.Popen"):
        load_reply([pickle.dumps(Calls(Spawn, ["touch", str(touched)]), protocol=4)], Policy(owned={__name__}))
    assert not touched.exists()


def test_calls_a_reply_makes_are_checked_by_argument():
    for raw, named in [(pickle.dumps(Calls(type, "X", (), {})), "builtins.type"),
                       (pickle.dumps(Calls(getattr, Calls(object), "__class__")), "builtins.getattr"),
                       (b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00zlib\x86R.", "_codecs.encode")]:
        with pytest.raises(UnsafeGlobal, match=named.replace(".", r"\.")):
            load_reply([raw], Policy())

