"""The agent's long-lived parent: it says hello, reads request headers, and answers each kind of
request by the handler registered for it below (``HANDLERS``). Isolated calls and maps go to a
spare forked before they came; the parent forks the next spare while the host is busy, so fork
stays off a call's critical path (docs/architecture.md, "Isolation").

Every answer carries the id of the request it answers; the host checks it.
"""

from __future__ import annotations

import os
import pickle
import socket
import sys
import time

from . import compat, own_cloudpickle, preload
from .call import call_begins, call_spawned, count_fork
from .describe import describe, missing_modules
from .envelope import CACHE_TAG, IMPLEMENTATION, cpus, magic_number, python_version
from .inline import close_in_fork, run_inline
from .limits import no_process, read_limits
from .processes import FosterGone, become_subreaper, in_child, reap, settle, sweep, waitpid
from .protocol import PROTOCOL
from .spare import CallEnd, Spare, runs_isolated
from .spin import RequestSpin, readable
from .wire import Channel, ChannelClosed
from .zygote import Zygote

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


def timeout_of(header: dict) -> float:
    timeout = header.get("timeout")
    timeout = max(0.001, float(30 if timeout is None else timeout))
    if header.get("op") == "map":  # the items' timeout is each item's; the map has as long as its waves need
        timeout = max(timeout, float(header.get("map_timeout") or 0))
    return timeout


class Server:
    """One connection's requests, answered until the host closes it."""

    def __init__(self, channel: Channel, close_in_child: list | tuple = ()) -> None:
        self.channel = channel
        self.close_in_child = list(close_in_child)
        self.spares: list = []  # forked, rehearsed, waiting for a call; oldest first
        self.exited: list = []  # call processes, killed or answered; reaped without waiting
        self.fork_error: OSError | None = None
        self.after_call = False  # the last call started processes or threads: settle first
        self.take = True  # while isolated calls come: the next spare takes the next request itself
        self.zygote: Zygote | None = None  # made before the first non-isolated call runs here (see zygote.py)
        self.ran_inline = False
        self.subreaper = False
        self.spin = RequestSpin()  # after a non-isolated call: wait for the next request without sleeping first

    def run(self) -> None:
        self.channel.send(hello())
        os.register_at_fork(before=count_fork, after_in_child=close_in_fork)
        self.first_spare()
        _warm_imports()
        self.subreaper = become_subreaper()
        preload.start()
        read_limits()
        try:
            while True:
                try:
                    header = self.next_request()
                except ChannelClosed:
                    return
                if header is None:
                    continue
                if runs_isolated(header):
                    self.isolated(header)
                else:
                    HANDLERS.get(header.get("op"), Server.unknown)(self, header)
        finally:
            self.close()

    def next_request(self) -> dict | None:
        """The next request for the parent to answer; None when an armed spare ran one itself.

        What a call that started processes left goes first, even before a request that waits
        (see ``processes.settle``). Then, while isolated calls come, the oldest spare is armed:
        it reads the next request itself, so after an idle stretch that request wakes one
        process, as an inline call does, and the parent forks the next spare meanwhile.
        Otherwise the parent reads, and forks only when no request waits."""
        self.exited = reap(self.exited)
        spares = self.spares
        if self.after_call:
            self.exited = settle({s.pid for s in spares}, self.exited)
            read_limits()
            self.after_call = False
        if self.take and spares and not spares[0].armed:
            spares[0].arm()
        armed = bool(spares) and spares[0].armed
        if len(spares) < _SPARES:
            pending = not armed and readable(self.channel.rfd)
            while len(spares) < (1 if pending else _SPARES):
                found = self.fork_next()
                if found is None:
                    break
                spares.append(found)
        if armed:
            ran, header = spares[0].taken(self.channel)
            if not ran:
                self.take = False  # the parent reads the connection until the next isolated call
                return header
            current = spares.pop(0)
            self.after_isolated(current, current.wait(self.channel, header, timeout_of(header),
                                                      self.refill_if_empty))
            return None
        self.spin.wait(self.channel.rfd)
        header = self.channel.recv_header(cache=True)
        self.spin.arrived()
        return header

    def first_spare(self) -> None:
        """The host's first request is its start-up check, one plain-pickle call (the host's
        ``AgentClient.self_check``): a spare forked and armed before the imports below answers it
        while this process imports what later calls need, so proving that the agent serves adds
        about one call to a cold start, not the imports. Later spares are forked after them."""
        found = self.fork_next()
        if found is not None:
            found.arm()
            self.spares.append(found)

    def fork_next(self) -> Spare | None:
        compat.freeze()  # what the parent holds stays out of the children's collections (fewer page copies)
        try:
            return Spare(self.channel, list(self.close_in_child),
                         self.zygote.fork_spare if self.zygote is not None else None)
        except FosterGone:  # the zygote was killed (the OOM killer, a call's kill -9): no pristine
            if self.zygote is not None:  # copy is left, so spares come from here again, as before
                self.zygote.close()
                self.zygote = None
            return self.fork_next()
        except OSError as exc:  # EAGAIN at the pids limit: the call is answered, the agent lives on
            self.fork_error = exc
            return None

    def refill_if_empty(self) -> None:
        """During a call: only when no spare is left for the next one (a tight loop)."""
        if not self.spares:
            found = self.fork_next()
            if found is not None:
                self.spares.append(found)

    def isolated(self, header: dict) -> None:
        """A call or a map in a fresh process: the oldest spare's."""
        retry_until = time.monotonic() + 2.0
        while not self.spares and time.monotonic() < retry_until:
            # No process to run it (the pids limit): kill and reap what calls left, retry.
            self.exited = reap(self.exited + sweep(set(), self.exited))
            self.refill_if_empty()
            if not self.spares:
                time.sleep(0.01)
        if not self.spares:
            self.channel.recv_buffers(header)
            self.channel.send(no_process(header.get("id"), self.fork_error))
            return
        current = self.spares.pop(0)  # handed over: never closed twice if dispatch fails
        self.after_isolated(current, current.dispatch(self.channel, header, timeout_of(header),
                                                      self.refill_if_empty))
        self.take = True

    def after_isolated(self, current: Spare, end: CallEnd) -> None:
        """Once an isolated call has answered: what is left to reap, and the modules it imported
        preloaded where spares are forked (the spares forked before them are replaced)."""
        current.flags.close()  # now, once answered: not at the next call, on its critical path
        self.after_call = end.sweep
        if end.reap:
            self.exited = self.exited + [current.pid]
        learned = end.learned
        # What a spare names is new to whoever forked it: the zygote, once there is one.
        if learned and (self.zygote is not None or any(name not in sys.modules for name in learned)):
            for old in self.spares:  # forked before these modules were loaded; none is armed yet
                old.close()
            del self.spares[:]
            if self.zygote is not None:
                self.zygote.preload(learned)
            else:
                preload.preload(learned)

    @handles("call")
    def inline(self, header: dict) -> None:
        """A non-isolated call, here in the parent (see inline.py)."""
        if not self.ran_inline and self.subreaper:  # while this process is still as it started
            try:
                self.zygote = Zygote(self.channel, list(self.close_in_child))
            except OSError:  # no process to be had: spares are forked here, as before
                pass
        self.ran_inline = True  # a zygote made from now on would be no cleaner than this process
        call_begins()
        run_inline(self.channel, header, timeout_of(header))
        self.after_call = call_spawned()
        self.spin.answered(header.get("spin"))

    @handles("echo")
    def echo(self, header: dict) -> None:
        self.channel.send({"op": "echo", "id": header.get("id")}, self.channel.recv_buffers(header))

    @handles("describe")
    def describe(self, header: dict) -> None:
        self.channel.send(dict(in_child(describe, lambda: describe(scan=False)), op="describe",
                               id=header.get("id")))

    @handles("find_modules")
    def find_modules(self, header: dict) -> None:
        self.channel.send({"op": "find_modules", "id": header.get("id"),
                           "missing": missing_modules(header["modules"])})

    def unknown(self, header: dict) -> None:
        self.channel.recv_buffers(header)
        self.channel.send({"op": "error", "id": header.get("id"), "message": "unknown op %r" % header.get("op")})

    def close(self) -> None:
        for left in self.spares:
            left.close()
        for pid in sweep(set(), self.exited) + self.exited:
            try:
                waitpid(pid)
            except ChildProcessError:
                pass
        if self.zygote is not None:
            self.zygote.close()


def serve(channel: Channel, close_in_child: list | tuple = ()) -> None:
    """Answer requests until the host closes the connection."""
    Server(channel, close_in_child).run()


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
