"""A call's payload loaded by the serializer its header names, and its result (or exception)
dumped for the way back. Each loader loads as that serializer's own loader would on a real
worker, so the matrix shows its failures; only the source capsule's stdlib renames are mapped.
"""

from __future__ import annotations

import functools
import json
import pickle
import sys

from . import assert_standin, rebuild
from .buffers import CALL_COPIES, PICKLE_PROTOCOL, Buffers, _no_persistent_load, attach_device_loads, dump_with_buffers
from .diagnosis import json_drift
from .envelope import python_version, this_python
from .own_cloudpickle import cloudpickle, private_name, trackers
from .protocol import RESULT_ERROR
from .rebuild import _FROM_HOST, HOST_PACKAGE

# The modules of this package a payload may name, by their name under HOST_PACKAGE.
_PAYLOAD_MODULES = {"rebuild": rebuild, "assert_standin": assert_standin}


class HostNames:
    """Unpickler mixin: what the host calls this package (``rebuild.HOST_PACKAGE``) means this
    package, wherever it lives here, for the few names a payload may call (``PAYLOAD_API``)."""

    def find_class(self, module, name):
        package, _, leaf = module.rpartition(".")
        if package == HOST_PACKAGE:
            found = _PAYLOAD_MODULES.get(leaf)
            if found is not None and name in found.PAYLOAD_API:
                return getattr(found, name)
        return super().find_class(module, name)


def _unpickle(cls, payload, buffers, header):
    import io

    unpickler = cls(io.BytesIO(payload), buffers=buffers)
    if not (header.get("device_arrays") or header.get("buffer_kinds")):
        return unpickler.load()
    attach_device_loads(unpickler, CALL_COPIES)
    try:
        return unpickler.load()
    finally:  # the hook holds the unpickler's own bound persistent_load on 3.13+ (a cycle)
        unpickler.persistent_load = _no_persistent_load


class _Unpickler(HostNames, pickle.Unpickler):
    pass


def _load_pickle(payload, buffers, header):
    return _unpickle(_Unpickler, payload, buffers, header)


@functools.lru_cache(maxsize=1)
def _dill_unpickler():
    import dill  # injected as a zip by the host

    return type("_DillUnpickler", (HostNames, dill.Unpickler), {})


def _load_dill(payload, buffers, header):
    return _unpickle(_dill_unpickler(), payload, buffers, header)


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
        module = private_name(module, name)  # the capsule's runtime: the cloudpickle that dumped it
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError) as exc:
            moved = _MOVED.get((module, name)) or _MOVED.get((module, None))
            if moved is None:
                if isinstance(exc, AttributeError) and module not in sys.modules:  # raised by its import
                    raise ImportError("importing %s failed on %s: %s: %s" % (
                        module, this_python(), type(exc).__name__, exc), name=module) from exc
                if isinstance(exc, AttributeError):
                    raise AttributeError("%s.%s does not exist on %s (the payload was written by "
                                         "a Python that has it)" % (module, name, this_python()))
                raise
            return super().find_class(moved[0], moved[1] or name)


def _load_source(payload, buffers, header):
    return _unpickle(_SourceUnpickler, payload, buffers, header)


def _load_json(payload, buffers, header):
    """Arguments as a JSON document; the function itself as a source capsule (seed 003)."""
    doc = json.loads(bytes(payload))
    func = _load_source(buffers[0], buffers[1:], header)
    return func, tuple(doc["args"]), doc["kwargs"]


LOADERS = {
    "json": _load_json,
    "source": _load_source,
    "pickle": _load_pickle,
    "cloudpickle": _load_pickle,
    "cloudpickle-by-value": _load_pickle,
    "dill": _load_dill,
    "dill-recurse": _load_dill,
}


class LoaderResult(Exception):
    """A downstream serializer's loader returned something other than the call tuple."""


def load_downstream(payload, buffers, header):
    """A framework's own path: its ``loads`` ("module:attr"), imported here and called on the
    bytes, as its worker would. A module it lacks is the ModuleNotFoundError naming it."""
    import importlib

    module, _, attr = header["loads"].partition(":")
    loads = importlib.import_module(module)
    for part in attr.split("."):
        loads = getattr(loads, part)
    loaded = loads(bytes(payload))
    if type(loaded) is not tuple or len(loaded) != 3 or not isinstance(loaded[1], tuple) \
            or not isinstance(loaded[2], dict) or not callable(loaded[0]):
        raise LoaderResult("%s returned %s, not the call tuple (func, args, kwargs) the host dumped: the "
                           "serializer's dumps and loads must be inverses" % (header["loads"], _shape(loaded)))
    return loaded


def _shape(obj):
    if type(obj) is tuple:
        return "a tuple of %d (%s)" % (len(obj), ", ".join(type(x).__name__ for x in obj[:4]))
    return "a %s.%s" % (type(obj).__module__, type(obj).__qualname__)


def loader_for(header):
    return load_downstream if header.get("loads") else LOADERS[header["serializer"]]


def _host_ref(obj):
    ref = _FROM_HOST.get(id(obj))
    if ref is not None and ref[0] is obj:
        return ("host", ref[1], ref[2])
    if isinstance(obj, type):
        # Classes cloudpickle rebuilt here from a host payload (by value, or a capsule's skeleton),
        # keyed to the tracker id the host gave them: the host resolves that id to its own class.
        for tracker in trackers():
            tid = tracker.get(obj)
            if tid is not None:
                return ("host-class", tid, obj.__qualname__)
    return None


_SCALARS = frozenset((int, float, bool, str, type(None), complex))


def dump_result(obj, protocol: int) -> list:
    """Plain pickle first: it loads on any host Python (objects rebuilt from host source go
    back as references to the host's own). cloudpickle only for what plain pickle refuses."""
    if type(obj) in _SCALARS:  # nothing to refer back to, no buffers: the common tiny result
        return Buffers([pickle.dumps(obj, protocol)])
    refs = _host_ref if _FROM_HOST or trackers() else None
    d2h, arrays = CALL_COPIES.d2h, CALL_COPIES.arrays
    try:
        return dump_with_buffers(pickle.Pickler, obj, CALL_COPIES, refs)
    except Exception:
        CALL_COPIES.d2h, CALL_COPIES.arrays = d2h, arrays  # the failed attempt's copies are redone
        # The plugin's own cloudpickle (the host's version): the way back is the plugin's.
        return dump_with_buffers(cloudpickle().Pickler, obj, CALL_COPIES, refs)


def dump_json_result(result, response: dict) -> list:
    """JSON both ways; a value that JSON would change is delivered, and flagged."""
    out = [json.dumps(result).encode()]
    response["result_codec"] = "json"
    drift = json_drift(result, "result")
    if drift:
        response["outcome"] = RESULT_ERROR
        response["error"] = {
            "phase": "result", "type": "json_mismatch", "python": python_version(),
            "message": "the result changed on the way: %s; return JSON types, or use "
                       "serializer='source' to keep Python types" % drift,
        }
    return out


def dump_exception(exc: BaseException) -> list:
    try:
        exc.__traceback__ = None
        return dump_result(exc, PICKLE_PROTOCOL)
    except Exception:
        return []

