"""Remote Docker engines, for real: a second dockerd on loopback that cannot see this machine's
/tmp or cache folder (tests/remote_engines.py), reached over tcp:// and over ssh://.

Nothing here is mocked: images travel to that engine through its API, containers run there,
and every check reads the engine's own account (``docker inspect``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import ROOT
from remote_engines import CannotSimulate, SecondEngine

from pytest_remote_serial.fixture import CallOptions, Remote
from pytest_remote_serial.host.bundle import ensure_bundle
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import load_matrix
from pytest_remote_serial.outcomes import TargetUnavailable

RECIPES = {  # the default matrix's recipes: the images the main engine already has
    "py3.9": 'debian = { suite = "bullseye", packages = ["python3", "python3-numpy"] }',
    "py3.11": 'debian = { suite = "bookworm", packages = ["python3", "python3-numpy"] }',
}


@pytest.fixture(scope="session")
def second_engine(docker_client):
    try:
        engine = SecondEngine.start()
    except CannotSimulate as exc:
        pytest.skip(f"cannot simulate a remote engine here: {exc}")
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def ssh_home(second_engine):
    try:
        return second_engine.start_sshd()
    except CannotSimulate as exc:
        pytest.skip(f"cannot simulate ssh to the remote engine: {exc}")


@pytest.fixture(scope="session")
def remote_client(second_engine):
    import docker

    client = docker.DockerClient(base_url=second_engine.tcp, timeout=60)
    yield client
    client.close()


def docker_config(tmp_path: Path, monkeypatch) -> None:
    """A docker CLI config folder of the test's own (docker-py finds contexts beside config.json)."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))


def matrix_file(folder: Path, engine_line: str, names=("py3.11",), extra: str = "") -> Path:
    # extends: the examples declare expectations for every default target, so all must be known.
    body = 'extends = "default"\n' + extra + "".join(f'\n[targets."{n}"]\n{RECIPES[n]}\n{engine_line}\n'
                                                    for n in names)
    path = folder / "remote-targets.toml"
    path.write_text(body)
    return path


def run_examples(tmp: Path, matrix: Path, targets: str, env: dict[str, str] | None = None,
                 *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """The seed examples as a user runs them: a pytest process, its JSON report."""
    report = tmp / f"report-{time.monotonic_ns()}.json"
    cmd = [sys.executable, "-m", "pytest", "examples", f"--remote-matrix-file={matrix}",
           f"--remote-targets={targets}", "--remote-strict", "-p", "no:cacheprovider", "-q",
           "--tb=line", f"--remote-report={report}", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=540,
                          env={**os.environ, **(env or {})})
    assert report.is_file(), proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc, json.loads(report.read_text())


def cells(report: dict) -> dict[tuple[str, str], list[str]]:
    """(test without its target, target) -> outcomes of its calls, in order."""
    out: dict[tuple[str, str], list[str]] = {}
    for call in report["calls"]:
        out.setdefault((call["test"].rsplit("[", 1)[0], call["target"]), []).append(call["outcome"])
    return out


@pytest.fixture(scope="session")
def local_engine_examples(tmp_path_factory, docker_client):
    """The same examples on the local engine: what the remote runs must match cell by cell."""
    tmp = tmp_path_factory.mktemp("local-examples")
    return run_examples(tmp, matrix_file(tmp, "", ("py3.9", "py3.11")), "py3.9,py3.11")


# ---------------------------------------------------------------- the simulation is honest


def test_the_second_engine_cannot_see_this_machines_folders(second_engine, remote_client, docker_client, tmp_path):
    """Why the tests below mean something: a bind mount from here visibly breaks there."""
    import docker.errors

    ctl = Controller(load_matrix(ROOT, str(matrix_file(tmp_path, f'engine = "{second_engine.tcp}"'))).select(
        ["py3.11"]), print)
    try:
        image = ctl.get("py3.11").image  # copied to the engine through the API on first start
    finally:
        ctl.shutdown()
    (tmp_path / "here.txt").write_text("on this machine")
    for folder, name in ((ensure_bundle().folder, "agent.zip"), (tmp_path, "here.txt")):
        listing = ["python3", "-c", "import os; print(sorted(os.listdir('/x')))"]
        volumes = {str(folder): {"bind": "/x", "mode": "ro"}}
        here = docker_client.containers.run(image, listing, volumes=volumes, remove=True, network_mode="none")
        assert name in here.decode()  # the local engine sees the folder
        # The engine there resolves the path in its own world: missing, or an empty folder.
        try:
            there = remote_client.containers.run(image, listing, volumes=volumes, remove=True, network_mode="none")
        except docker.errors.APIError as exc:
            assert "bind source path does not exist" in str(exc)
        else:
            assert there.decode().strip() == "[]"


# ---------------------------------------------------------------- tcp://


def test_tcp_engine_mounts_nothing_and_paths_import(second_engine, remote_client, tmp_path):
    lib = tmp_path / "src" / "mylib"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text("VERSION = 1\n")
    matrix = matrix_file(tmp_path, f'engine = "{second_engine.tcp}"', extra='paths = ["src"]\n')

    def version():
        import os

        import mylib

        return mylib.VERSION, os.getuid()

    layers = []
    for expected in (1, 2):
        (lib / "__init__.py").write_text(f"VERSION = {expected}\n")
        ctl = Controller(load_matrix(ROOT, str(matrix)).select(["py3.11"]), print)
        try:
            running = ctl.get("py3.11")
            remote = Remote(running, CallOptions(timeout=20), False, lambda r: None)
            value, uid = remote.call(version)
            assert value == expected and uid != 0  # an edit in paths makes a new layer
            info = remote_client.api.inspect_container(running.extra["container"])
        finally:
            ctl.shutdown()
        host = info["HostConfig"]
        assert info["Mounts"] == [] and not host["Binds"]
        assert host["ReadonlyRootfs"] and host["NetworkMode"] == "none" and host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"] and host["Memory"] > 0 and host["PidsLimit"] > 0
        assert set(host["Tmpfs"]) == {"/tmp"} and info["Config"]["User"] != "root"
        assert (running.extra["backend"], running.extra["engine"], running.extra["transport"]) == (
            "docker", second_engine.tcp, "stdio")
        assert running.image.startswith("pytest-remote-serial/debian-bookworm:")
        layers.append(running.extra["layer"])
    assert layers[0] != layers[1]
    names = {tag for image in remote_client.images.list() for tag in image.tags}
    assert layers[1] in names and layers[0] not in names  # the stale layer is dropped
    assert not remote_client.containers.list(all=True, filters={"label": "pytest-remote-serial.session"})


def test_seed_examples_on_the_tcp_engine_match_the_local_engine(second_engine, remote_client, tmp_path,
                                                                local_engine_examples):
    proc, report = run_examples(tmp_path, matrix_file(tmp_path, f'engine = "{second_engine.tcp}"',
                                                       ("py3.9", "py3.11")), "py3.9,py3.11")
    local_proc, local = local_engine_examples
    assert proc.returncode == local_proc.returncode == 0, proc.stdout[-3000:]  # known gaps are xfailed
    assert cells(report) == cells(local) and len(cells(report)) > 30
    assert sum(o == "ok" for outcomes in cells(report).values() for o in outcomes) > 20
    ran = [entry for entry in report["targets"] if entry["name"] in ("py3.9", "py3.11")]
    assert len(ran) == 2
    for entry in ran:
        assert entry["available"]
        assert (entry["backend"], entry["engine"], entry["transport"]) == ("docker", second_engine.tcp, "stdio")
    assert f"(backend docker, engine {second_engine.tcp}, transport stdio)" in proc.stdout


def test_one_matrix_mixes_engines_and_a_dead_engine_holds_up_no_other(second_engine, tmp_path, monkeypatch):
    """Each engine connects on its own: a blackholed one times out while the others run."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)  # accepts the TCP handshake, never answers a request
    monkeypatch.setenv("PYTEST_REMOTE_SERIAL_CONNECT_TIMEOUT", "6")
    path = tmp_path / "mixed.toml"
    path.write_text(textwrap.dedent(f"""
        [targets.here]
        {RECIPES["py3.11"]}
        [targets.there]
        {RECIPES["py3.11"]}
        engine = "{second_engine.tcp}"
        [targets.hole]
        {RECIPES["py3.11"]}
        engine = "tcp://127.0.0.1:{hole.getsockname()[1]}"
    """))
    ctl = Controller(load_matrix(ROOT, str(path)).select(["here", "there", "hole"]), print)
    try:
        start = time.monotonic()
        ctl.start_all()
        here, there = ctl.get("here"), ctl.get("there")
        ready = time.monotonic() - start
        dead = r"no Docker engine at tcp://127\.0\.0\.1:\d+ \(no answer within 6s\)"
        with pytest.raises(TargetUnavailable, match=dead):
            ctl.get("hole")
        assert ready < 6 <= time.monotonic() - start
        assert here.extra["engine"].startswith("unix://") and here.extra["transport"] == "socket"
        assert there.extra["engine"] == second_engine.tcp and there.extra["transport"] == "stdio"
        for running in (here, there):
            assert Remote(running, CallOptions(timeout=20), False, lambda r: None).call(abs, -3) == 3
    finally:
        ctl.shutdown()
        hole.close()


# ---------------------------------------------------------------- ssh://


@pytest.mark.parametrize("client", ["ssh-cli", "paramiko"])
def test_seed_examples_over_ssh(second_engine, ssh_home, remote_client, tmp_path, local_engine_examples, client):
    """docker-py's two SSH paths: the ssh command (the default when installed) and paramiko."""
    engine = f"ssh://root@127.0.0.1:{second_engine.ssh_port}"
    if client == "ssh-cli":  # ~/.ssh of this machine is left alone: an ssh wrapper with -F
        env = {"PATH": f"{ssh_home / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    else:  # paramiko reads ~/.ssh/config and known_hosts through HOME
        env = {"HOME": str(ssh_home / "home"), "PYTEST_REMOTE_SERIAL_SSH": "paramiko",
               "PYTEST_REMOTE_SERIAL_CACHE": str(Path.home() / ".cache" / "pytest-remote-serial")}
    proc, report = run_examples(tmp_path, matrix_file(tmp_path, f'engine = "{engine}"'), "py3.11", env)
    local = {key: value for key, value in cells(local_engine_examples[1]).items() if key[1] == "py3.11"}
    assert cells(report) == local, proc.stdout[-3000:]
    (entry,) = [entry for entry in report["targets"] if entry["name"] == "py3.11"]
    assert (entry["backend"], entry["engine"], entry["transport"]) == ("docker", engine, "stdio")
    assert not remote_client.containers.list(all=True, filters={"label": "pytest-remote-serial.session"})


def test_unreachable_ssh_engine_and_unknown_context_are_named(tmp_path, monkeypatch):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    docker_config(tmp_path, monkeypatch)  # no contexts at all
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent(f"""
        [targets.ssh]
        {RECIPES["py3.11"]}
        engine = "ssh://root@127.0.0.1:{port}"
        [targets.ctx]
        {RECIPES["py3.11"]}
        context = "gpu-box"
    """))
    ctl = Controller(load_matrix(ROOT, str(path)).select(["ssh", "ctx"]), print)
    try:
        start = time.monotonic()
        with pytest.raises(TargetUnavailable, match=rf"no Docker engine at ssh://root@127\.0\.0\.1:{port} .*"
                                                    r"check `ssh` to that host works"):
            ctl.get("ssh")
        with pytest.raises(TargetUnavailable, match=r"no docker context 'gpu-box' \(known: .*\); create it with "
                                                    r"`docker context create gpu-box"):
            ctl.get("ctx")
        assert time.monotonic() - start < 40
    finally:
        ctl.shutdown()


def test_second_engine_teardown_leaves_nothing(docker_client):
    """The fixture's own cleanup, checked: no process of the namespace and no folder left."""
    try:
        engine = SecondEngine.start()
    except CannotSimulate as exc:
        pytest.skip(f"cannot simulate a remote engine here: {exc}")
    engine.start_sshd()
    assert engine.running()
    engine.stop()
    assert engine.running() == [] and not engine.root.exists()


def test_a_docker_context_names_the_remote_engine(second_engine, tmp_path, monkeypatch):
    """`context = "name"` reads the docker CLI's own context store (DOCKER_CONFIG here), as
    `docker context create` wrote it."""
    cli = shutil.which("docker")
    if cli is None:
        pytest.skip("no docker CLI to create a context with")
    docker_config(tmp_path, monkeypatch)
    subprocess.run([cli, "context", "create", "sim-remote", "--docker", f"host={second_engine.tcp}"],
                   check=True, capture_output=True, timeout=30)
    path = tmp_path / "ctx.toml"
    path.write_text(f'[targets.ctx]\n{RECIPES["py3.11"]}\ncontext = "sim-remote"\n')
    ctl = Controller(load_matrix(ROOT, str(path)).select(["ctx"]), print)
    try:
        running = ctl.get("ctx")
        assert Remote(running, CallOptions(timeout=20), False, lambda r: None).call(abs, -5) == 5
        assert running.extra["engine"] == f"context sim-remote ({second_engine.tcp})"
        assert running.extra["transport"] == "stdio" and "layer" in running.extra
    finally:
        ctl.shutdown()
