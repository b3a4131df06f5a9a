"""What a shipped function's module globals become in a source capsule, beyond cloudpickle's
"the globals its bytecode names, as they are here".

- Objects a worker importing the module would make afresh, and that cloudpickle refuses: a
  ``threading`` lock, event, condition or semaphore, a ``struct.Struct``, a
  ``contextvars.ContextVar``, a weak cache. They travel as their kind and parameters (a lock
  unlocked, a ``Struct`` of the same format, a ``ContextVar`` of the same name and default, an
  empty weak cache), as module globals, class attributes, or attributes of a module-global
  instance (one level; exact types only).
- Globals the bytecode does not name but the code looks up by name: ``globals()[name]``,
  ``eval``/``exec``, ``sys.modules[__name__]``, ``typing.get_type_hints`` and string
  annotations. Where the code does that, the module's other globals travel too, each one only
  if it can be dumped alone, so one that cannot does not sink the call.

See docs/architecture.md, "Serializers and the source capsule".
"""

from __future__ import annotations

import ast
import contextvars
import io
import struct
import threading
import types
import weakref
from functools import lru_cache
from typing import Any

_LOCK, _RLOCK = type(threading.Lock()), type(threading.RLock())
_WEAK: dict[type, str] = {weakref.WeakValueDictionary: "WeakValueDictionary",
                          weakref.WeakKeyDictionary: "WeakKeyDictionary", weakref.WeakSet: "WeakSet"}
_NO_DEFAULT = object()


def _context_var_default(var: contextvars.ContextVar[Any]) -> Any:
    try:
        return contextvars.Context().run(var.get)  # an empty context: only the default answers
    except LookupError:
        return _NO_DEFAULT


def fresh_spec(value: Any) -> tuple[str, tuple[Any, ...], dict[str, Any]] | None:
    """``(kind, args, kwargs)`` that make ``value`` afresh on a target, or None if it is not such an object."""
    kind = type(value)
    if kind is _LOCK:
        return "Lock", (), {}
    if kind is _RLOCK:
        return "RLock", (), {}
    if kind is threading.Event:
        return "Event", (), {}
    if kind is threading.Condition:
        return "Condition", (value._lock,), {}
    if kind is threading.BoundedSemaphore:
        return "BoundedSemaphore", (value._initial_value,), {}
    if kind is threading.Semaphore:
        return "Semaphore", (value._value,), {}
    if kind is struct.Struct:
        return "Struct", (value.format,), {}
    if kind is contextvars.ContextVar:
        default = _context_var_default(value)
        return "ContextVar", (value.name,), ({} if default is _NO_DEFAULT else {"default": default})
    if kind in _WEAK:
        return _WEAK[kind], (), {}
    return None


def made_afresh(path: str, value: Any) -> bool:
    """Does the capsule make this member afresh where the member walk found it (under a
    function's globals), so that it is never the reason a dump failed?"""
    return ".__globals__[" in path and fresh_spec(value) is not None


class Fresh:
    """Stands for one such object in a capsule (one per object, so what shares it shares it there)."""

    __slots__ = ("args", "kind", "kwargs", "original")

    def __init__(self, original: Any, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.original, self.kind, self.args, self.kwargs = original, kind, args, kwargs


def plain_state_holder(value: Any) -> bool:
    """An instance pickled by its ``__dict__`` (no reducer or ``__getstate__`` of its own)."""
    kind = type(value)
    return (isinstance(getattr(value, "__dict__", None), dict)
            and not isinstance(value, (type, types.ModuleType, types.FunctionType, types.MethodType))
            and kind.__reduce_ex__ is object.__reduce_ex__ and kind.__reduce__ is object.__reduce__
            and getattr(kind, "__getstate__", None) is getattr(object, "__getstate__", None))


# ----------------------------------------------------------------------------- dynamic lookups

_DYNAMIC_NAMES = frozenset(("globals", "eval", "exec", "get_type_hints", "get_annotations"))
# Never carried by the module-wide path: the import system's, and pytest's rewrite helpers.
_SKIP = frozenset(("__builtins__", "__loader__", "__spec__", "__cached__"))


@lru_cache(maxsize=1024)
def looks_up_by_name(code: types.CodeType) -> bool:
    """Does this code (or code nested in it) read module globals by name at run time?"""
    names = set(code.co_names)
    if names & _DYNAMIC_NAMES or {"modules", "__name__"} <= names:
        return True
    return any(looks_up_by_name(c) for c in code.co_consts if isinstance(c, types.CodeType))


def annotation_names(func: types.FunctionType) -> set[str] | None:
    """The global names the function's string annotations mention (what ``get_type_hints``
    evaluates); None when one does not parse (then any global may be meant)."""
    found: set[str] = set()
    for value in (getattr(func, "__annotations__", None) or {}).values():
        if isinstance(value, str):
            try:
                tree = ast.parse(value, mode="eval")
            except SyntaxError:
                return None
            found.update(n.id for n in ast.walk(tree) if isinstance(n, ast.Name))
    return found


class Optional:
    """A module, or an installed module's function or class, that the code does not name:
    imported on the target where it exists there, left out where not (one it does name is
    still a ``missing_module`` there)."""

    __slots__ = ("module", "qualname")

    def __init__(self, module: str, qualname: str | None = None) -> None:
        self.module, self.qualname = module, qualname


def _travels(module_name: str, value: Any) -> Any:
    """What a global the code reaches only by name travels as, or None to leave it out: this
    module's own definitions and data, the standard library's; installed modules and their
    functions and classes by name where the target has them; never another user module's
    definitions (they go by value, with everything they need, for a name nobody may look up)."""
    from .capsule import imported_as, is_pytest_object, is_user_code
    from .trust import is_stdlib

    if isinstance(value, types.ModuleType):
        return Optional(imported_as(value))  # _collections_abc is collections.abc by __name__
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)) and not is_pytest_object(value):
        owner = getattr(value, "__module__", None)
        if owner == module_name:
            return value
        qualname = getattr(value, "__qualname__", "")
        if owner and not is_user_code(value) and "<" not in qualname:
            return Optional(owner, qualname)
        return None
    owner = type(value).__module__
    if owner in ("builtins", module_name) or is_stdlib(owner):
        return value
    return None


def module_wide(namespace: dict[str, Any], dumps_alone: Any) -> dict[str, Any]:
    """The module's globals that can travel, each tried alone."""
    from .capsule import is_pytest_object

    name = namespace.get("__name__")
    found = {}
    for key, value in namespace.items():
        if key in _SKIP or key.startswith("@") or is_pytest_object(value):
            continue
        travels = _travels(name, value) if isinstance(name, str) else None
        if travels is not None and (isinstance(travels, Optional) or dumps_alone(travels)):
            found[key] = travels
    return found


_SCALARS = (int, float, complex, str, bytes, bool, type(None))


def dumps_alone(pickler_class: Any, value: Any) -> bool:
    if isinstance(value, _SCALARS) or isinstance(value, types.ModuleType):
        return True
    try:
        pickler = pickler_class(io.BytesIO(), trial=True)
        pickler.dump(pickler.as_global(value))  # a lock made afresh travels
    except Exception:
        return False
    return True
