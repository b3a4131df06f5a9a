"""The far side: the one module that runs inside a target.

Like execnet's ``gateway_base``, this file is self-contained and stdlib-only so it can be
copied into any image with a Python >= 3.9 and nothing else installed (seed 004). The
host imports the same module for the wire format, so the two sides cannot drift apart.

Wire format: a message is a binary prefix (op code, request id, length of the rest of the
header, number of buffers, each buffer's length), the rest of the header as JSON (often
empty), then the raw buffers. Pickle protocol-5 out-of-band buffers travel as their own
buffers, never copied through a Python ``bytes``.

Process model: the agent's long-lived parent reads only request headers. For an isolated
call it hands the header to a child forked *before* the request arrived, and that child
reads the payload straight off the connection, runs the call, writes the response and
exits. A crash or a timeout kills only the child; the parent answers for it.
"""

from __future__ import annotations

import _thread
import gc
import json
import mmap
import os
import pickle
import select
import signal
import socket
import struct
import sys
import time

try:  # already loaded at start-up (importlib.util is not: a cold start need not pay for it)
    from _frozen_importlib_external import MAGIC_NUMBER
except ImportError:  # pragma: no cover - not CPython
    from importlib.util import MAGIC_NUMBER

try:  # the C module under signal.py: its getsignal skips the enum conversion (~4 µs a call)
    import _signal
except ImportError:  # pragma: no cover - not CPython
    _signal = signal

PROTOCOL = 3
PICKLE_PROTOCOL = 5
# Buffers below this size are cheaper to keep inside the pickle stream.
OOB_THRESHOLD = 1 << 16
_LEN = struct.Struct("!I")
_MAX_HEADER = 64 << 20
# The frame prefix: op code, request id + 1 (0: none), JSON rest length, buffer count.
_FRAME = struct.Struct("!BQII")
FRAME_SIZE = _FRAME.size
OPS = ("", "hello", "call", "result", "echo", "map", "describe", "find_modules", "error")
_OP_CODE = {name: i for i, name in enumerate(OPS) if name}
_BINARY_KEYS = frozenset(("op", "id", "buffers"))
_MAX_BUFFERS = 1 << 20
_json_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
_json_decoder = json.JSONDecoder()
# A result frame's rest opens with its phases, three doubles (NaN: not measured): the shortest
# repr and parse of three floats cost more than the rest of a small reply's JSON.
_PHASES = struct.Struct("!ddd")
_PHASE_KEYS = ("load", "call", "result")
_PHASE_SET = frozenset(_PHASE_KEYS)
_RESULT = _OP_CODE["result"]
_NAN = float("nan")
# Buffers from this size are received into huge-page mappings (see receive_buffer).
BULK_THRESHOLD = 4 << 20


def receive_buffer(n: int):
    """Memory for n bytes about to arrive. For bulk data, an anonymous mapping advised to
    use transparent huge pages: first-touch faults on fresh 4 KiB pages otherwise cost more
    than the copy itself (64 MiB: ~50 ms of faults against ~8 ms of copying). A size that
    cannot be had (a corrupt or forged frame) ends the stream, never the process."""
    if n >= BULK_THRESHOLD:
        try:
            buf = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        except (OSError, ValueError, OverflowError):
            pass  # bytearray says whether it can be had at all
        else:
            try:
                buf.madvise(mmap.MADV_HUGEPAGE)
            except (AttributeError, OSError, ValueError):  # no THP on this kernel or platform
                pass
            return buf
    try:
        return bytearray(n)
    except (MemoryError, OverflowError) as exc:
        raise EOFError("corrupt stream: a message announced %d bytes, which cannot be allocated "
                       "here (%s)" % (n, type(exc).__name__)) from None


class ChannelClosed(EOFError):
    """The peer went away between messages (a normal end of session)."""


def _sizes_format(n: int) -> str:
    return "!%dQ" % n  # struct caches the compiled format


def encode_frame(header: dict, sizes: list) -> bytes:
    """A frame's prefix and header. ``"_rest"`` in the header is the rest already encoded
    (the host keeps one per kind of call: the same request header every time)."""
    code = _OP_CODE.get(str(header.get("op")), 0)
    rest = header.get("_rest")
    if rest is None:
        fields = {k: v for k, v in header.items() if k not in _BINARY_KEYS or (k == "op" and not code)}
        lead = b""
        if code == _RESULT:
            phases = fields.pop("phases", None) or {}
            get = phases.get
            lead = _PHASES.pack(get("load", _NAN), get("call", _NAN), get("result", _NAN))
            if not phases.keys() <= _PHASE_SET:  # others, if any, stay JSON
                fields["phases"] = {k: v for k, v in phases.items() if k not in _PHASE_KEYS}
        rest = lead + _json_encode(fields).encode() if fields else lead
    rid = header.get("id")
    return (_FRAME.pack(code, 0 if rid is None else rid + 1, len(rest), len(sizes))
            + (struct.pack(_sizes_format(len(sizes)), *sizes) if sizes else b"") + rest)


def _check_prefix(head) -> tuple:
    code, rid, n, nbuf = _FRAME.unpack_from(head)
    if n > _MAX_HEADER or nbuf >= _MAX_BUFFERS or code >= len(OPS):
        raise EOFError("corrupt stream: header of %d bytes, %d buffers, op %d" % (n, nbuf, code))
    return code, rid, n, nbuf


def _json_object(raw: bytes) -> dict:
    """A header's JSON: ``raw_decode`` of the text, without ``json.loads``'s encoding detection
    and wrappers (a third of a small header's cost). Anything but one object is corrupt."""
    try:
        text = raw.decode()
        header, end = _json_decoder.raw_decode(text)
    except ValueError as exc:  # not UTF-8, not JSON
        raise EOFError("corrupt stream: the header is not JSON (%s)" % exc) from None
    if end != len(text) or type(header) is not dict:
        raise EOFError("corrupt stream: the header is not an object")
    return header


class Channel:
    """Framed messages over a pair of file descriptors (a socket, or stdio pipes).

    The agent reads exactly one message's bytes and no more: an isolated call's process
    reads its payload straight off the connection the parent read the header from."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self._decoded: dict = {}  # header JSON seen before -> its dict (see recv_header)

    # Subclasses on the host override these two for deadlines and docker's stream mux.
    def _read_into(self, view: memoryview) -> int:
        return os.readv(self.rfd, [view])

    def _writev(self, views: list) -> int:
        return os.writev(self.wfd, views)

    def read_exact(self, n: int, at_boundary: bool = False) -> bytearray:
        return self._read_full(receive_buffer(n), at_boundary)

    def _read_full(self, buf, at_boundary: bool = False):
        n = len(buf)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self._read_into(view[got:])
            if k == 0:
                if at_boundary and got == 0:
                    raise ChannelClosed("peer closed the connection")
                raise EOFError("connection closed mid-message (%d of %d bytes)" % (got, n))
            got += k
        return buf

    def write_all(self, parts: list) -> None:
        views = [v for v in (memoryview(p).cast("B") for p in parts) if v.nbytes]
        while views:
            sent = self._writev(views[:1024])
            while sent:
                if sent >= len(views[0]):
                    sent -= len(views[0])
                    views.pop(0)
                else:
                    views[0] = views[0][sent:]
                    sent = 0

    def send(self, header: dict, buffers: list | tuple = ()) -> None:
        views = [memoryview(b).cast("B") for b in buffers]
        self.write_all([encode_frame(header, [v.nbytes for v in views])] + views)

    def recv_header(self, cache: bool = False) -> dict:
        """The next header as a dict with ``op``, ``id`` and ``buffers``. With ``cache`` (the
        agent reading the host's requests, which repeat), JSON seen before is not decoded again."""
        return self.decode_head(self.recv_head(), cache)

    def recv_head(self) -> bytes:
        """The next frame's prefix, buffer sizes and header, undecoded: a spare that took a
        request off the connection passes these bytes on to the parent as they came."""
        prefix = self.read_exact(_FRAME.size, at_boundary=True)
        _, _, n, nbuf = _check_prefix(prefix)
        return bytes(prefix + self.read_exact(8 * nbuf + n)) if nbuf or n else bytes(prefix)

    def decode_head(self, head: bytes, cache: bool = False) -> dict:
        code, rid, n, nbuf = _check_prefix(head)
        if len(head) != _FRAME.size + 8 * nbuf + n:
            raise EOFError("corrupt stream: a frame head of %d bytes" % len(head))
        sizes = list(struct.unpack_from(_sizes_format(nbuf), head, _FRAME.size)) if nbuf else []
        raw = head[_FRAME.size + 8 * nbuf:]
        phases = None
        if code == _RESULT:
            if len(raw) < _PHASES.size:
                raise EOFError("corrupt stream: a result frame without its phases")
            phases = {k: v for k, v in zip(_PHASE_KEYS, _PHASES.unpack_from(raw)) if v == v}
            raw = raw[_PHASES.size:]
        header = self._decoded.get(raw) if cache else None
        if header is None:
            header = _json_object(raw) if raw else {}
            if cache:
                if len(self._decoded) > 64:
                    self._decoded.clear()
                self._decoded[raw] = header
        header = dict(header)
        if phases is not None:
            more = header.get("phases")
            header["phases"] = dict(more, **phases) if type(more) is dict else phases
        if code:
            header["op"] = OPS[code]
        header["id"] = rid - 1 if rid else None
        header["buffers"] = sizes
        return header

    def recv_buffers(self, header: dict) -> list:
        kinds = header.get("buffer_kinds") or {}
        out: list = []
        for i, n in enumerate(header.get("buffers", ())):
            kind = kinds.get(str(i))
            if kind == "bytes":
                out.append(self.read_bytes(n))
            elif kind == "bytearray":
                out.append(self.read_bytearray(n))
            else:
                out.append(self.read_exact(n))
        return out

    def read_bytes(self, n: int) -> bytes:
        """n bytes as one ``bytes`` object, filled in place where the fd is a socket."""
        try:
            sock = socket.socket(fileno=self.rfd)
        except OSError:  # stdio pipes
            return bytes(self.read_exact(n))
        try:
            data = sock.recv(n, socket.MSG_WAITALL)
        finally:
            sock.detach()
        if len(data) < n:
            if not data:
                raise EOFError("connection closed mid-message (0 of %d bytes)" % n)
            data += bytes(self.read_exact(n - len(data)))  # interrupted: rare, and copied
        return data

    def read_bytearray(self, n: int) -> bytearray:
        return self._read_full(bytearray(n))

    def recv(self) -> tuple:
        header = self.recv_header()
        return header, self.recv_buffers(header)


# --------------------------------------------------------------------------- envelope


def magic_number(magic: bytes = MAGIC_NUMBER) -> int:
    return int.from_bytes(magic[:2], "little")


def numpy_version() -> str | None:
    """Only if already imported: the envelope must not import numpy just to say it is absent."""
    mod = sys.modules.get("numpy")
    return getattr(mod, "__version__", None) if mod is not None else None


_PYTHON_VERSION = sys.version.split()[0]  # what platform.python_version() says, without importing platform


def python_version() -> str:
    return _PYTHON_VERSION


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


_device_problem: list = []


def device_problem():
    """Why this process cannot hold CuPy arrays (None when it can). Asked once per process."""
    if not _device_problem:
        try:
            import cupy

            count = cupy.cuda.runtime.getDeviceCount()
            _device_problem.append(None if count else "CuPy sees no CUDA device")
        except Exception as exc:
            what = "is not importable" if isinstance(exc, ImportError) else "sees no CUDA device"
            _device_problem.append("CuPy %s (%s: %s)" % (what, type(exc).__name__, _safe_str(exc)))
    return _device_problem[0]


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


_call_copies = DeviceCopies()  # this call's (a process runs one call at a time)


def _unpickle(cls, payload, buffers, header):
    import io

    unpickler = cls(io.BytesIO(payload), buffers=buffers)
    if not (header.get("device_arrays") or header.get("buffer_kinds")):
        return unpickler.load()
    attach_device_loads(unpickler, _call_copies)
    try:
        return unpickler.load()
    finally:  # the hook holds the unpickler's own bound persistent_load on 3.13+ (a cycle)
        unpickler.persistent_load = _no_persistent_load


def _no_persistent_load(pid):
    raise pickle.UnpicklingError("unknown persistent id %r" % (pid,))


# --------------------------------------------------------------------------- loading


# What payloads may name under HOST_MODULE: a container has no such package, so these
# resolve to this module whatever loads them.
_HOST_API = ("src_code", "src_function_setstate", "src_class_setstate", "src_lru_cache",
             "src_cached_property", "src_partialmethod", "src_singledispatch", "src_union",
             "pytest_rewrite_standin")


class HostNames:
    """Unpickler mixin: the host's name of this module means this module."""

    def find_class(self, module, name):
        if module == HOST_MODULE and name in _HOST_API:
            return globals()[name]
        return super().find_class(module, name)


class _Unpickler(HostNames, pickle.Unpickler):
    pass


def _load_pickle(payload, buffers, header):
    return _unpickle(_Unpickler, payload, buffers, header)


_dill_unpickler: list = []


def _load_dill(payload, buffers, header):
    if not _dill_unpickler:
        import dill  # injected as a zip by the host

        _dill_unpickler.append(type("_DillUnpickler", (HostNames, dill.Unpickler), {}))
    return _unpickle(_dill_unpickler[0], payload, buffers, header)


# --------------------------------------------------------------------------- source capsule
# The host's CapsulePickler is cloudpickle's own Pickler with one change: each code object is
# reduced to src_code(capsule), the exact text of the statement that made it. Everything else
# (globals, cells, defaults, class skeletons, enum members, data) is cloudpickle's own data,
# loaded with the host's cloudpickle that is injected here. Only code is bound to a version.

HOST_MODULE = "pytest_remote_serial.remote.agent"
# Classes and functions rebuilt here from host source, by id: on the way back they travel
# as references to the host's own objects (a class made here from 3.9 source must come
# back as the host's class, not as 3.9 bytecode the host cannot load).
_FROM_HOST: dict = {}


def _remember_host_object(obj, module, qualname):
    if "<locals>" not in qualname and "<lambda>" not in qualname:
        _FROM_HOST[id(obj)] = (obj, module, qualname)


def compile_capsule(capsule, remember_lines=True):
    """The code object of one ``def`` or ``lambda``, compiled from its statement's text without
    running it: decorators and default expressions live in the surrounding code, so they are
    never evaluated again (their values travel as data). Free variables become parameters of
    a synthetic outer function, ``__class__`` a synthetic class, so the cells line up."""
    import __future__

    import ast

    text = capsule["text"]
    indented = text[:1] in (" ", "\t")
    shift = capsule["line"] - (2 if indented else 1)
    try:
        tree = ast.parse("if 1:\n" + text if indented else text, capsule["filename"])
    except SyntaxError as exc:
        if exc.lineno:
            exc.lineno += shift
        raise
    stmt = tree.body[0].body[0] if indented else tree.body[0]
    ast.increment_lineno(stmt, shift)
    body = [stmt]
    freevars = list(capsule["freevars"])
    if "__class__" in freevars:
        holder = ast.parse("class __prs_class__:\n    pass").body[0]
        holder.body = body
        body = [holder]
    params = [name for name in freevars if name != "__class__"]
    if params:
        outer = ast.parse("def __prs_outer__(%s):\n    pass" % ", ".join(params)).body[0]
        outer.body = body
        body = [outer]
    flags = 0
    for name in capsule["futures"]:
        feature = getattr(__future__, name, None)
        flags |= feature.compiler_flag if feature is not None else 0
    module = ast.Module(body=body, type_ignores=[])
    code = _find_code(compile(module, capsule["filename"], "exec", flags=flags, dont_inherit=True),
                      capsule["name"], capsule["firstlineno"])
    if code is None or list(code.co_freevars) != freevars:
        raise ValueError("the source of %s at %s line %d compiled into %s on Python %s, not a code "
                         "object with free variables %s" % (
                             capsule["name"], capsule["filename"], capsule["firstlineno"],
                             "nothing of that name" if code is None else "free variables %s" % (code.co_freevars,),
                             python_version(), tuple(freevars)))
    if remember_lines:
        _remember_lines(capsule)
    return code


def _find_code(code, name, firstlineno):
    """The first code object of that name and line, depth first: the statement's own."""
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            if const.co_name == name and const.co_firstlineno == firstlineno:
                return const
            found = _find_code(const, name, firstlineno)
            if found is not None:
                return found
    return None


def _remember_lines(capsule):
    """Tracebacks here show the user's own lines, at their own line numbers."""
    import linecache

    filename = capsule["filename"]
    if os.path.exists(filename):
        return
    entry = linecache.cache.get(filename)
    lines = list(entry[2]) if entry is not None and entry[1] is None else []
    text = capsule["text"].splitlines(True)
    start = capsule["line"] - 1
    lines += ["\n"] * max(0, start + len(text) - len(lines))
    lines[start:start + len(text)] = text
    linecache.cache[filename] = (sum(len(x) for x in lines), None, lines, filename)


def src_code(capsule):
    return compile_capsule(capsule)


def src_function_setstate(func, state):
    """``named``: the host finds this function by module and qualname, so it may go back by name."""
    from cloudpickle import cloudpickle as cp

    state, slotstate, named = state
    cp._function_setstate(func, (state, slotstate))
    if named:
        _remember_host_object(func, func.__module__, func.__qualname__)


def src_class_setstate(cls, state):
    from cloudpickle import cloudpickle as cp

    clsdict, slotstate, generated = state
    cp._class_setstate(cls, (clsdict, slotstate))
    if generated:
        _REGENERATE[generated["kind"]](cls, generated)
    return cls  # it goes back by cloudpickle's tracker id (_host_ref): its __qualname__ is not restored


class _ModuleFor:
    """Library generators look classes' modules up in sys.modules (dataclasses does, for string
    annotations); the user's module does not exist here, so stand one in while they run."""

    def __init__(self, cls):
        self.name = cls.__module__
        self.added = self.name not in sys.modules

    def __enter__(self):
        if self.added:
            import types

            sys.modules[self.name] = types.ModuleType(self.name)

    def __exit__(self, *exc):
        if self.added:
            sys.modules.pop(self.name, None)


def _regenerate_dataclass(cls, spec):
    """The host's dataclass methods were made by exec() from no file: make them again here, by
    this Python's dataclasses, with the same parameters and fields."""
    import dataclasses
    import inspect

    def accepted(func, options, what):
        known = inspect.signature(func).parameters
        for key, value in options.items():
            if key not in known and value:
                raise TypeError("%s uses %s=%r, which Python %s's dataclasses does not support"
                                % (what, key, value, python_version()))
        return {k: v for k, v in options.items() if k in known}

    slots = {name: cls.__dict__[name] for name in spec["fields"] if name in cls.__dict__}
    for name, options in spec["fields"].items():
        setattr(cls, name, dataclasses.field(**accepted(dataclasses.field, options, "field %r of %s" % (
            name, cls.__qualname__))))
    with _ModuleFor(cls):
        dataclasses.dataclass(cls, **accepted(dataclasses.dataclass, spec["params"], cls.__qualname__))
    for name, descriptor in slots.items():  # slot descriptors, not class-level defaults
        setattr(cls, name, descriptor)


def _regenerate_namedtuple(cls, spec):
    """A namedtuple's ``__new__`` is made by eval(): take this Python's, from the same call."""
    import collections

    template = collections.namedtuple(cls.__name__, spec["fields"], defaults=spec["defaults"],
                                      module=cls.__module__)
    for name, value in vars(template).items():
        if name not in cls.__dict__ and name not in ("__doc__", "__module__", "__dict__", "__weakref__"):
            setattr(cls, name, value)


def _regenerate_enum_members(cls, spec):
    for name, attrs in spec["members"].items():
        vars(cls[name]).update(attrs)


_REGENERATE = {"dataclass": _regenerate_dataclass, "namedtuple": _regenerate_namedtuple,
               "enum": _regenerate_enum_members}


def src_lru_cache(func, maxsize, typed):
    import functools

    return functools.lru_cache(maxsize=maxsize, typed=typed)(func)


def src_cached_property(func, attrname):
    import functools

    prop = functools.cached_property(func)
    prop.attrname = attrname  # __set_name__ ran on the host, not here
    return prop


def src_partialmethod(func, args, keywords):
    import functools

    return functools.partialmethod(func, *args, **keywords)


def src_singledispatch(func, registry):
    import functools

    dispatcher = functools.singledispatch(func)
    for cls, impl in registry:
        dispatcher.register(cls, impl)
    return dispatcher


def src_union(args):
    import functools
    import operator

    try:
        return functools.reduce(operator.or_, args)
    except TypeError:
        raise TypeError("Python %s cannot build the union %s (X | Y between types needs Python 3.10): "
                        "add 'from __future__ import annotations' to the module, or write "
                        "typing.Optional / typing.Union" % (python_version(), " | ".join(map(repr, args))))


class _PytestRewriteStandin:
    """The helpers pytest's assertion rewriting makes code call (``@pytest_ar``), stdlib-only:
    code shipped as bytecode from a test module runs here without pytest, and a failing
    assert still says what it compared."""

    __name__ = "_pytest.assertion.rewrite"

    @staticmethod
    def _saferepr(obj):
        import reprlib

        if hasattr(obj, "__func__") and hasattr(obj, "__self__"):
            return obj.__name__
        short = reprlib.Repr()
        short.maxstring = short.maxother = 240
        try:
            return short.repr(obj).replace("\n", "\\n")
        except Exception as exc:
            return "<%s repr raised %s>" % (type(obj).__name__, type(exc).__name__)

    @classmethod
    def _format_assertmsg(cls, obj):
        replaces = [("\n", "\n~"), ("%", "%%")]
        if not isinstance(obj, str):
            obj = cls._saferepr(obj)
            replaces.append(("\\n", "\n~"))
        for old, new in replaces:
            obj = obj.replace(old, new)
        return obj

    @staticmethod
    def _should_repr_global_name(obj):
        if callable(obj):
            return False
        try:
            return not hasattr(obj, "__name__")
        except Exception:
            return True

    @staticmethod
    def _format_boolop(explanations, is_or):
        return ("(" + (" or " if is_or else " and ").join(explanations) + ")").replace("%", "%%")

    @staticmethod
    def _call_reprcompare(ops, results, expls, each_obj):
        i = 0
        for i, res in enumerate(results):  # noqa: B007 - the first failing comparison is the one
            try:
                done = not res
            except Exception:
                done = True
            if done:
                break
        return expls[i]

    @staticmethod
    def _call_assertion_pass(lineno, orig, expl):
        return None

    @staticmethod
    def _check_if_assertion_pass_impl():
        return False

    @staticmethod
    def _format_explanation(explanation):
        """pytest's util.format_explanation: ``\\n{``, ``\\n}``, ``\\n~`` nest 'where' lines."""
        raw = (explanation or "").split("\n")
        lines = [raw[0]]
        for values in raw[1:]:
            if values and values[0] in "{}~>":
                lines.append(values)
            else:
                lines[-1] += "\\n" + values
        result, stack, stackcnt = lines[:1], [0], [0]
        for line in lines[1:]:
            if line.startswith("{"):
                s = "and   " if stackcnt[-1] else "where "
                stack.append(len(result))
                stackcnt[-1] += 1
                stackcnt.append(0)
                result.append(" +" + "  " * (len(stack) - 1) + s + line[1:])
            elif line.startswith("}"):
                stack.pop()
                stackcnt.pop()
                result[stack[-1]] += line[1:]
            else:
                stack[-1] += 1
                indent = len(stack) if line.startswith("~") else len(stack) - 1
                result.append("  " * indent + line[1:])
        return "\n".join(result)


def pytest_rewrite_standin():
    return _PytestRewriteStandin


# Stdlib names that moved between the minors a capsule crosses (3.9 to 3.14): pickle's
# _compat_pickle idea, for our own format only. cloudpickle, dill and pickle payloads load
# as their own loaders would on a real worker, so the matrix shows their failures.
_MOVED = {
    ("enum", "EnumType"): ("enum", "EnumMeta"),
    ("enum", "EnumMeta"): ("enum", "EnumType"),
    ("pathlib._local", None): ("pathlib", None),
}


class _SourceUnpickler(HostNames, pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError) as exc:
            moved = _MOVED.get((module, name)) or _MOVED.get((module, None))
            if moved is None:
                if isinstance(exc, AttributeError):
                    raise AttributeError("%s.%s does not exist on Python %s (the payload was written by "
                                         "a Python that has it)" % (module, name, python_version()))
                raise
            return super().find_class(moved[0], moved[1] or name)


def _load_source(payload, buffers, header):
    return _unpickle(_SourceUnpickler, payload, buffers, header)


def _load_json(payload, buffers, header):
    """Arguments as a JSON document; the function itself as a source capsule (seed 003)."""
    doc = json.loads(bytes(payload))
    func = _load_source(buffers[0], buffers[1:], header)
    return func, tuple(doc["args"]), doc["kwargs"]


def json_drift(obj, path):
    """Where ``obj`` would come out of JSON different from how it went in, else None.

    JSON silently turns tuples into lists and int keys into strings (seed 003); a round
    trip that changes a value must be reported, never passed as ``ok``.
    """
    kind = type(obj)
    if obj is None or kind in (bool, int, float, str):
        return None
    if kind is list:
        for i, item in enumerate(obj):
            found = json_drift(item, "%s[%d]" % (path, i))
            if found:
                return found
        return None
    if kind is dict:
        for key, item in obj.items():
            if type(key) is not str:
                return "%s has the key %r (%s), which JSON turns into the string %r" % (
                    path, key, type(key).__name__, json.dumps(key).strip('"'))
            found = json_drift(item, "%s[%r]" % (path, key))
            if found:
                return found
        return None
    if kind is tuple:
        return "%s is a tuple and would arrive as a list (JSON has no tuples)" % path
    for base in (bool, int, float, str, list, dict):
        if isinstance(obj, base):
            return "%s is a %s and would arrive as a plain %s" % (path, kind.__name__, base.__name__)
    return "%s is a %s.%s, which JSON cannot carry" % (path, kind.__module__, kind.__qualname__)


LOADERS = {
    "json": _load_json,
    "source": _load_source,
    "pickle": _load_pickle,
    "cloudpickle": _load_pickle,
    "cloudpickle-by-value": _load_pickle,
    "dill": _load_dill,
    "dill-recurse": _load_dill,
}


def missing_module_of(exc: BaseException | None) -> str | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return exc.name
        exc = exc.__cause__ or exc.__context__
    return None


def diagnose_load(header: dict, exc: BaseException) -> str | None:
    """Name the real cause of a load failure from the envelope, not the symptom."""
    env = header.get("envelope", {})
    missing = missing_module_of(exc) or ""
    theirs = env.get("numpy")
    if theirs and (missing == "numpy" or missing.startswith("numpy.")):
        ours = _try_numpy_version()
        if not ours:
            return "payload holds numpy %s objects but numpy is not installed here" % theirs
        if theirs.split(".")[0] != ours.split(".")[0]:
            return ("array pickled by numpy %s cannot be loaded by numpy %s here (module %r "
                    "does not exist in numpy %s); send plain lists or match numpy versions"
                    % (theirs, ours, missing, ours.split(".")[0]))
    if missing:
        return None
    if env.get("magic") not in (None, magic_number()) and header.get("serializer") != "source":
        return (
            "payload written by Python %s (bytecode magic %s) cannot be loaded by Python %s "
            "(magic %s): code objects are not portable across minor versions; "
            "use serializer='source'" % (env.get("python", "?"), env.get("magic"), python_version(),
                                         magic_number())
        )
    return None


# Serializers whose payload may hold code objects, i.e. bytecode for one minor version.
CODE_SERIALIZERS = ("cloudpickle", "cloudpickle-by-value", "dill", "dill-recurse")
_CODE_BUILDERS = {("dill._dill", "_create_code"), ("types", "CodeType"), ("builtins", "code")}


def pickle_globals(data) -> tuple:
    """The ``(module, name)`` globals a pickle stream refers to, and the strings it holds.

    Read with pickletools, never by loading: GLOBAL carries both names, STACK_GLOBAL takes
    the last two values pushed (strings, or memo gets of strings).
    """
    import pickletools

    found: list = []
    strings: set = set()
    memo: dict = {}
    pushes: list = []
    arg: object
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            found.append((module, attr))
            pushes.append(None)
        elif name == "STACK_GLOBAL":
            if len(pushes) >= 2 and isinstance(pushes[-2], str) and isinstance(pushes[-1], str):
                found.append((pushes[-2], pushes[-1]))
            pushes.append(None)
        elif name == "MEMOIZE":
            memo[len(memo)] = pushes[-1] if pushes else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = pushes[-1] if pushes else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            pushes.append(memo.get(arg))
        elif isinstance(arg, str) and ("UNICODE" in name or "STRING" in name):
            strings.add(arg)
            pushes.append(arg)
        else:
            pushes.append(None)
        del pushes[:-2]
    return found, strings


def carries_code(data) -> bool:
    """Does this pickle stream build code objects (cloudpickle's or dill's way)?"""
    found, strings = pickle_globals(data)
    names = set(found)
    if names & _CODE_BUILDERS:
        return True
    return ("cloudpickle.cloudpickle", "_builtin_type") in names and "CodeType" in strings


def foreign_bytecode(header: dict, payload) -> str | None:
    """Why a payload that loaded must still not run: its code objects are another version's.

    Measured: 3.11 code run by 3.9 raises ``SystemError: unknown opcode``, by 3.13 it
    segfaults or calls the wrong thing. Neither is the function's own behaviour.
    """
    env = header.get("envelope", {})
    if env.get("magic") in (None, magic_number()) or header.get("serializer") not in CODE_SERIALIZERS:
        return None
    if not carries_code(payload):
        return None
    return ("payload written by Python %s (bytecode magic %s) holds code objects, which Python %s "
            "(magic %s) cannot run: code objects are not portable across minor versions; "
            "use serializer='source'" % (env.get("python", "?"), env.get("magic"), python_version(),
                                         magic_number()))


def _try_numpy_version() -> str | None:
    try:
        import numpy
    except Exception:
        return None
    return getattr(numpy, "__version__", None)


# --------------------------------------------------------------------------- errors


def error_info(exc: BaseException, phase: str) -> dict:
    info = {
        "phase": phase,
        "type": "%s.%s" % (type(exc).__module__, type(exc).__qualname__),
        "message": _safe_str(exc),
        "traceback": _format_exception(exc),
        "python": python_version(),
    }
    module = missing_module_of(exc)
    if module:
        info["module"] = module
    return info


def _format_exception(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _print_exc() -> None:
    import traceback

    traceback.print_exc()


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<unprintable %s>" % type(exc).__name__


def _rebuilt_classes():
    """Classes cloudpickle rebuilt here from a host payload (by value, or a capsule's skeleton),
    keyed to the tracker id the host gave them: the host resolves that id to its own class."""
    cp = sys.modules.get("cloudpickle.cloudpickle")
    return getattr(cp, "_DYNAMIC_CLASS_TRACKER_BY_CLASS", None)


def _host_ref(obj):
    ref = _FROM_HOST.get(id(obj))
    if ref is not None and ref[0] is obj:
        return ("host", ref[1], ref[2])
    if isinstance(obj, type):
        tracker = _rebuilt_classes()
        tid = tracker.get(obj) if tracker else None
        if tid is not None:
            return ("host-class", tid, obj.__qualname__)
    return None


_SCALARS = frozenset((int, float, bool, str, type(None), complex))


def _dump_result(obj, protocol: int) -> list:
    """Plain pickle first: it loads on any host Python (objects rebuilt from host source go
    back as references to the host's own). cloudpickle only for what plain pickle refuses."""
    if type(obj) in _SCALARS:  # nothing to refer back to, no buffers: the common tiny result
        return Buffers([pickle.dumps(obj, protocol)])
    refs = _host_ref if _FROM_HOST or _rebuilt_classes() else None
    d2h, arrays = _call_copies.d2h, _call_copies.arrays
    try:
        return dump_with_buffers(pickle.Pickler, obj, _call_copies, refs)
    except Exception:
        import cloudpickle

        _call_copies.d2h, _call_copies.arrays = d2h, arrays  # the failed attempt's copies are redone
        return dump_with_buffers(cloudpickle.Pickler, obj, _call_copies, refs)


class ResultUnpickler(pickle.Unpickler):
    """The host's side of ``_dump_result`` (with ``load_result``'s persistent loads: host
    references resolve to the host's objects, device arrays to the host's device).

    Arrays pickled by numpy 1 name ``numpy.core``; numpy 2 renamed it ``numpy._core`` and
    warns on the old name, so a ``-W error`` suite would fail on a correct result. This class
    loads any global: the host uses it only for trusted targets (see ``host/trust.py``).
    """

    @staticmethod
    def map_module(module):
        if (module == "numpy.core" or module.startswith("numpy.core.")) and _has_module("numpy._core"):
            return "numpy._core" + module[len("numpy.core"):]
        return module

    def find_class(self, module, name):
        return super().find_class(self.map_module(module), name)


def _load_host_ref(pid, resolve=None):
    kind, where, qualname = pid
    if kind == "host-class":  # a class the host sent, by the tracker id the host gave it
        from cloudpickle import cloudpickle as cp

        cls = cp._DYNAMIC_CLASS_TRACKER_BY_ID.get(where)
        if cls is None:
            raise pickle.UnpicklingError("class %s came back as one this host sent, but the host has no "
                                         "class with that tracker id" % qualname)
        return cls
    if kind != "host":
        raise pickle.UnpicklingError("unknown persistent id %r" % (pid,))
    if resolve is not None:
        return resolve(where, qualname)
    return lookup_qualname(__import__(where, fromlist=["_"]), qualname)


def lookup_qualname(root, qualname: str):
    """``root.a.b.c`` for ``qualname == "a.b.c"``; AttributeError when a part is missing."""
    for part in qualname.split("."):
        root = getattr(root, part)
    return root


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def load_result(buffers: list, copies=None, unpickler=None, host_ref=None):
    """A reply's result or exception. ``unpickler(file, buffers)`` makes the unpickler (the
    host passes its restricted one); ``host_ref(module, qualname)`` resolves host references."""
    import io

    make = unpickler or (lambda file, buffers: ResultUnpickler(file, buffers=buffers))
    loader = make(io.BytesIO(buffers[0]), buffers[1:])

    def others(pid):
        return _load_host_ref(pid, host_ref)

    attach_device_loads(loader, DeviceCopies() if copies is None else copies, others)
    return loader.load()


def _dump_json_result(result, response: dict) -> list:
    """JSON both ways; a value that JSON would change is delivered, and flagged."""
    out = [json.dumps(result).encode()]
    response["result_codec"] = "json"
    drift = json_drift(result, "result")
    if drift:
        response["outcome"] = "result_error"
        response["error"] = {
            "phase": "result", "type": "json_mismatch", "python": python_version(),
            "message": "the result changed on the way: %s; return JSON types, or use "
                       "serializer='source' to keep Python types" % drift,
        }
    return out


def _dump_exception(exc: BaseException) -> list:
    try:
        exc.__traceback__ = None
        return _dump_result(exc, PICKLE_PROTOCOL)
    except Exception:
        return []


# --------------------------------------------------------------------------- one call


class ForeignBytecode(Exception):
    """The payload loaded, but running its code objects here would be undefined behaviour."""


class CallTimeout(BaseException):
    """Raised by SIGALRM inside a non-isolated call; BaseException so user code rarely eats it."""


def _load_payload(bufs: list, header: dict) -> tuple:
    func, args, kwargs = LOADERS[header["serializer"]](bufs[0], bufs[1:], header)
    foreign = foreign_bytecode(header, bufs[0])
    if foreign:
        raise ForeignBytecode(foreign)
    return func, args, kwargs


def _load_failure(exc: BaseException, header: dict, response: dict) -> None:
    info = error_info(exc, "load")
    if isinstance(exc, SyntaxError) and header["serializer"] in ("source", "json"):
        info["diagnosis"] = "the source does not compile on Python %s: %s (line %s: %s)" % (
            python_version(), exc.msg, exc.lineno, (exc.text or "").strip())
        outcome = "syntax_error"
    else:
        info["diagnosis"] = str(exc) if isinstance(exc, ForeignBytecode) else diagnose_load(header, exc)
        outcome = "missing_module" if "module" in info else "load_error"
    response.update(outcome=outcome, error=info)


def _call_and_dump(func, args, kwargs, header: dict, response: dict) -> list:
    """Call; put the outcome in ``response``; the result's (or exception's) buffers."""
    t1 = time.perf_counter()
    try:
        result = func(*args, **kwargs)
    except CallTimeout:
        raise
    except BaseException as exc:
        t2 = time.perf_counter()
        response.update(outcome="call_error", error=error_info(exc, "call"))
        out = _dump_exception(exc)
    else:
        t2 = time.perf_counter()
        try:
            response["outcome"] = "ok"
            response["result_type"] = "%s.%s" % (type(result).__module__, type(result).__qualname__)
            if header["serializer"] == "json":
                out = _dump_json_result(result, response)
            else:
                out = _dump_result(result, header.get("result_protocol", PICKLE_PROTOCOL))
        except BaseException as exc:
            response.update(outcome="result_error", error=error_info(exc, "result"))
            out = []
    response["phases"].update(call=t2 - t1, result=time.perf_counter() - t2 - _call_copies.d2h)
    return out


def _receive_and_load(channel: Channel, header: dict, status_fd: int | None) -> tuple:
    """Read the payload and load it: ``(response, (func, args, kwargs))``, or ``(None, None)``
    when the load failed and that was answered already."""
    bufs = channel.recv_buffers(header)
    _status(status_fd, b"B")
    _call_copies.reset()
    response: dict = {"op": "result", "id": header.get("id"), "phases": {}}
    t0 = time.perf_counter()
    try:
        loaded = _load_payload(bufs, header)
    except CallTimeout:
        raise
    except BaseException as exc:
        _load_failure(exc, header, response)
        response["phases"]["load"] = time.perf_counter() - t0
        _respond(channel, response, [], status_fd)
        return None, None
    response["phases"]["load"] = time.perf_counter() - t0 - _call_copies.h2d
    return response, loaded


def run_call(channel: Channel, header: dict, status_fd: int | None = None) -> None:
    """Read the payload, load, call, and answer on ``channel``."""
    response, loaded = _receive_and_load(channel, header, status_fd)
    if response is None:
        return
    func, args, kwargs = loaded
    out = _call_and_dump(func, args, kwargs, header, response)
    device = _call_copies.as_dict()
    if device is not None:  # only where device arrays travelled
        response["device"] = device
    _respond(channel, response, out, status_fd)


def run_map(channel: Channel, header: dict, status_fd: int | None = None) -> None:
    """``remote.map``: the function and every item are loaded once, here; each item then runs in
    a fresh process forked from this one (isolation as for a call: no item sees another's
    state), up to ``concurrency`` at a time, each under the call timeout. One reply carries
    every item's answer, in order."""
    response, loaded = _receive_and_load(channel, header, status_fd)
    if response is None:
        return
    func, items, _ = loaded
    timeout = float(header.get("timeout") or 30)
    answers = _run_items(func, list(items), header, timeout, max(1, int(header.get("concurrency") or 1)))
    out = Buffers()
    kinds: dict = {}
    records = []
    for answer, item_out in answers:
        for i, kind in (answer.pop("buffer_kinds", None) or {}).items():
            kinds[str(len(out) + int(i))] = kind
        answer["nbuf"] = len(item_out)
        out.extend(item_out)
        records.append(answer)
    out.kinds = kinds
    response.update(outcome="ok", items=records)
    _respond(channel, response, out, status_fd)


def _run_items(func, items: list, header: dict, timeout: float, concurrency: int) -> list:
    answers: list = [None] * len(items)
    running: dict = {}  # read fd -> (pid, index, deadline)
    exiting: list = []  # answered: reaped without waiting, so the next item need not wait for an exit
    next_item = 0
    while next_item < len(items) or running:
        exiting = _reap(exiting)
        while next_item < len(items) and len(running) < concurrency:
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:
                _item_child(func, items[next_item], header, rfd, wfd)
            os.close(wfd)
            running[rfd] = (pid, next_item, time.monotonic() + timeout)
            next_item += 1
        soonest = min(deadline for _, _, deadline in running.values())
        ready, _, _ = select.select(list(running), [], [], max(0.0, soonest - time.monotonic()))
        for rfd in ready or [fd for fd, (_, _, d) in running.items() if d <= time.monotonic()]:
            pid, index, deadline = running.pop(rfd)
            answer, out, reaped = _item_answer(rfd, pid, timeout, timed_out=not ready)
            answers[index] = (answer, out)
            if not reaped:
                exiting.append(pid)
            os.close(rfd)
    for pid in exiting:
        os.waitpid(pid, 0)
    return answers


def _item_child(func, args, header: dict, rfd: int, wfd: int) -> None:
    try:
        os.close(rfd)
        fresh_random_state()
        _call_copies.reset()
        response: dict = {"phases": {}}
        out = _call_and_dump(func, tuple(args), {}, header, response)
        device = _call_copies.as_dict()
        if device is not None:  # only where device arrays travelled
            response["device"] = device
        kinds = getattr(out, "kinds", None)
        if kinds:
            response["buffer_kinds"] = kinds
        Channel(wfd, wfd).send(response, out)
    except BaseException:
        _print_exc()
    finally:
        os._exit(0)


def _item_answer(rfd: int, pid: int, timeout: float, timed_out: bool) -> tuple:
    """One item's answer off its pipe, or what its death or its deadline says instead:
    ``(answer, buffers, whether its process was reaped)``; one that answered exits on its own."""
    if not timed_out:
        try:
            answer, out = Channel(rfd, rfd).recv()
            return answer, out, False
        except EOFError:
            pass
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if timed_out:
        return {"outcome": "timeout", "phases": {}, "error": {
            "phase": "call", "type": "timeout", "timeout": timeout, "python": python_version(),
            "message": "item still running after %gs; its process was killed" % timeout}}, [], True
    return {"outcome": "crash", "phases": {}, "error": _crash_info(status)}, [], True


_ENVELOPES: dict = {}  # numpy's version (None: not imported) -> the reply envelope


def reply_envelope() -> dict:
    """The way back has an envelope too: the host names its own load failures from it."""
    numpy = numpy_version()
    found = _ENVELOPES.get(numpy)
    if found is None:
        found = _ENVELOPES[numpy] = {"python": python_version(), "magic": magic_number(), "numpy": numpy}
    return found


def _respond(channel: Channel, response: dict, out: list, status_fd: int | None) -> None:
    response["envelope"] = reply_envelope()
    kinds = getattr(out, "kinds", None)
    if kinds:
        response["buffer_kinds"] = kinds
    pids_before = _call_limits.get("pids_max")
    spawned = call_spawned()
    if spawned and pids_before is not None and (_cgroup_counter("pids_max") or 0) > pids_before:
        response["limit_hit"] = {"pids": _cgroup_limit("pids")}
    learned = ",".join(_installed_imports()).encode() if status_fd is not None else b""
    _status(status_fd, b"W")
    channel.send(response, out)
    if status_fd is not None:  # one write, one wake-up of the parent; F: it started processes or threads
        os.write(status_fd, (b"I" + _LEN.pack(len(learned)) + learned if learned else b"")
                 + (b"F" if spawned else b"") + b"R")


_call_flags: list = []  # in a call process: the spare's shared flags (see Spare)
_forks = [0]  # processes this process started (the at-fork hook counts them)
# Forks and threads when the running call began: only a call that started processes or threads
# has the pids limit read and is swept after (reading cgroup files costs ~150 µs a call; the
# agent's parent forks spares, and an earlier call may have left a thread running).
_at_call = [0, 1]


def fresh_random_state() -> None:
    """A forked child starts with its parent's random state, where a fresh interpreter would
    seed its own. CPython reseeds ``random`` at fork; numpy's global RandomState (seeded at
    import, and in the parent once a call has used numpy, see _preload) is reseeded here, from
    the OS, as a new process seeds it. Otherwise every isolated call would draw the same numbers."""
    np_random = sys.modules.get("numpy.random")
    if np_random is not None:
        try:
            np_random.seed()
        except Exception:
            pass


def _count_fork() -> None:
    _forks[0] += 1


def _threads() -> int:
    """Threads started (and still running) besides the main one: a C counter, no lock to take."""
    return _thread._count()


def call_begins() -> None:
    _at_call[:] = [_forks[0], _threads()]


def call_spawned() -> bool:
    """Did the running call start a process or a thread (still running)?"""
    return _forks[0] != _at_call[0] or _threads() > _at_call[1]


def _status(fd: int | None, token: bytes) -> None:
    """B (payload read) and W (answer being written) only set a shared byte: waking the
    parent for them would cost the call two context switches on a small machine."""
    if fd is None:
        return
    if _call_flags and token in (b"B", b"W"):
        _call_flags[0][b"BW".index(token)] = 1
        return
    os.write(fd, token)


# --------------------------------------------------------------------------- the parent
# Installed packages a call imported are imported once in the parent, so later children
# inherit them (numpy costs ~80 ms per child otherwise). Only installed ones: user code
# stays per call. GPU frameworks never: a CUDA context must not cross a fork.
_NEVER_PRELOAD = {"cupy", "cupyx", "torch", "tensorflow", "jax", "jaxlib", "numba", "pycuda"}
_PRELOAD_MAX = 32
_modules_at_start: set = set()
_modules_count = [0]  # len(sys.modules) when _modules_at_start was last brought up to date
_site_roots: tuple = ()
_libs: list = []  # the host's injected zips (--lib): their modules are learned like installed ones


def _find_site_roots() -> tuple:
    """Once, in the parent: a child must not pay for sysconfig (measured 4.7 ms per call)."""
    import sysconfig

    roots = [p for p in {sysconfig.get_paths().get(k) for k in ("purelib", "platlib")} if p]
    roots += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    return tuple(os.path.realpath(r) + os.sep for r in roots + _libs)


def _installed_imports() -> list:
    if len(sys.modules) == _modules_count[0]:  # nothing imported: no scan (its page faults cost a child ~0.3 ms)
        return []
    new = [name for name in set(sys.modules) - _modules_at_start
           if "." not in name and not name.startswith("_") and name not in _NEVER_PRELOAD]
    found = []
    for name in new:
        file = getattr(sys.modules.get(name), "__file__", None) or ""
        if file and os.path.realpath(file).startswith(_site_roots):
            found.append(name)
    return sorted(found)[:_PRELOAD_MAX]


def _preload(names: list) -> None:
    """Import here what a call imported, so later forks have it. Tried in a throwaway child
    first: a module whose import fails, or starts a thread, is never preloaded (a thread does
    not survive a fork, so every fork would lack what a fresh process has)."""
    wanted = [name for name in names if name not in sys.modules and name not in _NEVER_PRELOAD]
    if wanted:
        safe = _in_child(lambda: _imports_without_threads(wanted), lambda: [])
        for name in wanted:
            if name not in safe:
                _NEVER_PRELOAD.add(name)  # never again
        for name in safe:
            try:
                __import__(name)
            except BaseException:
                _NEVER_PRELOAD.add(name)
    _modules_at_start.update(sys.modules)
    _modules_count[0] = len(sys.modules)


def _imports_without_threads(names: list) -> list:
    found = []
    for name in names:
        before = _threads()
        try:
            __import__(name)
        except BaseException:
            continue
        if _threads() == before:
            found.append(name)
    return found



def _spare_main(channel: Channel, close: list, hr: int, sw: int, flags) -> None:
    """A spare's process, from its fork to its exit (see ``Spare``)."""
    _call_flags[:] = [flags]
    _forks[0] = 0  # counts its own forks (the parent's hook counted them too)
    call_begins()
    try:
        for fd in close:
            os.close(fd)
        os.setsid()
        _close_in_forks([channel.rfd, channel.wfd, sw, hr])
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the parent's is for its own calls
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote's is for its own children
        signal.set_wakeup_fd(-1)
        fresh_random_state()
        _rehearse()
        _serve_as_spare(channel, hr, sw)
    except BaseException:
        _print_exc()
    finally:
        os._exit(0)


class ZygoteGone(OSError):
    pass


class Zygote:
    """A copy of the parent made before its first non-isolated call, which forks the spares
    from then on. A non-isolated call runs in the parent and may change it (os.environ, the
    working directory, a module's globals, builtins); a spare forked from the changed parent
    would show that to an isolated call, which must see a fresh process instead.

    The spares are the zygote's children: it reaps them and relays each exit status (X) to the
    parent, which asks for them through ``_waitpid``. What a call leaves behind still comes to
    the parent, the nearest subreaper, to be swept."""

    def __init__(self, channel: Channel, close_in_child: list) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.exits: dict = {}  # pid -> wait status, relayed and not yet asked for
        self.gone = False
        self.pid = os.fork()
        if self.pid == 0:
            try:
                self.sock.close()
                _close_all_but({0, 1, 2, channel.rfd, channel.wfd, theirs.fileno()}, close_in_child)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                _zygote_main(channel, theirs)
            except BaseException:
                _print_exc()
            finally:
                os._exit(0)
        theirs.close()
        _never_swept.add(self.pid)

    def _next(self, block: bool) -> bytes | None:
        """One message from the zygote (None: nothing yet); exit statuses are filed as they come."""
        while True:
            try:
                msg = self.sock.recv(16, 0 if block else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return None
            except OSError:
                msg = b""
            if not msg:
                self.gone = True
                raise ZygoteGone("the zygote is gone")
            if msg[:1] == b"X":
                pid, status = struct.unpack("!ii", msg[1:9])
                self.exits[pid] = status
                if block:
                    return msg
                continue
            return msg

    def fork_spare(self, fds: list) -> int:
        try:
            socket.send_fds(self.sock, [b"S"], fds)
        except OSError as exc:
            self.gone = True
            raise ZygoteGone("the zygote is gone: %s" % exc) from exc
        while True:
            msg = self._next(block=True) or b""
            if msg[:1] == b"N":
                (pid,) = struct.unpack("!i", msg[1:5])
                if pid < 0:
                    raise OSError(-pid, os.strerror(-pid))
                _fostered[pid] = self
                return pid

    def status(self, pid: int, block: bool) -> int | None:
        """``pid``'s wait status once the zygote has reaped it (None: still running)."""
        while pid not in self.exits:
            if self._next(block) is None:
                return None
        return self.exits.pop(pid)

    def preload(self, names: list) -> None:
        self.sock.send(b"P" + ",".join(names).encode())

    def close(self) -> None:
        self.sock.close()  # the zygote's end reads EOF and it exits
        self.gone = True
        _never_swept.discard(self.pid)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


_fostered: dict = {}  # spare pid -> the Zygote that forked it (and reaps it)


def _waitpid(pid: int, flags: int = 0) -> tuple:
    """``os.waitpid`` for any spare, the zygote's too: ``(0, 0)`` while it still runs."""
    zygote = _fostered.get(pid)
    if zygote is not None:
        try:
            if not zygote.gone:
                status = zygote.status(pid, block=not flags & os.WNOHANG)
                if status is None:
                    return 0, 0
                del _fostered[pid]
                return pid, status
        except ZygoteGone:
            pass
        # The zygote died: its children came to this process, the subreaper, to be waited for.
        del _fostered[pid]
    return os.waitpid(pid, flags)


def _close_all_but(keep: set, known: list) -> None:
    """Every descriptor not in ``keep`` (the parent's ends of its spares' pipes, above all: a
    copy held elsewhere would keep a pipe from ever reading end-of-file); ``known`` without /proc."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(known)
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _zygote_main(channel: Channel, sock: socket.socket) -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wake-up fd is written
    signal.set_wakeup_fd(wake_w)
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    while True:
        ready = [fd for fd, _ in poller.poll()]
        if wake_r in ready:
            os.read(wake_r, 512)
            while True:  # relay every exit; one signal may stand for several
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if not pid:
                    break
                sock.send(b"X" + struct.pack("!ii", pid, status))
        if sock.fileno() not in ready:
            continue
        msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
        if not msg:
            return
        if msg[:1] == b"P":
            _preload([x for x in msg[1:].decode().split(",") if x])
            continue
        hr, sw, flags_fd = fds
        gc.freeze()
        try:
            pid = os.fork()
        except OSError as exc:
            pid = -(exc.errno or 11)
        if pid == 0:
            sock.close()
            for fd in (wake_r, wake_w):
                os.close(fd)
            flags = mmap.mmap(flags_fd, 2)
            os.close(flags_fd)
            _spare_main(channel, [], hr, sw, flags)
        for fd in fds:
            os.close(fd)
        sock.send(b"N" + struct.pack("!i", pid))


class Spare:
    """A child forked ahead of time, blocked until the parent hands it a request header or
    arms it to read the next request off the connection itself (see ``serve``).

    It is a session of its own, so the call and everything it starts die together when the
    call ends (any outcome); and a process the call forks loses the connection and the status
    pipe at once, so nothing left behind can answer for a later call.
    """

    def __init__(self, channel: Channel, close_in_child: list, zygote: Zygote | None = None) -> None:
        hr, self.hw = os.pipe()
        self.sr, sw = os.pipe()
        try:
            if zygote is None:
                self.flags = mmap.mmap(-1, 2)  # shared: B and W, read by the parent only if the call dies
                self.pid = os.fork()
                if self.pid == 0:
                    _spare_main(channel, close_in_child + [self.hw, self.sr], hr, sw, self.flags)
            else:  # forked by a process the parent did not fork: the flags live in a memfd
                flags_fd = os.memfd_create("prs-flags")
                try:
                    os.ftruncate(flags_fd, 2)
                    self.flags = mmap.mmap(flags_fd, 2)
                    self.pid = zygote.fork_spare([hr, sw, flags_fd])
                finally:
                    os.close(flags_fd)
        except BaseException:
            os.close(self.hw)
            os.close(self.sr)
            raise
        finally:
            os.close(hr)
            os.close(sw)
        self.reader = _StatusReader(self.sr)
        self.armed = False

    def has(self, reader: _StatusReader, token: str) -> bool:
        return token in reader.tokens or (token in "BW" and bool(self.flags["BW".index(token)]))

    def arm(self) -> None:
        """From now on this spare takes the next request off the connection itself. After an
        idle stretch an isolated call then wakes one process, as an inline call does, instead
        of the parent and then its spare (each wake-up of an idle process costs ~0.3 ms on a VM)."""
        _write_pipe_message(self.hw, json.dumps({"op": _TAKE, "_limits": _limits_now}).encode())
        self.armed = True

    def taken(self, channel: Channel) -> tuple:
        """What the armed spare took: ``(True, header)`` for a request it runs itself, ``(False,
        header)`` for one it handed back (its buffers still wait on the connection)."""
        poller = select.poll()
        poller.register(self.sr, select.POLLIN)
        poller.register(channel.rfd, _HANGUP)
        while True:
            for fd, _ in poller.poll():
                if fd == channel.rfd:
                    raise ChannelClosed("the host hung up")
                if not self.reader.read():
                    _waitpid(self.pid)
                    raise EOFError("the spare reading the next request died (the stream's state is unknown)")
            if "E" in self.reader.tokens:
                raise ChannelClosed("the host closed the connection")
            for kind in "HK":
                head = self.reader.heads.pop(kind, None)
                if head is not None:
                    self.armed = False
                    return kind == "H", channel.decode_head(head, cache=True)

    def dispatch(self, channel: Channel, header: dict, timeout: float, while_waiting=None) -> tuple:
        """Hand over the request and wait only until the call has answered, died, or run out
        of time: its exit is reaped later, and the next spare forked after the answer, both off
        the critical path (forking now would take the CPU the call needs on a small machine).
        A descendant that keeps the status pipe open cannot hold this up: the child's own death
        is what ends the wait.

        Returns (modules the call imported, whether this pid still needs reaping, whether the call
        started processes or threads or ended abnormally: then the parent sweeps after it).
        """
        _write_pipe_message(self.hw, json.dumps(dict(header, _limits=_limits_now)).encode())
        return self.wait(channel, header, timeout, while_waiting)

    def wait(self, channel: Channel, header: dict, timeout: float, while_waiting=None) -> tuple:
        """The call is this spare's (handed over, or taken by it): see ``dispatch``."""
        os.close(self.hw)
        if while_waiting is not None:
            while_waiting()
        reader = self.reader
        poller = select.poll()
        poller.register(self.sr, select.POLLIN)
        # The host sends nothing more until the answer: a hang-up means the host is gone.
        poller.register(channel.rfd, _HANGUP)
        deadline = time.monotonic() + timeout
        timed_out = False
        pipe_open = True
        status = None
        try:
            while "R" not in reader.tokens and status is None:
                wait = _DEATH_POLL_S if pipe_open else 0.002
                if not timed_out and not self.has(reader, "W"):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        timed_out = True
                        _kill_call(self.pid)
                        left = 0.0
                    wait = min(wait, left)
                events = poller.poll(wait * 1000)
                for fd, _ in events:
                    if fd == self.sr:
                        if pipe_open and not reader.read():
                            pipe_open = False
                            poller.unregister(self.sr)
                    elif fd == channel.rfd:
                        raise ChannelClosed("the host hung up during a call")
                if "R" in reader.tokens:
                    break
                if not events or not pipe_open:
                    pid, st = _waitpid(self.pid, os.WNOHANG)
                    if pid:
                        status = st
                        _drain(reader, self.sr, pipe_open)
        finally:
            _kill_call(self.pid)  # the call and all it started, whatever the outcome
            os.close(self.sr)
        if "R" in reader.tokens:
            return reader.learned, status is None, "F" in reader.tokens
        if self.has(reader, "W"):  # died while writing its answer: the stream is unusable
            raise EOFError("call process died mid-response")
        if not self.has(reader, "B"):
            raise EOFError("call process died before reading its payload")
        response: dict = {"op": "result", "id": header.get("id"), "phases": {}}
        if timed_out:
            response.update(
                outcome="timeout",
                error={"phase": "call", "type": "timeout", "timeout": timeout, "python": python_version(),
                       "message": "call still running after %gs; it and every process it started "
                                  "were killed" % timeout},
            )
        else:
            response.update(outcome="crash", error=_crash_info(status if status is not None else 0))
        channel.send(response)
        return [], False, True

    def close(self) -> None:
        os.close(self.hw)
        os.close(self.sr)
        _kill_call(self.pid)
        _waitpid(self.pid)


# How often a waiting parent checks whether the call process died (its pipe may outlive it).
_DEATH_POLL_S = 0.05
_HANGUP = select.POLLHUP | getattr(select, "POLLRDHUP", 0)


_TAKE = "_take"  # the parent's message to a spare: read the next request yourself


def runs_isolated(header: dict) -> bool:
    return header.get("op") in ("call", "map") and header.get("isolate", True)


def _serve_as_spare(channel: Channel, hr: int, sw: int) -> None:
    """A spare's life: one request, handed over by the parent or taken off the connection when
    armed. A request that is not an isolated call goes back to the parent undecoded (K), and
    the spare waits to be armed again; one it runs is announced first (H), so the parent holds
    its id and deadline exactly as for a request it handed over."""
    while True:
        raw = _read_pipe_message(hr)
        if raw is None:
            return
        header = json.loads(raw)
        _call_limits.update(header.pop("_limits", None) or {})
        if header.get("op") == _TAKE:
            try:
                head = channel.recv_head()
            except ChannelClosed:
                os.write(sw, b"E")
                return
            header = channel.decode_head(head, cache=True)
            if not runs_isolated(header):
                _write_pipe_message(sw, head, b"K")
                continue
            _write_pipe_message(sw, head, b"H")
        (run_map if header.get("op") == "map" else run_call)(channel, header, sw)
        return


def _drain(reader, fd: int, pipe_open: bool) -> None:
    """The tokens a dead child wrote before it died, without waiting for an EOF that a
    descendant holding the pipe could delay forever."""
    while pipe_open and select.select([fd], [], [], 0)[0]:
        pipe_open = reader.read()


def _kill_call(pid: int) -> None:
    """SIGKILL a call's process group (its session: the call and what it forked)."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _close_in_forks(fds: list) -> None:
    """A process the call forks must not write on the agent's connection or status pipe."""

    def close():
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    os.register_at_fork(after_in_child=close)


_inline_fds: list = []  # set while a non-isolated call runs in the parent


def _close_inline_fds() -> None:
    for fd in _inline_fds:
        try:
            os.close(fd)
        except OSError:
            pass


# --------------------------------------------------------------------------- resource limits
# The container's own cgroup (v2, else v1): how often the OOM killer or the pids limit struck,
# so a SIGKILL or an EAGAIN from fork can be named for what it is.
_COUNTERS = {
    "oom_kill": (("/sys/fs/cgroup/memory.events", "oom_kill"),
                 ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill")),
    "pids_max": (("/sys/fs/cgroup/pids.events", "max"), ("/sys/fs/cgroup/pids/pids.events", "max")),
}
_LIMITS = {"memory": ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
           "pids": ("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max")}
_limits_now: dict = {}  # the parent's reading after the last call
_call_limits: dict = {}  # a call child's copy of that reading


def _cgroup_counter(key: str):
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


def _cgroup_limit(key: str):
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


def _read_limits() -> None:
    for key in _COUNTERS:
        value = _cgroup_counter(key)
        if value is not None:
            _limits_now[key] = value


def _children() -> list:
    """This process's children, from /proc (orphans of calls included: it is their subreaper)."""
    found: list = []
    pid = os.getpid()
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as fh:
                found += [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []
    return found


def _become_subreaper() -> None:
    """Orphans of a call (a daemon that left its group) become the agent's children, to be
    killed after the call, instead of init's, out of reach."""
    try:
        import ctypes

        _subreaper[0] = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


_subreaper = [False]


def _rehearse() -> None:
    """Walk a call's path (the header off a pipe, the frame, load, call, dump, the answer)
    while no request waits. In a fresh fork this pays, off the critical path, the copy-on-write
    fault of every page the call first writes (refcounts; ~6 ms on a VM): measured, a call
    then takes ~25 faults of the ~700 its process takes in all."""
    try:
        import cloudpickle

        payload = dump_with_buffers(cloudpickle.Pickler, (abs, (-1,), {}))
        header = {"op": "call", "id": 0, "serializer": "cloudpickle", "envelope": {}, "timeout": 1.0}
        r, w = os.pipe()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            _write_pipe_message(w, json.dumps(header).encode())
            _read_pipe_message(r)
            Channel(r, w).send(header, payload)
            channel = Channel(r, null)
            run_call(channel, channel.recv_header(cache=True))
        finally:
            for fd in (r, w, null):
                os.close(fd)
        _installed_imports()
    except Exception:
        pass


class _StatusReader:
    """The child's status pipe: one-byte tokens (B read, W writing, R answered) and an
    ``I`` record listing the installed modules the call imported."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.tokens = ""
        self.learned: list = []
        self.heads: dict = {}  # H: the request an armed spare runs; K: one it hands back
        self._buf = b""

    def read(self) -> bool:
        chunk = os.read(self.fd, 4096)
        if not chunk:
            return False
        self._buf += chunk
        while self._buf:
            token = self._buf[:1]
            if token in (b"I", b"H", b"K"):  # a token with a body
                if len(self._buf) < 1 + _LEN.size:
                    break
                (n,) = _LEN.unpack(self._buf[1:1 + _LEN.size])
                if len(self._buf) < 1 + _LEN.size + n:
                    break
                body = self._buf[1 + _LEN.size:1 + _LEN.size + n]
                self._buf = self._buf[1 + _LEN.size + n:]
                if token == b"I":
                    self.learned = [x for x in body.decode().split(",") if x]
                else:
                    self.heads[token.decode()] = body
            else:
                self.tokens += self._buf[:1].decode()
                self._buf = self._buf[1:]
        return True


def _crash_info(status: int) -> dict:
    info: dict = {"phase": "call", "type": "crash", "python": python_version()}
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        info["signal"] = sig
        info["message"] = "process killed by signal %d (%s)" % (sig, _signame(sig))
        before = _limits_now.get("oom_kill")
        if sig == signal.SIGKILL and before is not None and (_cgroup_counter("oom_kill") or 0) > before:
            limit = _cgroup_limit("memory")
            info["oom"] = True
            info["memory_limit"] = limit
            info["message"] += ": the out-of-memory killer ended it at the target's memory limit%s" % (
                " (%d MiB)" % (limit >> 20) if limit else "")
    else:
        code = os.WEXITSTATUS(status)
        info["exit_code"] = code
        info["message"] = "process exited with code %d before answering" % code
    return info


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "?"


def _write_pipe_message(fd: int, body: bytes, token: bytes = b"") -> None:
    data = memoryview(token + _LEN.pack(len(body)) + body)
    while data:  # past the pipe's buffer a write can be partial
        data = data[os.write(fd, data):]


def _read_pipe_message(fd: int) -> bytes | None:
    head = b""
    while len(head) < _LEN.size:
        chunk = os.read(fd, _LEN.size - len(head))
        if not chunk:
            return None
        head += chunk
    (n,) = _LEN.unpack(head)
    body = b""
    while len(body) < n:
        chunk = os.read(fd, n - len(body))
        if not chunk:
            return None
        body += chunk
    return body


_inline_deadline: list = [None]  # while a non-isolated call runs: when it times out


def _on_alarm(signum, frame):
    """The timer of a non-isolated call. It stays armed after the call (disarming would cost
    a system call per call): fired between calls, or before the running call's deadline
    (armed by an earlier one), it does nothing."""
    deadline = _inline_deadline[0]
    if deadline is not None and time.monotonic() >= deadline:
        raise CallTimeout()


def run_inline(channel: Channel, header: dict, timeout: float) -> None:
    """A non-isolated call: runs in the long-lived process, so state persists between calls.
    What it forks loses the connection at once, and is killed after the call."""
    if _signal.getsignal(signal.SIGALRM) is not _on_alarm:  # first call, or the last one replaced it
        signal.signal(signal.SIGALRM, _on_alarm)
    _inline_deadline[0] = time.monotonic() + timeout
    signal.setitimer(signal.ITIMER_REAL, timeout)
    _inline_fds[:] = [channel.rfd, channel.wfd]
    _call_limits.clear()
    _call_limits.update(_limits_now)
    try:
        run_call(channel, header)
    except CallTimeout:
        channel.send({
            "op": "result", "id": header.get("id"), "phases": {}, "outcome": "timeout",
            "error": {"phase": "call", "type": "timeout", "timeout": timeout, "python": python_version(),
                      "message": "call still running after %gs; it was interrupted" % timeout},
        })
    finally:
        _inline_deadline[0] = None
        del _inline_fds[:]


def describe(scan: bool = True) -> dict:
    """What the target is, asked for on demand so a cold start does not pay for it. ``scan``
    reads the installed distributions and imports the serializers and numpy for their versions:
    in a throwaway child (see ``_in_child``); without it, only what is imported already."""
    import platform

    packages: dict = {}
    if scan:
        try:
            from importlib import metadata

            for dist in metadata.distributions():
                name = dist.metadata["Name"]
                if name:
                    packages.setdefault(name, dist.version)
        except Exception:
            pass
    for mod in ("cloudpickle", "dill", "numpy"):
        try:
            packages.setdefault(mod, (__import__(mod) if scan else sys.modules[mod]).__version__)
        except Exception:
            pass
    return {
        "python": python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "magic": magic_number(),
        "packages": packages,
    }


def _in_child(work, fallback):
    """``work()``'s JSON answer, computed in a throwaway child: what it imports (importlib.metadata,
    and numpy for its version) stays out of the parent, which every later fork would copy.
    ``fallback()``, in the parent, if no process can be started or the child gave no answer."""
    try:
        r, w = os.pipe()
    except OSError:
        return fallback()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return fallback()
    if pid == 0:
        try:
            os.close(r)
            _write_pipe_message(w, json.dumps(work()).encode())
        except BaseException:
            _print_exc()
        finally:
            os._exit(0)
    os.close(w)
    try:
        raw = _read_pipe_message(r)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    return fallback() if raw is None else json.loads(raw)


def missing_modules(names: list) -> list:
    import importlib.util

    missing = []
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


def cpus() -> int:
    """The CPUs this process may run on (a container's cpuset), for remote.map's workers."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def hello() -> dict:
    return {"op": "hello", "protocol": PROTOCOL, "python": python_version(), "cpus": cpus(),
            "magic": magic_number(), "pid": os.getpid(), "pickle_protocol": pickle.HIGHEST_PROTOCOL}


def serve(channel: Channel, close_in_child: list | tuple = ()) -> None:
    """Answer requests until the host closes the connection. Every answer carries the id of
    the request it answers; the host checks it."""
    channel.send(hello())
    _warm_imports()
    _become_subreaper()
    os.register_at_fork(before=_count_fork, after_in_child=_close_inline_fds)
    global _site_roots
    _site_roots = _find_site_roots()
    _modules_at_start.update(sys.modules)
    _modules_count[0] = len(sys.modules)
    _read_limits()
    spares: list = []  # forked, rehearsed, waiting for a call; oldest first
    exited: list = []  # call processes, killed or answered; reaped without waiting
    fork_error: list = []
    after_call = False
    take = True  # while isolated calls come: the next spare takes the next request itself
    zygote: list = []  # made before the first non-isolated call runs here (see Zygote)
    ran_inline = False
    spin = _Spin()  # after a non-isolated call: wait for the next request without sleeping first

    def fork_next():
        gc.freeze()  # what the parent holds stays out of the children's collections (fewer page copies)
        try:
            return Spare(channel, list(close_in_child), zygote[0] if zygote else None)
        except ZygoteGone:  # killed (the OOM killer, a call's kill -9): no pristine copy is left,
            zygote.pop().close()  # so spares come from here again, as before there was one
            return fork_next()
        except OSError as exc:  # EAGAIN at the pids limit: the call is answered, the agent lives on
            fork_error[:] = [exc]
            return None

    def refill_if_empty():
        """During a call: only when no spare is left for the next one (a tight loop)."""
        if not spares:
            found = fork_next()
            if found is not None:
                spares.append(found)

    try:
        while True:
            exited = _reap(exited)
            # What a call that started processes left goes first, even before a request that
            # waits (see _settle). Then, while isolated calls come, the oldest spare is armed:
            # it reads the next request itself, so after an idle stretch that request wakes one
            # process, as an inline call does, and the parent forks the next spare meanwhile.
            # Otherwise the parent reads, and forks only when no request waits (DESIGN §6: the
            # fork is off the critical path).
            if after_call:
                exited = _settle({s.pid for s in spares}, exited)
                _read_limits()
                after_call = False
            if take and spares and not spares[0].armed:
                spares[0].arm()
            armed = bool(spares) and spares[0].armed
            if len(spares) < _SPARES:
                pending = not armed and _readable(channel.rfd)
                while len(spares) < (1 if pending else _SPARES):
                    found = fork_next()
                    if found is None:
                        break
                    spares.append(found)
            try:
                if armed:
                    ran, header = spares[0].taken(channel)
                    if ran:
                        current = spares.pop(0)
                        learned, reap, after_call = current.wait(channel, header, _timeout_of(header),
                                                                 refill_if_empty)
                        exited = _after_isolated(current, learned, reap, exited, spares, zygote)
                        continue
                    take = False  # the parent reads the connection until the next isolated call
                else:
                    spin.wait(channel.rfd)
                    header = channel.recv_header(cache=True)
                    spin.arrived()
            except ChannelClosed:
                return
            op = header.get("op")
            rid = header.get("id")
            timeout = _timeout_of(header)
            if runs_isolated(header):
                retry_until = time.monotonic() + 2.0
                while not spares and time.monotonic() < retry_until:
                    # No process to run it (the pids limit): kill and reap what calls left, retry.
                    exited = _reap(exited + _sweep(set(), exited))
                    refill_if_empty()
                    if not spares:
                        time.sleep(0.01)
                if not spares:
                    channel.recv_buffers(header)
                    channel.send(_no_process(rid, fork_error[0] if fork_error else None))
                    continue
                current = spares.pop(0)  # handed over: never closed twice if dispatch fails
                learned, reap, after_call = current.dispatch(channel, header, timeout, refill_if_empty)
                exited = _after_isolated(current, learned, reap, exited, spares, zygote)
                take = True
            elif op == "call":
                if not ran_inline and _subreaper[0]:  # while this process is still as it started
                    try:
                        zygote.append(Zygote(channel, list(close_in_child)))
                    except OSError:  # no process to be had: spares are forked here, as before
                        pass
                ran_inline = True  # a zygote made from now on would be no cleaner than this process
                call_begins()
                run_inline(channel, header, timeout)
                after_call = call_spawned()
                spin.answered(header.get("spin"))
            elif op == "echo":
                channel.send({"op": "echo", "id": rid}, channel.recv_buffers(header))
            elif op == "describe":
                channel.send(dict(_in_child(describe, lambda: describe(scan=False)), op="describe", id=rid))
            elif op == "find_modules":
                channel.send({"op": "find_modules", "id": rid, "missing": missing_modules(header["modules"])})
            else:
                channel.recv_buffers(header)
                channel.send({"op": "error", "id": rid, "message": "unknown op %r" % op})
    finally:
        for left in spares:
            left.close()
        for pid in _sweep(set(), exited) + exited:
            try:
                _waitpid(pid)
            except ChildProcessError:
                pass
        for z in zygote:
            z.close()


_SPARES = 2  # ready call processes kept while idle: a tight loop never waits for a fork


def _timeout_of(header: dict) -> float:
    timeout = header.get("timeout")
    timeout = max(0.001, float(30 if timeout is None else timeout))
    if header.get("op") == "map":  # the items' timeout is each item's; the map has as long as its waves need
        timeout = max(timeout, float(header.get("map_timeout") or 0))
    return timeout


def _after_isolated(current: Spare, learned: list, reap: bool, exited: list, spares: list, zygote: list) -> list:
    """Once an isolated call has answered: what is left to reap, and the modules it imported
    preloaded where spares are forked (the spares forked before them are replaced)."""
    current.flags.close()  # now, once answered: not at the next call, on its critical path
    if reap:
        exited = exited + [current.pid]
    # What a spare names is new to whoever forked it: the zygote, once there is one.
    if learned and (zygote or any(name not in sys.modules for name in learned)):
        for old in spares:  # forked before these modules were loaded; none is armed yet
            old.close()
        del spares[:]
        if zygote:
            zygote[0].preload(learned)
        else:
            _preload(learned)
    return exited


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


SPIN_MAX_S = 0.01  # the longest spin window either end accepts: never a long burn


class QuickWaits:
    """When a wait is worth spinning for (both ends use it; the host keeps one per kind of
    request). Spin while not all of the last ``MISSES`` spins ran out: one hiccup (a preempted
    process, a slow call) does not stop it, a run of slow answers does. After a wait that
    slept, quick again if the answer came within twice the window: what spinning would have
    caught, the wake-up it saves included."""

    MISSES = 3

    def __init__(self) -> None:
        self.misses = 0

    def worth(self) -> bool:
        return self.misses < self.MISSES

    def spun(self, caught: bool) -> None:
        self.misses = 0 if caught else self.misses + 1

    def slept(self, waited: float, window: float) -> None:
        if waited < 2 * window:
            self.misses = 0


class _Spin:
    """Spin-then-block for the request after a non-isolated call, in the window the host's call
    header gives (``spin``, seconds; none: never). On a VM, waking a sleeping process costs
    more than a small call's whole work; a tight loop of calls never sleeps. Adaptive (see
    ``QuickWaits``); the CPU is yielded to anything else runnable while it spins."""

    def __init__(self) -> None:
        self.window = 0.0
        self.since: float | None = None  # when the last non-isolated call was answered (None: not just now)
        self.waits = QuickWaits()
        self.spinning = False

    def answered(self, window) -> None:
        try:
            w = float(window or 0)
        except (TypeError, ValueError):
            w = 0.0
        # Never a long burn, whatever the header says (NaN included: it compares false).
        self.window = w if 0.0 < w <= SPIN_MAX_S else SPIN_MAX_S if w > SPIN_MAX_S else 0.0
        self.since = time.perf_counter() if self.window else None

    def wait(self, fd: int) -> None:
        since = self.since
        self.spinning = since is not None and self.waits.worth()
        if since is None or not self.spinning:
            return
        until = since + self.window
        while not _readable(fd):
            if time.perf_counter() >= until:
                self.waits.spun(False)
                self.spinning = False
                return
            os.sched_yield()
        self.waits.spun(True)

    def arrived(self) -> None:
        if self.since is not None and not self.spinning:
            self.waits.slept(time.perf_counter() - self.since, self.window)
        self.since = None


def _reap(pids: list) -> list:
    left = []
    for pid in pids:
        try:
            if _waitpid(pid, os.WNOHANG) == (0, 0):
                left.append(pid)
        except ChildProcessError:
            pass
    return left


def _settle(keep: set, exited: list, within: float = 2.0) -> list:
    """After a call that started processes: kill and reap all it left before the next call
    starts. Until reaped, even a killed process counts against the pids limit, and the next call
    would find it used up. Orphans of orphans surface here as their parents die, hence the loop;
    one that will not die within ``within`` s is left to be reaped later."""
    deadline = time.monotonic() + within
    while True:
        exited = _reap(exited + _sweep(keep, exited))
        if not exited or time.monotonic() > deadline:
            return exited
        time.sleep(0.0005)


_never_swept: set = set()  # the zygote: a child of the parent that no call left behind


def _sweep(keep: set, known: list) -> list:
    """Kill every child but the spare: what a call left behind (reparented here, see
    ``_become_subreaper``). Returns the new ones, to be reaped."""
    new = []
    for pid in _children():
        if pid in keep or pid in _never_swept:
            continue
        _kill_call(pid)
        if pid not in known:
            new.append(pid)
    return new


def _no_process(rid, exc) -> dict:
    limit = _cgroup_limit("pids")
    message = "could not start a process for the call (%s)" % (exc or "fork failed")
    info: dict = {"phase": "call", "type": "crash", "python": python_version(), "message": message}
    if limit:
        info["limit_hit"] = {"pids": limit}
        info["message"] += ": the target's pids limit (%d) is reached" % limit
    return {"op": "result", "id": rid, "phases": {}, "outcome": "crash", "error": info}


def _warm_imports() -> None:
    """The default serializer, once in the parent so every forked child has it. Not dill: it
    doubles the parent's private memory (6 MB, 27 mappings), which every fork then copies and
    every exit unmaps (fork+exit+wait 1.02 -> 1.36 ms in a container); a target that is sent dill
    learns it after its first dill call, like any module a call imports."""
    try:
        import cloudpickle  # noqa: F401
    except Exception:
        pass


def _serve_socket(path: str, keep: bool, accept_timeout: float) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    os.chmod(path + ".tmp", 0o777)  # the private parent directory is the access control
    listener.listen(1)
    os.rename(path + ".tmp", path)  # appears only once it accepts: the host polls for it
    listener.settimeout(accept_timeout)
    while True:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            return
        conn.settimeout(None)
        try:
            serve(Channel(conn.fileno(), conn.fileno()), [listener.fileno()])
        except EOFError as exc:
            print("agent: connection lost: %s" % exc, file=sys.stderr)
        finally:
            conn.close()
        if not keep:
            return


class _Options:
    socket = ""
    stdio = False
    keep = False
    accept_timeout = 300.0

    def __init__(self) -> None:
        self.lib: list = []
        self.path: list = []


def parse_options(argv: list) -> _Options:
    """The backends' command line. getopt, not argparse: argparse and what it imports (shutil,
    locale, gettext) cost ~15 ms of a container's cold start."""
    import getopt

    pairs, rest = getopt.getopt(argv, "", ["socket=", "stdio", "lib=", "path=", "keep", "accept-timeout="])
    if rest:
        raise SystemExit("agent: unexpected arguments %r" % (rest,))
    opts = _Options()
    for flag, value in pairs:
        if flag == "--socket":
            opts.socket = value
        elif flag == "--accept-timeout":
            opts.accept_timeout = float(value)
        elif flag in ("--lib", "--path"):
            getattr(opts, flag[2:]).append(value)
        else:
            setattr(opts, flag[2:], True)
    return opts


def main(argv: list | None = None) -> None:
    opts = parse_options(sys.argv[1:] if argv is None else argv)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path[:0] = opts.lib + opts.path
    _libs[:] = opts.lib
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if opts.stdio:
        rfd, wfd = os.dup(0), os.dup(1)
        os.dup2(2, 1)  # user prints must never corrupt the stream
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        try:
            serve(Channel(rfd, wfd))
        except EOFError as exc:
            print("agent: connection lost: %s" % exc, file=sys.stderr)
    else:
        _serve_socket(opts.socket, opts.keep, opts.accept_timeout)


if __name__ == "__main__":
    main()
