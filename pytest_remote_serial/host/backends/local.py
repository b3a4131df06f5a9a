"""The ``local`` target: a fresh interpreter on the host, without the tests on ``sys.path``.

Same Python and the project's installed dependencies, but not the test folder nor the
rootdir, so a function that only works by reference to a test module fails here too.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..bundle import agent_options, ensure_bundle
from ..matrix import Target
from .base import (
    AGENT_FILE,
    SOCKET_NAME,
    Running,
    private_socket_dir,
    process_stamp,
    process_state,
    signame,
    stopped,
    wait_and_connect,
)
from .compiled import compiled_for


class OutputTail:
    """The last ``keep`` bytes of what the agent writes on its stdout and stderr, read by a
    thread (the rest is dropped as it comes)."""

    def __init__(self, fd: int, keep: int = 64 * 1024) -> None:
        self._fd = fd
        self._keep = keep
        self._tail = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True, name="prs-agent-output")
        self._thread.start()

    def _pump(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(200):  # (so that close() is noticed even if a writer lingers)
                continue
            try:
                data = os.read(self._fd, 1 << 16)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._tail += data
                del self._tail[:-self._keep]

    def text(self, drain_s: float = 0.5) -> str:
        """Once the agent has exited: what it wrote as it died may still be in the pipe, read to
        its end (or for ``drain_s``, if a process it left still holds the pipe)."""
        self._thread.join(drain_s)
        with self._lock:
            return self._tail.decode(errors="replace")

    def close(self) -> None:
        """Stop reading; the descriptor is closed only once the thread no longer reads it."""
        self._stop.set()
        self._thread.join(2)
        if not self._thread.is_alive():
            os.close(self._fd)


def _clean_pythonpath(hidden: list[Path]) -> str:
    keep = []
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if not entry:
            continue
        resolved = Path(entry).resolve()
        if any(resolved == h or h in resolved.parents for h in hidden):
            continue
        keep.append(entry)
    return os.pathsep.join(keep)


def start_local(target: Target, hidden: list[Path]) -> Running:
    env = dict(os.environ, PYTHONPATH=_clean_pythonpath(hidden), PYTHONDONTWRITEBYTECODE="1")
    return start_process(target, [sys.executable], env, "local")


def start_process(target: Target, python: list[str], env: dict[str, str], what: str) -> Running:
    """The agent as a child of ``python`` on this machine, listening on a private socket.

    Shared by ``local`` and interpreter targets: the same isolation (a fork per call, its own
    process group), and nothing of a container's hardening, which the report says."""
    bundle = ensure_bundle()
    parent, sock_dir = private_socket_dir(world_writable=False)
    sock_path = sock_dir / SOCKET_NAME
    cmd = [*python, str(compiled_for(python) or bundle.agent), "--socket", str(sock_path)]
    for lib in bundle.libs:
        cmd += ["--lib", str(bundle.folder / lib)]
    cmd += agent_options(target)
    for folder in target.host_paths:
        cmd += ["--path", str(folder)]
    start = time.monotonic()
    # A session of its own: a terminal Ctrl-C reaches pytest, which then closes the agent.
    # Its output (and every call's, on fds 1 and 2) goes to a pipe of which only the tail is
    # kept: a call that writes a gigabyte costs no disk, and its last lines name a death.
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(cmd, cwd=parent, env=env, stdin=subprocess.DEVNULL, stdout=write_end,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)  # the child keeps its own copy
    output = OutputTail(read_end)
    (parent / AGENT_FILE).write_text(process_stamp(proc.pid))  # reaped by the next run if this one dies

    def died() -> str | None:
        if proc.poll() is None:
            return None
        return f"the {what} agent exited with {proc.returncode}: {output.text()[-800:]}"

    def stuck() -> str | None:
        """Why the agent cannot answer, known at once: it is stopped, or it ended."""
        if proc.poll() is None:
            return stopped(process_state(proc.pid), f"{what} agent's process")
        return lost()

    def lost() -> str | None:
        """Why a running agent went away (a call that stopped, killed or ended it): its state, or its
        exit and last lines (it may take a moment to exit after its connection closed)."""
        if proc.poll() is None:
            cause = stopped(process_state(proc.pid), f"{what} agent's process")
            if cause:
                return cause
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            return stopped(process_state(proc.pid), f"{what} agent's process")
        code = proc.returncode
        how = f"killed by signal {-code} ({signame(-code)})" if code < 0 else f"exit code {code}"
        lines = [line.strip() for line in output.text()[-800:].strip().splitlines()[-10:] if line.strip()]
        return f"the {what} agent ended: {how}; last lines: {' | '.join(lines) or '(none)'}"

    def account() -> str | None:
        """Its own account of a failed start: how it ended (given a moment) and what it printed."""
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            pass
        err = output.text().strip()
        ended = f"the {what} agent exited with {proc.returncode}" if proc.returncode is not None else ""
        said = f"its output: {err[-1500:]}" if err else ""
        return "; ".join(part for part in (ended, said) if part) or None

    def stop() -> None:
        client.close()
        if proc.poll() is None:  # (not yet collected: the pid is still the agent's)
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGCONT)  # a stopped agent goes on, to see its connection closed
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        output.close()
        shutil.rmtree(parent, ignore_errors=True)

    try:
        client = wait_and_connect(sock_path, target.name, died, cause=account)
    except BaseException:
        proc.kill()
        proc.wait()
        output.close()
        shutil.rmtree(parent, ignore_errors=True)
        raise
    client.diagnose = lost
    client.stuck = stuck
    return Running(target=target, client=client, stop=stop, image=None,
                   cold_start_s=time.monotonic() - start,
                   extra={"backend": "interpreter" if target.is_interpreter else "local", "engine": None,
                          "transport": "socket", "interpreter": python[0],
                          "paths_on_target": [str(p) for p in target.host_paths],
                          "hardening": "not applicable: a process on this machine, not a container"})
