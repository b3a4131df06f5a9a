"""What every backend hands back: a connected agent and the facts the report needs."""

from __future__ import annotations

import contextlib
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import AgentClient
from ..matrix import Target
from ..transport import SocketChannel

SOCKET_NAME = "agent.sock"


class StartFailed(RuntimeError):
    """The target cannot start; the message is the skip reason the user sees."""


@dataclass
class Running:
    target: Target
    client: AgentClient
    stop: Callable[[], None]
    image: str | None = None
    image_id: str | None = None
    cold_start_s: float = 0.0
    build_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def python(self) -> str:
        return str(self.client.hello.get("python"))


def private_socket_dir(world_writable: bool) -> tuple[Path, Path]:
    """A 0700 parent guards a socket folder the (non-root) container user may write into."""
    parent = Path(tempfile.mkdtemp(prefix="prs-"))
    sock_dir = parent / "sock"
    sock_dir.mkdir()
    if world_writable:
        sock_dir.chmod(0o777)
    return parent, sock_dir


def wait_and_connect(sock_path: Path, target: str, still_starting: Callable[[], str | None],
                     timeout: float = 60.0) -> AgentClient:
    """Poll for the agent's socket; fail fast with the reason if the process died first."""
    deadline = time.monotonic() + timeout
    next_check = 0.0
    while not sock_path.exists():
        now = time.monotonic()
        if now >= next_check:  # asking the engine is costly: a few times a second is enough
            problem = still_starting()
            if problem:
                raise StartFailed(problem)
            next_check = now + 0.25
        if now > deadline:
            raise StartFailed(f"the agent did not open its socket within {timeout:.0f}s")
        time.sleep(0.002)  # the file check is cheap; a late connect is cold start the user waits for
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(sock_path))
        return AgentClient(SocketChannel(sock), target)
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
