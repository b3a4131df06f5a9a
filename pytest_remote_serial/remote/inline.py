"""Non-isolated calls (``isolate=False``): run in the agent's long-lived parent, so state persists
between calls. A timer interrupts one that runs past its timeout; what it forks loses the
connection at once and is killed after the call.
"""

from __future__ import annotations

import os
import signal
import time

from .call import CallTimeout, run_call
from .limits import CALL_LIMITS, LIMITS_NOW, timeout_info
from .protocol import TIMEOUT
from .wire import Channel

try:  # the C module under signal.py: its getsignal skips the enum conversion (~4 µs a call)
    import _signal
except ImportError:  # pragma: no cover - not CPython
    _signal = signal


class _Running:
    """The non-isolated call now running here, if any."""

    deadline: float | None = None  # when it times out
    fds: tuple = ()  # the connection: closed in whatever it forks


RUNNING = _Running()


def close_in_fork() -> None:
    """At fork, in the child: a process a non-isolated call forks must not hold the connection."""
    for fd in RUNNING.fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _on_alarm(signum, frame):
    """The timer of a non-isolated call. It stays armed after the call (disarming would cost
    a system call per call): fired between calls, or before the running call's deadline
    (armed by an earlier one), it does nothing."""
    deadline = RUNNING.deadline
    if deadline is not None and time.monotonic() >= deadline:
        raise CallTimeout()


def run_inline(channel: Channel, header: dict, timeout: float) -> None:
    """A non-isolated call, answered on ``channel`` whatever happens to it."""
    if _signal.getsignal(signal.SIGALRM) is not _on_alarm:  # first call, or the last one replaced it
        signal.signal(signal.SIGALRM, _on_alarm)
    RUNNING.deadline = time.monotonic() + timeout
    signal.setitimer(signal.ITIMER_REAL, timeout)
    RUNNING.fds = (channel.rfd, channel.wfd)
    CALL_LIMITS.clear()
    CALL_LIMITS.update(LIMITS_NOW)
    try:
        run_call(channel, header)
    except CallTimeout:
        channel.send({"op": "result", "id": header.get("id"), "phases": {}, "outcome": TIMEOUT,
                      "error": timeout_info(timeout, "call", "it was interrupted")})
    finally:
        RUNNING.deadline = None
        RUNNING.fds = ()
