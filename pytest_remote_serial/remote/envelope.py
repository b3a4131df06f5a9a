"""Who this process is: its Python, bytecode magic, numpy and CPUs. Every payload and every reply
carries an envelope, so the receiver names a load failure's real cause ("3.11 bytecode on 3.9")
instead of echoing its symptom.

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


def magic_number(magic: bytes = MAGIC_NUMBER) -> int:
    return int.from_bytes(magic[:2], "little")


def numpy_version() -> str | None:
    """Only if already imported: the envelope must not import numpy just to say it is absent."""
    mod = sys.modules.get("numpy")
    return getattr(mod, "__version__", None) if mod is not None else None


def python_version() -> str:
    return _PYTHON_VERSION


def cpus() -> int:
    """The CPUs this process may run on (a container's cpuset), for remote.map's workers."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_ENVELOPES: dict = {}  # numpy's version (None: not imported) -> the reply envelope


def reply_envelope() -> dict:
    """The way back has an envelope too: the host names its own load failures from it."""
    numpy = numpy_version()
    found = _ENVELOPES.get(numpy)
    if found is None:
        found = _ENVELOPES[numpy] = {"python": python_version(), "magic": magic_number(), "numpy": numpy}
    return found
