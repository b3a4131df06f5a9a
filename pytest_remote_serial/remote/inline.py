"""Non-isolated calls (``isolate=False``): run in the agent's inline worker, a long-lived child of
the relay, so state persists between them. A timer interrupts one that runs past its timeout
(the relay kills the worker a second later if the call resists); what it forks is killed after
the call. The worker never holds the host connection (relay.py).
"""

from __future__ import annotations

import json
import os
import select
import signal
import time

from . import pipes
from .call import CallTimeout, call_begins, run_call, timeout_of
from .limits import CALL_LIMITS, LIMITS_NOW, timeout_info
from .processes import (
    KNOWN_FDS,
    NEVER_SWEPT,
    become_subreaper,
    child_life,
    close_all_but,
    kill_call,
    request_pair,
    settle,
)
from .protocol import TIMEOUT
from .spin import QuickWaits, RequestSpin, readable
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


def _worker_main(hr: int, rw: int) -> None:
    """The inline worker's life: calls in one process, so state persists between them, while the
    relay keeps the connection. It is a session and a subreaper of its own: whatever a call
    forked (at-fork hooks skipped or not) is killed before the next request is read."""
    close_all_but({0, 1, 2, hr, rw}, KNOWN_FDS)
    os.setsid()
    become_subreaper()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)
    channel = Channel(hr, rw)
    spin = RequestSpin()
    while True:
        spin.wait(hr)
        raw = pipes.read_message(hr)
        if raw is None:
            return
        LIMITS_NOW.clear()
        LIMITS_NOW.update(json.loads(raw) or {})
        header = channel.recv_header(cache=True)
        spin.arrived()
        call_begins()
        run_inline(channel, header, timeout_of(header))
        spin.answered(header.get("spin"))
        _kill_leftovers()


def _kill_leftovers() -> None:
    """Every process the call left, found by the kernel, not the at-fork hooks a raw fork skips:
    one system call when there is none."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return
    settle(set(), [])


class InlineWorker:
    """The relay's end of the inline worker: a request pipe and a reply pipe."""

    def __init__(self) -> None:
        hr, self.hw = request_pair()
        self.rr, rw = os.pipe()
        try:
            self.pid = os.fork()
            if self.pid == 0:
                child_life(_worker_main, hr, rw)
        except BaseException:
            os.close(self.hw)
            os.close(self.rr)
            raise
        finally:
            os.close(hr)
            os.close(rw)
        NEVER_SWEPT.add(self.pid)
        self.spin = QuickWaits()
        self.status: int | None = None

    def alive(self) -> bool:
        if self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = st
        return self.status is None

    def exit_status(self) -> int:
        """How it ended, once its pipe closed: its exit may trail the close by a moment; one
        that closed its pipe and lives on is killed after a second."""
        until = time.monotonic() + 1.0
        while self.alive() and time.monotonic() < until:
            time.sleep(0.001)
        if self.status is None:
            kill_call(self.pid)
            self.status = os.waitpid(self.pid, 0)[1]
        return self.status

    def reply_soon(self, window: float) -> bool:
        """Spin-then-block for the answer of a quick call (see spin.py): the relay, the host
        and the worker each wait on another, and each wake-up of a sleeping one costs more
        than a small call's work on a VM. True once the answer is there to be read."""
        if window <= 0 or not self.spin.worth():
            return False
        until = time.perf_counter() + window
        while not readable(self.rr):
            if time.perf_counter() >= until:
                self.spin.spun(False)
                return False
            os.sched_yield()
        self.spin.spun(True)
        return True

    def usable(self) -> bool:
        """Alive, its request socket still open at its end (a call may close or replace it),
        and silent while no request was outstanding (a frame now came from a thread or a
        process a call left: the worker is replaced)."""
        poller = select.poll()
        poller.register(self.hw, select.POLLOUT)
        hung_up = any(event & (select.POLLHUP | select.POLLERR) for _, event in poller.poll(0))
        return not hung_up and not readable(self.rr) and self.alive()

    def close(self) -> None:
        """Killed with all it started; the next inline call gets a fresh worker."""
        NEVER_SWEPT.discard(self.pid)
        kill_call(self.pid)
        for fd in (self.hw, self.rr):
            os.close(fd)
        if self.status is None:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
