"""One call, in whichever process runs it: the payload read and loaded, the function called, the
outcome, result or exception dumped, and the answer written with its envelope. Whether the
process is a spare forked for it (isolated) or the inline worker (inline) is decided by
its caller; here, ``status_fd`` is the only difference.
"""

from __future__ import annotations

import os
import sys
import time

from . import pipes
from .buffers import CALL_COPIES, PICKLE_PROTOCOL
from .diagnosis import diagnose_load, error_info, foreign_bytecode
from .envelope import python_version, reply_envelope
from .limits import CALL_LIMITS, cgroup_counter, cgroup_limit
from .payloads import dump_exception, dump_json_result, dump_result, loader_for
from .preload import installed_imports
from .processes import threads
from .protocol import CALL_ERROR, LOAD_ERROR, MISSING_MODULE, OK, RESULT_ERROR, SYNTAX_ERROR
from .shipped import ShippedModules, payload_begins
from .wire import Channel


class ForeignBytecode(Exception):
    """The payload's code objects are another Python's: building or running them here would be
    undefined behaviour, so it is refused before it is loaded."""


class CallTimeout(BaseException):
    """Raised by SIGALRM inside a non-isolated call; BaseException so user code rarely eats it."""


class _CallProcess:
    """This process's part in the running call: the processes and threads there were when the
    call began."""

    __slots__ = ("forks", "forks_at_call", "threads_at_call")

    def __init__(self) -> None:
        self.forks = 0  # processes this process started (the at-fork hook counts them)
        # Only a call that started processes or threads has the pids limit read and is swept
        # after (reading cgroup files costs ~150 µs a call; the parent forks spares, and an
        # earlier call may have left a thread running).
        self.forks_at_call = 0
        self.threads_at_call = 1


CALL = _CallProcess()


def count_fork() -> None:
    CALL.forks += 1


def timeout_of(header: dict) -> float:
    timeout = header.get("timeout")
    timeout = max(0.001, float(30 if timeout is None else timeout))
    if header.get("op") == "map":  # the items' timeout is each item's; the map has as long as its waves need
        timeout = max(timeout, float(header.get("map_timeout") or 0))
    return timeout


def call_begins() -> None:
    CALL.forks_at_call = CALL.forks
    CALL.threads_at_call = threads()


def call_spawned() -> bool:
    """Did the running call start a process or a thread (still running)?"""
    return CALL.forks != CALL.forks_at_call or threads() > CALL.threads_at_call


def fresh_random_state() -> None:
    """A forked child starts with its parent's random state, where a fresh interpreter would
    seed its own. CPython reseeds ``random`` at fork; numpy's global RandomState (seeded at
    import, and in the parent once a call has used numpy, see preload) is reseeded here, from
    the OS, as a new process seeds it. Otherwise every isolated call would draw the same numbers."""
    np_random = sys.modules.get("numpy.random")
    if np_random is not None:
        try:
            np_random.seed()
        except Exception:
            pass


def _load_payload(bufs: list, header: dict) -> tuple:
    # Scanned first, whoever loads it (a framework's own loader too): no code object of another
    # Python is ever built here. None at once for this Python's own bytecode.
    foreign = foreign_bytecode(header, bufs[0])
    if foreign:
        raise ForeignBytecode(foreign)
    payload_begins()
    return loader_for(header)(bufs[0], bufs[1:], header)


def _load_failure(exc: BaseException, header: dict, response: dict, payload=None) -> None:
    info = error_info(exc, "load")
    if isinstance(exc, SyntaxError) and header["serializer"] in ("source", "json"):
        info["diagnosis"] = "the source does not compile on Python %s: %s (line %s: %s)" % (
            python_version(), exc.msg, exc.lineno, (exc.text or "").strip())
        outcome = SYNTAX_ERROR
    else:
        info["diagnosis"] = str(exc) if isinstance(exc, ForeignBytecode) else diagnose_load(header, exc, payload)
        outcome = MISSING_MODULE if "module" in info else LOAD_ERROR
    response.update(outcome=outcome, error=info)


def call_and_dump(func, args, kwargs, header: dict, response: dict) -> list:
    """Call; put the outcome in ``response``; the result's (or exception's) buffers."""
    t1 = time.perf_counter()
    try:
        with ShippedModules():
            result = func(*args, **kwargs)
    except CallTimeout:
        raise
    except BaseException as exc:
        t2 = time.perf_counter()
        response.update(outcome=CALL_ERROR, error=error_info(exc, "call"))
        out = dump_exception(exc)
    else:
        t2 = time.perf_counter()
        try:
            response["outcome"] = OK
            response["result_type"] = "%s.%s" % (type(result).__module__, type(result).__qualname__)
            if header["serializer"] == "json":
                out = dump_json_result(result, response)
            else:
                out = dump_result(result, header.get("result_protocol", PICKLE_PROTOCOL))
        except BaseException as exc:
            response.update(outcome=RESULT_ERROR, error=error_info(exc, "result"))
            out = []
    response["phases"].update(call=t2 - t1, result=time.perf_counter() - t2 - CALL_COPIES.d2h)
    return out


def receive_and_load(channel: Channel, header: dict, status_fd: int | None) -> tuple:
    """Read the payload and load it: ``(response, (func, args, kwargs))``, or ``(None, None)``
    when the load failed and that was answered already."""
    bufs = channel.recv_buffers(header)
    CALL_COPIES.reset()
    response: dict = {"op": "result", "id": header.get("id"), "phases": {}}
    t0 = time.perf_counter()
    try:
        loaded = _load_payload(bufs, header)
    except CallTimeout:
        raise
    except BaseException as exc:
        _load_failure(exc, header, response, bufs[0] if bufs else None)
        response["phases"]["load"] = time.perf_counter() - t0
        respond(channel, response, [], status_fd)
        return None, None
    response["phases"]["load"] = time.perf_counter() - t0 - CALL_COPIES.h2d
    return response, loaded


def run_call(channel: Channel, header: dict, status_fd: int | None = None) -> None:
    """Read the payload, load, call, and answer on ``channel``."""
    response, loaded = receive_and_load(channel, header, status_fd)
    if response is None:
        return
    func, args, kwargs = loaded
    out = call_and_dump(func, args, kwargs, header, response)
    device = CALL_COPIES.as_dict()
    if device is not None:  # only where device arrays travelled
        response["device"] = device
    respond(channel, response, out, status_fd)


def respond(channel: Channel, response: dict, out: list, status_fd: int | None) -> None:
    response["envelope"] = reply_envelope()
    kinds = getattr(out, "kinds", None)
    if kinds:
        response["buffer_kinds"] = kinds
    pids_before = CALL_LIMITS.get("pids_max")
    spawned = call_spawned()
    if spawned and pids_before is not None and (cgroup_counter("pids_max") or 0) > pids_before:
        response["limit_hit"] = {"pids": cgroup_limit("pids")}
    learned = ",".join(installed_imports()).encode() if status_fd is not None else b""
    channel.send(response, out)
    if status_fd is not None:  # one write, one wake-up of the parent
        os.write(status_fd, (pipes.framed(pipes.LEARNED, learned) if learned else b"")
                 + (pipes.SPAWNED if spawned else b"") + pipes.ANSWERED)
