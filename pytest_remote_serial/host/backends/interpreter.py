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

from ...remote.envelope import python_name
from ..matrix import MIN_PYTHON, Target
from .base import Running, StartFailed
from .local import start_process

PROBE = "import sys; print('%d.%d.%d %s' % (sys.version_info[:3] + (sys.implementation.name,)))"
PROBE_TIMEOUT_S = 20.0
# Environment variables of the host's Python that would leak the host's packages or settings
# into another interpreter; the agent's own two are set again below.
_DROP = re.compile(r"^PYTHON|^VIRTUAL_ENV$|^CONDA_PREFIX$|^__PYVENV_LAUNCHER__$")
# interpreter = "3.12": CPython 3.12; "pypy3": a PyPy 3; "pypy3.11": a PyPy of Python 3.11.
VERSION = re.compile(r"3\.\d+")
PYPY = re.compile(r"pypy3(?:\.\d+)?")


def is_spec(spec: str) -> bool:
    """A version or a PyPy name this module can look up (a path is checked where it is run)."""
    return bool(VERSION.fullmatch(spec) or PYPY.fullmatch(spec))


def _wanted(spec: str) -> tuple[str, str]:
    """The implementation and the version prefix a spec asks for: ("pypy", "3.11."), ("cpython", "3.12.")."""
    if PYPY.fullmatch(spec):
        minor = spec[len("pypy"):]
        return "pypy", f"{minor}." if "." in minor else "3."
    return "cpython", f"{spec}."


def _roots() -> tuple[str, str]:
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    uv = os.environ.get("UV_PYTHON_INSTALL_DIR") or str(
        Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "uv" / "python")
    return pyenv, uv


def search_places(spec: str) -> list[str]:
    """Where a version like "3.12" (or a PyPy, "pypy3.11") is looked for, in order; also named
    when none is found."""
    pyenv, uv = _roots()
    if PYPY.fullmatch(spec):
        minor = spec[len("pypy"):]
        return ["PATH", f"{pyenv}/versions/pypy{minor}*/bin", f"{uv}/pypy-{minor}*/bin"]
    return ["PATH", f"{pyenv}/versions/{spec}.*/bin", f"{uv}/cpython-{spec}.*/bin"]


def _patch(path: str) -> tuple[int, ...]:
    """Newest patch release first: 3.12.10 after 3.12.9."""
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", path)
    return tuple(int(x) for x in found.groups()) if found else (0,)


def candidates(spec: str) -> list[str]:
    """python3.X (or pypy3, pypy3.X) on PATH, then pyenv's and uv's installs of it (newest
    patch first). pyenv's shims are skipped: a shim runs only the version pyenv has activated."""
    pypy = bool(PYPY.fullmatch(spec))
    name = spec if pypy else f"python{spec}"
    found: list[str] = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if folder and Path(folder).name != "shims":
            path = shutil.which(name, path=folder)
            if path:
                found.append(path)
    for pattern in search_places(spec)[1:]:
        for folder in sorted(glob.glob(pattern), key=_patch, reverse=True):
            for binary in ([name, "pypy3"] if pypy else [name]):
                candidate = Path(folder) / binary
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    found.append(str(candidate))
                    break
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
        return path, probe(path, target.name)[0]
    implementation, prefix = _wanted(spec)
    problems = []
    for path in candidates(spec):
        try:
            version, found = probe(path, target.name)
        except StartFailed as exc:
            problems.append(str(exc))
            continue
        if found == implementation and version.startswith(prefix):
            return path, version
        problems.append(f"{path} is {_called(found, version)}")
    places = ", ".join(search_places(spec))
    tried = f"; tried: {'; '.join(problems)}" if problems else ""
    wanted = f"Python {spec}" if implementation == "cpython" else f"PyPy of Python {prefix.rstrip('.')}"
    install = ("`apt-get install pypy3`, `pyenv install pypy3.11` or `uv python install pypy@3.11`"
               if implementation == "pypy" else f"`pyenv install {spec}` or `uv python install {spec}`")
    raise StartFailed(f"no {wanted} found on this machine (looked in {places}){tried}; install one "
                      f"({install}) {fix}")


def _called(implementation: str, version: str) -> str:
    return python_name(implementation, version, cpython="Python")


def probe(path: str, name: str) -> tuple[str, str]:
    """Ask the interpreter its version and implementation, bounded in time: a broken or hanging
    binary is named."""
    try:
        proc = subprocess.run([path, "-E", "-c", PROBE], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, env=clean_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise StartFailed(f"interpreter {path} did not answer within {PROBE_TIMEOUT_S:.0f}s "
                          f"(target {name!r})") from None
    except OSError as exc:
        raise StartFailed(f"interpreter {path} cannot run: {exc} (target {name!r})") from None
    answer = proc.stdout.strip()
    version, _, implementation = answer.partition(" ")
    if proc.returncode or not re.fullmatch(r"\d+\.\d+\.\d+", version) or not implementation:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise StartFailed(f"interpreter {path} is not a working Python 3 ({detail[0]}) (target {name!r})")
    if tuple(int(x) for x in version.split(".")[:2]) < MIN_PYTHON:
        raise StartFailed(f"interpreter {path} is {_called(implementation, version)}; the agent needs "
                          f"{'.'.join(map(str, MIN_PYTHON))} or newer (target {name!r}): point "
                          "`interpreter` at a newer Python")
    return version, implementation


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _DROP.match(k)}
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    return env


def start_interpreter(target: Target) -> Running:
    path, _ = resolve(target)
    # -E: the host's PYTHONPATH/PYTHONHOME never reach it; -B: no __pycache__ in `paths` folders.
    return start_process(target, [path, "-E", "-B"], clean_env(), f"interpreter {path}")
