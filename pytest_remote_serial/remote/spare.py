"""Isolated calls: each runs in a spare, a child forked (and rehearsed) before its request came.

The parent hands a spare a request header, or arms it to read the next request off the
connection itself; the spare reads the payload straight off the connection, runs the call,
answers and exits. A crash or a timeout kills only the spare, and the parent answers for it.
"""

from __future__ import annotations

import collections
import json
import mmap
import os
import pickle
import select
import signal
import sys
import time

from . import compat, pipes
from .buffers import dump_with_buffers
from .call import CALL, call_begins, fresh_random_state, run_call
from .diagnosis import print_exc
from .limits import CALL_LIMITS, LIMITS_NOW, crash_info, timeout_info
from .map_items import run_map
from .preload import installed_imports
from .processes import close_in_forks, kill_call, waitpid
from .protocol import CRASH, TIMEOUT
from .wire import Channel, ChannelClosed

# How often a waiting parent checks whether the call process died (its pipe may outlive it).
_DEATH_POLL_S = 0.05
_HANGUP = select.POLLHUP | getattr(select, "POLLRDHUP", 0)
_TAKE = "_take"  # the parent's message to a spare: read the next request yourself

# How an isolated call ended, for the parent: the installed modules it imported, whether its
# process is still to be reaped, and whether to sweep after it (it started processes or threads,
# or ended abnormally).
CallEnd = collections.namedtuple("CallEnd", "learned reap sweep")


def runs_isolated(header: dict) -> bool:
    return header.get("op") in ("call", "map") and header.get("isolate", True)


def spare_main(channel: Channel, close: list, hr: int, sw: int, flags) -> None:
    """A spare's process, from its fork to its exit."""
    CALL.flags = flags
    CALL.forks = 0  # counts its own forks (the parent's hook counted them too)
    call_begins()
    try:
        for fd in close:
            os.close(fd)
        os.setsid()
        close_in_forks([channel.rfd, channel.wfd, sw, hr])
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the parent's is for its own calls
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote's is for its own children
        signal.set_wakeup_fd(-1)
        fresh_random_state()
        _rehearse()
        _serve_as_spare(channel, hr, sw)
    except BaseException:
        print_exc()
    finally:
        os._exit(0)


def _serve_as_spare(channel: Channel, hr: int, sw: int) -> None:
    """A spare's life: one request, handed over by the parent or taken off the connection when
    armed. A request that is not an isolated call goes back to the parent undecoded
    (HANDED_BACK), and the spare waits to be armed again; one it runs is announced first (TOOK),
    so the parent holds its id and deadline exactly as for a request it handed over."""
    while True:
        raw = pipes.read_message(hr)
        if raw is None:
            return
        header = json.loads(raw)
        CALL_LIMITS.update(header.pop("_limits", None) or {})
        if header.get("op") == _TAKE:
            try:
                head = channel.recv_head()
            except ChannelClosed:
                os.write(sw, pipes.HOST_CLOSED)
                return
            header = channel.decode_head(head, cache=True)
            if not runs_isolated(header):
                pipes.write_message(sw, head, pipes.HANDED_BACK)
                continue
            pipes.write_message(sw, head, pipes.TOOK)
        (run_map if header.get("op") == "map" else run_call)(channel, header, sw)
        return


def _rehearse() -> None:
    """Walk a call's path (the header off a pipe, the frame, load, call, dump, the answer)
    while no request waits. In a fresh fork this pays, off the critical path, the copy-on-write
    fault of every page the call first writes (refcounts; ~6 ms on a VM): measured, a call
    then takes ~25 faults of the ~700 its process takes in all."""
    try:
        # The parent's cloudpickle; the first spare, forked before the parent imported it (see
        # ``Server.first_spare``), rehearses with plain pickle rather than import it on its path.
        cloudpickle = sys.modules.get("cloudpickle")
        pickler, name = (cloudpickle.Pickler, "cloudpickle") if cloudpickle is not None else (pickle.Pickler, "pickle")
        payload = dump_with_buffers(pickler, (abs, (-1,), {}))
        header = {"op": "call", "id": 0, "serializer": name, "envelope": {}, "timeout": 1.0}
        r, w = os.pipe()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            pipes.write_message(w, json.dumps(header).encode())
            pipes.read_message(r)
            Channel(r, w).send(header, payload)
            channel = Channel(r, null)
            run_call(channel, channel.recv_header(cache=True))
        finally:
            for fd in (r, w, null):
                os.close(fd)
        installed_imports()
    except Exception:
        pass


class Spare:
    """A child forked ahead of time, blocked until the parent hands it a request header or
    arms it to read the next request off the connection itself (see ``serve``).

    It is a session of its own, so the call and everything it starts die together when the
    call ends (any outcome); and a process the call forks loses the connection and the status
    pipe at once, so nothing left behind can answer for a later call.

    ``fork_spare`` forks it elsewhere (a zygote's, given the pipes and flags to hand on): the
    parent, which may have run inline calls, is then not what the call process is a copy of.
    """

    def __init__(self, channel: Channel, close_in_child: list, fork_spare=None) -> None:
        hr, self.hw = os.pipe()
        self.sr, sw = os.pipe()
        try:
            if fork_spare is None:
                self.flags = mmap.mmap(-1, len(pipes.FLAGS))  # shared; read by the parent only if the call dies
                self.pid = os.fork()
                if self.pid == 0:
                    spare_main(channel, close_in_child + [self.hw, self.sr], hr, sw, self.flags)
            else:  # forked by a process the parent did not fork: the flags live in a memfd
                flags_fd = compat.memfd_create("prs-flags")
                try:
                    os.ftruncate(flags_fd, len(pipes.FLAGS))
                    self.flags = mmap.mmap(flags_fd, len(pipes.FLAGS))
                    self.pid = fork_spare([hr, sw, flags_fd])
                finally:
                    os.close(flags_fd)
        except BaseException:
            os.close(self.hw)
            os.close(self.sr)
            raise
        finally:
            os.close(hr)
            os.close(sw)
        self.reader = pipes.StatusReader(self.sr)
        self.armed = False

    def has(self, reader: pipes.StatusReader, kind: bytes) -> bool:
        return kind in reader.tokens or (kind in pipes.FLAGS and bool(self.flags[pipes.FLAGS.index(kind)]))

    def arm(self) -> None:
        """From now on this spare takes the next request off the connection itself. After an
        idle stretch an isolated call then wakes one process, as an inline call does, instead
        of the parent and then its spare (each wake-up of an idle process costs ~0.3 ms on a VM)."""
        pipes.write_message(self.hw, json.dumps({"op": _TAKE, "_limits": LIMITS_NOW}).encode())
        self.armed = True

    def taken(self, channel: Channel) -> tuple:
        """What the armed spare took: ``(True, header)`` for a request it runs itself, ``(False,
        header)`` for one it handed back (its buffers still wait on the connection)."""
        poller = select.poll()
        poller.register(self.sr, select.POLLIN)
        poller.register(channel.rfd, _HANGUP)
        while True:
            for fd, _ in poller.poll():
                if fd == channel.rfd:
                    raise ChannelClosed("the host hung up")
                if not self.reader.read():
                    waitpid(self.pid)
                    raise EOFError("the spare reading the next request died (the stream's state is unknown)")
            if pipes.HOST_CLOSED in self.reader.tokens:
                raise ChannelClosed("the host closed the connection")
            for kind in (pipes.TOOK, pipes.HANDED_BACK):
                head = self.reader.heads.pop(kind, None)
                if head is not None:
                    self.armed = False
                    return kind == pipes.TOOK, channel.decode_head(head, cache=True)

    def dispatch(self, channel: Channel, header: dict, timeout: float, while_waiting=None) -> CallEnd:
        """Hand over the request and wait only until the call has answered, died, or run out
        of time: its exit is reaped later, and the next spare forked after the answer, both off
        the critical path (forking now would take the CPU the call needs on a small machine).
        A descendant that keeps the status pipe open cannot hold this up: the child's own death
        is what ends the wait."""
        pipes.write_message(self.hw, json.dumps(dict(header, _limits=LIMITS_NOW)).encode())
        return self.wait(channel, header, timeout, while_waiting)

    def wait(self, channel: Channel, header: dict, timeout: float, while_waiting=None) -> CallEnd:
        """The call is this spare's (handed over, or taken by it): see ``dispatch``."""
        os.close(self.hw)
        if while_waiting is not None:
            while_waiting()
        reader = self.reader
        poller = select.poll()
        poller.register(self.sr, select.POLLIN)
        # The host sends nothing more until the answer: a hang-up means the host is gone.
        poller.register(channel.rfd, _HANGUP)
        deadline = time.monotonic() + timeout
        timed_out = False
        pipe_open = True
        status = None
        try:
            while pipes.ANSWERED not in reader.tokens and status is None:
                wait = _DEATH_POLL_S if pipe_open else 0.002
                if not timed_out and not self.has(reader, pipes.WRITING):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        timed_out = True
                        kill_call(self.pid)
                        left = 0.0
                    wait = min(wait, left)
                events = poller.poll(wait * 1000)
                for fd, _ in events:
                    if fd == self.sr:
                        if pipe_open and not reader.read():
                            pipe_open = False
                            poller.unregister(self.sr)
                    elif fd == channel.rfd:
                        raise ChannelClosed("the host hung up during a call")
                if pipes.ANSWERED in reader.tokens:
                    break
                if not events or not pipe_open:
                    pid, st = waitpid(self.pid, os.WNOHANG)
                    if pid:
                        status = st
                        _drain(reader, self.sr, pipe_open)
        finally:
            kill_call(self.pid)  # the call and all it started, whatever the outcome
            os.close(self.sr)
        if pipes.ANSWERED in reader.tokens:
            return CallEnd(reader.learned, status is None, pipes.SPAWNED in reader.tokens)
        if self.has(reader, pipes.WRITING):  # died while writing its answer: the stream is unusable
            raise EOFError("call process died mid-response")
        if not self.has(reader, pipes.BEGUN):
            raise EOFError("call process died before reading its payload")
        response: dict = {"op": "result", "id": header.get("id"), "phases": {}}
        if timed_out:
            response.update(outcome=TIMEOUT, error=timeout_info(
                timeout, "call", "it and every process it started were killed"))
        else:
            response.update(outcome=CRASH, error=crash_info(status if status is not None else 0))
        channel.send(response)
        return CallEnd([], False, True)

    def close(self) -> None:
        os.close(self.hw)
        os.close(self.sr)
        kill_call(self.pid)
        waitpid(self.pid)


def _drain(reader: pipes.StatusReader, fd: int, pipe_open: bool) -> None:
    """The kinds a dead child wrote before it died, without waiting for an EOF that a
    descendant holding the pipe could delay forever."""
    while pipe_open and select.select([fd], [], [], 0)[0]:
        pipe_open = reader.read()
