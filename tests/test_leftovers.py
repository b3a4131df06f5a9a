"""Nothing left behind (issue 27): what a run made and could have removed is gone when it ends,
also when a start fails half-way; and nothing a call writes can grow without bound on the host.

Real containers and real builds; each test looks only at what its own run made (a parallel
suite's containers and folders on the same engine are none of its business).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from docker import errors as docker_errors
from helpers import ROOT, remote_on, write_matrix

import pytest_remote_serial as prs
from pytest_remote_serial.host.backends.containers import L_KEEP, L_SESSION, keep_dir
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.images import image_tag
from pytest_remote_serial.host.matrix import load_matrix

BOOKWORM = image_tag(load_matrix(ROOT).targets["py3.11"])  # an image recipe: nothing to build


@pytest.mark.docker
def test_keep_takes_any_target_name_and_a_failed_start_leaves_no_open_folder(docker_client, tmp_path):
    """--remote-keep names its container after the target: a name Docker would refuse is made
    one it takes; a kept agent that cannot start leaves no world-writable socket folder."""
    targets = write_matrix(tmp_path, f"""
        [targets."odd+name"]
        image = "{BOOKWORM}"
        [targets.broken]
        image = "{BOOKWORM}"
        python = "python-missing"
    """).targets
    ctl = Controller([targets["odd+name"], targets["broken"]], print, keep=True)
    try:
        running = ctl.get("odd+name")
        assert running.client.roundtrip(abs, (-3,), {}, "cloudpickle", 20).result == 3
        with pytest.raises(prs.TargetUnavailable, match="exited before its agent started"):
            ctl.get("broken")
        assert not keep_dir(targets["broken"], BOOKWORM).exists()
    finally:
        ctl.shutdown()
        for kept in docker_client.containers.list(all=True, filters={"label": [L_KEEP, f"{L_SESSION}={ctl.session}"]}):
            kept.remove(force=True)


@pytest.mark.docker
def test_a_dockerfile_that_fails_at_step_4_of_5_leaves_no_intermediate_image(docker_client, tmp_path):
    """Steps 2 and 3 were committed as images before step 4 failed: the build removes them.
    (No RUN step: this machine's engine has no bridge network for one to run in.)"""
    import uuid

    from pytest_remote_serial.host.images import BuildFailed, ImageBuilder

    mark = uuid.uuid4().hex  # never in any build cache: every step of this build is its own
    (tmp_path / "matrix").mkdir()
    (tmp_path / "matrix" / "data.txt").write_text(mark)
    (tmp_path / "matrix" / "Dockerfile").write_text(
        f"FROM {BOOKWORM}\nCOPY data.txt /tmp/data.txt\nENV MARK={mark}\nCOPY missing.txt /tmp/\nLABEL never=1\n")
    target = write_matrix(tmp_path, '[targets.failing]\ndockerfile = "Dockerfile"\n').targets["failing"]
    with pytest.raises(BuildFailed, match="missing.txt") as info:
        ImageBuilder(docker_client, print).ensure(target)
    steps = [word for line in str(info.value).splitlines() if "---> " in line
             for word in [line.split("--->")[1].strip()] if " " not in word]
    base, made = steps[0], steps[1:]
    assert len(made) == 2 and docker_client.images.get(base)  # the FROM image stays, of course
    for image in made:
        with pytest.raises(docker_errors.ImageNotFound):
            docker_client.images.get(image)
    ours = [image.id for image in docker_client.images.list(all=True)
            if any(mark in (step.get("CreatedBy") or "") for step in _history(docker_client, image.id))]
    assert not ours


def _history(client, image_id: str) -> list[dict]:
    import docker.errors

    try:
        return client.api.history(image_id)
    except docker.errors.NotFound:  # removed meanwhile (another suite's build)
        return []


def spew(mib):
    import os

    block = b"x" * (1 << 20)
    for _ in range(mib):
        os.write(1, block)
    return mib


def last_words():
    """A line on stderr (the agent's), then SIGKILL to the agent (this call's parent)."""
    import os
    import signal
    import sys

    sys.stderr.write("the last words before the end\n")
    sys.stderr.flush()
    os.kill(os.getppid(), signal.SIGKILL)


def test_what_an_interpreter_targets_calls_write_is_bounded_on_the_host(tmp_path):
    """The agent's output was a file that a call writing 1 GiB to fd 1 grew to 1 GiB; now only
    its tail is kept (in memory), and it names the agent's death."""
    ctl = Controller(write_matrix(tmp_path, f'[targets.here]\ninterpreter = "{sys.executable}"\n').select(["here"]),
                     print)
    try:
        remote = remote_on(ctl, "here", timeout=60)
        folder = Path(remote.call(os.getcwd, serializer="cloudpickle"))  # the agent's own prs-* folder
        assert folder.name.startswith("prs-")
        rt = remote.roundtrip(spew, 256, serializer="source")
        assert (rt.outcome, rt.result) == ("ok", 256), rt.error
        written = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
        assert written < 1 << 20
        start = time.monotonic()
        rt = remote.roundtrip(last_words, serializer="source")
        if rt.outcome == "ok":  # (where the call's process answered before its parent's death was seen)
            rt = remote.roundtrip(abs, -1, serializer="source")
        assert rt.outcome == "crash", rt.describe()
        assert "the interpreter" in rt.error["message"] and "killed by signal 9 (SIGKILL)" in rt.error["message"]
        assert "the last words before the end" in rt.error["message"] and len(rt.error["message"]) < 2000
        assert time.monotonic() - start < 10
    finally:
        ctl.shutdown()
    assert not folder.exists()


@pytest.mark.docker
def test_what_a_containers_calls_write_is_bounded_in_its_log(docker_client, tmp_path):
    """An engine's json-file log keeps all a container writes unless its owner capped it; the
    plugin's containers cap it themselves (they only ever need its last lines)."""
    if docker_client.info().get("LoggingDriver") != "json-file":
        pytest.skip("the engine's log driver is not json-file: its owner's choice is left as it is")
    ctl = Controller(load_matrix(ROOT).select(["py3.11"]), print)
    try:
        running = ctl.get("py3.11")
        rt = remote_on(ctl, "py3.11", timeout=60).roundtrip(spew, 64, serializer="source")
        assert (rt.outcome, rt.result) == ("ok", 64), rt.error
        info = docker_client.api.inspect_container(running.extra["container"])
        assert info["HostConfig"]["LogConfig"]["Config"].get("max-size")
        log = Path(info["LogPath"])
        if os.access(log, os.R_OK):
            assert log.stat().st_size < 4 << 20
    finally:
        ctl.shutdown()
