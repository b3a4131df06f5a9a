"""Talks to one running agent: sends calls, turns answers into ``RoundTrip`` records."""

from __future__ import annotations

import builtins
import itertools
import json
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from .. import outcomes as oc
from ..outcomes import RemoteTraceback, RoundTrip
from ..remote import agent
from .codecs import UnknownSerializer, envelope, get_codec
from .transport import AgentLost, SocketChannel

# Past the call's own timeout, how long the host waits before it declares the agent lost.
GRACE_S = 15.0
HELLO_TIMEOUT_S = 60.0


def function_name(func: Any) -> str:
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    return f"{module}.{qualname}"


class AgentClient:
    def __init__(self, channel: SocketChannel, target: str) -> None:
        self.channel = channel
        self.target = target
        self.alive = True
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.channel.deadline = time.monotonic() + HELLO_TIMEOUT_S
        self.hello = channel.recv_header()
        self.channel.deadline = None
        self._description: dict[str, Any] | None = None

    def request(self, header: dict[str, Any], buffers: list[Any] = (),  # type: ignore[assignment]
                timeout: float = 30.0) -> tuple[dict[str, Any], list[bytearray]]:
        with self._lock:
            if not self.alive:
                raise AgentLost(f"the agent of {self.target} is gone")
            self.channel.deadline = time.monotonic() + timeout + GRACE_S
            try:
                self.channel.send(header, buffers)
                return self.channel.recv()
            except BaseException:  # EOF, deadline, or Ctrl-C mid-frame: the stream is out of step
                self.alive = False
                raise
            finally:
                self.channel.deadline = None

    def describe(self) -> dict[str, Any]:
        if self._description is None:
            self._description, _ = self.request({"op": "describe"})
        return self._description

    def missing_modules(self, modules: list[str]) -> list[str]:
        answer, _ = self.request({"op": "find_modules", "modules": modules})
        return list(answer["missing"])

    def echo(self, buffers: list[Any]) -> list[bytearray]:
        return self.request({"op": "echo"}, buffers)[1]

    def roundtrip(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                  serializer: str, timeout: float, isolate: bool = True) -> RoundTrip:
        codec = get_codec(serializer)
        rt = RoundTrip(outcome=oc.OK, target=self.target, function=function_name(func),
                       serializer=codec.name)
        copies = agent.DeviceCopies()
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
        header = {"op": "call", "id": next(self._ids), "serializer": codec.name,
                  "envelope": envelope(codec), "timeout": timeout, "isolate": isolate,
                  "device_arrays": copies.arrays}
        try:
            answer, buffers = self.request(header, payload, timeout)
        except EOFError as exc:
            rt.outcome = oc.CRASH
            rt.error = {"phase": "call", "type": "agent_lost", "message": f"{exc}; the target's "
                        "agent was lost and will be restarted for the next call"}
            rt.phases = {"dump": t1 - t0, "total": time.perf_counter() - t0}
            return rt
        t2 = time.perf_counter()
        rt.outcome = answer["outcome"]
        rt.error = answer.get("error")
        rt.result_bytes = sum(len(b) for b in buffers)
        if answer.get("result_codec") == "json" and buffers:
            rt.result = json.loads(bytes(buffers[0]))  # delivered even when flagged as changed
        elif rt.outcome == oc.OK:
            try:
                rt.result = agent.load_result(buffers, copies)
            except Exception as exc:
                rt.outcome = oc.RESULT_ERROR
                rt.error = _result_load_error(exc, answer)
        elif rt.outcome == oc.CALL_ERROR:
            rt.exception = _rebuild_exception(rt.error or {}, buffers, rt)
        t3 = time.perf_counter()
        remote = answer.get("phases", {})
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

    def close(self) -> None:
        self.alive = False
        self.channel.close()


def _host_error(exc: BaseException, phase: str, message: str) -> dict[str, Any]:
    import platform

    return {"phase": phase, "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "message": f"{message}: {exc}", "python": platform.python_version(),
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}


def _result_load_error(exc: BaseException, answer: dict[str, Any]) -> dict[str, Any]:
    """Explain from the reply's envelope why the host cannot load what the target sent."""
    env = answer.get("envelope") or {}
    why = agent.diagnose_load({"envelope": env, "serializer": "pickle"}, exc)
    error = _host_error(exc, "result", f"the result ({answer.get('result_type')}) came back from "
                        f"Python {env.get('python', '?')} but the host cannot load it")
    module = agent.missing_module_of(exc)
    if module:
        error["message"] += f"; module {module!r} exists on the target but not on the host"
    error["diagnosis"] = why
    return error


def _rebuild_exception(error: dict[str, Any], buffers: list[bytearray], rt: RoundTrip) -> BaseException:
    """The same exception type when the host can rebuild it, with the remote traceback attached."""
    exc: BaseException | None = None
    if buffers:
        try:
            loaded = agent.load_result(buffers)
            if isinstance(loaded, BaseException):
                exc = loaded
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
    text = error.get("traceback") or ""
    exc.__cause__ = RemoteTraceback(text)
    try:
        exc.remote_traceback = text  # type: ignore[attr-defined]
        exc.roundtrip = rt  # type: ignore[attr-defined]
    except AttributeError:
        pass
    if hasattr(exc, "add_note"):
        exc.add_note(f"raised on target {rt.target} (Python {error.get('python', '?')})")
    return exc
