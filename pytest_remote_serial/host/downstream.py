"""Downstream serializers: a framework's own path (its ``dumps`` on the host, its ``loads`` on the
target), usable by name or object wherever a serializer is accepted (docs/architecture.md,
"Downstream serializers").

The host calls ``dumps`` on the call as one object, ``(func, args, kwargs)``; the agent imports
``loads`` (a "module:attr" string) on the target and calls it on the bytes. Everything around
that stays the plugin's: the envelope, the scan for another Python's bytecode, the outcome
classification, and the way back (results never go through the framework's ``loads``).
"""

from __future__ import annotations

import importlib
import keyword
import sys
import threading
from collections.abc import Callable
from functools import cached_property
from typing import Any

from ..remote.buffers import DeviceCopies
from .codecs import CODECS, Codec

# A framework's dumps: the call tuple -> bytes (or any bytes-like object).
FrameworkDumps = Callable[[Any], Any]
_REGISTRY: dict[str, Serializer] = {}
_LOCK = threading.Lock()


def check_name(name: Any) -> None:
    """A downstream serializer's name: a non-empty string that names no built-in one."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"serializer name {name!r}: give a non-empty name without spaces around it, "
                         "e.g. \"joblib\"")
    if name == "auto" or name in CODECS:
        raise ValueError(f"serializer name {name!r} is a built-in serializer's; give the framework's own "
                         "name, e.g. \"joblib\"")


def check_ref(ref: Any, what: str) -> tuple[str, str]:
    """``"package.module:attr.path"`` split in two, or ValueError naming the expected form."""
    example = f"{what} = \"mypkg.wire:{what}\""
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValueError(f"{what} = {ref!r}: write it as \"module:attribute\", e.g. {example}")
    module, attr = ref.split(":")
    parts = module.split(".") + attr.split(".")
    if not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        raise ValueError(f"{what} = {ref!r}: {module!r} and {attr!r} must be dotted Python names, e.g. {example}")
    return module, attr


def resolve_ref(ref: str, what: str) -> Any:
    """The object a "module:attr" string names, imported here (the host's ``dumps``)."""
    module, attr = check_ref(ref, what)
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _named(func: Any) -> Any:
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    return (module, qualname) if isinstance(module, str) and isinstance(qualname, str) else id(func)


def _version_of(func: Any) -> str | None:
    """The version of the distribution ``func`` comes from, where it has one."""
    top = str(getattr(func, "__module__", None) or "").partition(".")[0]
    if not top or top == "builtins":
        return None
    found = getattr(sys.modules.get(top), "__version__", None)
    if isinstance(found, str):
        return found
    try:
        from importlib import metadata

        return metadata.version(top)
    except Exception:
        return None


class Serializer(Codec):
    """A framework's own serializer: ``dumps`` on the host, ``loads`` imported on the target.

    ``Serializer("joblib", dumps=joblib_dumps, loads="mypkg.worker:loads")``. Made once, it is
    known by its name too (``serializer="joblib"``). ``version`` defaults to that of the
    distribution ``dumps`` comes from; records and reports name it.
    """

    framework_dumps: FrameworkDumps
    loads: str
    declared_version: str | None

    def __init__(self, name: str, *, dumps: FrameworkDumps, loads: str, version: str | None = None) -> None:
        check_name(name)
        if not callable(dumps):
            raise ValueError(f"Serializer({name!r}, dumps={dumps!r}): dumps must be a callable that turns the call "
                             "tuple (func, args, kwargs) into bytes")
        check_ref(loads, "loads")
        if version is not None and not isinstance(version, str):
            raise ValueError(f"Serializer({name!r}, version={version!r}): give the version as a string")

        def to_buffers(obj: Any, copies: DeviceCopies | None = None) -> list[Any]:
            data = dumps(obj)
            if isinstance(data, (bytes, bytearray)):
                return [data]
            try:
                return [memoryview(data).cast("B")]
            except TypeError:
                raise TypeError(f"the {name} serializer's dumps returned a {type(data).__name__}, not bytes") from None

        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dumps", to_buffers)
        object.__setattr__(self, "library", None)
        object.__setattr__(self, "framework_dumps", dumps)
        object.__setattr__(self, "loads", loads)
        object.__setattr__(self, "declared_version", version)
        register(self)

    @cached_property
    def version(self) -> str | None:
        return self.declared_version or _version_of(self.framework_dumps)

    def same_as(self, other: Serializer) -> bool:
        """The same declaration: the same dumps (by name, so a module imported again still
        declares the same serializer), loads and version."""
        return (_named(self.framework_dumps) == _named(other.framework_dumps) and self.loads == other.loads
                and self.declared_version == other.declared_version)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Serializer) and self.name == other.name and self.same_as(other)

    def __hash__(self) -> int:
        return hash((self.name, self.loads))

    def __repr__(self) -> str:
        return f"Serializer({self.name!r}, loads={self.loads!r})"


def register(serializer: Serializer) -> None:
    """Known by name from now on; a second, different serializer of the same name is an error."""
    with _LOCK:
        known = _REGISTRY.get(serializer.name)
        if known is not None and not known.same_as(serializer):
            raise ValueError(f"two different serializers are named {serializer.name!r} ({known!r} and "
                             f"{serializer!r}); give each its own name")
        _REGISTRY[serializer.name] = serializer


def known(name: str) -> Serializer | None:
    return _REGISTRY.get(name)


def names() -> list[str]:
    return sorted(_REGISTRY)


def from_spec(name: str, dumps: str, loads: str, version: str | None, where: str) -> Serializer:
    """A matrix file's ``[serializers.NAME]``: its ``dumps`` imported here now, so that a wrong
    one is a usage error at start, naming the table."""
    try:
        func = resolve_ref(dumps, "dumps")
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{where}: dumps = {dumps!r} cannot be imported on the host ({type(exc).__name__}: "
                         f"{exc}); install the framework here, or fix the \"module:attribute\" name") from None
    if not callable(func):
        raise ValueError(f"{where}: dumps = {dumps!r} is a {type(func).__name__}, not a function")
    try:
        return Serializer(name, dumps=func, loads=loads, version=version)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
