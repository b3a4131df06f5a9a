"""Every outcome (docs/architecture.md, "Outcomes") on the ``local`` target: a fresh interpreter, no Docker needed.

Like cloudpickle's ``subprocess_pickle_echo`` tests, each one sends a real payload across a
real process boundary and asserts what came back.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import pytest_remote_serial as prs

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
import script_helpers  # noqa: E402


def make_adder(n):
    def add(x):
        return x + n

    return add


def test_closure_round_trips(remote):
    rt = remote.roundtrip(make_adder(2), 40)
    assert (rt.outcome, rt.result, rt.serializer, rt.fallback_from) == ("ok", 42, "cloudpickle", [])
    assert rt.payload_bytes > 0 and rt.result_bytes > 0
    assert set(rt.phases) == {"dump", "send", "load", "call", "result", "total"}
    assert rt.phases["total"] >= rt.phases["dump"] + rt.phases["load"]


def test_target_is_a_fresh_interpreter_of_the_same_python(remote):
    assert remote.target.name == "local"
    assert remote.target.python == ".".join(map(str, sys.version_info[:3]))
    assert remote.call(os.getpid) != os.getpid()
    assert remote.target.packages["cloudpickle"]


def test_test_folder_is_not_on_the_targets_path(remote):
    here = str(Path(__file__).parent)
    assert here not in remote.call(lambda: list(__import__("sys").path))


def test_call_error_is_rebuilt_with_remote_traceback(remote):
    def fail(x):
        raise ValueError(f"bad value {x}")

    with pytest.raises(ValueError, match="bad value 7") as info:
        remote.call(fail, 7)
    assert isinstance(info.value.__cause__, prs.outcomes.RemoteTraceback)
    assert "in fail" in info.value.remote_traceback
    rt = remote.roundtrip(fail, 1)
    assert rt.outcome == "call_error" and rt.error["phase"] == "call"


def test_unrebuildable_exception_becomes_remote_call_error(remote):
    def fail():
        class Local(Exception):
            def __reduce__(self):
                raise TypeError("no")

        raise Local("local only")

    with pytest.raises(prs.RemoteCallError, match="Local: local only"):
        remote.call(fail)


def test_exit_code_crash_then_the_target_lives_on(remote):
    with pytest.raises(prs.TargetCrashed) as info:
        remote.call(os._exit, 3)
    assert info.value.exit_code == 3 and info.value.signal is None
    assert remote.call(make_adder(1), 1) == 2


def test_signal_crash_is_named(remote):
    def segfault():
        import ctypes

        ctypes.string_at(0)

    rt = remote.roundtrip(segfault)
    assert rt.outcome == "crash"
    assert rt.error["signal"] == 11 and "SIGSEGV" in rt.error["message"]
    assert remote.call(make_adder(1), 1) == 2


@pytest.mark.remote(timeout=1)
def test_timeout_kills_the_call_not_the_target(remote):
    def spin():
        while True:
            pass

    start = time.monotonic()
    with pytest.raises(prs.RemoteTimeout, match="still running after 1s"):
        remote.call(spin)
    assert time.monotonic() - start < 10
    assert remote.call(make_adder(1), 1) == 2


def test_script_module_function_is_missing_module(remote):
    rt = remote.roundtrip(script_helpers.encode_query, "x", serializer="cloudpickle")
    assert rt.outcome == "missing_module"
    assert rt.module == "script_helpers"
    with pytest.raises(prs.MissingModuleError) as info:
        remote.call(script_helpers.encode_query, "x", serializer="cloudpickle")
    assert isinstance(info.value, prs.DeserializationError)
    assert info.value.module == "script_helpers"
    assert remote.call(script_helpers.encode_query, "x", serializer="cloudpickle-by-value") == [23]


def test_auto_falls_back_to_by_value_for_a_missing_module(remote):
    rt = remote.roundtrip(script_helpers.encode_query, "x")
    assert (rt.outcome, rt.result) == ("ok", [23])
    assert (rt.serializer, rt.fallback_from) == ("cloudpickle-by-value", ["cloudpickle"])
    assert rt.as_record()["fallback_from"] == ["cloudpickle"]


def test_auto_ends_the_ladder_on_a_call_error(remote):
    rt = remote.roundtrip(int, "nope")
    assert (rt.outcome, rt.serializer, rt.fallback_from) == ("call_error", "cloudpickle", [])


def test_unpicklable_argument_is_dump_error(remote):
    rt = remote.roundtrip(make_adder(1), threading.Lock())
    assert rt.outcome == "dump_error" and "cannot pickle" in rt.error["message"]
    assert rt.fallback_from == ["cloudpickle"] and rt.serializer == "source"  # auto tried both
    with pytest.raises(prs.SerializationError):
        remote.call(make_adder(1), threading.Lock(), serializer="cloudpickle")


def test_unloadable_result_is_result_error(remote):
    def local_class_instance():
        import pickle

        class Unloadable:
            def __reduce__(self):
                return (pickle.loads, (b"garbage",))

        return Unloadable()

    rt = remote.roundtrip(local_class_instance)
    assert rt.outcome == "result_error"
    assert "cannot load" in rt.error["message"]


def test_each_isolated_call_starts_clean(remote):
    def bump():
        import builtins

        builtins._prs_counter = getattr(builtins, "_prs_counter", 0) + 1
        return builtins._prs_counter

    assert [remote.call(bump) for _ in range(3)] == [1, 1, 1]


@pytest.mark.remote(isolate=False)
def test_non_isolated_calls_share_state(remote):
    def bump():
        import builtins

        builtins._prs_shared = getattr(builtins, "_prs_shared", 0) + 1
        return builtins._prs_shared

    first = remote.call(bump)
    assert remote.call(bump) == first + 1


def test_numpy_arrays_travel_out_of_band(remote):
    big = np.arange(1 << 20, dtype=np.float64)
    rt = remote.roundtrip(np.negative, big)
    assert rt.outcome == "ok"
    np.testing.assert_array_equal(rt.result, -big)
    assert rt.payload_bytes >= big.nbytes and rt.result_bytes >= big.nbytes
    fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    back = remote.call(np.copy, fortran, order="K")
    assert back.flags.f_contiguous and (back == fortran).all()


@pytest.mark.parametrize("serializer", ["pickle", "cloudpickle", "cloudpickle-by-value", "dill", "dill-recurse"])
def test_every_codec_round_trips_a_builtin(remote, serializer):
    rt = remote.roundtrip(divmod, 17, 5, serializer=serializer)
    assert (rt.outcome, rt.result, rt.serializer) == ("ok", (3, 2), serializer)


def test_pickle_codec_cannot_ship_a_closure(remote):
    assert remote.roundtrip(make_adder(1), 1, serializer="pickle").outcome == "dump_error"


def test_unknown_serializer_is_a_clear_error(remote):
    with pytest.raises(ValueError, match="unknown serializer 'yaml': use one of auto, pickle, cloudpickle"):
        remote.call(len, "x", serializer="yaml")


def test_map_keeps_order(remote):
    assert remote.map(pow, [(2, 3), (3, 2), (10, 0)]) == [8, 9, 1]


def test_envelope_names_the_cross_version_cause():
    from pytest_remote_serial.remote import diagnosis, envelope

    header = {"serializer": "cloudpickle", "envelope": {"python": "3.11.7", "magic": 3495}}
    if envelope.magic_number() == 3495:
        header["envelope"]["magic"] = 3413
    message = diagnosis.diagnose_load(header, TypeError("code() takes at most 16 arguments (18 given)"))
    assert "bytecode magic" in message and "use serializer='source'" in message


class Base:
    def __init__(self, x):
        self.x = x

    def value(self):
        return self.x


class Child(Base):
    def __init__(self, x):
        super().__init__(x * 10)

    def value(self):
        return super().value() + 1


@pytest.mark.parametrize("serializer", ["source", "json"])
def test_methods_using_super_ship_by_source(remote, serializer):
    assert remote.call(Child(3).value, serializer=serializer) == 31  # bound method: __class__ cell
    assert remote.call(Child.value, Child(4), serializer="source") == 41
    made = remote.call(Child, 2, serializer="source")
    assert type(made) is Child and made.value() == 21


def test_json_refuses_an_argument_it_would_change(remote):
    rt = remote.roundtrip(len, (1, 2), serializer="json")
    assert rt.outcome == "dump_error"
    assert "args[0] is a tuple and would arrive as a list" in rt.error["message"]
    rt = remote.roundtrip(sorted, {1: "a"}, serializer="json")
    assert "args[0] has the key 1 (int), which JSON turns into the string '1'" in rt.error["message"]


def test_json_result_that_changes_type_is_a_mismatch_not_ok(remote):
    rt = remote.roundtrip(divmod, 7, 2, serializer="json")
    assert (rt.outcome, rt.result) == ("result_error", [3, 1])
    assert "result is a tuple and would arrive as a list" in rt.error["message"]
    with pytest.raises(prs.ResultError, match="changed on the way"):
        rt.raise_for_outcome()
    assert remote.call(dict, a=[1, 2.5, None, True], serializer="json") == {"a": [1, 2.5, None, True]}


REPL_LINES = ["import sys", "def typed(a, b=2):", "    return a * b + 1", "", "twice = lambda q: q * 2"]


def test_readline_history_is_the_last_resort_for_source(remote):
    readline = pytest.importorskip("readline")
    saved = [readline.get_history_item(i) for i in range(1, readline.get_current_history_length() + 1)]
    readline.clear_history()
    try:
        for line in REPL_LINES:
            if line:
                readline.add_history(line)
        namespace = {"__name__": "__main__"}
        # What the classic REPL does: each statement compiled alone from "<stdin>".
        exec(compile("def typed(a, b=2):\n    return a * b + 1\n", "<stdin>", "single"), namespace)
        exec(compile("twice = lambda q: q * 2\n", "<stdin>", "single"), namespace)
        assert remote.call(namespace["typed"], 3, serializer="source") == 7
        assert remote.call(namespace["twice"], 4, serializer="source") == 8
        readline.clear_history()
        rt = remote.roundtrip(namespace["typed"], 3, serializer="source")
        assert rt.outcome == "dump_error" and "readline history no longer holds it" in rt.error["message"]
    finally:
        readline.clear_history()
        for line in saved:
            readline.add_history(line or "")


def test_a_function_typed_at_the_real_repl_ships_by_source(tmp_path):
    """A real interactive interpreter on a pseudo-terminal: readline records what is typed."""
    import pty
    import select
    import subprocess

    pytest.importorskip("readline")
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="dumb", PYTHONSTARTUP="", PYTHONPATH=str(Path(prs.__file__).parents[1]))
    proc = subprocess.Popen([sys.executable, "-i", "-q"], stdin=slave, stdout=slave, stderr=slave,
                            env=env, cwd=tmp_path, start_new_session=True)
    os.close(slave)
    typed = [*REPL_LINES,
             "from pytest_remote_serial.host.capsule import dumps_source",
             "print('CAPSULE', dumps_source((typed, twice)).hex(), 'END')", "exit()"]
    out = b""
    try:
        for line in typed:
            os.write(master, line.encode() + b"\n")
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        while b" END" not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    text = out.decode(errors="replace")
    assert "CAPSULE" in text and " END" in text, text[-2000:]
    capsule = bytes.fromhex(text.rsplit("CAPSULE", 1)[1].split()[0])
    from pytest_remote_serial.remote import payloads

    typed_fn, twice_fn = payloads._load_source(capsule, [], {})
    assert (typed_fn(3), typed_fn(3, b=5), twice_fn(21)) == (7, 16, 42)


# ----------------------------------------------------------------- the timer of non-isolated calls
# The agent keeps its SIGALRM handler installed and its timer armed between calls (no system
# calls to undo per call): these pin down that a call still times out at its own deadline.


def _inline(remote, timeout):
    from pytest_remote_serial.fixture import CallOptions, Remote

    return Remote(remote._running, CallOptions(isolate=False, timeout=timeout), False, lambda rt: None)


def _spin():
    while True:
        pass


def _agent_pid():
    import os

    return os.getpid()


@pytest.mark.parametrize("pause", [0, 0.03], ids=["tight", "idle-between"])
def test_every_kind_of_request_is_answered_whoever_reads_it(remote, pause):
    """The relay reads every request and hands each call to its process: isolated calls to
    spares, inline ones to the inline worker, echo, describe and find_modules it answers itself.
    Every interleaving answers each request once, from the right process."""
    inline = _inline(remote, 30)
    client = remote._running.client
    agent = inline.call(_agent_pid)
    pids = []
    steps = ["iso", "inline", "iso", "echo", "iso", "describe", "iso", "find", "iso", "map", "iso", "iso",
             "inline", "inline", "iso"]
    for step in steps:
        time.sleep(pause)
        if step == "iso":
            pids.append(remote.call(_agent_pid))
        elif step == "inline":
            assert inline.call(_agent_pid) == agent
        elif step == "echo":
            assert [bytes(b) for b in client.echo([b"abc", b"x" * 70000])] == [b"abc", b"x" * 70000]
        elif step == "describe":
            assert client.request({"op": "describe"})[0]["python"] == remote.target.python
        elif step == "find":
            assert client.missing_modules(["os", "no_such_module_here"]) == ["no_such_module_here"]
        else:
            assert remote.map(divmod, [(7, 2), (9, 4)]) == [(3, 1), (2, 1)]
    assert agent not in pids and len(set(pids)) == len(pids) == steps.count("iso")
    assert inline.call(_agent_pid) == agent


def _dirty_the_process():
    import builtins
    import decimal
    import os

    builtins._prs_dirty = True
    os.environ["PRS_DIRTY"] = "1"
    os.chdir("/")
    decimal.getcontext().prec = 5
    return os.getpid()


def _what_is_dirty():
    import builtins
    import decimal
    import os

    return (getattr(builtins, "_prs_dirty", None), os.environ.get("PRS_DIRTY"), os.getcwd() == "/",
            decimal.getcontext().prec, os.getpid())


@pytest.mark.parametrize("pause", [0, 0.03], ids=["tight", "idle-between"])
def test_isolated_calls_never_see_what_a_non_isolated_call_changed(remote, pause):
    """Non-isolated calls run in the agent's inline worker and may change it; the spares
    isolated calls run in are forked by the relay, which runs no call, so every isolated call
    still sees a fresh process, however many come after."""
    agent = _inline(remote, 30).call(_dirty_the_process)
    assert _inline(remote, 30).call(_what_is_dirty) == (True, "1", True, 5, agent)
    for _ in range(6):
        time.sleep(pause)
        dirty, env, at_root, prec, pid = remote.call(_what_is_dirty)
        assert (dirty, env, at_root, prec) == (None, None, False, 28) and pid != agent
    assert remote.map(divmod, [(7, 2)] * 5) == [(3, 1)] * 5
    assert _inline(remote, 30).call(_what_is_dirty)[:4] == (True, "1", True, 5)


@pytest.fixture
def own_agent():
    """``start(paths=(), root=...)``: a local agent of this test's own, for what must not touch
    the shared one (its inline worker, its preloads); every one started is shut down after the test."""
    from pytest_remote_serial.host.controller import Controller
    from pytest_remote_serial.host.matrix import local_target

    started = []

    def start(paths=(), root=Path(".")):
        started.append(Controller([local_target(paths=paths, root=root)], print))
        return started[-1].get("local").client

    yield start
    for ctl in started:
        ctl.shutdown()


def _own(client, func, isolate=True, timeout=30.0):
    return client.roundtrip(func, (), {}, "cloudpickle-by-value", timeout, isolate)


def test_a_killed_inline_worker_is_replaced_by_a_fresh_one(own_agent):
    """If the inline worker is killed (the OOM killer, a kill -9 from an isolated call), the next
    non-isolated call runs in a fresh worker, and isolated calls never notice."""
    client = own_agent()

    def call(func, args=(), isolate=True):
        rt = client.roundtrip(func, args, {}, "cloudpickle-by-value", 30.0, isolate)
        assert rt.outcome == "ok", rt.describe()
        return rt.result

    worker = call(os.getpid, isolate=False)
    call(os.kill, (worker, signal.SIGKILL))
    time.sleep(0.2)  # a kill is delivered, not awaited: the next call must not race the worker's exit
    assert call(os.getpid, isolate=False) not in (worker, client.hello["pid"])
    pids = [call(os.getpid) for _ in range(5)]
    assert len(set(pids)) == 5
    assert [rt.result for rt in client.map(divmod, [(7, 2)] * 3, "cloudpickle", 30)] == [(3, 1)] * 3


def _segfault():
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def _exit_7():
    import os

    os._exit(7)


def _sleep_long():
    import time

    time.sleep(30)


@pytest.mark.parametrize("isolate", [True, False], ids=["isolated", "inline"])
def test_a_call_that_dies_is_named_and_the_agent_serves_on(own_agent, isolate):
    """A crash names its signal or exit code, a timeout is a timeout in time, and the next call
    runs, isolated or inline alike: an inline call that dies takes only the inline worker with it."""
    client = own_agent()
    assert _own(client, os.getpid, isolate=False).outcome == "ok"  # an inline worker exists
    crash = _own(client, _segfault, isolate)
    assert crash.outcome == "crash" and crash.error["signal"] == signal.SIGSEGV, crash.describe()
    code = _own(client, _exit_7, isolate)
    assert code.outcome == "crash" and code.error["exit_code"] == 7, code.describe()
    t0 = time.monotonic()
    late = _own(client, _sleep_long, isolate, timeout=0.5)
    assert late.outcome == "timeout" and time.monotonic() - t0 < 3, late.describe()
    assert len({_own(client, os.getpid).result for _ in range(4)}) == 4
    assert _own(client, os.getpid, isolate=False).outcome == "ok"


def _threaded_module_alive():
    import threaded_at_import

    return threaded_at_import.worker_alive()


@pytest.mark.parametrize("folder", ["site-packages", "src"])
@pytest.mark.parametrize("first", ["isolated", "non-isolated"])
def test_a_module_that_starts_a_thread_at_import_is_never_preloaded(tmp_path, own_agent, first, folder):
    """The agent preloads installed modules a call imported (a site folder's, or a ``paths``
    folder's), so later forks have them. One whose import starts a thread must not be: its
    thread would be missing in every fork, where a fresh process that imports it has one."""
    site = tmp_path / folder
    site.mkdir()
    (site / "threaded_at_import.py").write_text(
        "import threading, time\n"
        "_worker = threading.Thread(target=time.sleep, args=(3600,), daemon=True)\n"
        "_worker.start()\n"
        "def worker_alive():\n"
        "    return _worker.is_alive()\n")
    client = own_agent(paths=(str(site),), root=tmp_path)
    if first == "non-isolated":  # an inline worker then exists beside the spares
        assert _own(client, os.getpid, isolate=False).outcome == "ok"
    alive = []
    for _ in range(5):
        rt = _own(client, _threaded_module_alive)
        assert rt.outcome == "ok", rt.describe()
        alive.append(rt.result)
        time.sleep(0.1)  # a preload, had there been one, is in place by the next call
    assert alive == [True] * 5


def test_a_non_isolated_call_times_out_at_its_own_deadline_after_a_longer_one(remote):
    pid = _inline(remote, 30).call(_agent_pid)
    start = time.monotonic()
    with pytest.raises(prs.RemoteTimeout, match="still running after 0.5s; it was interrupted"):
        _inline(remote, 0.5).call(_spin)
    assert time.monotonic() - start < 5
    assert _inline(remote, 30).call(_agent_pid) == pid  # the same process: interrupted, not killed


def test_a_non_isolated_call_that_replaced_the_alarm_handler_does_not_disarm_the_next(remote):
    def take_sigalrm():
        import signal

        signal.signal(signal.SIGALRM, lambda *a: None)
        return "taken"

    assert _inline(remote, 30).call(take_sigalrm) == "taken"
    with pytest.raises(prs.RemoteTimeout):
        _inline(remote, 0.5).call(_spin)


def test_a_timer_firing_between_non_isolated_calls_harms_nothing(remote):
    pid = _inline(remote, 0.2).call(_agent_pid)
    time.sleep(0.6)  # its timer, still armed, fires while the agent waits for the next request
    assert _inline(remote, 30).call(_agent_pid) == pid
    assert _inline(remote, 30).call(make_adder(1), 1) == 2


def test_isolated_calls_get_sigalrm_as_a_fresh_interpreter_does(remote):
    def alarm_disposition():
        import signal

        return signal.getsignal(signal.SIGALRM) is signal.SIG_DFL

    def alarm_ends_the_process():
        import signal

        signal.alarm(1)
        import time

        time.sleep(5)
        return "survived"

    _inline(remote, 30).call(_agent_pid)  # the parent now holds its own SIGALRM handler
    assert remote.call(alarm_disposition) is True
    rt = remote.roundtrip(alarm_ends_the_process)
    assert rt.outcome == "crash" and rt.error["signal"] == 14 and "SIGALRM" in rt.error["message"]


class Celsius:
    def __init__(self, degrees):
        self.degrees = degrees


def _identity(x):
    return x


@pytest.mark.parametrize("serializer", ["cloudpickle-by-value", "source"])
def test_a_reducer_registered_with_copyreg_between_calls_is_used_by_the_next(remote, serializer):
    """The picklers flatten their reducer tables per dump: a later copyreg.pickle still counts."""
    import copyreg

    assert type(remote.call(_identity, Celsius(1), serializer=serializer)).__name__ == "Celsius"
    copyreg.pickle(Celsius, lambda c: (float, (c.degrees,)))
    try:
        assert remote.call(_identity, Celsius(21), serializer=serializer) == 21.0
    finally:
        del copyreg.dispatch_table[Celsius]


def test_an_agent_does_not_spin_through_idle_gaps_between_non_isolated_calls(own_agent, monkeypatch):
    """After a non-isolated call the agent waits for the next request without sleeping, but
    only while requests keep coming within the window: sparse calls cost it no CPU."""
    monkeypatch.setenv("PYTEST_REMOTE_SERIAL_SPIN_US", "10000")  # the longest window: 10 ms
    client = own_agent()  # adaptive: a few spins (QuickWaits.MISSES), then none; 20 spins would cost 0.2 s

    def call(func, *args):
        rt = client.roundtrip(func, args, {}, "cloudpickle", 30.0, False)
        assert rt.outcome == "ok", rt.describe()
        return rt.result

    before, host_before = call(time.process_time), time.thread_time()
    for i in range(20):
        time.sleep(0.03)
        assert call(abs, -i) == i
    used, host_used = call(time.process_time) - before, time.thread_time() - host_before
    assert used < 0.08, f"the agent used {used:.3f}s of CPU over 20 idle gaps: it spun through them"
    assert host_used < 0.08, f"the host used {host_used:.3f}s of CPU over 20 calls"


def _exit_the_agent():
    """An inline call runs in the agent's inline worker: the agent is its parent, the relay."""
    import signal

    os.kill(os.getppid(), signal.SIGKILL)


@pytest.mark.remote(isolate=False)
def test_a_lost_agent_costs_only_its_call_also_within_the_test(remote):
    """The message says the agent is restarted for the next call: so it is, not only for the next test."""
    before = remote.call(os.getpid)
    lost = remote.roundtrip(_exit_the_agent)
    assert (lost.outcome, lost.error["type"]) == ("crash", "agent_lost"), lost.describe()
    assert "restarted for the next call" in lost.error["message"]
    assert remote.call(abs, -5) == 5
    assert remote.call(os.getpid) != before
