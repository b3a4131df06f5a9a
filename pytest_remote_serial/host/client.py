"""Talks to one running agent: sends calls, turns answers into ``RoundTrip`` records."""

from __future__ import annotations

import builtins
import itertools
import json
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import outcomes as oc
from ..outcomes import RemoteTraceback, RoundTrip
from ..remote.buffers import DeviceCopies
from ..remote.diagnosis import carries_code, diagnose_load, missing_module_of, pickle_globals
from ..remote.envelope import IMPLEMENTATION, numpy_version, python_name
from ..remote.wire import FRAME_SIZE, encode_frame
from .codecs import Codec, UnknownSerializer, call_header, get_codec
from .control import contain
from .transport import AgentLost, DeadlinePassed, SocketChannel
from .trust import Policy, Refused, describe_problem, hello_problem, load_reply, owned_modules, reply_problem

# Past the call's own timeout, how long the host waits for an agent that still runs before it
# declares it lost (it may be busy: preloading what the last call imported, a slow machine).
GRACE_S = 15.0
# The agent answers by the call's timeout (it kills a call that runs past it, an inline one
# within a second more): an answer not begun this long after it makes the host ask the backend
# whether the agent can still answer at all (stopped, gone), and again as often until GRACE_S.
PROBE_S = 1.0
HELLO_TIMEOUT_S = 60.0
SELF_CHECK_TIMEOUT_S = 30.0


def function_name(func: Any) -> str:
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    return f"{module}.{qualname}"


class OutOfStep(AgentLost):
    """A reply that does not answer the request just sent: never a result, and the stream is
    reset (the agent is restarted for the next call)."""


class RemoteLimitWarning(UserWarning):
    """A call that ended ok but reached one of the target's limits (e.g. ``pids``)."""


@dataclass(frozen=True)
class TargetLimits:
    """What the host knows of a target beyond its connection: trust, and limits to name."""

    trusted: bool = False
    trusted_modules: tuple[str, ...] = ()
    memory: str | None = None
    pids: int | None = None
    reply_memory_cap: int = 256 << 20


class AgentClient:
    def __init__(self, channel: SocketChannel, target: str) -> None:
        self.channel = channel
        self.target = target
        self.alive = True
        self.config = TargetLimits()
        # Why the agent was lost, asked of the backend (e.g. the container was OOM-killed).
        self.diagnose: Callable[[], str | None] = lambda: None
        # Why the agent cannot answer now (stopped, gone), asked of the backend without waiting.
        self.stuck: Callable[[], str | None] = lambda: None
        self.sent_at: float | None = None  # wall-clock time the last request went (a death after it is its)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.channel.deadline = time.monotonic() + HELLO_TIMEOUT_S
        self.hello = channel.recv_header()
        self.channel.deadline = None
        problem = hello_problem(self.hello)
        if problem:
            channel.close()
            raise AgentLost(f"the agent of {target} said hello with {problem}")
        self._description: dict[str, Any] | None = None
        self._call_headers: dict[tuple[Any, ...], dict[str, Any]] = {}

    def request(self, header: dict[str, Any], buffers: list[Any] = (),  # type: ignore[assignment]
                timeout: float = 30.0) -> tuple[dict[str, Any], list[bytearray]]:
        """Send one request and read its reply, which must carry the request's id."""
        with self._lock:
            if not self.alive:
                raise AgentLost(f"the agent of {self.target} is gone")
            header = dict(header, id=next(self._ids))
            kinds = getattr(buffers, "kinds", None)
            if kinds:
                header["buffer_kinds"] = kinds
                header.pop("_rest", None)  # encoded without them
            start = time.monotonic()
            self.sent_at = time.time()
            latest = start + timeout + GRACE_S
            self.channel.deadline = min(latest, start + timeout + PROBE_S)
            try:
                self.channel.send(header, buffers)
                answer, out = self._answer(latest)
                if answer.get("id") != header["id"]:
                    raise OutOfStep(
                        f"the reply was for request {answer.get('id')!r}, not request {header['id']} "
                        f"({header.get('op')}): something on {self.target} wrote on the agent's "
                        "connection out of turn (a process a call left behind?)")
                return answer, out
            except BaseException:  # EOF, deadline, wrong id, or Ctrl-C mid-frame: out of step
                self.alive = False
                raise
            finally:
                self.channel.deadline = None

    def self_check(self) -> str | None:
        """Why this agent cannot serve a call, or None when it can. An agent may say hello and
        still fail every call (PyPy without ``gc.freeze`` died forking its first spare): one tiny
        isolated call, ``abs(-7)`` under plain pickle, walks the path every call takes (a spare
        forked, the payload read, loaded, called, the answer written), so such a target is
        ``unavailable`` with its cause instead of a crash blamed on the user's first function."""
        rt = self.roundtrip(abs, (-7,), {}, "pickle", SELF_CHECK_TIMEOUT_S)
        if rt.outcome == oc.OK and rt.result == 7:
            return None
        if rt.outcome == oc.OK:
            return f"abs(-7) came back as {rt.result!r}"
        error = rt.error or {}
        kind = str(error.get("type") or "")
        found = f"{rt.outcome}{f' ({kind})' if kind and kind != rt.outcome else ''}: {error.get('message', '')}"
        if error.get("hint"):
            found += f"; fix: {error['hint']}"
        trace = str(error.get("traceback") or "").strip()
        return found + (f"\n{trace}" if trace else "")

    def _answer(self, latest: float) -> tuple[dict[str, Any], list[bytearray]]:
        """The answer to the request just sent. Late, and not begun: the agent is asked after,
        so that one that cannot answer (stopped by a call, gone) is named within a second of
        the timeout, and one that still runs has until ``latest``."""
        while True:
            try:
                return self.channel.recv()
            except DeadlinePassed:
                if self.channel.answering or time.monotonic() >= latest:
                    raise
                cause = self.stuck()
                if cause:
                    raise AgentLost(cause) from None
                self.channel.deadline = min(latest, time.monotonic() + PROBE_S)

    def describe(self) -> dict[str, Any]:
        if self._description is None:
            answer, _ = self.request({"op": "describe"})
            problem = describe_problem(answer)
            if problem:
                raise AgentLost(f"the agent of {self.target} described itself with {problem}")
            self._description = answer
        return self._description

    def missing_modules(self, modules: list[str]) -> list[str]:
        answer, _ = self.request({"op": "find_modules", "modules": modules})
        return list(answer["missing"])

    def echo(self, buffers: list[Any]) -> list[bytearray]:
        return self.request({"op": "echo"}, buffers)[1]

    def roundtrip(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                  serializer: str | Codec, timeout: float, isolate: bool = True) -> RoundTrip:
        codec = get_codec(serializer)
        rt = RoundTrip(outcome=oc.OK, target=self.target, function=function_name(func),
                       serializer=codec.name, serializer_version=codec.version)
        copies = DeviceCopies()
        t0 = time.perf_counter()
        try:
            payload = codec.dumps((func, args, kwargs), copies)
        except UnknownSerializer:
            raise
        except Exception as exc:
            rt.outcome = oc.DUMP_ERROR
            rt.error = _host_error(exc, "dump", f"the host could not serialize {rt.function} "
                                   f"with {codec.name}")
            rt.phases = {"dump": time.perf_counter() - t0, "total": time.perf_counter() - t0}
            return rt
        t1 = time.perf_counter()
        rt.payload_bytes = sum(memoryview(b).nbytes for b in payload)
        header = self._call_header(codec, timeout, isolate, copies.arrays)
        try:
            answer, buffers = self.request(header, payload, timeout)
        except (OutOfStep, EOFError) as exc:
            self._lost(rt, exc)
            rt.phases = {"dump": t1 - t0, "total": time.perf_counter() - t0}
            return rt
        t2 = time.perf_counter()
        problem = reply_problem(answer, len(buffers))
        if problem:
            self._bad_reply(rt, problem)
            rt.phases = {"dump": t1 - t0, "total": time.perf_counter() - t0}
            return rt
        policy = self._policy([func, *args, *kwargs.values()], payload)
        self._interpret(rt, answer, buffers, policy, copies)
        t3 = time.perf_counter()
        remote = answer.get("phases") or {}
        load, call, dump_result = (float(remote.get(k, 0.0)) for k in ("load", "call", "result"))
        host_d2h, host_h2d = copies.d2h, copies.h2d  # the host's own, before the target's merge in
        copies.merge(answer.get("device") or {})
        remote_copies = copies.h2d - host_h2d + copies.d2h - host_d2h
        rt.phases = {
            "dump": t1 - t0 - host_d2h,
            "send": max(0.0, (t2 - t1) - load - call - dump_result - remote_copies),
            "load": load,
            "call": call,
            "result": dump_result + (t3 - t2) - host_h2d,
            "total": t3 - t0,
        }
        rt.device = copies.as_dict()
        return rt

    def _call_header(self, codec: Any, timeout: float, isolate: bool, arrays: int) -> dict[str, Any]:
        """A call's header is the same every time: encoded once (``_rest``, see wire.encode_frame)."""
        spin = 0.0 if isolate else self.channel.spin_s  # the agent's wait for the next request after it
        key = (codec.name, timeout, isolate, arrays, numpy_version(), spin)
        header = self._call_headers.get(key)
        if header is None:
            header = {"op": "call", **call_header(codec), "timeout": timeout, "isolate": isolate,
                      "device_arrays": arrays}
            if spin:
                header["spin"] = spin
            header["_rest"] = encode_frame(header, [])[FRAME_SIZE:]
            if len(self._call_headers) >= 64:  # timeouts computed per call: never a growing pile
                self._call_headers.clear()
            self._call_headers[key] = header
        return header

    def map(self, func: Callable[..., Any], items: list[tuple[Any, ...]], serializer: str | Codec, timeout: float,
            concurrency: int | None = None) -> list[RoundTrip]:
        """Every item's round trip, in order: the function and items shipped once, each item
        called in a fresh process there, ``concurrency`` (default: the target's CPUs) at a time.
        Phases are the map's own, shared out evenly over its items."""
        codec = get_codec(serializer)
        name = function_name(func)
        n = len(items)
        rts = [RoundTrip(outcome=oc.OK, target=self.target, function=name, serializer=codec.name,
                         serializer_version=codec.version) for _ in items]
        if not items:
            return rts
        copies = DeviceCopies()
        t0 = time.perf_counter()
        try:
            payload = codec.dumps((func, tuple(items), {}), copies)
        except UnknownSerializer:
            raise
        except Exception as exc:
            for rt in rts:
                rt.outcome = oc.DUMP_ERROR
                rt.error = _host_error(exc, "dump", f"the host could not serialize {name} with {codec.name}")
            return rts
        t1 = time.perf_counter()
        workers = max(1, concurrency or int(self.hello.get("cpus") or 1))
        total = timeout * -(-n // workers) + 1.0  # every wave at its longest, and the load
        header = {"op": "map", **call_header(codec), "timeout": timeout, "map_timeout": total, "isolate": True,
                  "device_arrays": copies.arrays, "concurrency": workers}
        try:
            answer, buffers = self.request(header, payload, total)
        except (OutOfStep, EOFError) as exc:
            for rt in rts:
                self._lost(rt, exc)
            return rts
        problem = reply_problem(answer, len(buffers))
        if problem:
            for rt in rts:
                self._bad_reply(rt, problem)
            return rts
        policy = self._policy([func, *(a for item in items for a in item)], payload)
        answers = answer.get("items")
        if not isinstance(answers, list) or len(answers) != n:  # the whole map failed to load
            answers, buffers = [answer] * n, []
        offset = 0
        load = float((answer.get("phases") or {}).get("load", 0.0))
        per_item = (time.perf_counter() - t0) / n  # the map's wall time, shared out
        for rt, item in zip(rts, answers):
            count = int(item.get("nbuf", 0)) if buffers else 0
            self._interpret(rt, dict(item, envelope=answer.get("envelope")), buffers[offset:offset + count],
                            policy, copies)
            offset += count
            phases = item.get("phases") or {}
            rt.phases = {"dump": (t1 - t0) / n, "send": 0.0, "load": load / n,
                         "call": float(phases.get("call", 0.0)), "result": float(phases.get("result", 0.0)),
                         "total": per_item}
            rt.payload_bytes = sum(memoryview(b).nbytes for b in payload) // n
        return rts

    def _policy(self, objects: list[Any], payload: list[Any]) -> Policy:
        # The call's own modules and those the payload named: worked out only if the reply names
        # a global that is not a plain data type (most results never ask).
        return Policy(trusted=self.config.trusted, listed=self.config.trusted_modules,
                      memory_cap=self.config.reply_memory_cap,
                      sent=lambda: owned_modules(objects) | {m for m, _ in pickle_globals(payload[0])[0]})

    def _interpret(self, rt: RoundTrip, answer: dict[str, Any], buffers: list[bytearray], policy: Policy,
                   copies: DeviceCopies) -> None:
        """The outcome, result or exception of one answer, loaded inside the trust boundary."""
        rt.outcome = str(answer.get("outcome")) if answer.get("outcome") in oc.OUTCOMES else oc.RESULT_ERROR
        rt.error = answer.get("error") if isinstance(answer.get("error"), dict) else None
        if rt.outcome != answer.get("outcome"):
            rt.error = {"phase": "result", "type": "bad_reply",
                        "message": f"the target answered with outcome {answer.get('outcome')!r}, "
                                   "which is none of the outcomes a reply may carry"}
        if rt.error is not None and not isinstance(rt.error.get("python"), str):
            rt.error.update(self._where())  # the agent's own records say it; one that does not is named here
        rt.result_bytes = sum(len(b) for b in buffers)
        if answer.get("result_codec") == "json" and buffers:
            try:
                rt.result = json.loads(bytes(buffers[0]))  # delivered even when flagged as changed
            except ValueError as exc:
                rt.outcome = oc.RESULT_ERROR
                rt.error = _host_error(exc, "result", "the target's JSON result is not JSON")
        elif rt.outcome == oc.OK:
            try:
                rt.result = load_reply(buffers, policy, copies)
            except Exception as exc:
                rt.outcome = oc.RESULT_ERROR
                rt.error = _result_load_error(exc, answer, _holds_code(buffers))
        elif rt.outcome == oc.CALL_ERROR:
            try:
                rt.exception = _rebuild_exception(rt.error or {}, buffers, rt, policy)
            except Refused as exc:
                rt.outcome = oc.RESULT_ERROR
                rt.error = dict(_result_load_error(exc, answer, _holds_code(buffers)), remote=rt.error)
        self._name_limits(rt, answer)
        self._unable_to_start(rt)

    def _unable_to_start(self, rt: RoundTrip) -> None:
        """The agent answered that it could not start a process for the call, and not at the pids
        limit (which it clears itself): it cannot fork or make a pipe any more (a call lowered its
        RLIMIT_NOFILE with prlimit, say), so every later call would fail the same way. It is
        replaced before the next call."""
        error = rt.error or {}
        if rt.outcome != oc.CRASH or error.get("type") != "crash" or "signal" in error or "exit_code" in error \
                or error.get("limit_hit"):
            return
        self.alive = False
        error["message"] = f"{error.get('message')}; the target's agent cannot start processes any more and " \
                           "will be restarted for the next call"

    def _bad_reply(self, rt: RoundTrip, problem: str) -> None:
        """A reply whose header is not as the agent writes it: something on the target wrote it."""
        rt.outcome = oc.RESULT_ERROR
        rt.error = {"phase": "result", "type": "bad_reply", **self._where(),
                    "message": f"the reply from {self.target} has {problem}: something on the target (the "
                               "call itself, or its image) wrote the agent's reply; nothing of it was loaded"}

    def _lost(self, rt: RoundTrip, exc: BaseException) -> None:
        """No answer to use: a reply out of turn, or the agent gone."""
        if isinstance(exc, OutOfStep):
            rt.outcome = oc.RESULT_ERROR
            rt.error = {"phase": "result", "type": "out_of_step", **self._where(), "message": f"{exc}; the reply was "
                        "discarded and the target's agent will be restarted for the next call"}
            return
        rt.outcome = oc.CRASH
        rt.error = {"phase": "call", "type": "agent_lost", **self._where(), "message": f"{exc}; the target's "
                    "agent was lost and will be restarted for the next call"}
        cause = self.diagnose()
        if cause:
            if cause not in str(exc):  # (a stopped agent is named by the exception already)
                rt.error["message"] = f"{cause}; {rt.error['message']}"
            rt.error["diagnosis"] = cause

    def _where(self) -> dict[str, Any]:
        """The target's Python, as its agent said hello: for the records the host writes itself."""
        return {"python": str(self.hello.get("python")), "implementation": self.hello.get("implementation")}

    def _name_limits(self, rt: RoundTrip, answer: dict[str, Any]) -> None:
        """A SIGKILL from the OOM killer, a fork refused at the pids limit: say which matrix key."""
        error = rt.error or {}
        hit = answer.get("limit_hit") or error.get("limit_hit") or {}
        fix = None
        if error.get("oom"):
            fix = (f"the call ran out of memory: raise `memory` for target {self.target!r} in the matrix "
                   f"(now {self.config.memory or 'unset'})")
        elif hit.get("pids"):
            fix = (f"the call reached the target's pids limit ({hit['pids']} processes): raise `pids` for "
                   f"target {self.target!r} in the matrix, or start fewer processes")
        if fix is None:
            return
        if rt.outcome == oc.OK:
            warnings.warn(RemoteLimitWarning(f"{rt.function} on {self.target}: {fix}"), stacklevel=4)
        elif rt.error is not None:
            rt.error["hint"] = fix

    def close(self) -> None:
        self.alive = False
        self.channel.close()


def _host_error(exc: BaseException, phase: str, message: str) -> dict[str, Any]:
    import platform

    return {"phase": phase, "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "message": f"{message}: {exc}", "python": platform.python_version(), "implementation": IMPLEMENTATION,
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}


def _holds_code(buffers: list[bytearray]) -> bool:
    """Does the reply's pickle build code objects (a result the target had to cloudpickle)?"""
    try:
        return bool(buffers) and carries_code(bytes(buffers[0]))
    except Exception:  # not a pickle stream the scan can read: nothing to say about bytecode
        return False


def _result_load_error(exc: BaseException, answer: dict[str, Any], code: bool = False) -> dict[str, Any]:
    """Explain from the reply's envelope why the host cannot load what the target sent."""
    found = answer.get("envelope")
    env: dict[str, Any] = found if isinstance(found, dict) else {}
    why = diagnose_load({"envelope": env, "serializer": "cloudpickle" if code else "pickle"}, exc)
    what = "the exception" if answer.get("outcome") == oc.CALL_ERROR else f"the result ({answer.get('result_type')})"
    sender = python_name(env.get("implementation"), env.get("python"), cpython="Python") if env.get("python") \
        else "the target"
    error = _host_error(exc, "result", f"{what} came back from {sender} but the host cannot load it")
    module = missing_module_of(exc)
    if module:
        error["message"] += f"; module {module!r} exists on the target but not on the host"
    error["diagnosis"] = why
    return error


def _rebuild_exception(error: dict[str, Any], buffers: list[bytearray], rt: RoundTrip,
                       policy: Policy) -> BaseException:
    """The same exception type when the host can rebuild it, with the remote traceback attached.
    An exception whose pickle names a global outside the trust boundary raises Refused; one that
    would steer the host's session (KeyboardInterrupt, pytest's Exit) comes back wrapped."""
    exc: BaseException | None = None
    if buffers:
        try:
            loaded = load_reply(buffers, policy)
            if isinstance(loaded, BaseException):
                exc = loaded
        except Refused:
            raise
        except Exception:
            exc = None
    if exc is None:
        module, _, name = str(error.get("type", "")).rpartition(".")
        cls = getattr(builtins, name, None) if module == "builtins" else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            try:
                exc = cls(error.get("message", ""))
            except Exception:
                exc = None
    if exc is None:
        exc = oc.RemoteCallError(f"{error.get('type')}: {error.get('message')}", rt)
    exc = contain(exc, error, rt)
    text = error.get("traceback") or ""
    exc.__cause__ = RemoteTraceback(text)
    try:
        exc.remote_traceback = text  # type: ignore[attr-defined]
        exc.roundtrip = rt  # type: ignore[attr-defined]
    except AttributeError:
        pass
    where = oc.python_of(error)
    if hasattr(exc, "add_note"):
        exc.add_note(f"raised on target {rt.target}{f' ({where})' if where else ''}")
    return exc
