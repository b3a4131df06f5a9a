"""Buffers beside the pickle stream: protocol-5 out-of-band buffers, large ``bytes``-likes near
the top of an object, and device (CuPy) arrays, each received straight into its own type.

Both ends import this module: payloads are dumped on the host and results on the target with
``dump_with_buffers``, and both load with ``attach_device_loads``.
"""

from __future__ import annotations

import functools
import pickle
import sys
import time

from .diagnosis import safe_str

PICKLE_PROTOCOL = 5
# Buffers below this size are cheaper to keep inside the pickle stream.
OOB_THRESHOLD = 1 << 16


class Buffers(list):
    """The pickle stream, then its out-of-band buffers. ``kinds`` maps the index of a buffer
    that must arrive as a ``bytes`` or ``bytearray`` object to that type, so the receiver
    reads it into one directly instead of holding it twice (see ``buffer_id``)."""

    kinds: dict = {}


def dump_with_buffers(pickler, obj, copies=None, persistent_id=None, **kwargs) -> Buffers:
    """Pickle ``obj`` with protocol 5 by a ``Pickler`` class; large contiguous buffers go
    out of band. With ``copies``, device arrays travel as persistent ids (see below), ahead
    of any other ``persistent_id``; so do large bytes-like objects near the top (arguments,
    results)."""
    import io

    oob = Buffers()
    plain = _plain_buffers(obj)
    tags: dict = {}  # id(PickleBuffer) -> (kind, the PickleBuffer, kept alive)

    def keep(pb) -> bool:
        try:
            raw = pb.raw()
        except BufferError:
            return True
        if raw.nbytes < OOB_THRESHOLD:
            return True
        oob.append(raw)
        tag = tags.get(id(pb))
        if tag is not None and tag[1] is pb:
            oob.kinds[str(len(oob))] = tag[0]  # index in the returned list (0 is the stream)
        return False

    out = io.BytesIO()
    p = pickler(out, PICKLE_PROTOCOL, buffer_callback=keep, **kwargs)
    if persistent_id is not None:
        p.persistent_id = persistent_id
    if copies is not None:
        attach_device_ids(p, copies)
    if plain:
        oob.kinds = {}
        _attach_buffer_ids(p, plain, tags)
    try:
        p.dump(obj)
    finally:
        if plain or (copies is not None and "cupy" in sys.modules):
            p.persistent_id = _no_persistent_id  # see _no_persistent_id
    oob.insert(0, out.getvalue())
    return oob


def _no_persistent_id(obj):
    """Put back once a dump is done. The hooks attached for it hold the pickler's own bound
    ``persistent_id`` (dill's; every pickler's from Python 3.13): a reference cycle, garbage
    the collector would otherwise have to find after every call."""
    return None


# --------------------------------------------------------------------------- plain buffers
# Pickle keeps bytes and bytearray inside the stream (only PickleBuffer goes out of band) and
# refuses memoryview: a 1 GiB argument would be copied into the stream and out again. Large
# ones near the top of the object travel as a persistent id ("buffer", kind, PickleBuffer,
# format, shape) whose buffer goes out of band and is received straight into its type.
_PLAIN_TYPES = (bytes, bytearray, memoryview)


def _plain_buffers(obj, depth: int = 2) -> dict:
    """id -> object for large bytes-likes in obj or its first containers (cheap: no deep walk)."""
    found: dict = {}
    _visit_plain(obj, depth, found)
    return found


def _visit_plain(o, left: int, found: dict) -> None:
    # Not a closure: a nested function that calls itself is a reference cycle, garbage the
    # collector has to find after every call, on both ends.
    kind = type(o)
    if kind in _PLAIN_TYPES:
        if (o.nbytes if kind is memoryview else len(o)) >= OOB_THRESHOLD and (
                kind is not memoryview or o.contiguous):
            found[id(o)] = o
    elif left and (kind is tuple or kind is list):
        for item in o[:64]:
            _visit_plain(item, left - 1, found)
    elif left and kind is dict:
        for n, item in enumerate(o.values()):
            if n == 64:
                break
            _visit_plain(item, left - 1, found)


def _attach_buffer_ids(pickler, plain: dict, tags: dict) -> None:
    previous = getattr(pickler, "persistent_id", None)

    def persistent_id(obj):
        if id(obj) in plain and plain[id(obj)] is obj:
            pb = pickle.PickleBuffer(obj)
            kind = type(obj).__name__
            tags[id(pb)] = (kind, pb)
            if kind == "memoryview":
                return ("buffer", kind, pb, obj.format, tuple(obj.shape), obj.readonly)
            return ("buffer", kind, pb)
        return previous(obj) if previous is not None else None

    pickler.persistent_id = persistent_id


def buffer_load(pid):
    """The object back from a ``("buffer", ...)`` id; no copy when it arrived as its own type."""
    kind, data = pid[1], pid[2]
    if kind == "bytes":
        return data if type(data) is bytes else bytes(data)
    if kind == "bytearray":
        return data if type(data) is bytearray else bytearray(data)
    if kind == "memoryview":
        view = memoryview(data).cast("B")
        try:
            view = view.cast(pid[3], pid[4])
        except (TypeError, ValueError):
            pass  # a format cast() cannot make: the raw bytes
        return view.toreadonly() if pid[5] else view
    raise pickle.UnpicklingError("unknown buffer kind %r" % (kind,))


# --------------------------------------------------------------------------- device arrays
# CuPy's own pickling copies to the host and back but drops Fortran order (cupy#10084), and
# a host without CuPy cannot load it at all. So device arrays cross as a persistent id
# ("device", "cupy", order, dtype, shape, raw memory): the receiver rebuilds them on its device
# in the same order, or, where it cannot hold them, keeps a numpy array and says so. The
# copies are timed here, apart from serialization.


class DeviceCopies:
    """Host<->device copy time of one call's arrays, and any that arrived as numpy."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.h2d = 0.0
        self.d2h = 0.0
        self.arrays = 0
        self.converted: list = []

    def merge(self, other: dict) -> None:
        self.h2d += other.get("h2d_s", 0.0)
        self.d2h += other.get("d2h_s", 0.0)
        self.arrays += other.get("arrays", 0)
        self.converted += other.get("converted", [])

    def as_dict(self):
        if not self.arrays:
            return None
        return {"h2d_s": self.h2d, "d2h_s": self.d2h, "arrays": self.arrays, "converted": self.converted}


@functools.lru_cache(maxsize=1)
def device_problem():
    """Why this process cannot hold CuPy arrays (None when it can). Asked once per process."""
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
        return None if count else "CuPy sees no CUDA device"
    except Exception as exc:
        what = "is not importable" if isinstance(exc, ImportError) else "sees no CUDA device"
        return "CuPy %s (%s: %s)" % (what, type(exc).__name__, safe_str(exc))


def device_id(obj, copies: DeviceCopies):
    cupy = sys.modules.get("cupy")
    if cupy is None or type(obj) is not getattr(cupy, "ndarray", None):
        return None
    order = "F" if obj.flags.f_contiguous and not obj.flags.c_contiguous else "C"
    t = time.perf_counter()
    host = cupy.asnumpy(obj, order=order)
    copies.d2h += time.perf_counter() - t
    copies.arrays += 1
    # Raw memory, not a pickled ndarray: any pickler (dill too) carries a PickleBuffer out of
    # band as is, and the receiver needs numpy only to view it.
    return ("device", "cupy", order, host.dtype.str, tuple(host.shape), pickle.PickleBuffer(host))


def device_load(pid, copies: DeviceCopies):
    import numpy

    _, library, order, dtype, shape, data = pid
    host = numpy.ndarray(shape, dtype=numpy.dtype(dtype), buffer=data, order=order)
    copies.arrays += 1
    problem = device_problem()
    if problem:
        copies.converted.append("a cupy.ndarray %s %s arrived as numpy.ndarray: %s"
                                % (host.dtype, tuple(host.shape), problem))
        return host
    import cupy

    t = time.perf_counter()
    arr = cupy.array(host, order=order)
    cupy.cuda.get_current_stream().synchronize()
    copies.h2d += time.perf_counter() - t
    return arr


def attach_device_ids(pickler, copies: DeviceCopies) -> None:
    """Only where CuPy is loaded: ``persistent_id`` runs for every object pickled."""
    if "cupy" not in sys.modules:
        return
    previous = getattr(pickler, "persistent_id", None)

    def persistent_id(obj):
        found = device_id(obj, copies)
        if found is None and previous is not None:
            return previous(obj)
        return found

    pickler.persistent_id = persistent_id


def attach_device_loads(unpickler, copies: DeviceCopies, others=None) -> None:
    """``others`` loads every other persistent id. An instance attribute, not a method: the C
    unpickler reads a subclass's ``persistent_load`` method once, at ``__init__``."""
    previous = others or getattr(unpickler, "persistent_load", None)

    def persistent_load(pid):
        if isinstance(pid, tuple) and pid and pid[0] == "buffer":
            return buffer_load(pid)
        if isinstance(pid, tuple) and pid and pid[0] == "device":
            return device_load(pid, copies)
        if previous is None:
            raise pickle.UnpicklingError("unknown persistent id %r" % (pid,))
        return previous(pid)

    unpickler.persistent_load = persistent_load


def _no_persistent_load(pid):
    raise pickle.UnpicklingError("unknown persistent id %r" % (pid,))


CALL_COPIES = DeviceCopies()  # the running call's (a process runs one call at a time)
