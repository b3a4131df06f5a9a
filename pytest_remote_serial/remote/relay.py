"""The relay: the agent's parent alone holds the host connection and alone writes on it.

Every call runs in a child that holds no connection (a spare, or the inline worker): the relay
hands it the request on a socket pair of its own and takes back, from a pipe of its own,
exactly one frame, the result for that request's id, before a byte of it reaches the host.
Anything else (an extra frame, another id, a frame when no request is outstanding) ends that
call as a crash of type ``forged_reply`` (docs/architecture.md, "Isolation"). The relay is not
dumpable: no call can trace it or read its memory or descriptors through /proc.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import stat
import struct
import time

from . import pipes
from .envelope import python_version
from .protocol import OP_CODE
from .wire import _FRAME, _MAX_BUFFERS, _MAX_HEADER, FRAME_SIZE, Channel, _fd_readv

_CHUNK = 1 << 20
_BIG_PIPE = 1 << 20  # a bulk frame crosses a pipe in 1 MiB steps, not 64 KiB ones
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_RESULT = OP_CODE["result"]


def _no_splice(*_args) -> int:
    raise OSError(errno.EINVAL, "no splice here")


_splice = getattr(os, "splice", _no_splice)  # Linux, Python 3.10+: the kernel moves the bytes

FORGED = "forged"
DIED = "died"
LATE = "late"
ANSWERED = "answered"


def not_dumpable() -> bool:
    """PR_SET_DUMPABLE 0: no process of the same user may ptrace this one, open its memory or
    descriptors through /proc, or take them with pidfd_getfd. Children inherit it. False where
    prctl cannot be had (no ctypes, not Linux): the relay then works as before, traceable."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE
    except Exception:
        return False


def _widen(fd: int) -> None:
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _BIG_PIPE)
    except OSError:  # not a pipe, or past the user's pipe pages: 64 KiB steps then
        pass


def forward(src: int, dst: int, n: int, buf: list) -> None:
    """n bytes from ``src`` to ``dst``. The kernel moves them (splice) where it can: directly
    when one end is a pipe, else through a pipe of the relay's own. A short source is a lost
    stream."""
    if n <= 0:
        return
    if n > _CHUNK // 4:
        _widen(src)
        _widen(dst)
    if _splice is not _no_splice:
        moved = [0]
        try:
            if _is_pipe(src) or _is_pipe(dst):
                _splice_all(src, dst, n, moved)
            else:
                _splice_through(src, dst, n, moved)
            return
        except OSError as exc:
            if moved[0] or exc.errno != errno.EINVAL:  # EINVAL at once: no splice between these two
                raise
    if not buf:
        buf.append(bytearray(_CHUNK))
    view = memoryview(buf[0])
    while n:
        k = _fd_readv(src, [view[:min(n, _CHUNK)]])
        if k == 0:
            raise _short(n)
        part = view[:k]
        while part:
            part = part[os.write(dst, part):]
        n -= k


def _is_pipe(fd: int) -> bool:
    return stat.S_ISFIFO(os.fstat(fd).st_mode)


def _short(n: int) -> EOFError:
    return EOFError("connection closed mid-message (%d bytes short)" % n)


def _splice_some(src: int, dst: int, n: int, moved: list) -> int:
    """Up to a chunk of the ``n`` bytes still due from ``src``; none is a lost stream."""
    k = _splice(src, dst, min(n, _CHUNK))
    if k == 0:
        raise _short(n)
    moved[0] += k
    return k


def _splice_all(src: int, dst: int, n: int, moved: list) -> None:
    while n:
        n -= _splice_some(src, dst, n, moved)


_PROXY: list = []  # the relay's own pipe, for splicing from one socket to another


def _splice_through(src: int, dst: int, n: int, moved: list) -> None:
    if not _PROXY:
        _PROXY.extend(os.pipe())
        _widen(_PROXY[1])
    r, w = _PROXY
    try:
        while n:
            k = _splice_some(src, w, n, moved)
            n -= k
            while k:
                k -= _splice(r, dst, k)
    except BaseException:  # what it still holds belongs to no one: a fresh pipe next time
        for fd in _PROXY:
            os.close(fd)
        del _PROXY[:]
        raise


def drain(src: int, n: int) -> None:
    """Read and drop n bytes: a request's buffers that no child will take."""
    while n:
        k = len(os.read(src, min(n, _CHUNK)))
        if k == 0:
            raise _short(n)
        n -= k


def hand(fd: int, limits: bytes, head: bytes, channel: Channel, sizes: list, buf: list) -> bool:
    """The request to a child: its limits, the frame's head, then its buffers straight from the
    host connection. False if the child died first; the buffers are read off the connection anyway."""
    total = sum(sizes)
    try:
        data = memoryview(pipes.framed(b"", limits) + head)  # one write: one wake-up of the child
        while data:
            data = data[os.write(fd, data):]
    except (BrokenPipeError, ConnectionResetError):
        drain(channel.rfd, total)
        return False
    try:
        forward(channel.rfd, fd, total, buf)
    except (BrokenPipeError, ConnectionResetError):
        # What is left of the buffers: how much went is unknown to splice's caller, so count it.
        raise EOFError("a call process died while its request was handed to it") from None
    return True


def forged_reply(rid) -> dict:
    why = "a frame that does not answer request %s" % rid
    return {"op": "result", "id": rid, "phases": {}, "outcome": "crash",
            "error": {"phase": "call", "type": "forged_reply", "python": python_version(),
                      "message": "the call's process wrote %s; a reply is accepted only as the one "
                                 "frame answering its own request: the process was killed" % why}}


def relay_reply(fd: int, channel: Channel, rid, deadline: float, buf: list, alive, ready: bool = False) -> str:
    """The reply to request ``rid`` from a child's pipe to the host, once checked: ANSWERED, or
    FORGED (nothing reached the host), DIED (the pipe closed first, or ``alive()`` said so while
    nothing came) or LATE (``deadline`` passed before the frame's head was whole). Only the
    binary prefix is read here (op code, id, sizes): the host checks the rest as it checks any
    reply. A child that dies mid-buffers loses the stream (EOFError). ``ready``: ``fd`` is
    known to be readable."""
    got = b""
    need = FRAME_SIZE
    head_len = n = 0
    while True:
        while len(got) < need:
            if not ready:
                left = deadline - time.monotonic()
                if left <= 0:
                    return LATE
                if not select.select([fd], [], [], min(left, 0.05))[0]:
                    if not alive():  # a process it left may hold the pipe open: no end-of-file then
                        return DIED
                    continue
            ready = False
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return DIED
            got += chunk
        if head_len:
            break
        code, got_id, n, nbuf = _FRAME.unpack_from(got)
        if code != _RESULT or got_id != (0 if rid is None else rid + 1) or n > _MAX_HEADER or nbuf >= _MAX_BUFFERS:
            return FORGED
        head_len = need = FRAME_SIZE + 8 * nbuf + n
    nbuf = (head_len - FRAME_SIZE - n) // 8
    total = head_len + (sum(struct.unpack_from("!%dQ" % nbuf, got, FRAME_SIZE)) if nbuf else 0)
    if len(got) > total or len(got) == total and select.select([fd], [], [], 0)[0] and os.read(fd, 1):
        return FORGED  # more than one frame came (end-of-file reads as ready too)
    channel.write_all([got])
    forward(fd, channel.wfd, total - len(got), buf)
    return ANSWERED
