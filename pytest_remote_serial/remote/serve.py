"""The agent's long-lived parent, the relay (relay.py): it says hello, reads every request,
answers the agent's own kinds of request by the handler registered for it below (``HANDLERS``),
and hands each call to a child: an isolated call or a map to a spare forked before it came, a
non-isolated call to the inline worker. It forks the next spare while the host is busy, so fork
stays off a call's critical path (docs/architecture.md, "Isolation"). No child holds the host
connection; the relay passes on one frame per call, the result for that call's id.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import time

from . import compat, own_cloudpickle, preload, relay
from .call import count_fork, timeout_of
from .describe import describe, missing_modules
from .envelope import CACHE_TAG, IMPLEMENTATION, cpus, magic_number, python_version
from .inline import InlineWorker, close_in_fork
from .limits import LIMITS_NOW, crash_info, no_process, read_limits, timeout_info
from .processes import KNOWN_FDS, become_subreaper, in_child, reap, settle, sweep
from .protocol import CRASH, PROTOCOL, TIMEOUT
from .spare import CallEnd, Spare, runs_isolated
from .spin import RequestSpin, readable, spin_window
from .wire import Channel, ChannelClosed

_SPARES = 2  # ready call processes kept while idle: a tight loop never waits for a fork

# op -> the Server method that answers it. Isolated calls and maps are a spare's, not these.
HANDLERS: dict = {}


def handles(op: str):
    def register(method):
        HANDLERS[op] = method
        return method

    return register


def hello() -> dict:
    return {"op": "hello", "protocol": PROTOCOL, "python": python_version(), "implementation": IMPLEMENTATION,
            "cache_tag": CACHE_TAG, "cpus": cpus(), "magic": magic_number(), "pid": os.getpid(),
            "pickle_protocol": pickle.HIGHEST_PROTOCOL}


class Server:
    """One connection's requests, answered until the host closes it."""

    def __init__(self, channel: Channel, close_in_child: list | tuple = ()) -> None:
        self.channel = channel
        KNOWN_FDS[:] = [channel.rfd, channel.wfd] + list(close_in_child)
        self.spares: list = []  # forked, rehearsed, waiting for a call; oldest first
        self.exited: list = []  # call processes, killed or answered; reaped without waiting
        self.fork_error: OSError | None = None
        self.after_call = False  # the last call started processes or threads: settle first
        self.warm = False  # the imports every child needs are done (after the first request)
        self.worker: InlineWorker | None = None  # runs non-isolated calls, made at the first one
        self.buf: list = []  # the relay's copy buffer where the kernel cannot move the bytes itself
        self.spin = RequestSpin()  # after a non-isolated call: wait for the next request without sleeping first

    def run(self) -> None:
        relay.not_dumpable()
        self.channel.send(hello())
        os.register_at_fork(before=count_fork, after_in_child=close_in_fork)
        self.first_spare()
        try:
            while True:
                try:
                    head, header = self.next_request()
                except ChannelClosed:
                    return
                if runs_isolated(header):
                    self.isolated(head, header)
                else:
                    HANDLERS.get(header.get("op"), Server.unknown)(self, head, header)
                if not self.warm:
                    self.warm_up()
        finally:
            self.close()

    def warm_up(self) -> None:
        """After the first request (the host's start-up check, answered by the first spare):
        what every later child needs, imported once here."""
        self.warm = True
        _warm_imports()
        become_subreaper()
        preload.start()
        read_limits()

    def next_request(self) -> tuple:
        """The next request's head, as it came, and decoded.

        What a call that started processes left goes first, even before a request that waits
        (see ``processes.settle``). Spares are forked only when no request waits."""
        self.exited = reap(self.exited)
        spares = self.spares
        if self.after_call:
            self.exited = settle({s.pid for s in spares}, self.exited)
            read_limits()
            self.after_call = False
        if self.warm and len(spares) < _SPARES:
            pending = readable(self.channel.rfd)
            while len(spares) < (1 if pending else _SPARES):
                found = self.fork_next()
                if found is None:
                    break
                spares.append(found)
        self.spin.wait(self.channel.rfd)
        head = self.channel.recv_head()
        self.spin.arrived()
        return head, self.channel.decode_head(head, cache=True)

    def first_spare(self) -> None:
        """The host's first request is its start-up check, one plain-pickle call (the host's
        ``AgentClient.self_check``): a spare forked before the imports answers it, and the
        imports follow, so proving that the agent serves adds about one call to a cold start."""
        found = self.fork_next()
        if found is not None:
            self.spares.append(found)

    def fork_next(self) -> Spare | None:
        compat.freeze()  # what the parent holds stays out of the children's collections (fewer page copies)
        try:
            return Spare()
        except OSError as exc:  # EAGAIN at the pids limit: the call is answered, the agent lives on
            self.fork_error = exc
            return None

    def refill_if_empty(self) -> None:
        """During a call: only when no spare is left for the next one (a tight loop)."""
        if not self.spares and self.warm:
            found = self.fork_next()
            if found is not None:
                self.spares.append(found)

    def isolated(self, head: bytes, header: dict) -> None:
        """A call or a map in a fresh process: the oldest spare's."""
        retry_until = time.monotonic() + 2.0
        while not self.spares and time.monotonic() < retry_until:
            # No process to run it (the pids limit): kill and reap what calls left, retry.
            self.exited = reap(self.exited + sweep(set(), self.exited))
            found = self.fork_next()
            if found is not None:
                self.spares.append(found)
            else:
                time.sleep(0.01)
        if not self.spares:
            relay.drain(self.channel.rfd, sum(header["buffers"]))
            self.channel.send(no_process(header.get("id"), self.fork_error))
            return
        current = self.spares.pop(0)  # handed over: never closed twice if dispatch fails
        end = current.dispatch(self.channel, head, header, _limits(), timeout_of(header), self.buf,
                               self.refill_if_empty)
        self.after_isolated(current, end)

    def after_isolated(self, current: Spare, end: CallEnd) -> None:
        """Once an isolated call has answered: what is left to reap, and the modules it imported
        preloaded where spares are forked (the spares forked before them are replaced)."""
        self.after_call = end.sweep
        if end.reap:
            self.exited = self.exited + [current.pid]
        learned = end.learned
        if learned and any(name not in sys.modules for name in learned):
            for old in self.spares:  # forked before these modules were loaded
                old.close()
            del self.spares[:]
            preload.preload(learned)

    @handles("call")
    def inline(self, head: bytes, header: dict) -> None:
        """A non-isolated call, in the inline worker (see inline.py): the worker is replaced if
        it wrote while no request was outstanding, died, or ran a call past its timeout."""
        rid = header.get("id")
        worker = self.worker
        if worker is not None and not worker.usable():
            self.drop_worker()
            worker = None
        if worker is None:
            try:
                worker = self.worker = InlineWorker()
            except OSError as exc:
                relay.drain(self.channel.rfd, sum(header["buffers"]))
                self.channel.send(no_process(rid, exc))
                return
        timeout = timeout_of(header)
        if relay.hand(worker.hw, _limits(), head, self.channel, header["buffers"], self.buf):
            ready = worker.reply_soon(spin_window(header.get("spin")))
            got = relay.relay_reply(worker.rr, self.channel, rid, time.monotonic() + timeout + 1.0, self.buf,
                                    worker.alive, ready)
        else:
            got = relay.DIED
        if got == relay.ANSWERED:
            self.spin.answered(header.get("spin"))
            return
        response: dict = {"op": "result", "id": rid, "phases": {}}
        if got == relay.FORGED:
            response = relay.forged_reply(rid)
        elif got == relay.LATE:
            response.update(outcome=TIMEOUT, error=timeout_info(
                timeout, "call", "it resisted its timer and was killed a second later, with the inline "
                "worker it ran in (the next non-isolated call starts in a fresh one)"))
        else:
            response.update(outcome=CRASH, error=crash_info(worker.exit_status()))
        self.drop_worker()
        self.channel.send(response)

    def drop_worker(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None
            self.after_call = True  # what it left escapes to the relay, the next subreaper up

    @handles("echo")
    def echo(self, head: bytes, header: dict) -> None:
        self.channel.send({"op": "echo", "id": header.get("id")}, self.channel.recv_buffers(header))

    @handles("describe")
    def describe(self, head: bytes, header: dict) -> None:
        self.channel.send(dict(in_child(describe, lambda: describe(scan=False)), op="describe",
                               id=header.get("id")))

    @handles("find_modules")
    def find_modules(self, head: bytes, header: dict) -> None:
        self.channel.send({"op": "find_modules", "id": header.get("id"),
                           "missing": missing_modules(header["modules"])})

    def unknown(self, head: bytes, header: dict) -> None:
        relay.drain(self.channel.rfd, sum(header["buffers"]))
        self.channel.send({"op": "error", "id": header.get("id"), "message": "unknown op %r" % header.get("op")})

    def close(self) -> None:
        for left in self.spares:
            left.close()
        self.drop_worker()
        for pid in sweep(set(), self.exited) + self.exited:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def serve(channel: Channel, close_in_child: list | tuple = ()) -> None:
    """Answer requests until the host closes the connection."""
    Server(channel, close_in_child).run()


_LIMITS: list = [None, b"{}"]  # the last reading of the limits handed on, and its JSON


def _limits() -> bytes:
    """The limits read after the last call, as JSON for the child (rarely changed: not encoded again)."""
    if _LIMITS[0] != LIMITS_NOW:
        _LIMITS[:] = [dict(LIMITS_NOW), json.dumps(LIMITS_NOW).encode()]
    return _LIMITS[1]


def _warm_imports() -> None:
    """The default serializer, once in the parent so every forked child has it: the cloudpickle
    a call imports, and the plugin's own copy that source capsules load with (``own_cloudpickle``),
    both through ``compat.import_pickler_module`` where they are the host's (PyPy 8). Not dill: it
    doubles the parent's private memory (6 MB, 27 mappings), which every fork then copies and every
    exit unmaps (fork+exit+wait 1.02 -> 1.36 ms in a container); a target that is sent dill learns
    it after its first dill call, like any module a call imports."""
    for warm in (_import_cloudpickle, own_cloudpickle.cloudpickle):
        try:
            warm()
        except Exception:
            pass


def _import_cloudpickle() -> None:
    """The cloudpickle a call imports: the host's injected copy is imported so that it works on
    PyPy 8 as the plugin's own does; an image's own cloudpickle as the image has it (its failure
    there is the truth of that worker)."""
    compat.import_injected("cloudpickle", preload.KNOWN.libs)


def serve_socket(path: str, keep: bool, accept_timeout: float) -> None:
    """Listen on a Unix socket in a private folder the host bind-mounted, and serve whoever
    connects (the host polls for the socket to appear)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    os.chmod(path + ".tmp", 0o777)  # the private parent directory is the access control
    listener.listen(1)
    os.rename(path + ".tmp", path)  # appears only once it accepts: the host polls for it
    listener.settimeout(accept_timeout)
    while True:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            return
        conn.settimeout(None)
        try:
            serve(Channel(conn.fileno(), conn.fileno()), [listener.fileno()])
        except EOFError as exc:
            print("agent: connection lost: %s" % exc, file=sys.stderr)
        finally:
            conn.close()
        if not keep:
            return
