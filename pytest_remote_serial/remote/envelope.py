"""Who this process is: its Python (implementation, version, bytecode magic and cache tag), numpy
and CPUs. Every payload and every reply carries an envelope, so the receiver names a load
failure's real cause ("CPython 3.11 bytecode on PyPy 3.11") instead of echoing its symptom.

Both ends import this module: a change to the envelope is a protocol change (``protocol.PROTOCOL``).
"""

from __future__ import annotations

import os
import sys

try:  # already loaded at start-up (importlib.util is not: a cold start need not pay for it)
    from _frozen_importlib_external import MAGIC_NUMBER
except ImportError:  # pragma: no cover - not CPython
    from importlib.util import MAGIC_NUMBER

_PYTHON_VERSION = sys.version.split()[0]  # what platform.python_version() says, without importing platform
IMPLEMENTATION = sys.implementation.name  # "cpython", "pypy": whose bytecode (and runtime) this is
CACHE_TAG = sys.implementation.cache_tag or ""  # "cpython-311", "pypy311": names the bytecode format
# How people write each implementation's name ("CPython 3.11 bytecode on PyPy 3.11").
_SHOWN = {"cpython": "CPython", "pypy": "PyPy", "graalpy": "GraalPy", "ironpython": "IronPython"}


def magic_number(magic: bytes = MAGIC_NUMBER) -> int:
    return int.from_bytes(magic[:2], "little")


def numpy_version() -> str | None:
    """Only if already imported: the envelope must not import numpy just to say it is absent."""
    mod = sys.modules.get("numpy")
    return getattr(mod, "__version__", None) if mod is not None else None


def python_version() -> str:
    return _PYTHON_VERSION


def python_name(implementation, version, minor: bool = False, cpython: str = "CPython") -> str:
    """"PyPy 3.11.17" (or, with ``minor``, "PyPy 3.11") from an envelope's fields; "Python 3.11"
    where the implementation is not known (an envelope from before it said). ``cpython``: what
    to call CPython ("Python" where no other implementation is being contrasted)."""
    version = str(version or "")
    if minor:
        version = ".".join(version.split(".")[:2])
    shown = (cpython if implementation == "cpython" else _SHOWN.get(implementation)) or (
        str(implementation) if implementation else "Python")
    return ("%s %s" % (shown, version)).strip() if version else shown


def this_python(minor: bool = False) -> str:
    return python_name(IMPLEMENTATION, _PYTHON_VERSION, minor)


def cpus() -> int:
    """The CPUs this process may run on (a container's cpuset), for remote.map's workers."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # PyPy has no sched_getaffinity: the kernel's list, from /proc
        return _allowed_cpus() or os.cpu_count() or 1


def _allowed_cpus() -> int:
    """How many CPUs ``Cpus_allowed_list`` ("0-3,6") names; 0 if it cannot be read."""
    try:
        with open("/proc/self/status") as fh:
            text = next((line.split(":", 1)[1] for line in fh if line.startswith("Cpus_allowed_list:")), "")
        count = 0
        for part in text.strip().split(","):
            low, _, high = part.partition("-")
            count += int(high or low) - int(low) + 1
        return count
    except (OSError, ValueError):
        return 0


_ENVELOPES: dict = {}  # numpy's version (None: not imported) -> the reply envelope


def reply_envelope() -> dict:
    """The way back has an envelope too: the host names its own load failures from it."""
    numpy = numpy_version()
    found = _ENVELOPES.get(numpy)
    if found is None:
        found = _ENVELOPES[numpy] = {"python": python_version(), "implementation": IMPLEMENTATION,
                                     "cache_tag": CACHE_TAG, "magic": magic_number(), "numpy": numpy}
    return found
