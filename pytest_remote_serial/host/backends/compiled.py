"""The agent compiled once per target interpreter, so an agent does not compile itself at every start.

Python caches the bytecode of what it imports from a folder, never of what it imports from a
zip: every start would compile the agent's ~2,700 lines (~16 ms of a cold start on a 2-core VM).
So the target's own interpreter compiles the agent's zip once: a copy of the zip with a
``.pyc`` beside each module, unchecked-hash so that no timestamp is compared, which zipimport
takes before the source (and skips, for the source, where its magic is another Python's). For a
container that is a throwaway container of the image, hardened like the agent's; for an
interpreter on this machine, a subprocess of it. The result is keyed by the bundle's fingerprint
and the image id (or the interpreter): only the image that made it ever runs it, and nothing a
call does can write to it. If compiling fails for any reason, the agent simply runs from its source.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..bundle import AGENT_ZIP, ensure_bundle
from ..matrix import Target
from ..paths import cache_dir
from .layer import AGENT_DIR

COMPILED_PATH = "/opt/prs-compiled/agent.zip"
COMPILE_TIMEOUT_S = 60.0
# Run by the target's interpreter: SOURCE_ZIP OUT_ZIP SHOWN_AS SCRATCH. Tracebacks name each
# module as a file in SHOWN_AS (where the compiled zip is run from), and show its source from it.
_SCRIPT = r"""
import os, py_compile, sys, zipfile
src, out, shown, scratch = sys.argv[1:5]
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out + ".part", "w", zipfile.ZIP_STORED) as zout:
    for info in zin.infolist():
        data = zin.read(info)
        zout.writestr(info, data)
        if info.filename.endswith(".py"):
            path = os.path.join(scratch, info.filename)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(data)
            py_compile.compile(path, cfile=path + "c", dfile=shown + "/" + info.filename, doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            with open(path + "c", "rb") as fh:
                zout.writestr(zipfile.ZipInfo(info.filename + "c", info.date_time), fh.read())
os.replace(out + ".part", out)
"""
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def compiled_file(image_id: str) -> Path:
    digest = image_id.rpartition(":")[2][:16]
    return cache_dir() / "compiled" / f"{ensure_bundle().folder.name}-{digest}.zip"


def _locked(dest: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(dest.name, threading.Lock())


def ensure_compiled(client: Any, image: str, image_id: str, target: Target,
                    run_kwargs: Callable[[], dict[str, Any]], remove: Any) -> tuple[Path | None, float]:
    """The compiled agent for this image (made now if need be) and the seconds making it took;
    ``(None, seconds)`` when it could not be made: the agent then runs from source.
    ``run_kwargs`` gives the agent's hardened container settings, asked for only if compiling."""
    dest = compiled_file(image_id)
    if dest.is_file():
        return dest, 0.0
    with _locked(dest):  # four targets of one image starting at once compile it once
        if dest.is_file():
            return dest, 0.0
        start = time.monotonic()
        return _compile(client, image, target, run_kwargs, remove, dest), time.monotonic() - start


def compiled_for(python: list[str]) -> Path | None:
    """The agent compiled by an interpreter on this machine (``local``, an interpreter target),
    keyed by its path, size and time: a reinstalled Python compiles it again. None: run the source."""
    try:
        binary = os.stat(os.path.realpath(python[0]))
    except OSError:
        return None
    key = hashlib.sha256(f"{os.path.realpath(python[0])}|{binary.st_size}|{binary.st_mtime_ns}".encode())
    dest = cache_dir() / "compiled" / f"{ensure_bundle().folder.name}-{key.hexdigest()[:16]}.zip"
    if dest.is_file():
        return dest
    with _locked(dest):
        if dest.is_file():
            return dest
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            _prune(dest.parent, ensure_bundle().folder.name)
            out = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".tmp-"))
        except OSError:
            return None
        try:
            proc = subprocess.run([*python, "-c", _SCRIPT, str(ensure_bundle().agent), str(out / AGENT_ZIP),
                                   str(dest), str(out / "scratch")],
                                  capture_output=True, timeout=COMPILE_TIMEOUT_S, stdin=subprocess.DEVNULL)
            made = out / AGENT_ZIP
            if proc.returncode or not made.is_file():
                return None
            made.chmod(0o644)
            os.replace(made, dest)  # atomic: a concurrent run sees the whole file or none
            return dest
        except (OSError, subprocess.SubprocessError):
            return None
        finally:
            shutil.rmtree(out, ignore_errors=True)


STALE_S = 14 * 24 * 3600  # another agent version's files, untouched this long, go


def _prune(folder: Path, keep_prefix: str) -> None:
    """Files of other agent versions (an upgrade, an edited agent) once they are two weeks old,
    and the scratch folders of compiles a killed run left, once a day old."""
    now = time.time()
    for old in [*folder.glob("*.zip"), *folder.glob("*.pyc")]:
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
        command = [target.python, "-c", _SCRIPT, f"{AGENT_DIR}/{AGENT_ZIP}", f"/out/{AGENT_ZIP}", COMPILED_PATH,
                   "/tmp/prs-compile"]
        kwargs.update(image=image, command=command, auto_remove=False,
                      volumes={str(ensure_bundle().folder): {"bind": AGENT_DIR, "mode": "ro"},
                               str(out): {"bind": "/out", "mode": "rw"}})
        # Created, then started: one the runtime refuses to start is removed below too.
        container = client.containers.create(**kwargs)
        container.start()
        status = container.wait(timeout=COMPILE_TIMEOUT_S)
        made = out / AGENT_ZIP
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
