"""Classes whose members ``typing`` generates: made again by the target's own ``typing``.

The host's ``typing`` names what it generates by private names that differ by version
(``typing._no_init_or_replace_init`` on 3.11, none of it on 3.9), so a ``Protocol``'s generated
members are dropped from its skeleton's state and made again there (``rebuild._regenerate_protocol``),
and a ``TypedDict``'s class statement is run again (``rebuild.src_typeddict``), as dataclass
methods are regenerated. ``typing_extensions``' versions are carried as plain classes.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from cloudpickle import cloudpickle as cp

from ..remote import rebuild

# What typing generates for a Protocol class: its own typing makes them again on the target.
PROTOCOL_META = type(typing.Protocol)
_PROTOCOL_DATA = {"_is_protocol", "_is_runtime_protocol", "__protocol_attrs__", "__non_callable_proto_members__",
                  "__callable_proto_members_only__", "__typing_is_deprecated_inherited_runtime_protocol__"}


def _typing_made(value: Any) -> bool:
    func = getattr(value, "__func__", value)
    return isinstance(func, types.FunctionType) and func.__module__ == "typing"


def protocol_spec(cls: type, clsdict: dict[str, Any]) -> dict[str, Any]:
    """Drop what the host's typing generated (``__init__``, ``__subclasshook__``, the computed
    member sets; named by private names that differ by version): the skeleton's creation runs
    the target's ``Protocol.__init_subclass__``, and ``rebuild`` the rest."""
    for name in [k for k, v in clsdict.items() if k in _PROTOCOL_DATA or _typing_made(v)]:
        del clsdict[name]
    return {"kind": "protocol", "runtime": bool(cls.__dict__.get("_is_runtime_protocol"))}


_TYPEDDICT_OWNED = {"__annotations__", "__required_keys__", "__optional_keys__", "__readonly_keys__",
                    "__mutable_keys__", "__total__", "__orig_bases__", "__closed__", "__extra_items__",
                    "__parameters__", "__annotate__", "__annotate_func__", "__annotations_cache__", "__dict__",
                    "__weakref__", "__module__", "__qualname__"}
_TYPEDDICT_KEYS = ("__required_keys__", "__optional_keys__", "__readonly_keys__", "__mutable_keys__")


def is_typeddict(cls: type) -> bool:
    return type(cls).__name__ == "_TypedDictMeta" and type(cls).__module__ == "typing"


def reduce_typeddict(cls: Any) -> tuple[Any, ...]:
    """Its class statement, run again by the target's typing: a skeleton cannot be made, as
    its base is ``dict`` to the host's metaclass and must be a TypedDict to the target's. A
    host before 3.12 keeps no ``__orig_bases__`` for a TypedDict subclass: then every key is
    declared on ``TypedDict`` itself, and the required and optional keys are the host's."""
    annotations = dict(cls.__annotations__)
    bases = cls.__dict__.get("__orig_bases__")
    if bases is None:
        bases = (typing.TypedDict,)
    else:
        inherited = {k for b in bases if isinstance(b, type) for k in getattr(b, "__annotations__", {})}
        annotations = {k: v for k, v in annotations.items() if k not in inherited}
    namespace = {k: v for k, v in cls.__dict__.items() if k not in _TYPEDDICT_OWNED and not _is_pytest_object(v)}
    namespace.update(__module__=cls.__module__, __qualname__=cls.__qualname__, __annotations__=annotations)
    keys = {k: cls.__dict__[k] for k in _TYPEDDICT_KEYS if k in cls.__dict__}
    return rebuild.src_typeddict, (cls.__name__, bases, namespace, {"total": cls.__total__}, keys,
                                   cp._get_or_create_tracker_id(cls))


def _is_pytest_object(value: Any) -> bool:
    from .capsule import is_pytest_object

    return is_pytest_object(value)
