"""What every backend hands back: a connected agent and the facts the report needs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import AgentClient, TargetLimits
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

    def __post_init__(self) -> None:
        target = self.target
        self.client.config = TargetLimits(
            trusted=target.is_trusted, trusted_modules=target.trusted_modules,
            memory=target.memory if target.is_container else None,
            pids=target.pids if target.is_container else None, reply_memory_cap=target.reply_memory_cap)

    @property
    def python(self) -> str:
        return str(self.client.hello.get("python"))

    @property
    def implementation(self) -> str:
        """``sys.implementation.name`` of the target ("cpython", "pypy")."""
        return str(self.client.hello.get("implementation") or "cpython")


RUN_PREFIX = "prs-"
OWNER_FILE = "owner"  # "<pid> <start time>" of the pytest process that made the folder
AGENT_FILE = "agent"  # the same for a local agent it started


def process_start(pid: int) -> str:
    """The process's start time in clock ticks: with the pid, names one process for good.
    Empty for a zombie: it has ended, and only its parent has not collected it yet (a
    killed xdist worker, until xdist notices)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return ""
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else ""


def signame(sig: int) -> str:
    """SIGKILL for 9: how a death is named in messages."""
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "?"


def process_state(pid: int) -> str:
    """The state letter /proc gives (R, S, D, T, t, Z, ...); empty if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def stopped(state: str, what: str) -> str | None:
    """What to say of an agent in ``state`` (a ps or /proc state) that cannot answer."""
    if state[:1] in ("T", "t"):
        return (f"the {what} is stopped (process state {state[:1]}: SIGSTOP or SIGTSTP, sent by a call, or a "
                "tracer) and cannot answer")
    return None


def process_stamp(pid: int) -> str:
    return f"{pid} {process_start(pid)}"


def stamp_alive(stamp: str) -> bool:
    pid, _, start = stamp.strip().partition(" ")
    return pid.isdigit() and int(pid) > 0 and bool(start) and process_start(int(pid)) == start


def private_socket_dir(world_writable: bool) -> tuple[Path, Path]:
    """A 0700 parent guards a socket folder the (non-root) container user may write into.
    The parent names its owner, so a later run can remove it once that run is dead."""
    parent = Path(tempfile.mkdtemp(prefix=RUN_PREFIX))
    (parent / OWNER_FILE).write_text(process_stamp(os.getpid()))
    sock_dir = parent / "sock"
    sock_dir.mkdir()
    if world_writable:
        sock_dir.chmod(0o777)
    return parent, sock_dir


LEGACY_AGE_S = 6 * 3600


def _newest_mtime(folder: Path) -> float:
    return max([folder.stat().st_mtime] + [p.lstat().st_mtime for p in folder.rglob("*")])


def remove_dead_runs(root: Path | None = None) -> int:
    """Folders (and local agents) left by runs that died without cleaning up (kill -9, a
    crashed xdist worker). A folder whose owner still runs is never touched: it may be a
    parallel run's."""
    removed = 0
    base = root or Path(tempfile.gettempdir())
    for folder in base.glob(f"{RUN_PREFIX}*"):
        try:
            if folder.name.startswith(f"{RUN_PREFIX}keep-") or folder.stat().st_uid != os.geteuid():
                continue
            owner = (folder / OWNER_FILE).read_text()
        except OSError:
            # Not ours, or written by a version before owner files: such a folder is removed
            # once nothing has touched it for a long while (no run lives that long idle).
            with contextlib.suppress(OSError):
                if folder.stat().st_uid == os.geteuid() and time.time() - _newest_mtime(folder) > LEGACY_AGE_S:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            continue
        if stamp_alive(owner):
            continue
        with contextlib.suppress(OSError):
            agent = (folder / AGENT_FILE).read_text()
            if stamp_alive(agent):
                with contextlib.suppress(OSError):
                    os.killpg(int(agent.split()[0]), signal.SIGKILL)  # its own session
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def ready(connect: Callable[[], AgentClient], target: str, cause: Callable[[], str | None]) -> AgentClient:
    """An agent that said hello and served its self-check call (``AgentClient.self_check``); else
    a StartFailed (the target is ``unavailable``) naming what went wrong and, from ``cause``, the
    agent's own account: its last output (a traceback), the container's exit."""
    try:
        client = connect()
    except EOFError as exc:  # closed before its hello (the agent died starting), or a hello refused
        raise StartFailed(_with_cause(f"the agent of {target} did not say hello: {exc}", cause)) from None
    problem = client.self_check()
    if problem is not None:
        message = _with_cause(f"the agent of {target} said hello but cannot serve a call: {problem}", cause)
        client.close()
        raise StartFailed(message)
    return client


def _with_cause(message: str, cause: Callable[[], str | None]) -> str:
    try:
        found = cause()
    except Exception as exc:  # asking the engine failed: the message stands without it
        found = f"(its own account could not be read: {exc})"
    return f"{message}; {found}" if found else message


def wait_and_connect(sock_path: Path, target: str, still_starting: Callable[[], str | None],
                     timeout: float = 60.0, cause: Callable[[], str | None] | None = None) -> AgentClient:
    """Poll for the agent's socket; fail fast with the reason if the process died first. Once
    connected, the agent must say hello and serve its self-check (``ready``); ``cause``: its own
    account if it does not (default: ``still_starting``)."""
    deadline = time.monotonic() + timeout
    # Asking the engine is a request the agent's start would wait behind: not before a usual
    # start has had its time (a container that died at once is still named within 0.3 s).
    next_check = time.monotonic() + 0.3
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
        return ready(lambda: AgentClient(SocketChannel(sock), target), target, cause or still_starting)
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
