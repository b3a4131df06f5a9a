"""Faults named for what they are, and promptly (issue 27): the true cause of a crash, never
an earlier one; a timeout within about a second past its deadline, however the call resists.

Real containers with small limits. Each bound on time is measured here, generous enough for a
loaded 2-core machine, and far below what the fault cost before (timeout + 15 s of grace).
"""

from __future__ import annotations

import pytest
from helpers import ROOT, allocate, write_matrix

from pytest_remote_serial.fixture import CallOptions, Remote
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.images import image_tag
from pytest_remote_serial.host.matrix import load_matrix

BOOKWORM = image_tag(load_matrix(ROOT).targets["py3.11"])  # an image recipe: nothing to build


@pytest.fixture
def small(docker_client, tmp_path):
    """A bookworm container with 192 MiB of memory."""
    ctl = Controller(write_matrix(tmp_path, f"""
        [targets.small]
        image = "{BOOKWORM}"
        memory = "192m"
    """).select(["small"]), print)
    yield ctl
    ctl.shutdown()


def on(ctl: Controller, name: str, timeout: float = 30.0, isolate: bool = True) -> Remote:
    return Remote(ctl.get(name), CallOptions(timeout=timeout, isolate=isolate), False, lambda rt: None,
                  restart=lambda: ctl.get(name))


def kill_own_process():
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.docker
def test_a_crash_after_an_earlier_oom_is_named_for_its_own_cause(small):
    """The engine's OOMKilled stays set once any process of the container was OOM-killed: an
    unrelated death of the agent later is not the OOM killer's, and a second real one still is."""
    isolated, inline = on(small, "small"), on(small, "small", isolate=False)
    rt = isolated.roundtrip(allocate, 400, serializer="source")
    assert rt.outcome == "crash" and rt.error.get("oom"), rt.describe()
    rt = inline.roundtrip(kill_own_process, serializer="source")  # the agent itself, SIGKILLed
    assert rt.outcome == "crash", rt.describe()
    assert "out-of-memory" not in rt.error["message"], rt.error["message"]
    assert "killed by signal 9, SIGKILL" in rt.error["message"]
    # A fresh agent: OOM-kill a call, then the agent itself, which is the OOM killer's again.
    assert isolated.roundtrip(allocate, 400, serializer="source").error.get("oom")
    rt = inline.roundtrip(allocate, 400, serializer="source")
    assert rt.outcome == "crash" and "killed by the out-of-memory killer at its memory limit (192m)" in \
        rt.error["message"], rt.describe()
    assert isolated.call(abs, -5, serializer="source") == 5  # and the target lives on

