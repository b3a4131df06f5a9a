"""Replies that cannot be forged by the call (issue 24, item 4): the process that runs a call's
code, and whatever it forks however it forks, never holds the host connection and cannot trace
the agent; a reply reaches the host only as the one frame answering the request it was handed.

Three routes, each of which answered a later request on the agent before the relay (999 and 777
came back as ``ok``, ptrace attached): a call that forges the next request's reply, a grandchild
forked past Python's at-fork hooks that answers later, and an isolated call that traces the
agent. Real targets: every container target, and ``local`` where the probe does not touch the
host (forging a reply does not; tracing the agent runs in containers only).
"""

from __future__ import annotations

import time

import pytest
from helpers import ROOT

from pytest_remote_serial.fixture import CallOptions, Remote
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import load_matrix

CONTAINERS = ["py3.9", "py3.11", "py3.13", "py3.14", "py3.15", "pypy3.11"]
TARGETS = CONTAINERS + ["local"]
MODES = {"isolated": True, "inline": False}


@pytest.fixture(scope="module")
def agents(docker_client):
    ctl = Controller(load_matrix(ROOT).select(TARGETS), print)
    ctl.start_all()
    yield ctl
    ctl.shutdown()


def on(ctl: Controller, target: str, isolate: bool) -> Remote:
    return Remote(ctl.get(target), CallOptions(timeout=20, isolate=isolate), False, lambda rt: None,
                  restart=lambda: ctl.get(target))


def add(a, b):
    return a + b


def forge_the_next_reply(value):
    """Patches the channel the call's answer goes out on: after its own reply, it writes one
    for the next request id, carrying ``value`` as an ``ok`` result."""
    import sys

    wire = sys.modules["_prs_agent.wire"]
    payloads = sys.modules["_prs_agent.payloads"]
    real = wire.Channel.send

    def send(self, header, buffers=()):
        real(self, header, buffers)
        if header.get("op") == "result" and header.get("id") is not None:
            wire.Channel.send = real
            forged = dict(header, id=header["id"] + 1, outcome="ok", result_type="builtins.int")
            forged.pop("error", None)
            forged.pop("buffer_kinds", None)
            real(self, forged, payloads.dump_result(value, 5))

    wire.Channel.send = send
    return 0


def fork_a_raw_answerer(value):
    """A grandchild forked by libc's fork, past the at-fork hooks that close what the call must
    not keep. In a session of its own it waits (up to 5 s) for the next request on every channel
    the call's callers hold, and answers it first: an ``ok`` reply carrying ``value`` for that request's
    id, read off the frame without taking it. Then it exits (nothing is left on ``local``)."""
    import ctypes
    import os
    import select
    import socket
    import struct
    import sys
    import time

    wire = sys.modules["_prs_agent.wire"]
    payloads = sys.modules["_prs_agent.payloads"]
    envelope = sys.modules["_prs_agent.envelope"]
    channels = []  # the ones the frames that called this call hold (gc.freeze hides the rest)
    frame = sys._getframe()
    while frame is not None:
        channels += [v for v in frame.f_locals.values() if isinstance(v, wire.Channel) and v not in channels]
        frame = frame.f_back
    if ctypes.CDLL(None).fork() == 0:
        try:
            os.setsid()
            end = time.monotonic() + 5
            while channels and time.monotonic() < end:
                ready = select.select([c.rfd for c in channels], [], [], 0.2)[0]
                for channel in [c for c in channels if c.rfd in ready]:
                    channels.remove(channel)
                    try:
                        sock = socket.socket(fileno=channel.rfd)
                        try:
                            head = sock.recv(wire.FRAME_SIZE, socket.MSG_PEEK)
                        finally:
                            sock.detach()
                        rid = struct.unpack("!BQII", head)[1] - 1
                        channel.send({"op": "result", "id": rid, "phases": {}, "outcome": "ok",
                                      "result_type": "builtins.int", "envelope": envelope.reply_envelope()},
                                     payloads.dump_result(value, 5))
                    except (OSError, struct.error):  # not a socket, closed: nothing to answer on
                        pass
        finally:
            os._exit(0)
    return "forked"


def trace_the_agent():
    """What this call can reach of its parent: ptrace, its memory, its descriptors."""
    import ctypes
    import os

    ppid = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    seized = libc.ptrace(0x4206, ppid, 0, 0) == 0  # PTRACE_SEIZE: attaches without stopping it
    found = {"ptrace": seized if seized else os.strerror(ctypes.get_errno())}
    try:
        with open("/proc/%d/mem" % ppid, "rb") as fh:
            fh.read(0)
        found["mem"] = True
    except OSError as exc:
        found["mem"] = exc.strerror
    try:
        found["fds"] = len(os.listdir("/proc/%d/fd" % ppid))
    except OSError as exc:
        found["fds"] = exc.strerror
    return found


def assert_the_agent_answers_for_itself(ctl: Controller, target: str) -> None:
    """Each later call, isolated and inline, gets its own answer (never 999 or 777)."""
    for isolate in (True, False, True):
        rt = on(ctl, target, isolate).roundtrip(add, 1, 2, serializer="source")
        assert (rt.outcome, rt.result) == ("ok", 3), rt.describe()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", TARGETS)
def test_a_call_cannot_answer_the_next_request(agents, target, mode):
    rt = on(agents, target, MODES[mode]).roundtrip(forge_the_next_reply, 999, serializer="source")
    # Its own answer stands, or, where the extra frame came before the answer was passed on,
    # the call is a crash named for what it did.
    if rt.outcome != "ok":
        assert rt.outcome == "crash" and rt.error["type"] == "forged_reply", rt.describe()
        assert "does not answer request" in rt.error["message"]
    else:
        assert rt.result == 0
    assert_the_agent_answers_for_itself(agents, target)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", TARGETS)
def test_a_raw_forked_grandchild_cannot_answer_a_later_request(agents, target, mode):
    rt = on(agents, target, MODES[mode]).roundtrip(fork_a_raw_answerer, 777, serializer="source")
    assert (rt.outcome, rt.result) == ("ok", "forked"), rt.describe()
    time.sleep(0.3)  # the grandchild waits for the next request by now
    assert_the_agent_answers_for_itself(agents, target)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", CONTAINERS)
def test_a_call_cannot_trace_the_agent(agents, target, mode):
    found = on(agents, target, MODES[mode]).call(trace_the_agent, serializer="source")
    assert found == {"ptrace": "Operation not permitted", "mem": "Permission denied",
                     "fds": "Permission denied"}, found
