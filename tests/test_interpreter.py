"""Interpreter targets: the agent under another Python of this machine (pyenv here), no Docker.

They need that Python; where the machine lacks it the test skips saying so, and one test
takes the Pythons away on purpose to show the clean ``unavailable`` reason.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from pytest_remote_serial.fixture import CallOptions, Remote
from pytest_remote_serial.host.backends.base import StartFailed
from pytest_remote_serial.host.backends.interpreter import candidates, resolve
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import load_matrix
from pytest_remote_serial.outcomes import TargetUnavailable

PYENV = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def need_python(version: str) -> None:
    if not candidates(version):
        pytest.skip(f"no Python {version} on this machine (PATH, pyenv, uv)")


def write_matrix(folder: Path, body: str) -> Path:
    (folder / "matrix").mkdir(exist_ok=True)
    path = folder / "matrix" / "targets.toml"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture
def py312(tmp_path):
    need_python("3.12")
    src = tmp_path / "src" / "mylib"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("def where():\n    import sys\n    return sys.version_info[:2]\n")
    hidden = tmp_path / "host_only"
    hidden.mkdir()
    (hidden / "host_only_mod.py").write_text("X = 1\n")
    write_matrix(tmp_path, """
        [targets."py3.12"]
        interpreter = "3.12"
        paths = ["../src"]
    """)
    ctl = Controller(load_matrix(tmp_path).select(["py3.12"]), print)
    try:
        yield ctl.get("py3.12"), hidden
    finally:
        ctl.shutdown()


def test_interpreter_target_runs_that_python_with_paths_and_no_host_path(py312, monkeypatch):
    running, hidden = py312
    assert running.python.startswith("3.12.")
    assert running.extra["backend"] == "interpreter" and running.extra["engine"] is None
    assert "not applicable" in running.extra["hardening"]
    assert not running.client.config.trusted  # only local is trusted by default
    remote = Remote(running, CallOptions(timeout=20), False, lambda r: None)

    def uses_paths():
        import mylib

        return list(mylib.where())

    assert remote.call(uses_paths) == [3, 12]
    rt = remote.roundtrip(uses_paths)
    assert rt.serializer == "source" and rt.fallback_from == []  # another minor: source first

    def imports_host_only():
        import host_only_mod  # noqa: F401

    # The host's PYTHONPATH of the agent's start never reaches another interpreter.
    assert str(hidden) not in os.environ.get("PYTHONPATH", "")
    assert remote.roundtrip(imports_host_only).outcome == "call_error"


def test_interpreter_target_isolates_calls_and_names_crashes_and_timeouts(py312):
    running, _ = py312
    remote = Remote(running, CallOptions(timeout=3), False, lambda r: None)

    def set_state():
        import sys

        sys.prs_state = 1
        return 1

    def read_state():
        import sys

        return getattr(sys, "prs_state", None)

    def die():
        import os

        os._exit(7)

    def sleep():
        import time

        time.sleep(30)

    assert remote.call(set_state) == 1
    assert remote.call(read_state) is None  # a fresh child per call
    crash = remote.roundtrip(die)
    assert crash.outcome == "crash" and crash.error["exit_code"] == 7
    assert remote.roundtrip(sleep).outcome == "timeout"
    assert remote.call(read_state) is None  # the target lives on


def test_bogus_interpreter_path_is_unavailable_naming_the_path(tmp_path):
    write_matrix(tmp_path, """
        [targets.gone]
        interpreter = "/nonexistent/bin/python3.12"
    """)
    ctl = Controller(load_matrix(tmp_path).select(["gone"]), print)
    try:
        with pytest.raises(TargetUnavailable) as info:
            ctl.get("gone")
    finally:
        ctl.shutdown()
    message = str(info.value)
    assert "interpreter /nonexistent/bin/python3.12 does not exist" in message
    assert "interpreter = \"/path/to/python\" for target 'gone'" in message


def test_python_older_than_39_is_refused_with_its_version(tmp_path):
    old = sorted(PYENV.glob("3.8.*/bin/python3.8")) or sorted(PYENV.glob("3.7.*/bin/python3.7"))
    if not old:
        pytest.skip("no Python older than 3.9 in pyenv to try")
    write_matrix(tmp_path, f"""
        [targets.old]
        interpreter = "{old[-1]}"
    """)
    with pytest.raises(StartFailed, match=r"is Python 3\.[78]\.\d+; the agent needs 3\.9 or newer"):
        resolve(load_matrix(tmp_path).targets["old"])


def test_a_machine_without_those_pythons_skips_py310_and_py312_with_the_reason(pytester):
    """The default matrix's interpreter targets, with PATH, pyenv and uv all empty."""
    pytester.makepyfile(test_x="def test_x(remote):\n    assert remote.call(abs, -1) == 1\n")
    empty = pytester.mkdir("empty")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYENV_ROOT": str(empty), "UV_PYTHON_INSTALL_DIR": str(empty)}
    report = pytester.path / "report.json"
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        run = pytester.runpytest_subprocess("--remote-targets=py3.10,py3.12", "-rs",
                                            f"--remote-report={report}")
        strict = pytester.runpytest_subprocess("--remote-targets=py3.10", "--remote-strict")
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    run.assert_outcomes(skipped=2)
    run.stdout.fnmatch_lines(["*no Python 3.10 found on this machine (looked in PATH, *"
                              "`pyenv install 3.10` or `uv python install 3.10`*"])
    strict.assert_outcomes(errors=1)
    strict.stdout.fnmatch_lines(["*no Python 3.10 found on this machine*--remote-strict*"])
    entries = {t["name"]: t for t in json.loads(report.read_text())["targets"]}
    assert entries["py3.12"]["backend"] == "interpreter" and not entries["py3.12"]["available"]
    assert "no Python 3.12 found" in entries["py3.12"]["reason"]


def test_default_matrix_runs_py310_and_py312_as_interpreters(pytester):
    for version in ("3.10", "3.12"):
        need_python(version)
    pytester.makepyfile(test_x="""
        def test_x(remote):
            import sys
            assert remote.target.python.startswith(remote.target.name[2:] + ".")
            assert remote.call(abs, -1) == 1
    """)
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("--remote-targets=py3.10,py3.12", "--remote-strict",
                                           f"--remote-report={report}")
    result.assert_outcomes(passed=2)
    how = r", cold start .* \(backend interpreter, transport socket\)"
    result.stdout.re_match_lines([r"py3\.10: Python 3\.10\.\d+" + how, r"py3\.12: Python 3\.12\.\d+" + how])
    for entry in json.loads(report.read_text())["targets"]:
        assert (entry["backend"], entry["engine"], entry["transport"]) == ("interpreter", None, "socket")
        assert "not applicable" in entry["hardening"] and entry["interpreter"].endswith(entry["name"][2:])
