"""The status pipe from a call process to the agent's parent, and the length-prefixed messages
the agent's processes pass each other on pipes (a request header handed to a spare, the answer
of a throwaway child).

A call process tells the parent where it is, a byte at a time; some kinds carry a body. Every
kind is in ``KINDS``, with what it means to the parent that reads it (``StatusReader``).
"""

from __future__ import annotations

import os
import struct

_LEN = struct.Struct("!I")

ANSWERED = b"R"
SPAWNED = b"F"
LEARNED = b"I"

# kind -> (whether a length-prefixed body follows, what it tells the parent)
KINDS = {
    ANSWERED: (False, "the answer is written: the connection is the parent's again"),
    SPAWNED: (False, "the call started processes or threads, or ended abnormally: sweep after it"),
    LEARNED: (True, "installed modules the call imported, comma-separated: preload them"),
}


def framed(kind: bytes, body: bytes) -> bytes:
    return kind + _LEN.pack(len(body)) + body


def write_message(fd: int, body: bytes, kind: bytes = b"") -> None:
    data = memoryview(framed(kind, body))
    while data:  # past the pipe's buffer a write can be partial
        data = data[os.write(fd, data):]


def read_message(fd: int) -> bytes | None:
    head = b""
    while len(head) < _LEN.size:
        chunk = os.read(fd, _LEN.size - len(head))
        if not chunk:
            return None
        head += chunk
    (n,) = _LEN.unpack(head)
    body = b""
    while len(body) < n:
        chunk = os.read(fd, n - len(body))
        if not chunk:
            return None
        body += chunk
    return body


class StatusReader:
    """The parent's end of one call process's status pipe: the kinds seen so far (``tokens``)
    and the modules it learned."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.tokens = b""
        self.learned: list = []
        self._buf = b""

    def read(self) -> bool:
        chunk = os.read(self.fd, 4096)
        if not chunk:
            return False
        self._buf += chunk
        while self._buf:
            kind = self._buf[:1]
            if KINDS.get(kind, (False,))[0]:
                if len(self._buf) < 1 + _LEN.size:
                    break
                (n,) = _LEN.unpack(self._buf[1:1 + _LEN.size])
                if len(self._buf) < 1 + _LEN.size + n:
                    break
                body = self._buf[1 + _LEN.size:1 + _LEN.size + n]
                self._buf = self._buf[1 + _LEN.size + n:]
                if kind == LEARNED:
                    self.learned = [x for x in body.decode().split(",") if x]
            else:
                self.tokens += kind
                self._buf = self._buf[1:]
        return True
