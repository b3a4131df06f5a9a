"""The target's resource limits, read from its own cgroup (v2, else v1), and the error records
of a call that died, ran out of time or found no process to run in: each names the limit it
hit, so a SIGKILL or an EAGAIN from fork is named for what it is.
"""

from __future__ import annotations

import os
import signal

from .envelope import python_version
from .protocol import CRASH

_COUNTERS = {
    "oom_kill": (("/sys/fs/cgroup/memory.events", "oom_kill"),
                 ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill")),
    "pids_max": (("/sys/fs/cgroup/pids.events", "max"), ("/sys/fs/cgroup/pids/pids.events", "max")),
}
_LIMITS = {"memory": ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
           "pids": ("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max")}
LIMITS_NOW: dict = {}  # the parent's reading after the last call
CALL_LIMITS: dict = {}  # a call child's copy of that reading


def cgroup_counter(key: str):
    for path, name in _COUNTERS[key]:
        try:
            with open(path) as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) == 2 and parts[0] == name:
                        return int(parts[1])
        except (OSError, ValueError):
            continue
    return None


def cgroup_limit(key: str):
    for path in _LIMITS[key]:
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        try:
            value = int(text)
        except ValueError:
            return None  # "max"
        return value if value < (1 << 62) else None  # v1 writes "no limit" as a huge number
    return None


def read_limits() -> None:
    for key in _COUNTERS:
        value = cgroup_counter(key)
        if value is not None:
            LIMITS_NOW[key] = value


def crash_info(status: int) -> dict:
    info: dict = {"phase": "call", "type": "crash", "python": python_version()}
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        info["signal"] = sig
        info["message"] = "process killed by signal %d (%s)" % (sig, signame(sig))
        before = LIMITS_NOW.get("oom_kill")
        if sig == signal.SIGKILL and before is not None and (cgroup_counter("oom_kill") or 0) > before:
            limit = cgroup_limit("memory")
            info["oom"] = True
            info["memory_limit"] = limit
            info["message"] += ": the out-of-memory killer ended it at the target's memory limit%s" % (
                " (%d MiB)" % (limit >> 20) if limit else "")
    else:
        code = os.WEXITSTATUS(status)
        info["exit_code"] = code
        info["message"] = "process exited with code %d before answering" % code
    return info


def signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "?"


def timeout_info(timeout: float, what: str, ending: str) -> dict:
    """The error of a call (or a map item) still running at its deadline."""
    return {"phase": "call", "type": "timeout", "timeout": timeout, "python": python_version(),
            "message": "%s still running after %gs; %s" % (what, timeout, ending)}


def no_process(rid, exc) -> dict:
    limit = cgroup_limit("pids")
    message = "could not start a process for the call (%s)" % (exc or "fork failed")
    info: dict = {"phase": "call", "type": "crash", "python": python_version(), "message": message}
    if limit:
        info["limit_hit"] = {"pids": limit}
        info["message"] += ": the target's pids limit (%d) is reached" % limit
    return {"op": "result", "id": rid, "phases": {}, "outcome": CRASH, "error": info}
