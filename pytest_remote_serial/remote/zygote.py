"""The zygote: a copy of the agent's parent, made before its first non-isolated call, which forks
the spares from then on.

A non-isolated call runs in the parent and may change it (``os.environ``, the working directory,
a module's globals, builtins); a spare forked from the changed parent would show that to an
isolated call, which must see a fresh process instead. The spares are the zygote's children: it
reaps them and relays each exit status to the parent, which asks for them through
``processes.waitpid``. What a call leaves behind still comes to the parent, the nearest
subreaper, to be swept.

Parent and zygote talk over a SOCK_SEQPACKET pair, one message a datagram, a kind a byte.
"""

from __future__ import annotations

import mmap
import os
import select
import signal
import socket
import struct

from . import compat, pipes
from .diagnosis import print_exc
from .preload import preload
from .processes import FOSTERED, NEVER_SWEPT, FosterGone, close_all_but
from .spare import spare_main
from .wire import Channel

FORK = b"S"  # parent -> zygote, with the spare's pipe ends and flags as fds: fork a spare
PRELOAD = b"P"  # parent -> zygote, comma-separated names: import these before the next fork
FORKED = b"N"  # zygote -> parent, the new spare's pid (negative: the errno of a failed fork)
EXITED = b"X"  # zygote -> parent, a pid and its wait status: one of its spares was reaped
_PID = struct.Struct("!i")
_EXIT = struct.Struct("!ii")


class ZygoteGone(FosterGone):
    pass


class Zygote:
    """The parent's end: it asks for spares, and files their exits as they are relayed."""

    def __init__(self, channel: Channel, close_in_child: list) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.exits: dict = {}  # pid -> wait status, relayed and not yet asked for
        self.gone = False
        self.pid = os.fork()
        if self.pid == 0:
            try:
                self.sock.close()
                close_all_but({0, 1, 2, channel.rfd, channel.wfd, theirs.fileno()}, close_in_child)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                _zygote_main(channel, theirs)
            except BaseException:
                print_exc()
            finally:
                os._exit(0)
        theirs.close()
        NEVER_SWEPT.add(self.pid)

    def _next(self, block: bool) -> bytes | None:
        """One message from the zygote (None: nothing yet); exit statuses are filed as they come."""
        while True:
            try:
                msg = self.sock.recv(16, 0 if block else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return None
            except OSError:
                msg = b""
            if not msg:
                self.gone = True
                raise ZygoteGone("the zygote is gone")
            if msg[:1] == EXITED:
                pid, status = _EXIT.unpack(msg[1:1 + _EXIT.size])
                self.exits[pid] = status
                if block:
                    return msg
                continue
            return msg

    def fork_spare(self, fds: list) -> int:
        try:
            socket.send_fds(self.sock, [FORK], fds)
        except OSError as exc:
            self.gone = True
            raise ZygoteGone("the zygote is gone: %s" % exc) from exc
        while True:
            msg = self._next(block=True) or b""
            if msg[:1] == FORKED:
                (pid,) = _PID.unpack(msg[1:1 + _PID.size])
                if pid < 0:
                    raise OSError(-pid, os.strerror(-pid))
                FOSTERED[pid] = self
                return pid

    def status(self, pid: int, block: bool) -> int | None:
        """``pid``'s wait status once the zygote has reaped it (None: still running)."""
        while pid not in self.exits:
            if self._next(block) is None:
                return None
        return self.exits.pop(pid)

    def preload(self, names: list) -> None:
        self.sock.send(PRELOAD + ",".join(names).encode())

    def close(self) -> None:
        self.sock.close()  # the zygote's end reads EOF and it exits
        self.gone = True
        NEVER_SWEPT.discard(self.pid)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _zygote_main(channel: Channel, sock: socket.socket) -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wake-up fd is written
    signal.set_wakeup_fd(wake_w)
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    while True:
        ready = [fd for fd, _ in poller.poll()]
        if wake_r in ready:
            os.read(wake_r, 512)
            while True:  # relay every exit; one signal may stand for several
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if not pid:
                    break
                sock.send(EXITED + _EXIT.pack(pid, status))
        if sock.fileno() not in ready:
            continue
        msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
        if not msg:
            return
        if msg[:1] == PRELOAD:
            preload([x for x in msg[1:].decode().split(",") if x])
            continue
        hr, sw, flags_fd = fds
        compat.freeze()
        try:
            pid = os.fork()
        except OSError as exc:
            pid = -(exc.errno or 11)
        if pid == 0:
            sock.close()
            for fd in (wake_r, wake_w):
                os.close(fd)
            flags = mmap.mmap(flags_fd, len(pipes.FLAGS))
            os.close(flags_fd)
            spare_main(channel, [], hr, sw, flags)
        for fd in fds:
            os.close(fd)
        sock.send(FORKED + _PID.pack(pid))
