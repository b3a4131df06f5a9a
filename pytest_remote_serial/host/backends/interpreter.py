"""Interpreter targets: the agent as a subprocess of another Python on this machine, no Docker.

A machine with several Pythons (pyenv, uv, setup-python, a GPU box with CuPy in a venv) runs
the matrix without an engine. The target gets that Python's own packages, never the host's
``PYTHONPATH``; it is not trusted by default, as a container is not.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..matrix import MIN_PYTHON, Target
from .base import Running, StartFailed
from .local import start_process

PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
PROBE_TIMEOUT_S = 20.0
# Environment variables of the host's Python that would leak the host's packages or settings
# into another interpreter; the agent's own two are set again below.
_DROP = re.compile(r"^PYTHON|^VIRTUAL_ENV$|^CONDA_PREFIX$|^__PYVENV_LAUNCHER__$")


def search_places(version: str) -> list[str]:
    """Where a version like "3.12" is looked for, in order; also named when none is found."""
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    uv = os.environ.get("UV_PYTHON_INSTALL_DIR") or str(
        Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "uv" / "python")
    return ["PATH", f"{pyenv}/versions/{version}.*/bin", f"{uv}/cpython-{version}.*/bin"]


def _patch(path: str) -> tuple[int, ...]:
    """Newest patch release first: 3.12.10 after 3.12.9."""
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", path)
    return tuple(int(x) for x in found.groups()) if found else (0,)


def candidates(version: str) -> list[str]:
    """python3.X on PATH, then pyenv's and uv's installs of that minor (newest patch first).
    pyenv's shims are skipped: a shim runs only the version pyenv has activated."""
    name = f"python{version}"
    found: list[str] = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if folder and Path(folder).name != "shims":
            path = shutil.which(name, path=folder)
            if path:
                found.append(path)
    for pattern in search_places(version)[1:]:
        for folder in sorted(glob.glob(pattern), key=_patch, reverse=True):
            candidate = Path(folder) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                found.append(str(candidate))
    return list(dict.fromkeys(found))


def resolve(target: Target) -> tuple[str, str]:
    """The interpreter's path and its full version, or a StartFailed naming the fix."""
    spec = str(target.recipe)
    fix = f"or set interpreter = \"/path/to/python\" for target {target.name!r} in {target.source}"
    if "/" in spec:
        path = str(Path(spec).expanduser())
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise StartFailed(f"interpreter {path} does not exist or is not executable; install that "
                              f"Python {fix}")
        return path, probe(path, target.name)
    problems = []
    for path in candidates(spec):
        try:
            version = probe(path, target.name)
        except StartFailed as exc:
            problems.append(str(exc))
            continue
        if version.startswith(f"{spec}."):
            return path, version
        problems.append(f"{path} is Python {version}")
    places = ", ".join(search_places(spec))
    tried = f"; tried: {'; '.join(problems)}" if problems else ""
    raise StartFailed(f"no Python {spec} found on this machine (looked in {places}){tried}; install one "
                      f"(`pyenv install {spec}` or `uv python install {spec}`) {fix}")


def probe(path: str, name: str) -> str:
    """Ask the interpreter its version, bounded in time: a broken or hanging binary is named."""
    try:
        proc = subprocess.run([path, "-E", "-c", PROBE], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, env=clean_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise StartFailed(f"interpreter {path} did not answer within {PROBE_TIMEOUT_S:.0f}s "
                          f"(target {name!r})") from None
    except OSError as exc:
        raise StartFailed(f"interpreter {path} cannot run: {exc} (target {name!r})") from None
    version = proc.stdout.strip()
    if proc.returncode or not re.fullmatch(r"\d+\.\d+\.\d+", version):
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise StartFailed(f"interpreter {path} is not a working Python 3 ({detail[0]}) (target {name!r})")
    if tuple(int(x) for x in version.split(".")[:2]) < MIN_PYTHON:
        raise StartFailed(f"interpreter {path} is Python {version}; the agent needs "
                          f"{'.'.join(map(str, MIN_PYTHON))} or newer (target {name!r}): point "
                          "`interpreter` at a newer Python")
    return version


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _DROP.match(k)}
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    return env


def start_interpreter(target: Target) -> Running:
    path, _ = resolve(target)
    # -E: the host's PYTHONPATH/PYTHONHOME never reach it; -B: no __pycache__ in `paths` folders.
    return start_process(target, [path, "-E", "-B"], clean_env(), f"interpreter {path}")
