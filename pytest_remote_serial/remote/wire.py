"""The wire: length-prefixed frames over a pair of file descriptors (a socket, or stdio pipes).

A message is a binary prefix (op code, request id, length of the rest of the header, number
of buffers, each buffer's length), the rest of the header as JSON (often empty), then the raw
buffers. Pickle protocol-5 out-of-band buffers travel as their own buffers, never copied
through a Python ``bytes``. The host's channels (``host/transport.py``) subclass ``Channel``.

Both ends import this module: a change to the frame is a protocol change (``protocol.PROTOCOL``).
"""

from __future__ import annotations

import io
import json
import mmap
import os
import socket
import struct

from .protocol import OP_CODE, OPS, REMOTE_PHASES

_MAX_HEADER = 64 << 20
# The frame prefix: op code, request id + 1 (0: none), JSON rest length, buffer count.
_FRAME = struct.Struct("!BQII")
FRAME_SIZE = _FRAME.size
_BINARY_KEYS = frozenset(("op", "id", "buffers"))
_MAX_BUFFERS = 1 << 20
_json_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
_json_decoder = json.JSONDecoder()
# A result frame's rest opens with its phases, three doubles (NaN: not measured): the shortest
# repr and parse of three floats cost more than the rest of a small reply's JSON.
_PHASES = struct.Struct("!ddd")
_PHASE_KEYS = REMOTE_PHASES
_PHASE_SET = frozenset(_PHASE_KEYS)
_RESULT = OP_CODE["result"]
_NAN = float("nan")
# Buffers from this size are received into huge-page mappings (see receive_buffer).
BULK_THRESHOLD = 4 << 20
_JOIN_MAX = 1 << 16  # without writev, smaller pieces are joined into one write

_READERS: dict = {}  # fd -> a FileIO on it that never closes it (where there is no readv)


def _readv_by_readinto(fd: int, buffers: list) -> int:
    """``os.readv`` into one buffer, where there is none (PyPy): ``readinto`` fills it in place."""
    reader = _READERS.get(fd)
    if reader is None:
        reader = _READERS[fd] = io.FileIO(fd, "rb", closefd=False)
    return reader.readinto(buffers[0]) or 0


def _writev_by_write(fd: int, buffers: list) -> int:
    """``os.writev`` where there is none (PyPy): small leading pieces joined into one write, else
    the first piece alone; the caller writes what is left, as after any short write."""
    first = buffers[0]
    if len(buffers) > 1 and first.nbytes < _JOIN_MAX:
        joined = []
        size = 0
        for view in buffers:
            if size and size + view.nbytes > _JOIN_MAX:
                break
            joined.append(view)
            size += view.nbytes
        first = b"".join(joined)
    return os.write(fd, first)


_fd_readv = getattr(os, "readv", None) or _readv_by_readinto
_fd_writev = getattr(os, "writev", None) or _writev_by_write


def receive_buffer(n: int):
    """Memory for n bytes about to arrive. For bulk data, an anonymous mapping advised to
    use transparent huge pages: first-touch faults on fresh 4 KiB pages otherwise cost more
    than the copy itself (64 MiB: ~50 ms of faults against ~8 ms of copying). A size that
    cannot be had (a corrupt or forged frame) ends the stream, never the process."""
    if n >= BULK_THRESHOLD:
        try:
            buf = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        except (OSError, ValueError, OverflowError):
            pass  # bytearray says whether it can be had at all
        else:
            try:
                buf.madvise(mmap.MADV_HUGEPAGE)
            except (AttributeError, OSError, ValueError):  # no THP on this kernel or platform
                pass
            return buf
    try:
        return bytearray(n)
    except (MemoryError, OverflowError) as exc:
        raise EOFError("corrupt stream: a message announced %d bytes, which cannot be allocated "
                       "here (%s)" % (n, type(exc).__name__)) from None


class ChannelClosed(EOFError):
    """The peer went away between messages (a normal end of session)."""


def _sizes_format(n: int) -> str:
    return "!%dQ" % n  # struct caches the compiled format


def encode_frame(header: dict, sizes: list) -> bytes:
    """A frame's prefix and header. ``"_rest"`` in the header is the rest already encoded
    (the host keeps one per kind of call: the same request header every time)."""
    code = OP_CODE.get(str(header.get("op")), 0)
    rest = header.get("_rest")
    if rest is None:
        fields = {k: v for k, v in header.items() if k not in _BINARY_KEYS or (k == "op" and not code)}
        lead = b""
        if code == _RESULT:
            phases = fields.pop("phases", None) or {}
            get = phases.get
            lead = _PHASES.pack(get("load", _NAN), get("call", _NAN), get("result", _NAN))
            if not phases.keys() <= _PHASE_SET:  # others, if any, stay JSON
                fields["phases"] = {k: v for k, v in phases.items() if k not in _PHASE_KEYS}
        rest = lead + _json_encode(fields).encode() if fields else lead
    rid = header.get("id")
    return (_FRAME.pack(code, 0 if rid is None else rid + 1, len(rest), len(sizes))
            + (struct.pack(_sizes_format(len(sizes)), *sizes) if sizes else b"") + rest)


def _check_prefix(head) -> tuple:
    code, rid, n, nbuf = _FRAME.unpack_from(head)
    if n > _MAX_HEADER or nbuf >= _MAX_BUFFERS or code >= len(OPS):
        raise EOFError("corrupt stream: header of %d bytes, %d buffers, op %d" % (n, nbuf, code))
    return code, rid, n, nbuf


def _json_object(raw: bytes) -> dict:
    """A header's JSON: ``raw_decode`` of the text, without ``json.loads``'s encoding detection
    and wrappers (a third of a small header's cost). Anything but one object is corrupt."""
    try:
        text = raw.decode()
        header, end = _json_decoder.raw_decode(text)
    except ValueError as exc:  # not UTF-8, not JSON
        raise EOFError("corrupt stream: the header is not JSON (%s)" % exc) from None
    if end != len(text) or type(header) is not dict:
        raise EOFError("corrupt stream: the header is not an object")
    return header


class Channel:
    """Framed messages over a pair of file descriptors (a socket, or stdio pipes).

    The agent reads exactly one message's bytes and no more: an isolated call's process
    reads its payload straight off the connection the parent read the header from."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self._decoded: dict = {}  # header JSON seen before -> its dict (see recv_header)

    # Subclasses on the host override these two for deadlines and docker's stream mux.
    def _read_into(self, view: memoryview) -> int:
        return _fd_readv(self.rfd, [view])

    def _writev(self, views: list) -> int:
        return _fd_writev(self.wfd, views)

    def read_exact(self, n: int, at_boundary: bool = False) -> bytearray:
        return self._read_full(receive_buffer(n), at_boundary)

    def _read_full(self, buf, at_boundary: bool = False):
        n = len(buf)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self._read_into(view[got:])
            if k == 0:
                if at_boundary and got == 0:
                    raise ChannelClosed("peer closed the connection")
                raise EOFError("connection closed mid-message (%d of %d bytes)" % (got, n))
            got += k
        return buf

    def write_all(self, parts: list) -> None:
        views = [v for v in (memoryview(p).cast("B") for p in parts) if v.nbytes]
        while views:
            sent = self._writev(views[:1024])
            while sent:
                if sent >= len(views[0]):
                    sent -= len(views[0])
                    views.pop(0)
                else:
                    views[0] = views[0][sent:]
                    sent = 0

    def send(self, header: dict, buffers: list | tuple = ()) -> None:
        views = [memoryview(b).cast("B") for b in buffers]
        self.write_all([encode_frame(header, [v.nbytes for v in views])] + views)

    def recv_header(self, cache: bool = False) -> dict:
        """The next header as a dict with ``op``, ``id`` and ``buffers``. With ``cache`` (the
        agent reading the host's requests, which repeat), JSON seen before is not decoded again."""
        return self.decode_head(self.recv_head(), cache)

    def recv_head(self) -> bytes:
        """The next frame's prefix, buffer sizes and header, undecoded: a spare that took a
        request off the connection passes these bytes on to the parent as they came."""
        prefix = self.read_exact(_FRAME.size, at_boundary=True)
        _, _, n, nbuf = _check_prefix(prefix)
        return bytes(prefix + self.read_exact(8 * nbuf + n)) if nbuf or n else bytes(prefix)

    def decode_head(self, head: bytes, cache: bool = False) -> dict:
        code, rid, n, nbuf = _check_prefix(head)
        if len(head) != _FRAME.size + 8 * nbuf + n:
            raise EOFError("corrupt stream: a frame head of %d bytes" % len(head))
        sizes = list(struct.unpack_from(_sizes_format(nbuf), head, _FRAME.size)) if nbuf else []
        raw = head[_FRAME.size + 8 * nbuf:]
        phases = None
        if code == _RESULT:
            if len(raw) < _PHASES.size:
                raise EOFError("corrupt stream: a result frame without its phases")
            phases = {k: v for k, v in zip(_PHASE_KEYS, _PHASES.unpack_from(raw)) if v == v}
            raw = raw[_PHASES.size:]
        header = self._decoded.get(raw) if cache else None
        if header is None:
            header = _json_object(raw) if raw else {}
            if cache:
                if len(self._decoded) > 64:
                    self._decoded.clear()
                self._decoded[raw] = header
        header = dict(header)
        if phases is not None:
            more = header.get("phases")
            header["phases"] = dict(more, **phases) if type(more) is dict else phases
        if code:
            header["op"] = OPS[code]
        header["id"] = rid - 1 if rid else None
        header["buffers"] = sizes
        return header

    def recv_buffers(self, header: dict) -> list:
        kinds = header.get("buffer_kinds") or {}
        out: list = []
        for i, n in enumerate(header.get("buffers", ())):
            kind = kinds.get(str(i))
            if kind == "bytes":
                out.append(self.read_bytes(n))
            elif kind == "bytearray":
                out.append(self.read_bytearray(n))
            else:
                out.append(self.read_exact(n))
        return out

    def read_bytes(self, n: int) -> bytes:
        """n bytes as one ``bytes`` object, filled in place where the fd is a socket."""
        try:
            sock = socket.socket(fileno=self.rfd)
        except OSError:  # stdio pipes
            return bytes(self.read_exact(n))
        try:
            data = sock.recv(n, socket.MSG_WAITALL)
        finally:
            sock.detach()
        if len(data) < n:
            if not data:
                raise EOFError("connection closed mid-message (0 of %d bytes)" % n)
            data += bytes(self.read_exact(n - len(data)))  # interrupted: rare, and copied
        return data

    def read_bytearray(self, n: int) -> bytearray:
        return self._read_full(bytearray(n))

    def recv(self) -> tuple:
        header = self.recv_header()
        return header, self.recv_buffers(header)
