"""The ``local`` target: a fresh interpreter on the host, without the tests on ``sys.path``.

Same Python and the project's installed dependencies, but not the test folder nor the
rootdir, so a function that only works by reference to a test module fails here too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..bundle import agent_options, ensure_bundle
from ..matrix import Target
from .base import AGENT_FILE, SOCKET_NAME, Running, private_socket_dir, process_stamp, wait_and_connect
from .compiled import compiled_for


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
    log = parent / "agent.log"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, cwd=parent, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    (parent / AGENT_FILE).write_text(process_stamp(proc.pid))  # reaped by the next run if this one dies

    def died() -> str | None:
        if proc.poll() is None:
            return None
        err = log.read_text(errors="replace")
        return f"the {what} agent exited with {proc.returncode}: {err[-800:]}"

    def account() -> str | None:
        """Its own account of a failed start: how it ended (given a moment) and what it printed."""
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            pass
        err = log.read_text(errors="replace").strip()
        ended = f"the {what} agent exited with {proc.returncode}" if proc.returncode is not None else ""
        said = f"its output: {err[-1500:]}" if err else ""
        return "; ".join(part for part in (ended, said) if part) or None

    def stop() -> None:
        client.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(parent, ignore_errors=True)

    try:
        client = wait_and_connect(sock_path, target.name, died, cause=account)
    except BaseException:
        proc.kill()
        proc.wait()
        shutil.rmtree(parent, ignore_errors=True)
        raise
    return Running(target=target, client=client, stop=stop, image=None,
                   cold_start_s=time.monotonic() - start,
                   extra={"backend": "interpreter" if target.is_interpreter else "local", "engine": None,
                          "transport": "socket", "interpreter": python[0],
                          "paths_on_target": [str(p) for p in target.host_paths],
                          "hardening": "not applicable: a process on this machine, not a container"})
