"""Call integrity (issue 12): every reply belongs to its call, and nothing a call started survives it.

Real containers: a call forks, daemonizes, forges replies, or outlives its timeout; the next
innocent call must still get its own answer, from the same agent.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from helpers import ROOT, remote_on

from pytest_remote_serial.fixture import CallOptions, Remote
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import load_matrix
from pytest_remote_serial.remote.protocol import OPS
from pytest_remote_serial.remote.wire import _FRAME, encode_frame

pytestmark = pytest.mark.docker
TARGETS = ["py3.9", "py3.11", "py3.13"]


@pytest.fixture(scope="module")
def ctl(docker_client):
    controller = Controller(load_matrix(ROOT).select(TARGETS), print)
    controller.start_all()
    yield controller
    controller.shutdown()


def remote(ctl, name, timeout=20.0):
    return remote_on(ctl, name, timeout)


def add(a, b):
    return a + b


def agent_pid(ctl, target):
    return ctl.get(target).client.hello["pid"]


def _frame(header: dict) -> bytes:
    return encode_frame(header, [])


def write_on_every_socket(frame):
    """Inside a call: write ``frame`` on every socket this process holds (the agent's connection)."""
    import os

    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                os.write(int(name), frame)
        except OSError:
            pass


def forge_from_a_leftover(how, frame):
    """Leave a process behind that answers the *next* call with ``frame`` on every socket fd."""
    import os
    import time

    def later():
        time.sleep(0.5)
        write_on_every_socket(frame)
        os._exit(0)

    if how == "c-fork":  # no Python at-fork hooks run: the child keeps every descriptor
        import ctypes

        pid = ctypes.CDLL(None).fork()
    else:
        pid = os.fork()
    if pid == 0:
        if how == "setsid":
            os.setsid()
        later()
    return 0


@pytest.mark.parametrize("how", ["fork", "c-fork", "setsid"])
@pytest.mark.parametrize("target", TARGETS)
def test_a_process_left_by_one_call_never_answers_the_next(ctl, target, how):
    r = remote(ctl, target)
    client = ctl.get(target).client
    n = next(client._ids)  # this call gets n + 1, the innocent one after it n + 2
    forged = _frame({"op": "result", "id": n + 2, "outcome": "ok", "phases": {}})
    assert r.call(forge_from_a_leftover, how, forged, serializer="source") == 0
    time.sleep(1.0)  # the leftover would have written by now
    assert r.call(add, 1, 2, serializer="source") == 3
    assert r.call(add, 2, 2, serializer="source") == 4
    assert ctl.get(target).client is client  # the same agent: nothing was out of step


def write_a_forged_reply(frame):
    """Answer from inside the call, with another request's id: on every socket it holds (none:
    the relay alone holds the connection) and on the pipe its own answer goes back on."""
    import os
    import sys
    import time

    write_on_every_socket(frame)
    wire = sys.modules["_prs_agent.wire"]
    caller = sys._getframe()
    while caller is not None:
        for value in list(caller.f_locals.values()):
            if isinstance(value, wire.Channel):
                os.write(value.wfd, frame)
        caller = caller.f_back
    time.sleep(30)


@pytest.mark.parametrize("target", ["py3.9", "py3.13"])
def test_a_reply_with_the_wrong_id_is_never_a_result_and_the_agent_serves_on(ctl, target):
    """The relay passes on only the frame answering the request it handed: the call is a crash
    named ``forged_reply`` at once, and the same agent answers the next call."""
    r = remote(ctl, target, timeout=10)
    before = ctl.get(target).client
    start = time.monotonic()
    rt = r.roundtrip(write_a_forged_reply, _frame({"op": "result", "id": 999, "outcome": "ok", "phases": {}}),
                     serializer="source")
    assert time.monotonic() - start < 5
    assert rt.outcome == "crash" and rt.error["type"] == "forged_reply", rt.describe()
    assert "does not answer request" in rt.error["message"]
    assert remote(ctl, target).call(add, 1, 2, serializer="source") == 3
    assert ctl.get(target).client is before


def fork_then_sleep(seconds):
    import os
    import time

    if os.fork() == 0:
        time.sleep(300)
        os._exit(0)
    time.sleep(seconds)


def fork_then_crash():
    import os
    import signal
    import time

    if os.fork() == 0:
        time.sleep(300)
        os._exit(0)
    os.kill(os.getpid(), signal.SIGSEGV)


def processes_named(word):
    import os

    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if word.encode() in fh.read():
                        found.append(int(pid))
            except OSError:
                pass
    return found


@pytest.mark.parametrize("target", TARGETS)
def test_a_forking_call_that_times_out_is_a_timeout_in_time_and_the_agent_lives_on(ctl, target):
    before = agent_pid(ctl, target)
    start = time.monotonic()
    rt = remote(ctl, target, timeout=1.0).roundtrip(fork_then_sleep, 300, serializer="source")
    took = time.monotonic() - start
    assert rt.outcome == "timeout", rt.describe()
    assert took < 1.0 + 1.5, took
    assert remote(ctl, target).call(add, 1, 2, serializer="source") == 3
    assert agent_pid(ctl, target) == before


@pytest.mark.parametrize("target", TARGETS)
def test_a_forking_call_that_crashes_is_a_crash_at_once_and_the_agent_lives_on(ctl, target):
    before = agent_pid(ctl, target)
    start = time.monotonic()
    rt = remote(ctl, target, timeout=10.0).roundtrip(fork_then_crash, serializer="source")
    assert rt.outcome == "crash" and rt.error["signal"] == signal.SIGSEGV, rt.describe()
    assert time.monotonic() - start < 2.0
    assert remote(ctl, target).call(add, 1, 2, serializer="source") == 3
    assert agent_pid(ctl, target) == before


def start_sleepers():
    import subprocess

    subprocess.Popen(["sleep", "300"])
    subprocess.Popen(["sh", "-c", "setsid sleep 301 & sleep 302"])
    return "started"


@pytest.mark.parametrize("target", TARGETS)
def test_nothing_an_ok_call_started_survives_it(ctl, target):
    r = remote(ctl, target)
    assert r.call(start_sleepers, serializer="source") == "started"
    deadline = time.monotonic() + 2
    left = r.call(processes_named, "sleep\x0030", serializer="source")
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = r.call(processes_named, "sleep\x0030", serializer="source")
    assert not left


def test_non_isolated_calls_lose_the_connection_in_their_forks(ctl):
    r = Remote(ctl.get("py3.11"), CallOptions(isolate=False), False, lambda rt: None)
    client = ctl.get("py3.11").client
    n = next(client._ids)
    assert r.call(forge_from_a_leftover, "fork", _frame({"op": "result", "id": n + 2, "outcome": "ok"}),
                  serializer="source") == 0
    time.sleep(1.0)
    assert r.call(add, 1, 2, serializer="source") == 3
    assert ctl.get("py3.11").client is client


@pytest.mark.parametrize("when", ["mid-call", "idle", "idle, with an inline worker (after a non-isolated call)"])
def test_the_host_going_away_ends_the_agent_and_its_spares(tmp_path, when):
    """A kill -9'd run's agent does not run the call to its end, nor wait for a next one: the
    hang-up stops it, and its spares and inline worker with it."""
    import subprocess
    import sys
    import textwrap

    inline = "running.client.roundtrip(abs, (-1,), {}, 'cloudpickle', 30, False); " if "inline" in when else ""
    last = ("running.client.roundtrip(time.sleep, (120,), {}, 'cloudpickle', 300)" if when == "mid-call" else
            inline + "running.client.roundtrip(abs, (-1,), {}, 'cloudpickle', 30); "
            "print('IDLE', flush=True); time.sleep(120)")
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pytest_remote_serial.host.controller import Controller
        from pytest_remote_serial.host.matrix import local_target
        ctl = Controller([local_target()], print)
        running = ctl.get("local")
        print("AGENT", running.client.hello["pid"], flush=True)
        {last}
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    lines = iter(proc.stdout.readline, "")
    pid = int(next(line for line in lines if line.startswith("AGENT")).split()[1])
    if when != "mid-call":
        assert next(line for line in lines if line.startswith("IDLE"))
    time.sleep(1.0)
    spares = _children_of(pid)
    assert len(spares) >= (3 if "inline" in when else 1), "the agent had no spare (or no inline worker) forked"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") and not _zombie(p) for p in [pid, *spares]):
        time.sleep(0.1)
    assert not [p for p in [pid, *spares] if os.path.exists(f"/proc/{p}") and not _zombie(p)], \
        "the local agent or its spares outlived their run"


@pytest.mark.parametrize("frame", [b"\xff" * 17, _FRAME.pack(OPS.index("call"), 6, 3, 0) + b"[1]"],
                         ids=["corrupt prefix", "header not an object"])
def test_a_corrupt_request_ends_the_connection_at_once(frame):
    """The relay reads garbage where the next request's frame should start: the agent drops the
    connection (the host's next read is an end of stream, in well under a second), never hangs."""
    from pytest_remote_serial.host.matrix import local_target

    ctl = Controller([local_target()], print)
    try:
        client = ctl.get("local").client
        assert client.roundtrip(divmod, (7, 2), {}, "cloudpickle", 30).result == (3, 1)
        time.sleep(0.2)
        sock = client.channel.sock
        sock.sendall(frame)
        sock.settimeout(5)
        t0 = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - t0 < 2
    finally:
        ctl.shutdown()


def _children_of(pid: int) -> list[int]:
    """Every descendant (spares, the inline worker, what they started)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found += [int(x) for x in fh.read().split()]
    except FileNotFoundError:  # gone meanwhile
        return found
    return found + [d for child in found for d in _children_of(child)]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
