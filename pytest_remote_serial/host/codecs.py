"""Serializers behind one small interface: turn ``(func, args, kwargs)`` into buffers.

The agent's loader for each name is in ``remote/payloads.py`` (``LOADERS``); a codec here only dumps.
A downstream serializer (``downstream.py``) names its own loader, imported on the target.
"""

from __future__ import annotations

import copyreg
import functools
import sys
import threading
import types
from collections import ChainMap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..remote.buffers import DeviceCopies, dump_with_buffers
from ..remote.diagnosis import json_drift
from ..remote.envelope import CACHE_TAG, IMPLEMENTATION, magic_number, numpy_version, python_version
from ..remote.protocol import PROTOCOL
from .capsule import flat_dispatch, standin_for_pytest_rewrite

# (func, args, kwargs) and, optionally, where device arrays' copies are counted -> the buffers
Dumps = Callable[..., list[Any]]


@dataclass(frozen=True)
class Codec:
    name: str
    dumps: Dumps
    library: str | None  # the distribution whose version goes into the envelope
    loads: str | None = None  # a downstream serializer's "module:attr", imported on the target

    @property
    def version(self) -> str | None:
        if self.library is None:
            return None
        mod = __import__(self.library)
        return getattr(mod, "__version__", None)


def _pickle(obj: Any, copies: DeviceCopies | None = None) -> list[Any]:
    import pickle

    return dump_with_buffers(pickle.Pickler, obj, copies)


@functools.cache
def _cloudpickler() -> type:
    """cloudpickle's Pickler, but code from a pytest test module does not drag pytest along:
    its rewritten asserts call ``@pytest_ar`` helpers, which the target gets as a stand-in."""
    import cloudpickle
    from cloudpickle import cloudpickle as cp

    def module_reduce(module: types.ModuleType) -> Any:
        standin = standin_for_pytest_rewrite(module)
        return cp._module_reduce(module) if standin is NotImplemented else standin

    ours = {types.ModuleType: module_reduce}
    table = ChainMap(ours, cloudpickle.Pickler.dispatch_table)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        self.dispatch_table = flat_dispatch(ours, cloudpickle.Pickler._dispatch_table, copyreg.dispatch_table)
        cloudpickle.Pickler.__init__(self, *args, **kwargs)

    return type("Pickler", (cloudpickle.Pickler,), {"dispatch_table": table, "__init__": __init__})


@functools.cache
def _dill_pickler() -> type:
    import dill

    def reducer_override(self: Any, obj: Any) -> Any:
        return standin_for_pytest_rewrite(obj) if type(obj) is types.ModuleType else NotImplemented

    return type("Pickler", (dill.Pickler,), {"reducer_override": reducer_override})


def _cloudpickle(obj: Any, copies: DeviceCopies | None = None) -> list[Any]:
    return dump_with_buffers(_cloudpickler(), obj, copies)


_by_value_lock = threading.Lock()


def _cloudpickle_by_value(obj: Any, copies: DeviceCopies | None = None) -> list[Any]:
    """Register the function's module by value for this dump only (seed 001's real fix)."""
    import cloudpickle

    func = obj[0]
    while getattr(func, "__module__", None) in (None, "functools") and callable(getattr(func, "func", None)):
        func = func.func  # a functools.partial: by value is about the function it holds
    module = sys.modules.get(getattr(func, "__module__", None) or "")
    if module is None or module.__name__ in ("__main__", "builtins"):
        return _cloudpickle(obj, copies)
    with _by_value_lock:
        already = module.__name__ in cloudpickle.list_registry_pickle_by_value()
        if not already:
            cloudpickle.register_pickle_by_value(module)
        try:
            return _cloudpickle(obj, copies)
        finally:
            if not already:
                cloudpickle.unregister_pickle_by_value(module)


def _dill(obj: Any, copies: DeviceCopies | None = None) -> list[Any]:
    return dump_with_buffers(_dill_pickler(), obj, copies)


def _dill_recurse(obj: Any, copies: DeviceCopies | None = None) -> list[Any]:
    return dump_with_buffers(_dill_pickler(), obj, copies, recurse=True)


def _capsule(obj: Any, copies: DeviceCopies | None = None) -> list[Any]:
    """The source capsule; what it cannot carry is named by its member path, as
    ``assert_serializable`` names it."""
    from .capsule import CapsulePickler, SourceUnavailable, dumps_source
    from .members import find_offenders
    from .module_globals import made_afresh

    try:
        return dump_with_buffers(CapsulePickler, obj, copies)
    except Exception as exc:
        func, args, kwargs = obj if isinstance(obj, tuple) and len(obj) == 3 else (obj, (), {})
        roots = [("func", func)] + [(f"args[{i}]", a) for i, a in enumerate(args)] + [
            (f"kwargs[{k!r}]", v) for k, v in kwargs.items()]
        for root, value in roots:
            found = find_offenders(value, dumps_source, root, carried=made_afresh)
            if found:
                where = found[0]
                raise SourceUnavailable(f"{where.path} ({where.type_name}): {where.error.split(': ', 1)[-1]}"
                                        + (f"; {where.hint}" if where.hint else "")) from exc
        raise


def _source(obj: Any, copies: DeviceCopies | None = None) -> list[Any]:
    return _capsule(obj, copies)


def _json(obj: Any, copies: DeviceCopies | None = None) -> list[Any]:
    """Arguments as JSON, the function as a source capsule: the form a JSON-mode remote
    function API ships (seed 003). An argument JSON would change is refused, not altered."""
    import json

    func, args, kwargs = obj
    for path, value in [("args", list(args)), ("kwargs", kwargs)]:
        drift = json_drift(value, path)
        if drift:
            raise ValueError(f"JSON cannot carry this argument unchanged: {drift}; pass JSON "
                             "types, or use serializer='source'")
    doc = json.dumps({"args": list(args), "kwargs": kwargs}).encode()
    return [doc, *_capsule(func)]


CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec("pickle", _pickle, None),
        Codec("cloudpickle", _cloudpickle, "cloudpickle"),
        Codec("cloudpickle-by-value", _cloudpickle_by_value, "cloudpickle"),
        Codec("dill", _dill, "dill"),
        Codec("dill-recurse", _dill_recurse, "dill"),
        Codec("source", _source, None),
        Codec("json", _json, None),
    )
}
SERIALIZERS = ("auto", *CODECS)


class UnknownSerializer(ValueError):
    pass


def get_codec(serializer: str | Codec) -> Codec:
    """A built-in serializer by name, or a downstream one by name or as itself."""
    if isinstance(serializer, Codec):
        return serializer
    found = CODECS.get(serializer) if isinstance(serializer, str) else None
    if found is not None:
        return found
    from .downstream import known

    found = known(serializer) if isinstance(serializer, str) else None
    if found is None:
        raise UnknownSerializer(f"unknown serializer {serializer!r}: {choices()}")
    return found


def choices() -> str:
    """What a serializer may be, for messages: the built-in names and the declared ones."""
    from .downstream import names

    declared = f"; declared downstream serializers: {', '.join(names())}" if names() else ""
    return (f"use one of {', '.join(SERIALIZERS)}, a pytest_remote_serial.Serializer(...), or the name of one "
            f"declared with it or in the matrix file's [serializers.NAME]{declared}")


def call_header(codec: Codec) -> dict[str, Any]:
    """What a call's header says about its serializer: the name, the envelope, and for a
    downstream serializer the loader the agent imports."""
    header = {"serializer": codec.name, "envelope": envelope(codec)}
    if codec.loads:
        header["loads"] = codec.loads
    return header


def envelope(codec: Codec) -> dict[str, Any]:
    """The header every payload carries, so the agent can name the real cause of a failure."""
    return {
        "proto": PROTOCOL,
        "python": python_version(),
        "implementation": IMPLEMENTATION,
        "cache_tag": CACHE_TAG,
        "magic": magic_number(),
        "serializer": codec.name,
        "serializer_version": codec.version,
        "numpy": numpy_version(),
    }
