"""Isolated calls: each runs in a spare, a child forked (and rehearsed) before its request came.

The relay (the agent's parent, see relay.py) hands a spare the request on a socket pair of the
spare's own; the spare runs the call, answers on a pipe, and exits. A crash or a timeout kills only
the spare, and the relay answers for it.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import select
import signal
import sys
import time

from . import pipes, relay
from .buffers import dump_with_buffers
from .call import CALL, call_begins, fresh_random_state, run_call
from .limits import CALL_LIMITS, crash_info, timeout_info
from .map_items import run_map
from .preload import installed_imports
from .processes import KNOWN_FDS, child_life, close_all_but, close_in_forks, kill_call, request_pair
from .protocol import CRASH, TIMEOUT
from .wire import Channel, ChannelClosed

# How often a waiting parent checks whether the call process died (its pipe may outlive it).
_DEATH_POLL_S = 0.05
_HANGUP = select.POLLHUP | getattr(select, "POLLRDHUP", 0)

# How an isolated call ended, for the parent: the installed modules it imported, whether its
# process is still to be reaped, and whether to sweep after it (it started processes or threads,
# or ended abnormally).
CallEnd = collections.namedtuple("CallEnd", "learned reap sweep")


def runs_isolated(header: dict) -> bool:
    return header.get("op") in ("call", "map") and header.get("isolate", True)


def spare_main(hr: int, rw: int, sw: int) -> None:
    """A spare's process, from its fork to its exit. Before anything else it closes every
    descriptor but its own pipes: the host connection above all, and the other children's pipes."""
    CALL.forks = 0  # counts its own forks (the parent's hook counted them too)
    call_begins()
    child_life(_spare_life, hr, rw, sw)


def _spare_life(hr: int, rw: int, sw: int) -> None:
    close_all_but({0, 1, 2, hr, rw, sw}, KNOWN_FDS)
    os.setsid()
    close_in_forks([rw, sw, hr])
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the parent's is for its own calls
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    fresh_random_state()
    _rehearse()
    _serve_as_spare(hr, rw, sw)


def _serve_as_spare(hr: int, rw: int, sw: int) -> None:
    """A spare's life: one request, handed over by the relay on its own pipe, answered on its own."""
    raw = pipes.read_message(hr)
    if raw is None:
        return
    CALL_LIMITS.update(json.loads(raw) or {})
    channel = Channel(hr, rw)
    try:
        header = channel.recv_header(cache=True)
    except ChannelClosed:
        return
    (run_map if header.get("op") == "map" else run_call)(channel, header, sw)


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
    """A child forked ahead of time, blocked until the relay hands it a request (see ``serve``).

    It is a session of its own, so the call and everything it starts die together when the
    call ends (any outcome). It never holds the host connection: its answer comes back on a
    pipe of its own, and the relay passes on one frame, the result for the request it handed.
    """

    def __init__(self) -> None:
        hr, self.hw = request_pair()
        self.rr, rw = os.pipe()
        self.sr, sw = os.pipe()
        try:
            self.pid = os.fork()
            if self.pid == 0:
                spare_main(hr, rw, sw)
        except BaseException:
            for fd in (self.hw, self.rr, self.sr):
                os.close(fd)
            raise
        finally:
            for fd in (hr, rw, sw):
                os.close(fd)
        self.reader = pipes.StatusReader(self.sr)
        self.status: int | None = None

    def alive(self) -> bool:
        if self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = st
        return self.status is None

    def dispatch(self, channel: Channel, head: bytes, header: dict, limits: bytes, timeout: float, buf: list,
                 while_waiting=None) -> CallEnd:
        """Hand over the request and wait only until the call has answered, died, or run out
        of time: its exit is reaped later, and the next spare forked after the answer, both off
        the critical path (forking now would take the CPU the call needs on a small machine).
        A descendant that keeps a pipe open cannot hold this up: the child's own death is what
        ends the wait."""
        handed = relay.hand(self.hw, limits, head, channel, header["buffers"], buf)
        os.close(self.hw)
        self.hw = -1
        if while_waiting is not None:
            while_waiting()
        try:
            return self._wait(channel, header, timeout, buf, handed)
        finally:
            kill_call(self.pid)  # the call and all it started, whatever the outcome
            os.close(self.sr)
            os.close(self.rr)
            self.sr = self.rr = -1

    def _wait(self, channel: Channel, header: dict, timeout: float, buf: list, handed: bool) -> CallEnd:
        reader = self.reader
        rid = header.get("id")
        poller = select.poll()
        if handed:
            poller.register(self.sr, select.POLLIN)
            poller.register(self.rr, select.POLLIN)
        # The host sends nothing more until the answer: a hang-up means the host is gone.
        poller.register(channel.rfd, _HANGUP)
        deadline = time.monotonic() + timeout
        timed_out = False
        status_open = reply_open = handed
        status = None
        forged = False
        while status is None:
            wait = _DEATH_POLL_S
            if not timed_out:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    kill_call(self.pid)
                    left = 0.0
                wait = min(wait, left)
            events = poller.poll(wait * 1000)
            for fd, _ in events:
                if fd == self.sr:
                    if status_open and not reader.read():
                        status_open = False
                        poller.unregister(self.sr)
                elif fd == self.rr and reply_open:
                    got = relay.relay_reply(self.rr, channel, rid, max(deadline, time.monotonic()) + 1.0, buf,
                                            self.alive)
                    if got == relay.ANSWERED:
                        self._status_after(reader, status_open)
                        return CallEnd(reader.learned, self.status is None, pipes.SPAWNED in reader.tokens)
                    if got == relay.FORGED:
                        forged = True
                        kill_call(self.pid)
                    elif got == relay.LATE:
                        timed_out = True
                        kill_call(self.pid)
                    reply_open = False
                    poller.unregister(self.rr)
                elif fd == channel.rfd:
                    raise ChannelClosed("the host hung up during a call")
            if forged:
                break
            if not events or not (status_open and reply_open):
                self.alive()
                status = self.status
        response: dict
        if forged:
            response = relay.forged_reply(rid)
        else:
            response = {"op": "result", "id": rid, "phases": {}}
            if timed_out:
                response.update(outcome=TIMEOUT, error=timeout_info(
                    timeout, "call", "it and every process it started were killed"))
            else:
                response.update(outcome=CRASH, error=crash_info(status if status is not None else 0))
        channel.send(response)
        return CallEnd([], status is None, True)

    def _status_after(self, reader: pipes.StatusReader, is_open: bool) -> None:
        """What the call says after its answer (modules it learned, processes it started): it
        writes it at once; a call that wrote its frame itself and went on is not waited for."""
        until = time.monotonic() + 0.5
        while is_open and pipes.ANSWERED not in reader.tokens:
            left = until - time.monotonic()
            if left <= 0 or not select.select([self.sr], [], [], left)[0]:
                reader.tokens += pipes.SPAWNED
                return
            is_open = reader.read()

    def close(self) -> None:
        for fd in (self.hw, self.sr, self.rr):
            if fd >= 0:
                os.close(fd)
        kill_call(self.pid)
        if self.status is None:
            os.waitpid(self.pid, 0)

