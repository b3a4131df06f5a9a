"""Where the interpreter running the agent differs, met in one place and found by feature, not by
name. PyPy has no ``gc.freeze`` and may lack ``os.memfd_create`` or ``_thread._count`` (PyPy 7.3
also lacks ``os.readv``/``os.writev``: those stand in in ``wire.py``, and ``envelope.cpus`` reads
the CPUs it may use from /proc where ``os.sched_getaffinity`` is missing). Each name here is the
interpreter's own function wherever it has one, so CPython runs exactly what it ran before.

And the injected cloudpickle is imported here (``import_pickler_module``): on PyPy it is written
against the pure-Python ``pickle.Pickler``, which PyPy 8 replaced by an accelerated one.
"""

from __future__ import annotations

import gc
import os
import pickle
import sys


def _nothing() -> None:
    return None


# Keeps what the parent holds out of its forks' collections (fewer pages copied). A collector
# without reference counts (PyPy's) has nothing to freeze: there it does nothing.
freeze = getattr(gc, "freeze", _nothing)


def _anonymous_file(name: str) -> int:
    """A file in memory that only its descriptors name: /dev/shm (or /tmp), unlinked at once."""
    import tempfile

    for folder in ("/dev/shm", None):
        try:
            fd, path = tempfile.mkstemp(prefix=name + "-", dir=folder)
        except OSError:
            if folder is None:
                raise
            continue
        os.unlink(path)
        return fd
    raise OSError("no folder for an anonymous file")  # pragma: no cover - mkstemp raised above


memfd_create = getattr(os, "memfd_create", _anonymous_file)


def _threads_from_proc() -> int:
    """Threads of this process besides the main one, as the kernel counts them."""
    try:
        return len(os.listdir("/proc/self/task")) - 1
    except OSError:
        import threading

        return threading.active_count() - 1


def _thread_counter():
    try:
        from _thread import _count
    except ImportError:
        return _threads_from_proc
    return _count


# Threads started (and still running) besides the main one: a C counter where there is one.
thread_count = _thread_counter()


def import_pickler_module(name: str):
    """Import ``name``, a serializer whose ``Pickler`` subclasses ``pickle.Pickler`` (the injected
    cloudpickle). cloudpickle takes, on PyPy, the code path written for the pure-Python pickler
    (it extends that class's ``dispatch`` table), and PyPy 8 made ``pickle.Pickler`` an accelerated
    class without one: the import fails with "type object 'Pickler' has no attribute 'dispatch'".
    There the module is imported against the stdlib's pure-Python pickler (``pickle._Pickler``,
    part of pickle.py on every Python), which is what that code path is for; ``pickle.Pickler``
    is what it was as soon as the import is done. Anywhere else this is a plain import. Returns
    the module ``name`` itself (a dotted name too, e.g. a private copy inside the agent)."""
    pure = getattr(pickle, "_Pickler", None)
    if (name in sys.modules or sys.implementation.name != "pypy" or hasattr(pickle.Pickler, "dispatch")
            or pure is None):  # (no pure-Python pickler to give it: the import says what fails)
        __import__(name)
        return sys.modules[name]
    accelerated = pickle.Pickler
    setattr(pickle, "Pickler", pure)  # noqa: B010 (a name mypy takes for a type)
    try:
        __import__(name)
    finally:
        setattr(pickle, "Pickler", accelerated)  # noqa: B010
    return sys.modules[name]


def import_injected(name: str, libs: list) -> None:
    """Import ``name`` as a call would find it: through ``import_pickler_module`` where that is
    the host's injected copy (from one of the ``libs`` zips), plainly where it is the image's."""
    if name not in sys.modules and sys.implementation.name == "pypy":
        import importlib.util

        spec = importlib.util.find_spec(name)
        origin = str(getattr(spec, "origin", None) or "")
        if any(origin.startswith(lib.rstrip("/") + "/") for lib in libs):
            import_pickler_module(name)
            return
    __import__(name)
