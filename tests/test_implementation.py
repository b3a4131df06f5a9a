"""Another implementation: PyPy as a target, and diagnoses that name the implementation as well as
the version ("CPython 3.11 bytecode on PyPy 3.11").

The container target is the default matrix's ``pypy3.11`` (Debian sid's PyPy 8). An interpreter
target runs a PyPy of this machine where there is one (Debian's ``pypy3``: PyPy 7.3, which also
lacks ``os.readv``/``os.writev``), and skips saying so where there is none. What the agent does
where an interpreter lacks a function is also shown on this machine's CPython, in a virtualenv
whose ``sitecustomize`` takes away exactly what PyPy lacks.
"""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import textwrap
from enum import Enum
from pathlib import Path

import pytest
from helpers import ROOT, remote_on, unavailable_reason

from pytest_remote_serial.fixture import ladder
from pytest_remote_serial.host.backends.interpreter import candidates
from pytest_remote_serial.host.codecs import get_codec
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import load_matrix
from pytest_remote_serial.outcomes import RoundTrip
from pytest_remote_serial.remote import diagnosis, envelope

HOST = platform.python_version()
HOST_MINOR = HOST.rsplit(".", 1)[0]
PYPY_ENVELOPE = {"python": "3.11.17", "implementation": "pypy", "cache_tag": "pypy311", "magic": 432}


def scale(k):
    def by(x):
        return x * k

    return by


class Tracked:
    log: list = []

    def __del__(self):
        Tracked.log.append("finalized")


def finalized():
    import gc

    Tracked()
    gc.collect()
    return list(Tracked.log)


# ----------------------------------------------------------------------------- the diagnosis, here


def test_bytecode_of_another_implementation_is_named_as_such():
    """A reply (or payload) from PyPy 3.11 on this CPython: same version, other bytecode."""
    header = {"serializer": "cloudpickle", "envelope": PYPY_ENVELOPE}
    why = diagnosis.diagnose_load(header, TypeError("code() argument 13 must be str, not bytes"))
    assert why.startswith(f"PyPy 3.11 bytecode on CPython {HOST_MINOR}: "), why
    assert f"written by PyPy 3.11.17 (bytecode magic 432) and cannot be loaded by CPython {HOST}" in why
    assert "not portable across implementations" in why and "use serializer='source'" in why
    payload = bytes(get_codec("cloudpickle").dumps((scale(3), (), {}))[0])
    refused = diagnosis.foreign_bytecode(header, payload)
    assert refused.startswith(f"PyPy 3.11 bytecode on CPython {HOST_MINOR}: the payload holds code objects"), refused


def test_another_minor_of_the_same_implementation_is_named_as_a_minor():
    other = 3413 if envelope.magic_number() != 3413 else 3495
    header = {"serializer": "dill", "envelope": {"python": "3.9.2", "implementation": "cpython", "magic": other}}
    why = diagnosis.diagnose_load(header, SystemError("unknown opcode"))
    assert why.startswith(f"CPython 3.9 bytecode on CPython {HOST_MINOR}: ") and "across minor versions" in why


@pytest.mark.parametrize("serializer", ["source", "json", "pickle"])
def test_serializers_that_carry_no_bytecode_are_never_given_a_bytecode_cause(serializer):
    header = {"serializer": serializer, "envelope": PYPY_ENVELOPE}
    assert diagnosis.diagnose_load(header, AttributeError("x")) is None
    assert diagnosis.foreign_bytecode(header, bytes(get_codec("source").dumps((scale(3), (), {}))[0])) is None


def test_auto_goes_to_source_first_on_another_implementation():
    assert ladder(HOST, "cpython") == ["cloudpickle", "cloudpickle-by-value", "source"]
    assert ladder(HOST, "pypy") == ["source"]  # PyPy of the host's own version
    assert ladder("3.9.2", "cpython") == ["source"]


def test_a_record_without_a_python_never_says_python_question_mark():
    lost = RoundTrip(outcome="crash", target="t", function="f", serializer="pickle",
                     error={"phase": "call", "type": "agent_lost", "message": "gone"})
    assert lost.describe().startswith("f on t: crash in phase call") and "?" not in lost.describe().split(":")[0]
    lost.error.update(python="3.11.17", implementation="pypy")
    assert lost.describe().startswith("f on t (PyPy 3.11.17): crash")


def test_the_serializer_import_returns_the_module_named_a_private_copy_too():
    """Where the pickler is the one cloudpickle expects (CPython), a plain import."""
    from pytest_remote_serial.remote import compat

    assert compat.import_pickler_module("json.decoder") is sys.modules["json.decoder"]
    assert compat.freeze is gc.freeze  # CPython's own, nothing in between


# ----------------------------------------------------------------------------- the PyPy container


@pytest.fixture(scope="module")
def pypy_and_old(docker_client):
    ctl = Controller(load_matrix(ROOT).select(["pypy3.11", "py3.9"]), print)
    ctl.start_all()
    try:
        yield {name: remote_on(ctl, name, 20.0) for name in ("pypy3.11", "py3.9")}
    finally:
        ctl.shutdown()


@pytest.mark.docker
def test_pypy_target_says_what_it_is_and_loads_the_capsule_with_the_host_s_cloudpickle(pypy_and_old):
    import cloudpickle

    remote = pypy_and_old["pypy3.11"]
    assert remote.target.implementation == "pypy" and remote.target.python.startswith("3.11.")
    assert remote.target.python_label.startswith("PyPy 3.11.")
    # PyPy 8's pickle.Pickler has no `dispatch`: the injected cloudpickle imported all the same
    assert remote.target.packages["cloudpickle"] == cloudpickle.__version__
    assert remote.call(scale(3), 14, serializer="source") == 42
    assert remote.call(scale(3), 14, serializer="json") == 42


@pytest.mark.docker
def test_auto_on_pypy_ships_source_first_and_cloudpickle_is_refused_naming_both(pypy_and_old):
    remote = pypy_and_old["pypy3.11"]
    rt = remote.roundtrip(scale(3), 14)
    assert (rt.outcome, rt.result, rt.serializer, rt.fallback_from) == ("ok", 42, "source", []), rt.describe()
    refused = remote.roundtrip(scale(3), 14, serializer="cloudpickle")
    assert refused.outcome == "load_error", refused.describe()
    why = refused.error["diagnosis"]
    assert why.startswith(f"CPython {HOST_MINOR} bytecode on PyPy 3.11: the payload holds code objects"), why
    assert "not portable across implementations" in why
    assert f"(PyPy {remote.target.python})" in refused.describe()


@pytest.mark.docker
def test_a_class_rebuilt_on_pypy_keeps_its_finalizer(pypy_and_old):
    assert pypy_and_old["pypy3.11"].call(finalized, serializer="source") == ["finalized"]


# A class that exists from Python 3.11 on: its reference fails to load on 3.9.
from enum import StrEnum  # noqa: E402


class Mood(StrEnum):
    CALM = "calm"


def mood():
    return Mood.CALM.upper()


@pytest.mark.docker
@pytest.mark.parametrize("serializer", ["json", "source"])
def test_a_json_or_source_load_failure_on_another_minor_is_not_blamed_on_bytecode(pypy_and_old, serializer):
    rt = pypy_and_old["py3.9"].roundtrip(mood, serializer=serializer)
    assert rt.outcome == "load_error", rt.describe()
    assert "enum.StrEnum does not exist on CPython 3.9" in rt.error["message"], rt.error["message"]
    assert "bytecode" not in str(rt.error.get("diagnosis")), rt.describe()


# ----------------------------------------------------------------------------- PyPy on this machine


def write_matrix(folder: Path, body: str) -> None:
    (folder / "matrix").mkdir(exist_ok=True)
    (folder / "matrix" / "targets.toml").write_text(textwrap.dedent(body))


def test_interpreter_pypy3_runs_the_agent_under_this_machine_s_pypy(tmp_path):
    if not candidates("pypy3"):
        pytest.skip("no PyPy on this machine (PATH, pyenv, uv): `apt-get install pypy3`")
    write_matrix(tmp_path, """
        [targets.pypy]
        interpreter = "pypy3"
    """)
    ctl = Controller(load_matrix(tmp_path).select(["pypy"]), print)
    try:
        remote = remote_on(ctl, "pypy", 20.0)
        assert remote.target.implementation == "pypy", remote.target.python_label
        rt = remote.roundtrip(scale(3), 14)
        assert (rt.outcome, rt.result, rt.serializer, rt.fallback_from) == ("ok", 42, "source", []), rt.describe()
        assert remote.call(finalized, serializer="source") == ["finalized"]
        assert remote.map(scale(2), [(1,), (2,), (3,)], serializer="source") == [2, 4, 6]
        # a non-isolated call (in the inline worker), then an isolated one
        assert remote._running.client.roundtrip(scale(5), (2,), {}, "source", 20.0, isolate=False).result == 10
        assert remote.call(scale(3), 3, serializer="source") == 9
        refused = remote.roundtrip(scale(3), 14, serializer="cloudpickle")
        assert refused.outcome == "load_error" and " bytecode on PyPy 3." in refused.error["diagnosis"]
    finally:
        ctl.shutdown()


def test_a_missing_pypy_is_unavailable_naming_where_it_was_looked_for(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("PYENV_ROOT", str(empty))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(empty))
    write_matrix(tmp_path, """
        [targets.pypy]
        interpreter = "pypy3.11"
    """)
    reason = unavailable_reason(tmp_path, "pypy")
    assert "no PyPy of Python 3.11 found on this machine" in reason
    assert f"{empty}/versions/pypy3.11*/bin" in reason and "apt-get install pypy3" in reason


# ----------------------------------------------------------------------------- what PyPy lacks, on CPython

# What PyPy lacks of what the agent uses: taken away before the agent starts, as an interpreter
# without them would start it. The agent must find each missing and serve all the same.
LACKING = """
import _thread, gc, os
for module, name in ((gc, "freeze"), (os, "readv"), (os, "writev"), (os, "memfd_create"),
                     (_thread, "_count"), (os, "sched_getaffinity")):
    if hasattr(module, name):
        delattr(module, name)
"""


class Choice(Enum):
    A = 1


def echo_bytes(data):
    return bytes(reversed(data))


def test_an_interpreter_lacking_what_pypy_lacks_still_serves(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    (site / "sitecustomize.py").write_text(LACKING)
    python = venv / "bin" / "python"
    asks = "import gc, os; print(hasattr(gc, 'freeze'), hasattr(os, 'readv'))"
    probe = subprocess.run([str(python), "-E", "-c", asks], capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["False", "False"]  # the interpreter really lacks them
    write_matrix(tmp_path, f"""
        [targets.lacking]
        interpreter = "{python}"
    """)
    ctl = Controller(load_matrix(tmp_path).select(["lacking"]), print)
    try:
        remote = remote_on(ctl, "lacking", 20.0)
        client = remote._running.client
        assert client.hello["cpus"] == len(os.sched_getaffinity(0))  # read from /proc instead
        big = os.urandom(5 << 20)  # out of band, read with readinto in place of readv
        assert remote.call(echo_bytes, big, serializer="source") == bytes(reversed(big))
        assert remote.call(Choice, 1, serializer="source") is Choice.A
        assert remote.map(scale(2), [(i,) for i in range(6)], serializer="source") == [0, 2, 4, 6, 8, 10]
        # a non-isolated call starts the inline worker; isolated calls still run in spares
        assert client.roundtrip(scale(5), (2,), {}, "source", 20.0, isolate=False).result == 10
        for i in range(3):
            assert remote.call(scale(3), i, serializer="source") == 3 * i
    finally:
        ctl.shutdown()
