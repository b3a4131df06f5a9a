"""Serializers behind one small interface: turn ``(func, args, kwargs)`` into buffers.

The agent's loader for each name lives in ``remote/agent.py``; a codec here only dumps.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..remote import agent

# (func, args, kwargs) and, optionally, where device arrays' copies are counted -> the buffers
Dumps = Callable[..., list[Any]]


@dataclass(frozen=True)
class Codec:
    name: str
    dumps: Dumps
    library: str | None  # the distribution whose version goes into the envelope

    @property
    def version(self) -> str | None:
        if self.library is None:
            return None
        mod = __import__(self.library)
        return getattr(mod, "__version__", None)


def _pickle(obj: Any, copies: agent.DeviceCopies | None = None) -> list[Any]:
    import pickle

    return agent.dump_with_buffers(pickle.Pickler, obj, copies)


def _cloudpickle(obj: Any, copies: agent.DeviceCopies | None = None) -> list[Any]:
    import cloudpickle

    return agent.dump_with_buffers(cloudpickle.Pickler, obj, copies)


_by_value_lock = threading.Lock()


def _cloudpickle_by_value(obj: Any, copies: agent.DeviceCopies | None = None) -> list[Any]:
    """Register the function's module by value for this dump only (seed 001's real fix)."""
    import cloudpickle

    func = obj[0]
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


def _dill(obj: Any, copies: agent.DeviceCopies | None = None) -> list[Any]:
    import dill

    return agent.dump_with_buffers(dill.Pickler, obj, copies)


def _dill_recurse(obj: Any, copies: agent.DeviceCopies | None = None) -> list[Any]:
    import dill

    return agent.dump_with_buffers(dill.Pickler, obj, copies, recurse=True)


def _source(obj: Any, copies: agent.DeviceCopies | None = None) -> list[Any]:
    from .capsule import CapsulePickler

    return agent.dump_with_buffers(CapsulePickler, obj, copies)


def _json(obj: Any, copies: agent.DeviceCopies | None = None) -> list[Any]:
    """Arguments as JSON, the function as a source capsule: the form a JSON-mode remote
    function API ships (seed 003). An argument JSON would change is refused, not altered."""
    import json

    from .capsule import CapsulePickler

    func, args, kwargs = obj
    for path, value in [("args", list(args)), ("kwargs", kwargs)]:
        drift = agent.json_drift(value, path)
        if drift:
            raise ValueError(f"JSON cannot carry this argument unchanged: {drift}; pass JSON "
                             "types, or use serializer='source'")
    doc = json.dumps({"args": list(args), "kwargs": kwargs}).encode()
    return [doc, *agent.dump_with_buffers(CapsulePickler, func)]


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


def get_codec(name: str) -> Codec:
    try:
        return CODECS[name]
    except KeyError:
        raise UnknownSerializer(
            f"unknown serializer {name!r}: use one of {', '.join(SERIALIZERS)}"
        ) from None


def envelope(codec: Codec) -> dict[str, Any]:
    """The header every payload carries, so the agent can name the real cause of a failure."""
    return {
        "proto": agent.PROTOCOL,
        "python": agent.python_version(),
        "magic": agent.magic_number(),
        "serializer": codec.name,
        "serializer_version": codec.version,
        "numpy": agent.numpy_version(),
    }
