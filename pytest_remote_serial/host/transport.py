"""Host ends of the agent's channel: a Unix socket, or docker's multiplexed stdio stream.

Both add a deadline to every read, so a wedged target can never hang the test run.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from ..remote.envelope import cpus
from ..remote.spin import SPIN_MAX_S, QuickWaits
from ..remote.wire import Channel, ChannelClosed, receive_buffer

POLL_MAX_MS = 2**31 - 1  # poll() takes a C int of milliseconds


class AgentLost(EOFError):
    """The agent stopped answering or the connection broke."""


class DeadlinePassed(AgentLost):
    """Nothing came before the deadline (the connection itself is fine)."""


# While an answer is coming in, the deadline moves on with each read, this far past it: a large
# result takes what its bytes take; an agent that stops in the middle of one is lost.
STALL_S = 15.0


class SocketChannel(Channel):
    """Reads are buffered: a small reply (length, header, result) costs one ``recv``.

    The socket stays blocking. A read blocks in ``recv`` itself, which the kernel cuts into
    slices (``SO_RCVTIMEO``) so the deadline is checked while it waits: one system call for
    an answer, where ``poll`` then ``recv`` cost two and a second wake-up path. A write first
    tries ``MSG_DONTWAIT``; only when that would block does it ``poll`` with what is left of
    the deadline. A per-operation ``settimeout`` would cost two ``fcntl`` calls and a ``poll``
    on every read.

    An answer that came within ``spin_s`` of its request last time is waited for without
    sleeping first (see ``_first_read``): on a VM, waking a sleeping process costs more than a
    small call's whole work.
    """

    CHUNK = 256 * 1024
    SLICE_S = 0.05  # how late past its deadline a blocked read notices it

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock.fileno(), sock.fileno())
        self.sock = sock
        sock.setblocking(True)
        self.deadline: float | None = None
        self._pending = bytearray()  # read past the last frame's end
        self._scratch = bytearray(self.CHUNK)
        self._pollers: dict[int, Any] = {}
        self._sliced = _slice_reads(sock, self.SLICE_S)
        self._answer_due = False  # a request went out and nothing of its answer was read yet
        self.spin_s = spin_window()
        self._kind: tuple[Any, Any] = (None, None)  # the last request's op and isolate flag
        self._sent_at = 0.0
        self._waits: dict[tuple[Any, Any], QuickWaits] = {}  # per kind: is an answer worth spinning for?
        self.answering = False  # some of the answer to the last request has been read

    def _remaining_ms(self) -> int:
        if self.deadline is None:
            return -1
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlinePassed("the agent did not answer before the deadline")
        return max(1, min(int(left * 1000), POLL_MAX_MS))  # a long map's deadline: poll again later

    def _wait(self, event: int) -> None:
        poller = self._pollers.get(event)
        if poller is None:
            poller = self._pollers[event] = select.poll()
            poller.register(self.sock, event)
        while not poller.poll(self._remaining_ms()):
            pass  # (_remaining_ms raises once the deadline is past)

    def _guarded(self, op: Callable[[Any, int], int], arg: Any, event: int) -> int:
        """One socket operation under the deadline; every failure becomes AgentLost."""
        while True:
            try:
                return op(arg, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                raise AgentLost(f"connection to the agent broke: {exc}") from None
            self._wait(event)

    def send(self, header: dict[str, Any], buffers: Any = ()) -> None:
        self._kind = (header.get("op"), header.get("isolate"))
        self.answering = False
        super().send(header, buffers)
        self._sent_at = time.perf_counter()
        self._answer_due = True

    def _progress(self) -> None:
        """Bytes of the answer came: it is under way, and the deadline moves on with it."""
        self.answering = True
        if self.deadline is not None:
            self.deadline = max(self.deadline, time.monotonic() + STALL_S)

    def _blocking_read(self, view: memoryview) -> int:
        while True:
            try:
                return self.sock.recv_into(view)
            except (BlockingIOError, InterruptedError):  # a slice ended: is the deadline past?
                self._remaining_ms()
            except OSError as exc:
                raise AgentLost(f"connection to the agent broke: {exc}") from None

    def _first_read(self, view: memoryview) -> int:
        """The first read of an answer. Spin-then-block: where the last answer to this kind of
        request came within ``spin_s``, try without sleeping until ``spin_s`` after the request,
        yielding the CPU to anything else runnable; past it, or for slow kinds, block."""
        if not self.spin_s:
            return self._blocking_read(view)
        waits = self._waits.get(self._kind)
        if waits is None:
            waits = self._waits[self._kind] = QuickWaits()
        if waits.worth():
            until = self._sent_at + self.spin_s
            while True:
                try:
                    n = self.sock.recv_into(view, 0, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as exc:
                    raise AgentLost(f"connection to the agent broke: {exc}") from None
                else:
                    waits.spun(True)
                    return n
                if time.perf_counter() >= until:
                    break
                os.sched_yield()
            waits.spun(False)
            return self._blocking_read(view)
        n = self._blocking_read(view)
        waits.slept(time.perf_counter() - self._sent_at, self.spin_s)
        return n

    def _read_into(self, view: memoryview) -> int:
        if self._sliced:
            if self._answer_due:
                self._answer_due = False
                return self._first_read(view)
            return self._blocking_read(view)
        if self._answer_due:
            self._answer_due = False
            self._wait(select.POLLIN)
        return self._guarded(lambda v, flags: self.sock.recv_into(v, 0, flags), view, select.POLLIN)

    def _writev(self, views: list) -> int:
        return self._guarded(lambda v, flags: self.sock.sendmsg(v, (), flags), views, select.POLLOUT)

    def read_exact(self, n: int, at_boundary: bool = False) -> bytearray:
        pending = self._pending
        if len(pending) >= n:
            out = pending[:n]
            del pending[:n]
            return out
        out = receive_buffer(n)
        got = len(pending)
        view = memoryview(out)
        view[:got] = pending
        pending.clear()
        scratch = memoryview(self._scratch)
        while got < n:
            if n - got >= self.CHUNK:  # bulk: straight into the destination, no copy
                k = self._read_into(view[got:])
                taken = k
            else:
                k = self._read_into(scratch)
                taken = min(k, n - got)
                view[got:got + taken] = scratch[:taken]
                pending += scratch[taken:k]
            if k == 0:
                if at_boundary and got == 0:
                    raise ChannelClosed("peer closed the connection")
                raise EOFError(f"connection closed mid-message ({got} of {n} bytes)")
            got += taken
            self._progress()
        return out

    # Buffered reads (and docker's stream mux): never straight off the socket as the agent does.
    def read_bytes(self, n: int) -> bytes:
        return bytes(self.read_exact(n))

    def read_bytearray(self, n: int) -> bytearray:
        buf = self.read_exact(n)
        return buf if type(buf) is bytearray else bytearray(buf)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


SPIN_ENV = "PYTEST_REMOTE_SERIAL_SPIN_US"
SPIN_DEFAULT_US = 200
SPIN_MAX_US = round(SPIN_MAX_S * 1_000_000)  # what the agent accepts


def spin_window() -> float:
    """How long either end waits for a quick answer without sleeping, in seconds: ``$SPIN_ENV``
    microseconds (0: never spin), by default 200 where this process may run on two CPUs or
    more, and 0 on one (the agent's work would wait for the spinning host to yield)."""
    raw = os.environ.get(SPIN_ENV, "").strip()
    if not raw:
        return SPIN_DEFAULT_US / 1e6 if cpus() >= 2 else 0.0
    try:
        us = int(raw)
    except ValueError:
        us = -1
    if not 0 <= us <= SPIN_MAX_US:
        raise ValueError(f"{SPIN_ENV}={raw!r}: give a whole number of microseconds from 0 (never spin "
                         f"before sleeping) to {SPIN_MAX_US}, or unset it for the default {SPIN_DEFAULT_US}")
    return us / 1e6


def _slice_reads(sock: socket.socket, seconds: float) -> bool:
    """A blocking read on ``sock`` returns ``EAGAIN`` after ``seconds`` (a C ``timeval``)."""
    whole = int(seconds)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("@ll", whole, int((seconds - whole) * 1_000_000)))
    except (OSError, AttributeError, struct.error):  # not a kernel socket: poll, then read
        return False
    return True


_MUX = struct.Struct(">BxxxL")


class DockerStdioChannel(SocketChannel):
    """The attach socket of a container started with stdin open and no TTY.

    Docker multiplexes stdout and stderr with an 8-byte header per chunk; the agent's frames
    travel on stdout, and stderr (user prints, agent messages) is kept for diagnostics.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._left = 0
        self.stderr = bytearray()

    def _read_into(self, view: memoryview) -> int:
        while self._left == 0:
            head = self._fill(_MUX.size)
            if head is None:
                return 0
            stream, size = _MUX.unpack(head)
            if stream == 1:
                self._left = size
            else:
                self.stderr += self._fill(size) or b""
                del self.stderr[:-65536]
        n = super()._read_into(view[: self._left])
        self._left -= n
        return n

    def _fill(self, n: int) -> bytes | None:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = super()._read_into(view[got:])
            if k == 0:
                return None
            got += k
        return bytes(buf)


class StreamChannel(SocketChannel):
    """A byte stream that is not a plain socket: docker-py's SSH connections (an ``ssh``
    subprocess's pipes, or a paramiko channel). A reader thread keeps what arrives, so every
    read still has its deadline; a write is bounded by the stream's own timeout."""

    CHUNK = 256 * 1024

    def __init__(self, read_some: Callable[[int], bytes], write: Callable[[bytes], Any],
                 close: Callable[[], Any]) -> None:
        Channel.__init__(self, -1, -1)
        self.deadline = None
        self.spin_s = 0.0  # a reader thread and a network between: nothing to gain from spinning
        self._pending = bytearray()
        self._scratch = bytearray(self.CHUNK)
        self._write, self._close = write, close
        self._buf = bytearray()
        self._eof: str | None = None
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._pump, args=(read_some,), daemon=True,
                                        name="prs-stream-reader")
        self._reader.start()

    def _pump(self, read_some: Callable[[int], bytes]) -> None:
        why = "the stream ended"
        try:
            while True:
                data = read_some(self.CHUNK)
                if not data:
                    break
                with self._cond:
                    self._buf += data
                    self._cond.notify_all()
        except Exception as exc:  # any failure of the stream ends it, named
            why = f"the stream broke: {exc}"
        with self._cond:
            self._eof = why
            self._cond.notify_all()

    def _read_into(self, view: memoryview) -> int:
        with self._cond:
            while not self._buf and self._eof is None:
                timeout = None if self.deadline is None else self.deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    raise DeadlinePassed("the agent did not answer before the deadline")
                self._cond.wait(None if timeout is None else min(timeout, threading.TIMEOUT_MAX))
            n = min(len(view), len(self._buf))
            view[:n] = self._buf[:n]
            del self._buf[:n]
            return n

    def _writev(self, views: list) -> int:
        data = b"".join(views)
        try:
            self._write(data)
        except Exception as exc:
            raise AgentLost(f"connection to the agent broke: {exc}") from None
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._close()
        self._reader.join(5)


class DockerStreamChannel(DockerStdioChannel, StreamChannel):
    """Docker's multiplexed attach stream over a :class:`StreamChannel` (``ssh://`` engines)."""

    def __init__(self, sock: Any) -> None:
        proc = getattr(sock, "proc", None)
        read = proc.stdout.read1 if proc is not None else sock.recv
        StreamChannel.__init__(self, read, sock.sendall, sock.close)
        self._left = 0
        self.stderr = bytearray()
