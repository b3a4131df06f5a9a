"""Host ends of the agent's channel: a Unix socket, or docker's multiplexed stdio stream.

Both add a deadline to every read, so a wedged target can never hang the test run.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from ..remote.agent import Channel


class AgentLost(EOFError):
    """The agent stopped answering or the connection broke."""


class SocketChannel(Channel):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock.fileno(), sock.fileno())
        self.sock = sock
        self.deadline: float | None = None

    def _remaining(self) -> float | None:
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise AgentLost("no answer from the agent before the deadline")
        return left

    def _guarded(self, op: Callable[[Any], int], arg: Any) -> int:
        """One socket operation under the deadline; every failure becomes AgentLost."""
        self.sock.settimeout(self._remaining())
        try:
            return op(arg)
        except socket.timeout:
            raise AgentLost("the agent did not answer before the deadline") from None
        except OSError as exc:
            raise AgentLost(f"connection to the agent broke: {exc}") from None

    def _read_into(self, view: memoryview) -> int:
        return self._guarded(self.sock.recv_into, view)

    def _writev(self, views: list) -> int:
        return self._guarded(self.sock.sendmsg, views)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


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
