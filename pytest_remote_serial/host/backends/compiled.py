"""The agent compiled once per image, so a container does not compile it at every start.

Python compiles the script it is given every time (it caches only imported modules), and the
agent is ~2,000 lines: ~16 ms of every cold start on a 2-core VM. So the first start of an
image with a given agent bundle runs that image's own interpreter once, in a throwaway
container hardened like the agent's, to ``py_compile`` the agent; later containers run the
``.pyc`` (CPython runs a ``.pyc`` given as the script), mounted read-only as a single file.

The file is keyed by the bundle's fingerprint and the image id: only the image that made it
ever runs it (a Dockerfile image cannot reach another image's agent), and nothing a call does
can write to it. If compiling fails for any reason, the agent simply runs from its source.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..bundle import ensure_bundle
from ..matrix import Target
from ..paths import cache_dir
from .layer import AGENT_DIR

COMPILED_PATH = "/opt/prs-compiled/agent.pyc"
COMPILE_TIMEOUT_S = 60.0
# dfile: tracebacks still name (and show lines of) the mounted source.
_SCRIPT = ("import py_compile; py_compile.compile(%r, cfile='/out/agent.pyc', dfile=%r, doraise=True)"
           % (f"{AGENT_DIR}/agent.py", f"{AGENT_DIR}/agent.py"))
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def compiled_file(image_id: str) -> Path:
    digest = image_id.rpartition(":")[2][:16]
    return cache_dir() / "compiled" / f"{ensure_bundle().folder.name}-{digest}.pyc"


def ensure_compiled(client: Any, image: str, image_id: str, target: Target,
                    run_kwargs: Callable[[], dict[str, Any]], remove: Any) -> tuple[Path | None, float]:
    """The compiled agent for this image (made now if need be) and the seconds making it took;
    ``(None, seconds)`` when it could not be made: the agent then runs from source.
    ``run_kwargs`` gives the agent's hardened container settings, asked for only if compiling."""
    dest = compiled_file(image_id)
    if dest.is_file():
        return dest, 0.0
    with _locks_guard:
        lock = _locks.setdefault(dest.name, threading.Lock())
    with lock:  # four targets of one image starting at once compile it once
        if dest.is_file():
            return dest, 0.0
        start = time.monotonic()
        return _compile(client, image, target, run_kwargs, remove, dest), time.monotonic() - start


STALE_S = 14 * 24 * 3600  # another agent version's files, untouched this long, go


def _prune(folder: Path, keep_prefix: str) -> None:
    """Files of other agent versions (an upgrade, an edited agent) once they are two weeks old,
    and the scratch folders of compiles a killed run left, once a day old."""
    now = time.time()
    for old in folder.glob("*.pyc"):
        with contextlib.suppress(OSError):
            if not old.name.startswith(keep_prefix) and now - old.stat().st_mtime > STALE_S:
                old.unlink()
    for scratch in folder.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if now - scratch.stat().st_mtime > 24 * 3600:
                shutil.rmtree(scratch, ignore_errors=True)


def _compile(client: Any, image: str, target: Target, run_kwargs: Callable[[], dict[str, Any]],
             remove: Any, dest: Path) -> Path | None:
    hardened = run_kwargs()  # a bad `paths` entry fails the start here, as it would without compiling
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _prune(dest.parent, ensure_bundle().folder.name)
        out = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".tmp-"))
    except OSError:  # a cache folder that cannot be written: run from source
        return None
    container = None
    try:
        out.chmod(0o777)  # the container's non-root user writes the one file
        kwargs = {k: v for k, v in hardened.items() if k not in ("device_requests", "name")}
        kwargs.update(image=image, command=[target.python, "-c", _SCRIPT], detach=True, auto_remove=False,
                      volumes={str(ensure_bundle().folder): {"bind": AGENT_DIR, "mode": "ro"},
                               str(out): {"bind": "/out", "mode": "rw"}})
        container = client.containers.run(**kwargs)
        status = container.wait(timeout=COMPILE_TIMEOUT_S)
        made = out / "agent.pyc"
        if status.get("StatusCode") != 0 or not made.is_file() or made.stat().st_size < 16:
            return None
        made.chmod(0o644)
        os.replace(made, dest)  # atomic: a concurrent run sees the whole file or none
        return dest
    except Exception:  # a broken image, an engine hiccup, a timeout: run from source instead
        return None
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                remove(container)
        shutil.rmtree(out, ignore_errors=True)
