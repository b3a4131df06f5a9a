"""The wire format (``remote/wire.py``'s ``Channel``): a binary prefix, JSON only for the rest.

Both ends import the same module, so these run the real code on a socket pair.
"""

from __future__ import annotations

import gc
import math
import re
import socket
import threading
import time

import pytest

from pytest_remote_serial.host import codecs, transport, trust
from pytest_remote_serial.host.client import AgentClient
from pytest_remote_serial.host.transport import SPIN_ENV, AgentLost, SocketChannel, spin_window
from pytest_remote_serial.remote import buffers, payloads, protocol, serve, spin, wire


@pytest.fixture
def ends():
    a, b = socket.socketpair()
    yield SocketChannel(a), wire.Channel(b.fileno(), b.fileno())
    a.close()
    b.close()


@pytest.mark.parametrize("header", [
    {"op": "call", "id": 7, "serializer": "cloudpickle", "timeout": 2.5, "isolate": False},
    {"op": "hello", "protocol": protocol.PROTOCOL, "python": "3.11.2", "cpus": 2},
    {"op": "result", "id": 0, "outcome": "ok", "phases": {"load": 1e-05}},
    {"op": "echo", "id": 2**40},
    {"op": "not-a-known-op", "id": 3, "x": [1, "two"]},
])
def test_a_header_and_its_buffers_arrive_as_sent(ends, header):
    host, far = ends
    buffers = [b"stream", bytearray(b"\x00" * 70000), memoryview(b"abc")]
    host.send(header, buffers)
    got = far.recv_header(cache=True)
    assert got == dict(header, id=header.get("id"), buffers=[6, 70000, 3])
    assert [bytes(b) for b in far.recv_buffers(got)] == [bytes(b) for b in buffers]


def test_the_binary_prefix_carries_op_id_and_sizes_and_json_only_the_rest(ends):
    frame = wire.encode_frame({"op": "call", "id": 5, "timeout": 1.0}, [3, 4])
    code, rid, rest, nbuf = wire._FRAME.unpack_from(frame)
    assert (protocol.OPS[code], rid - 1, nbuf) == ("call", 5, 2)
    assert frame[wire.FRAME_SIZE + 16:] == b'{"timeout":1.0}' and rest == len(b'{"timeout":1.0}')
    assert wire.encode_frame({"op": "echo", "id": 1}, [])[wire.FRAME_SIZE:] == b""  # nothing to encode


def test_a_header_encoded_once_is_sent_as_is(ends):
    host, far = ends
    header = {"op": "call", "serializer": "pickle", "timeout": 3.0}
    header["_rest"] = wire.encode_frame(header, [])[wire.FRAME_SIZE:]
    host.send(dict(header, id=1), [b"p"])
    assert far.recv_header() == {"op": "call", "id": 1, "serializer": "pickle", "timeout": 3.0, "buffers": [1]}


def test_decoded_headers_are_cached_but_never_shared(ends):
    host, far = ends
    for rid in (1, 2):
        host.send({"op": "call", "id": rid, "serializer": "pickle"})
    first = far.recv_header(cache=True)
    first["serializer"] = "changed by the first call"
    second = far.recv_header(cache=True)
    assert (second["id"], second["serializer"]) == (2, "pickle")


@pytest.mark.parametrize("frame, why", [
    (wire._FRAME.pack(len(protocol.OPS), 1, 0, 0), "op"),
    (wire._FRAME.pack(2, 1, (64 << 20) + 1, 0), "header of"),
    (wire._FRAME.pack(2, 1, 2, 0) + b"[]", "not an object"),
    (wire._FRAME.pack(2, 1, 5, 0) + b"{}{}x", "not an object"),
    (wire._FRAME.pack(2, 1, 3, 0) + b"{x}", "not JSON"),
    (wire._FRAME.pack(2, 1, 3, 0) + b"\xff{}", "not JSON"),
    (wire._FRAME.pack(protocol.OPS.index("result"), 1, 8, 0) + b"\0" * 8, "without its phases"),
])
def test_a_corrupt_frame_is_an_eof_error_not_a_crash(ends, frame, why):
    host, far = ends
    host.sock.sendall(frame)
    with pytest.raises(EOFError, match=why):
        far.recv_header()


def test_a_connection_closed_between_frames_is_channel_closed(ends):
    host, far = ends
    host.sock.close()
    with pytest.raises(wire.ChannelClosed):
        far.recv_header()


def test_a_frame_announcing_more_memory_than_there_is_ends_the_stream_not_the_host(ends):
    host, far = ends
    far.write_all([wire.encode_frame({"op": "result", "id": 1}, [1 << 50])])
    header = host.recv_header()
    with pytest.raises(EOFError, match="announced 1125899906842624 bytes, which cannot be allocated"):
        host.recv_buffers(header)


def test_a_result_s_phases_travel_as_doubles_not_json(ends):
    host, far = ends
    phases = {"load": 0.000583838000011383, "call": 3.375000005689799e-06, "result": 8.7e-05}
    frame = wire.encode_frame({"op": "result", "id": 1, "outcome": "ok", "phases": phases}, [])
    assert b"load" not in frame and b'{"outcome":"ok"}' in frame
    far.write_all([frame])
    assert host.recv_header()["phases"] == phases  # exactly: no decimal round trip


def test_a_phase_not_measured_stays_absent_and_others_stay_json(ends):
    host, far = ends
    far.send({"op": "result", "id": 1, "phases": {"load": 0.5}})
    far.send({"op": "result", "id": 2, "phases": {}})
    far.send({"op": "result", "id": 3, "phases": {"call": 1.0, "wait": 2.0}})
    got = [host.recv_header()["phases"] for _ in range(3)]
    assert got == [{"load": 0.5}, {}, {"call": 1.0, "wait": 2.0}]
    assert not any(math.isnan(v) for p in got for v in p.values())


def test_a_read_gives_up_at_its_deadline_while_the_agent_stays_silent(ends):
    host, far = ends
    host.deadline = time.monotonic() + 0.3
    t0 = time.monotonic()
    with pytest.raises(AgentLost, match="before the deadline"):
        host.recv_header()
    waited = time.monotonic() - t0
    assert 0.3 <= waited < 0.3 + 10 * host.SLICE_S  # not before it, and not much after


def test_an_answer_slower_than_many_read_slices_is_read_whole(ends):
    host, far = ends
    host.deadline = time.monotonic() + 30
    later = threading.Timer(6 * host.SLICE_S, far.send, ({"op": "echo", "id": 4}, [b"late"]))
    later.start()
    try:
        header, buffers = host.recv()
    finally:
        later.join()
    assert (header["id"], [bytes(b) for b in buffers]) == (4, [b"late"])


@pytest.mark.parametrize("serializer", ["pickle", "cloudpickle", "dill"])
def test_a_dump_and_a_reply_load_leave_no_garbage_cycles(serializer):
    """The collector would have to find them after every call, on both ends."""
    codec = codecs.get_codec(serializer)
    policy = trust.Policy(trusted=False, listed=(), sent=set)
    reply = buffers.dump_with_buffers(__import__("pickle").Pickler, ValueError("x", b"y" * 70000))
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(20):
            codec.dumps((abs, (-1, b"z" * 70000), {"k": [b"w" * 70000]}), buffers.DeviceCopies())
            trust.load_reply(reply, policy, buffers.DeviceCopies())
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()


class _MethodHooks:
    """As dill's picklers, and every pickler from Python 3.13: the hooks are methods."""

    def persistent_id(self, obj):
        return None

    def persistent_load(self, pid):
        raise AssertionError(pid)


@pytest.mark.parametrize("hooks", [(), (_MethodHooks,)], ids=["plain", "methods"])
def test_the_agent_s_dump_and_load_of_buffers_leave_no_garbage_cycles(hooks):
    import pickle

    pickler = type("P", (*hooks, pickle.Pickler), {})
    unpickler = type("U", (*hooks, pickle.Unpickler), {})
    out = buffers.dump_with_buffers(pickler, (b"a" * 70000, bytearray(70000)))
    header = {"buffer_kinds": out.kinds}
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(20):
            buffers.dump_with_buffers(pickler, (b"a" * 70000, bytearray(70000)))
            assert payloads._unpickle(unpickler, out[0], out[1:], header) == (b"a" * 70000, bytearray(70000))
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()


@pytest.mark.parametrize(("cpus", "value", "seconds"), [
    (2, None, 200e-6), (2, "", 200e-6), (2, "0", 0.0), (2, " 75 ", 75e-6), (2, "10000", 0.01),
    (1, None, 0.0), (1, "300", 300e-6),  # on one CPU the host's spin would hold the CPU the agent needs
])
def test_the_spin_window_comes_from_the_environment_and_the_cpus(monkeypatch, cpus, value, seconds):
    monkeypatch.setattr(transport, "cpus", lambda: cpus)
    if value is None:
        monkeypatch.delenv(SPIN_ENV, raising=False)
    else:
        monkeypatch.setenv(SPIN_ENV, value)
    assert spin_window() == pytest.approx(seconds)


def _answer_after(far, delay):
    def answer():
        header = far.recv_header()
        far.recv_buffers(header)
        time.sleep(delay)
        far.send({"op": "echo", "id": header["id"]}, [b"x"])
    return threading.Thread(target=answer)


def _echo_after(host, far, delay, rid=1):
    worker = _answer_after(far, delay)
    worker.start()
    host.deadline = time.monotonic() + 30
    host.send({"op": "echo", "id": rid}, [b"x"])
    assert host.recv()[0]["id"] == rid
    worker.join()


def test_the_host_does_not_spin_through_answers_slower_than_its_window(ends):
    """Spin-then-block is adaptive: after a few slow answers, the next waits sleep at once."""
    host, far = ends
    host.spin_s = 0.01  # the longest window there is
    cpu = time.thread_time()
    for rid in range(20):
        _echo_after(host, far, 0.03, rid)
    used = time.thread_time() - cpu
    assert used < 0.08, f"{used:.3f}s of CPU: spinning through every wait would take 0.2 s"
    assert not host._waits[("echo", None)].worth()


def test_one_slow_answer_does_not_stop_the_spinning(ends):
    """A hiccup (a preempted agent, one slow call) among quick answers changes nothing."""
    host, far = ends
    host.spin_s = 0.01
    for delay in (0.0, 0.03, 0.0, 0.03):
        _echo_after(host, far, delay)
    assert host._waits[("echo", None)].worth()


def test_a_quick_answer_makes_a_slow_kind_quick_again(ends):
    host, far = ends
    host.spin_s = 0.01
    for _ in range(spin.QuickWaits.MISSES):
        _echo_after(host, far, 0.03)
    assert not host._waits[("echo", None)].worth()
    _echo_after(host, far, 0.0)  # slept, but came within twice the window
    assert host._waits[("echo", None)].worth()


@pytest.mark.parametrize(("window", "seconds"), [(None, 0.0), ("junk", 0.0), (-1, 0.0), (0.0002, 0.0002), (5, 0.01),
                                                 (float("nan"), 0.0), (float("inf"), 0.01)])
def test_the_agent_never_spins_longer_than_10_ms_whatever_the_header_says(window, seconds):
    waiting = spin.RequestSpin()
    waiting.answered(window)
    assert waiting.window == seconds


def _hello(**changes):
    return dict(serve.hello(), **changes)


@pytest.mark.parametrize(("hello", "says"), [
    (_hello(protocol=2), f"protocol 2, where this host speaks {protocol.PROTOCOL} (an agent of another "
                         "pytest-remote-serial version"),
    (_hello(implementation="Py Py"), "implementation = 'Py Py'"),
    (_hello(implementation=None), "implementation = None"),
    (_hello(cache_tag=7), "cache_tag = 7"),
    (_hello(cpus="x"), "cpus = 'x'"),
    (_hello(cpus=0), "cpus = 0"),
    (_hello(python=None), "python = None"),
    ({"op": "result", "id": 1}, "op = 'result' instead of 'hello'"),
])
def test_an_agent_whose_hello_is_not_this_host_s_is_refused_naming_why(ends, hello, says):
    host, far = ends
    far.send(hello)
    with pytest.raises(AgentLost, match=f"the agent of t said hello with {re.escape(says)}"):
        AgentClient(host, "t")
    assert host.sock.fileno() == -1  # closed: nothing left open for a refused agent


def test_an_agent_that_describes_itself_in_another_shape_is_named(ends):
    host, far = ends
    far.send(serve.hello())
    client = AgentClient(host, "t")
    answer = threading.Thread(target=lambda: (far.recv_header(), far.send(
        {"op": "describe", "id": 1, "packages": ["numpy"]})))
    answer.start()
    with pytest.raises(AgentLost, match=r"described itself with packages = \['numpy'\]"):
        client.describe()
    answer.join()


def test_this_host_s_agent_says_hello_as_the_host_expects(ends):
    host, far = ends
    far.send(serve.hello())
    assert AgentClient(host, "t").hello["protocol"] == protocol.PROTOCOL
