"""``paths`` reach everywhere a worker has its installed code: the call, the processes it starts
(``PYTHONPATH``), ``remote.target.paths``, the report, and the agent's preloads. And the
``[targets.local]`` table that gives ``local`` its own."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import LocalTableError, MatrixError, load_matrix
from pytest_remote_serial.report.record import target_entry

# Run on the target (shipped as source, so any Python takes them).


def subprocess_imports(names):
    """What a process the call starts (a framework's runner) can import."""
    import subprocess
    import sys

    found = {}
    for name in names:
        proc = subprocess.run([sys.executable, "-c", "import " + name], capture_output=True, timeout=60)
        found[name] = proc.returncode == 0
    return found


def environ_pythonpath():
    import os

    return os.environ.get("PYTHONPATH")


def imported(name):
    import sys

    return name in sys.modules


def use_userlib():
    import userlib

    return userlib.VALUE


def _project(tmp_path: Path, targets: str = "") -> Path:
    """A project whose ``src`` holds ``userlib``, with a pyproject matrix extending the bundled one."""
    (tmp_path / "src" / "userlib").mkdir(parents=True)
    (tmp_path / "src" / "userlib" / "__init__.py").write_text("VALUE = 42\n")
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.pytest_remote_serial]
        extends = "default"
        paths = ["src"]
    """) + textwrap.dedent(targets))
    return tmp_path


def _roundtrip(client, func, *args):
    rt = client.roundtrip(func, args, {}, "source", 60.0)
    assert rt.outcome == "ok", rt.describe()
    return rt.result


# ------------------------------------------------------------------ [targets.local]


def test_local_table_adds_paths_and_trust_after_the_shared_ones(tmp_path):
    (tmp_path / "only_local").mkdir()
    _project(tmp_path, """
        [tool.pytest_remote_serial.targets.local]
        paths = ["only_local"]
        trusted_modules = ["pandas"]
        description = "the host's Python, with a folder of its own"
    """)
    matrix = load_matrix(tmp_path)
    local = matrix.targets["local"]
    assert local.is_local and local.paths == ("src", "only_local") and local.is_trusted
    assert local.trusted_modules == ("pandas",)
    assert local.host_paths == ((tmp_path / "src").resolve(), (tmp_path / "only_local").resolve())
    assert matrix.targets["py3.11"].paths == ("src",)  # the others do not get local's own
    assert list(matrix.targets)[:2] == ["local", "py3.9"]


def test_a_file_with_only_a_local_table_is_a_matrix(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "matrix").mkdir()
    (tmp_path / "matrix" / "targets.toml").write_text('[targets.local]\npaths = ["../lib"]\n')
    assert load_matrix(tmp_path).targets["local"].host_paths == ((tmp_path / "lib").resolve(),)


@pytest.mark.parametrize(("table", "expected"), [
    ('image = "python:3.12"', "target 'local' is built in (a fresh process of the host's own Python) and cannot "
                              "be redefined: remove key 'image'"),
    ('interpreter = "3.12"', "cannot be redefined: remove key 'interpreter'"),
    ('debian = { suite = "bookworm" }', "remove key 'debian'"),
    ('memory = "1g"', "key 'memory' does not apply to local (local is a process of the host's own Python, "
                      "not a container)"),
    ('engine = "ssh://h"', "key 'engine' does not apply to local"),
    ('transport = "stdio"', "key 'transport' does not apply to local"),
    ("pids = 64", "key 'pids' does not apply to local"),
    ('packages = ["python3-toolz"]', "key 'packages' does not apply to local"),
    ("gpu = true", "key 'gpu' does not apply to local (local's GPU is the host's own"),
    ('path = ["src"]', "unknown key 'path'; did you mean 'paths'?"),
    ('paths = ["missing"]', "paths entry 'missing' does not exist"),
    ('trusted = "yes"', "key 'trusted' must be true or false"),
])
@pytest.mark.parametrize("where", ["pyproject", "extends"])
def test_local_table_refuses_what_local_cannot_be(tmp_path, table, expected, where):
    if where == "pyproject":
        (tmp_path / "pyproject.toml").write_text('[tool.pytest_remote_serial.targets.a]\nimage = "x"\n\n'
                                                 f'[tool.pytest_remote_serial.targets.local]\n{table}\n')
    else:
        (tmp_path / "matrix").mkdir()
        (tmp_path / "matrix" / "targets.toml").write_text(f'extends = "default"\n\n[targets.local]\n{table}\n')
    with pytest.raises(MatrixError) as info:
        load_matrix(tmp_path)
    assert expected in str(info.value) and "target 'local'" in str(info.value)
    assert isinstance(info.value, LocalTableError) or "paths entry" in str(info.value)


def test_a_bad_local_table_is_a_usage_error_even_without_the_matrix(pytester):
    pytester.makepyprojecttoml('[tool.pytest_remote_serial.targets.local]\nmemory = "1g"\n')
    pytester.makepyfile("def test_x(remote):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*target 'local': key 'memory' does not apply to local*"])


# ------------------------------------------------------------------ local: PYTHONPATH, remote.target.paths, report


def test_local_paths_reach_the_calls_subprocesses_the_fixture_and_the_report(pytester):
    """Without --remote-matrix, local is the matrix file's: its paths (shared and its own) are on
    the call's sys.path, on PYTHONPATH for what the call starts, on remote.target.paths and in
    the report's target record."""
    (pytester.path / "src" / "userlib").mkdir(parents=True)
    (pytester.path / "src" / "userlib" / "__init__.py").write_text("VALUE = 42\n")
    (pytester.path / "tools" / "runnerlib").mkdir(parents=True)
    (pytester.path / "tools" / "runnerlib" / "__init__.py").write_text("")
    pytester.makepyprojecttoml(textwrap.dedent("""
        [tool.pytest_remote_serial]
        paths = ["src"]

        [tool.pytest_remote_serial.targets.local]
        paths = ["tools"]
    """))
    pytester.makepyfile(textwrap.dedent("""
        import os
        import subprocess
        import sys

        def runner(code):
            # As a framework starts its worker process: a new interpreter, the environment inherited.
            return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()

        def test_paths(remote):
            root = os.path.realpath(os.getcwd())
            assert remote.target.paths == (os.path.join(root, "src"), os.path.join(root, "tools"))
            code = "import userlib, runnerlib; print(userlib.VALUE)"
            assert remote.call(runner, code, serializer="cloudpickle-by-value") == "42"
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--remote-report=r.json")
    result.assert_outcomes(passed=1)
    (entry,) = json.loads((pytester.path / "r.json").read_text())["targets"]
    root = pytester.path.resolve()
    assert entry["paths"] == entry["paths_on_target"] == [str(root / "src"), str(root / "tools")]


def test_paths_of_a_target_that_could_not_start_are_still_reported(tmp_path):
    _project(tmp_path)
    target = load_matrix(tmp_path).targets["py3.11"]
    entry = target_entry(target, "no engine")
    assert entry["paths"] == [str((tmp_path / "src").resolve())] and entry["paths_on_target"] is None


def test_local_agent_exports_paths_before_the_environments_own(tmp_path, monkeypatch):
    """Ahead of what PYTHONPATH held already (the host's, less the test folders), never the
    agent's zip nor the injected serializers' zips."""
    _project(tmp_path)
    other = tmp_path / "from_env"
    other.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(other))
    ctl = Controller([load_matrix(tmp_path).targets["local"]], print)
    try:
        client = ctl.get("local").client
        value = _roundtrip(client, environ_pythonpath).split(":")
        assert value == [str((tmp_path / "src").resolve()), str(other)]
    finally:
        ctl.shutdown()


# ------------------------------------------------------------------ preloading what a call imported from paths


@pytest.mark.parametrize("first", ["isolated", "non-isolated"])
def test_a_module_from_paths_is_preloaded_after_a_call_imported_it(tmp_path, first):
    """Each isolated call is a fresh fork: once a call has imported a module from ``paths`` the
    agent imports it in the process the spares fork from (the relay, which runs no call), so a
    later call holds it already, as it holds installed numpy."""
    _project(tmp_path)
    ctl = Controller([load_matrix(tmp_path).targets["local"]], print)
    try:
        client = ctl.get("local").client
        if first == "non-isolated":
            assert client.roundtrip(divmod, (1, 1), {}, "cloudpickle", 30.0, isolate=False).outcome == "ok"
        assert _roundtrip(client, imported, "userlib") is False
        assert _roundtrip(client, use_userlib) == 42
        time.sleep(0.3)  # the spares forked before the preload are replaced by now
        assert _roundtrip(client, imported, "userlib") is True
    finally:
        ctl.shutdown()


# ------------------------------------------------------------------ containers


@pytest.mark.docker
@pytest.mark.parametrize("name", ["py3.9", "py3.13"])
def test_container_paths_on_pythonpath_and_preloaded(tmp_path, docker_client, name):
    """In a container (bookworm/trixie images with python3 and numpy only): a process the call
    starts imports the user's code from ``paths``, and not the injected cloudpickle nor the
    agent's own package, which a worker's subprocess would not have either. A module from
    ``paths`` is preloaded after the first call that imported it."""
    _project(tmp_path)
    target = load_matrix(tmp_path).targets[name]
    ctl = Controller([target], print)
    try:
        running = ctl.get(name)
        client = running.client
        assert running.extra["paths_on_target"] == ["/opt/prs-paths/0"]
        assert target_entry(target, running)["paths_on_target"] == ["/opt/prs-paths/0"]
        assert _roundtrip(client, environ_pythonpath) == "/opt/prs-paths/0"
        assert _roundtrip(client, subprocess_imports, ["userlib", "cloudpickle", "dill", "_prs_agent"]) == {
            "userlib": True, "cloudpickle": False, "dill": False, "_prs_agent": False}
        assert _roundtrip(client, imported, "userlib") is False
        assert _roundtrip(client, use_userlib) == 42
        time.sleep(0.3)
        assert _roundtrip(client, imported, "userlib") is True
    finally:
        ctl.shutdown()


# ------------------------------------------------------------------ paths outside the project (issue 24)


def _outside_entry(tmp_path: Path, kind: str) -> str:
    """A ``paths`` entry of the given kind, for a project at ``tmp_path / "project"``."""
    if kind == "symlink-to-root":
        (tmp_path / "project" / "root").symlink_to("/")
        return "root"
    if kind == "outside":
        (tmp_path / "elsewhere").mkdir()
        return "../elsewhere"
    return kind


@pytest.mark.parametrize(("kind", "why"), [
    ("/", "is a system folder"), ("/etc", "is a system folder"), ("/var/run", "a system folder"),
    ("symlink-to-root", "resolves to / a system folder"), ("outside", "a folder outside the project"),
])
@pytest.mark.parametrize("level", ["top", "target"])
def test_a_paths_entry_outside_the_project_is_a_usage_error_naming_it(tmp_path, kind, why, level):
    project = tmp_path / "project"
    project.mkdir()
    entry = _outside_entry(tmp_path, kind)
    top, own = (f"paths = [{entry!r}]\n", "") if level == "top" else ("", f"paths = [{entry!r}]\n")
    (project / "pyproject.toml").write_text(f'[tool.pytest_remote_serial]\n{top}\n'
                                            f'[tool.pytest_remote_serial.targets.a]\nimage = "x"\n{own}')
    with pytest.raises(MatrixError) as info:
        load_matrix(project)
    message = str(info.value)
    assert f"paths entry {entry!r}" in message and why in message, message
    assert "allow_outside_paths = true" in message
    if level == "target":
        assert "target 'a'" in message


@pytest.mark.parametrize("level", ["top", "target"])
def test_allow_outside_paths_gives_the_folder(tmp_path, level):
    project = tmp_path / "project"
    project.mkdir()
    entry = _outside_entry(tmp_path, "outside")
    top = f"paths = [{entry!r}]\nallow_outside_paths = true\n" if level == "top" else ""
    own = f"paths = [{entry!r}]\nallow_outside_paths = true\n" if level == "target" else ""
    (project / "pyproject.toml").write_text(f'[tool.pytest_remote_serial]\n{top}\n'
                                            f'[tool.pytest_remote_serial.targets.a]\nimage = "x"\n{own}')
    target = load_matrix(project).targets["a"]
    assert target.host_paths == ((tmp_path / "elsewhere").resolve(),) and target.allow_outside_paths


def test_a_paths_entry_to_host_etc_is_a_usage_error_before_any_target_starts(pytester):
    pytester.makepyprojecttoml('[tool.pytest_remote_serial]\nextends = "default"\npaths = ["/etc"]\n')
    pytester.makepyfile("def test_x(remote):\n    pass\n")
    result = pytester.runpytest_subprocess("--remote-targets=py3.11", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*paths entry '/etc' is a system folder*allow_outside_paths = true*"])
