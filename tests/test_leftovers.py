"""Nothing left behind (issue 27): what a run made and could have removed is gone when it ends,
also when a start fails half-way; and nothing a call writes can grow without bound on the host.

Real containers and real builds; each test looks only at what its own run made (a parallel
suite's containers and folders on the same engine are none of its business).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from docker import errors as docker_errors
from helpers import ROOT

import pytest_remote_serial as prs
from pytest_remote_serial.host.backends.containers import L_KEEP, L_SESSION, keep_dir
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.images import image_tag
from pytest_remote_serial.host.matrix import load_matrix

pytestmark = pytest.mark.docker
BOOKWORM = image_tag(load_matrix(ROOT).targets["py3.11"])  # an image recipe: nothing to build


def write_matrix(folder: Path, body: str):
    (folder / "matrix").mkdir(exist_ok=True)
    (folder / "matrix" / "targets.toml").write_text(textwrap.dedent(body))
    return load_matrix(folder)


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
