"""The agent's own processes, and what calls leave behind: killing a call's session, closing the
connection in whatever a call forks, reaping and sweeping orphans (the agent is their
subreaper), and throwaway children for work the
long-lived parent must not do itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time

from .compat import thread_count
from .diagnosis import print_exc
from .pipes import read_message, write_message


def threads() -> int:
    """Threads started (and still running) besides the main one: a C counter, no lock to take."""
    return thread_count()


def children() -> list:
    """This process's children, from /proc (orphans of calls included: it is their subreaper)."""
    found: list = []
    pid = os.getpid()
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as fh:
                found += [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []
    return found


def become_subreaper() -> bool:
    """Orphans of a call (a daemon that left its group) become the agent's children, to be
    killed after the call, instead of init's, out of reach. False where it cannot be."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except Exception:
        return False


def kill_call(pid: int) -> None:
    """SIGKILL a call's process group (its session: the call and what it forked)."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def close_in_forks(fds: list) -> None:
    """A process the call forks must not write on the agent's connection or status pipe."""

    def close():
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    os.register_at_fork(after_in_child=close)


def close_all_but(keep: set, known: list) -> None:
    """Every descriptor not in ``keep``: in a child of the relay, the host connection and the
    other children's pipes (a copy held elsewhere would also keep a pipe from ever reading
    end-of-file); ``known`` without /proc."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: every descriptor up to the highest this agent is likely to hold
        fds = list(range(3, max([4096] + [fd + 1 for fd in known])))
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def request_pair() -> tuple:
    """The request's way to a child of the relay: a socket pair, not a pipe, so that a large
    ``bytes`` argument is received in place (``Channel.read_bytes``), never copied: twice its
    size might not fit the target's memory. (The child's end, the relay's end.)"""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return theirs.detach(), ours.detach()


def child_life(main, *args) -> None:
    """A forked child's whole life: ``main(*args)``, then ``os._exit``, so that it never returns
    into the code of the process it was forked from. A BrokenPipeError is the relay gone (a call
    killed it): no one to answer, nothing to say; any other failure is printed."""
    try:
        main(*args)
    except BrokenPipeError:
        pass
    except BaseException:
        print_exc()
    finally:
        os._exit(0)


NEVER_SWEPT: set = set()  # children of the relay that no call left behind (the inline worker)
KNOWN_FDS: list = []  # the descriptors a child closes where /proc cannot list its own


def reap(pids: list) -> list:
    left = []
    for pid in pids:
        try:
            if os.waitpid(pid, os.WNOHANG) == (0, 0):
                left.append(pid)
        except ChildProcessError:
            pass
    return left


def settle(keep: set, exited: list, within: float = 2.0) -> list:
    """After a call that started processes: kill and reap all it left before the next call
    starts. Until reaped, even a killed process counts against the pids limit, and the next call
    would find it used up. Orphans of orphans surface here as their parents die, hence the loop;
    one that will not die within ``within`` s is left to be reaped later. It ends only on a sweep
    that found nothing new after all was reaped: a process reaped in this pass may have handed
    its own children (a `setsid` daemon) to this subreaper as it died, after the sweep looked."""
    deadline = time.monotonic() + within
    while True:
        new = sweep(keep, exited)
        exited = reap(exited + new)
        if (not exited and not new) or time.monotonic() > deadline:
            return exited
        time.sleep(0.0005)


def sweep(keep: set, known: list) -> list:
    """Kill every child but the spares: what a call left behind (reparented here, see
    ``become_subreaper``). Returns the new ones, to be reaped."""
    new = []
    for pid in children():
        if pid in keep or pid in NEVER_SWEPT:
            continue
        kill_call(pid)
        if pid not in known:
            new.append(pid)
    return new


def in_child(work, fallback):
    """``work()``'s JSON answer, computed in a throwaway child: what it imports (importlib.metadata,
    and numpy for its version) stays out of the parent, which every later fork would copy.
    ``fallback()``, in the parent, if no process can be started or the child gave no answer."""
    try:
        r, w = os.pipe()
    except OSError:
        return fallback()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return fallback()
    if pid == 0:
        try:
            close_all_but({0, 1, 2, w}, KNOWN_FDS)  # what it imports runs without the host connection
            write_message(w, json.dumps(work()).encode())
        except BaseException:
            print_exc()
        finally:
            os._exit(0)
    os.close(w)
    try:
        raw = read_message(r)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    return fallback() if raw is None else json.loads(raw)
