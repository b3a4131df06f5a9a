"""Faults named for what they are, and promptly (issue 27): the true cause of a crash, never
an earlier one; a timeout within about a second past its deadline, however the call resists.

Real containers with small limits. Each bound on time is measured here, generous enough for a
loaded 2-core machine, and far below what the fault cost before (timeout + 15 s of grace).
"""

from __future__ import annotations

import sys
import time

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



def add(a, b):
    return a + b


def stop_the_agent():
    """SIGSTOP to the process that runs this call's parent side (the agent)."""
    import os
    import signal

    os.kill(os.getppid(), signal.SIGSTOP)
    return "sent"


@pytest.fixture(params=["interpreter", "container"])
def either(request, tmp_path):
    """A target of each kind the host probes differently: a process here, a container."""
    if request.param == "container":
        request.getfixturevalue("docker_client")
        body = f'[targets.either]\nimage = "{BOOKWORM}"\n'
    else:
        body = f'[targets.either]\ninterpreter = "{sys.executable}"\n'
    ctl = Controller(write_matrix(tmp_path, body).select(["either"]), print)
    yield ctl
    ctl.shutdown()


def test_a_call_that_stops_the_agent_is_named_within_a_second_of_the_timeout(either):
    """The agent cannot answer once stopped: the host asks why as soon as an answer is a second
    late, names it, and the target's next call runs on a fresh agent (before: timeout + 15 s)."""
    remote = on(either, "either", timeout=3)
    ends = []
    for func, args in ((stop_the_agent, ()), (add, (1, 2))):
        start = time.monotonic()
        rt = remote.roundtrip(func, *args, serializer="source")
        ends.append((rt, time.monotonic() - start))
        if rt.outcome != "ok":
            break
    rt, took = ends[-1]  # the call the stopped agent could not answer (this one, or the next)
    assert rt.outcome == "crash", rt.describe()
    assert "is stopped (process state T: SIGSTOP or SIGTSTP" in rt.error["message"], rt.error["message"]
    assert took < 3 + 4, took
    assert remote.call(add, 2, 3, serializer="source") == 5


def lower_own_nofile():
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (3, 3))
    return "lowered"


def nofile():
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)


def lower_the_agents_nofile():
    """prlimit on the agent (this call's parent): it can then make no pipe for a new process."""
    import os
    import resource

    resource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (3, 3))
    return "lowered"


def test_an_inline_call_that_lowers_its_open_files_limit_never_reaches_an_isolated_call(either):
    """isolate=False state persists for inline calls, and only for them."""
    isolated, inline = on(either, "either"), on(either, "either", isolate=False)
    before = isolated.call(nofile, serializer="source")
    assert inline.call(lower_own_nofile, serializer="source") == "lowered"
    for _ in range(6):  # past the spares forked before it, into new ones
        start = time.monotonic()
        rt = isolated.roundtrip(nofile, serializer="source")
        assert (rt.outcome, rt.result) == ("ok", before), rt.describe()
        assert time.monotonic() - start < 5


def test_an_agent_that_can_no_longer_start_a_process_is_replaced(either):
    """A call lowered the agent's own open-files limit: at most one later call is refused, named,
    and the agent is replaced (before: every later call, 2 s each, for the rest of the session)."""
    remote = on(either, "either")
    assert remote.call(lower_the_agents_nofile, serializer="source") == "lowered"
    refused = []
    for _ in range(6):
        start = time.monotonic()
        rt = remote.roundtrip(add, 1, 2, serializer="source")
        if rt.outcome != "ok":
            refused.append((rt, time.monotonic() - start))
    assert len(refused) <= 1, [rt.describe() for rt, _ in refused]
    for rt, took in refused:
        assert rt.outcome == "crash" and "could not start a process for the call" in rt.error["message"]
        assert "will be restarted for the next call" in rt.error["message"] and took < 8
