"""The way back: a reply's result or exception loaded on the host, with what only the host can
resolve (references to its own objects, device arrays for its own device). Which globals a reply
may name is the trust boundary's to say (``trust.py``); this is the machinery it restricts.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import io
import pickle
from collections.abc import Callable
from typing import Any

from ..remote.buffers import DeviceCopies, attach_device_loads
from ..remote.diagnosis import missing_here
from .bundle import private_module

HostRef = Callable[[str, str], Any]


@functools.cache
def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


class ResultUnpickler(pickle.Unpickler):
    """The host's side of the agent's ``payloads.dump_result``.

    Arrays pickled by numpy 1 name ``numpy.core``; numpy 2 renamed it ``numpy._core`` and
    warns on the old name, so a ``-W error`` suite would fail on a correct result. This class
    loads any global: the host uses it only for trusted targets (see ``trust.py``).
    """

    @staticmethod
    def map_module(module: str) -> str:
        if (module == "numpy.core" or module.startswith("numpy.core.")) and _has_module("numpy._core"):
            return "numpy._core" + module[len("numpy.core"):]
        if module == "pathlib._local" and not _has_module("pathlib._local"):
            return "pathlib"  # 3.13+ targets name their paths' module, which older hosts lack
        return private_module(module)  # the agent's copy of the host's cloudpickle is the host's own

    def find_class(self, module: str, name: str) -> Any:
        module = self.map_module(module)
        try:
            return super().find_class(module, name)
        except AttributeError:
            missing = missing_here(module, name)  # a newer Python's class: named as such
            if missing is not None:
                raise missing from None
            raise


def lookup_qualname(root: Any, qualname: str) -> Any:
    """``root.a.b.c`` for ``qualname == "a.b.c"``; AttributeError when a part is missing."""
    return functools.reduce(getattr, qualname.split("."), root)


def _load_host_ref(pid: Any, resolve: HostRef | None = None) -> Any:
    """An object the target names as the host's own: a class the host sent (by the tracker id
    the host's cloudpickle gave it), or a module-level object by module and qualname."""
    kind, where, qualname = pid
    if kind == "host-class":
        from cloudpickle import cloudpickle as cp

        cls = cp._DYNAMIC_CLASS_TRACKER_BY_ID.get(where)
        if cls is None:
            raise pickle.UnpicklingError(f"class {qualname} came back as one this host sent, but the host has "
                                         "no class with that tracker id")
        return cls
    if kind != "host":
        raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
    if resolve is not None:
        return resolve(where, qualname)
    return lookup_qualname(importlib.import_module(where), qualname)


def load_result(buffers: list[Any], copies: DeviceCopies | None = None,
                unpickler: Callable[[Any, Any], pickle.Unpickler] | None = None,
                host_ref: HostRef | None = None) -> Any:
    """A reply's result or exception. ``unpickler(file, buffers)`` makes the unpickler (the
    trust boundary passes its restricted one); ``host_ref(module, qualname)`` resolves host
    references."""
    make = unpickler or (lambda file, buffers: ResultUnpickler(file, buffers=buffers))
    loader = make(io.BytesIO(buffers[0]), buffers[1:])

    def others(pid: Any) -> Any:
        return _load_host_ref(pid, host_ref)

    attach_device_loads(loader, DeviceCopies() if copies is None else copies, others)
    return loader.load()
