"""The floors: what the same container and the same socket cost with no protocol at all.

* ``RawEcho``: a stdlib, length-prefixed echo server inside a hardened container of the target
  image, on a Unix socket in a bind-mounted folder (the agent's own transport). Its round trip
  is the latency floor, its 64 MiB echo (buffers reused) the throughput floor; with
  ``fresh=True`` both ends allocate a new buffer per message, which separates the cost of fresh
  memory (page faults, slow on VMs) from the protocol's own; with ``spin_s`` both ends wait
  for the next message without sleeping for that long first, as the host and the agent do
  around a non-isolated call (the like-for-like floor of spin-then-block).
* ``ready_floor``: ``docker run`` of the same hardened container until a trivial process inside
  is ready (it connects to a socket the host listens on, so no polling blurs the figure): the
  floor a cold start is compared with.
* ``docker_run_cli``: ``docker run --rm IMAGE python3 -c pass``, for reference.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

from .docker_env import LABEL, SOCK_DIR, DockerEnv

_LEN = struct.Struct("!I")

# Runs inside the container as `python3 -c ECHO_SERVER PATH`: stdlib only, any Python 3.
ECHO_SERVER = r"""
import os, select, socket, struct, sys, time
path = sys.argv[1]
fresh = "fresh" in sys.argv[2:]  # a new buffer per message, as the agent allocates one
spin = float(sys.argv[3]) if sys.argv[2:3] == ["spin"] else 0.0  # seconds, after each answer
L = struct.Struct("!I")
lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
lst.bind(path + ".tmp")
os.chmod(path + ".tmp", 0o777)
lst.listen(1)
os.rename(path + ".tmp", path)
conn, _ = lst.accept()
head = bytearray(4)
buf = bytearray(1 << 16)
def fill(view):
    got = 0
    while got < len(view):
        k = conn.recv_into(view[got:])
        if not k:
            sys.exit(0)
        got += k
while True:
    if spin:
        until = time.perf_counter() + spin
        while not select.select([conn], [], [], 0)[0] and time.perf_counter() < until:
            os.sched_yield()
    fill(memoryview(head))
    (n,) = L.unpack(head)
    if n > len(buf) or (fresh and n >= 65536):
        buf = bytearray(n)
    view = memoryview(buf)[:n]
    fill(view)
    if n < 65536:
        conn.sendall(bytes(head) + bytes(view))
    else:
        conn.sendall(head)
        conn.sendall(view)
"""

READY_PROCESS = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.close()"


def _wait_for(path: Path, container: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while not path.exists():
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(f"the raw echo server did not open {path} within {timeout:.0f}s")
        if now - checked > 0.5:
            checked = now
            container.reload()
            if container.status in ("exited", "dead"):
                logs = container.logs(tail=20).decode(errors="replace")
                raise RuntimeError(f"the raw echo server exited: {logs}")
        time.sleep(0.002)


class RawEcho:
    """Host end of the raw echo: one small message, or one large buffer, there and back."""

    def __init__(self, env: DockerEnv, image: str, fresh: bool = False, spin_s: float = 0.0) -> None:
        """``fresh``: both ends take a new buffer for every large message (what the agent does)."""
        self.fresh = fresh
        self.spin_s = spin_s
        _, sock_dir = env.socket_dir()
        mode = ["fresh"] if fresh else ["spin", repr(spin_s)] if spin_s else []
        self.container = env.run(image, ["python3", "-c", ECHO_SERVER, f"{SOCK_DIR}/echo.sock", *mode], sock_dir)
        _wait_for(sock_dir / "echo.sock", self.container)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(sock_dir / "echo.sock"))
        self._head = bytearray(4)
        self._small = bytearray(1 << 16)
        self._big = bytearray(0)

    def _fill(self, view: memoryview) -> None:
        got = 0
        while got < len(view):
            k = self.sock.recv_into(view[got:])
            if not k:
                raise EOFError("raw echo server went away")
            got += k

    def echo_small(self, payload: bytes = b"x") -> bytes:
        self.sock.sendall(_LEN.pack(len(payload)) + payload)
        if self.spin_s:
            until = time.perf_counter() + self.spin_s
            while not select.select([self.sock], [], [], 0)[0] and time.perf_counter() < until:
                os.sched_yield()
        self._fill(memoryview(self._head))
        (n,) = _LEN.unpack(self._head)
        view = memoryview(self._small)[:n]
        self._fill(view)
        return bytes(view)

    def echo_big(self, payload: memoryview) -> memoryview:
        """Send ``payload`` whole, then read it all back (the server echoes after full receipt)."""
        n = payload.nbytes
        if len(self._big) < n or self.fresh:
            self._big = bytearray(n)
        self.sock.sendall(_LEN.pack(n))
        self.sock.sendall(payload)
        self._fill(memoryview(self._head))
        view = memoryview(self._big)[:n]
        self._fill(view)
        return view

    def close(self) -> None:
        self.sock.close()


def ready_floor(env: DockerEnv, image: str, python: str = "python3") -> float:
    """Seconds from ``containers.run`` (same flags as the agent's) to a trivial process of the
    target's interpreter connected."""
    _, sock_dir = env.socket_dir()
    path = sock_dir / "ready.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    path.chmod(0o777)
    listener.listen(1)
    listener.settimeout(60)
    container = None
    try:
        t0 = time.perf_counter()
        container = env.run(image, [python, "-c", READY_PROCESS, f"{SOCK_DIR}/ready.sock"], sock_dir)
        conn, _ = listener.accept()
        took = time.perf_counter() - t0
        conn.close()
        return took
    finally:
        listener.close()
        if container is not None:
            env.remove(container)


def ready_floor_many(env: DockerEnv, image: str, count: int, python: str = "python3") -> float:
    """Wall time of ``count`` ready floors started at once: what ``count`` targets could cost at
    best on this engine and these cores (they cannot overlap fully on 2 cores)."""
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda _: ready_floor(env, image, python), range(count)))
    return time.perf_counter() - t0


def docker_run_cli(env: DockerEnv, image: str, python: str = "python3") -> float:
    """Wall time of ``docker run --rm IMAGE python3 -c pass`` (start, run, exit, removal)."""
    cmd = ["docker", "run", "--rm", "--network", "none", "--label", f"{LABEL}={env.run_id}",
           image, python, "-c", "pass"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0
