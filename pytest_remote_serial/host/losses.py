"""Where ``auto``'s same-version rungs would answer differently from the source capsule.

cloudpickle by value rebuilds a class from its skeleton and ``__dict__``: measured on its own
suite and the shapes table, that drops ``__slots__`` (instances get a ``__dict__``, writes that
must raise succeed; a ``__weakref__`` slot too), builds an enum's members before the class's own
``__init__``/``__new__``/``_missing_`` exist (aliases become members of their own, tuple values
are not unpacked, lookups by other values fail), gives two functions that share a closure cell
a cell each, carries only the globals the bytecode names (``globals()[name]``, ``eval``,
``sys.modules[__name__]``, ``get_type_hints`` find nothing), has no module of the function's
name for a pickle made inside the call, and leaves a function's ``co_filename`` pointing at the
host's file, so ``inspect.getsource`` fails or reads another file. The capsule
creates the class by its statement and registers the source, so it keeps all of these.

``auto`` asks here before each cloudpickle rung and ships ``source`` instead when the graph
holds one of them *by value* (a class found by reference on the target is the target's own and
loses nothing). The walk is bounded: a graph too large to walk keeps cloudpickle.
"""

from __future__ import annotations

import collections
import enum
import functools
import itertools
import types
from collections.abc import Iterator
from typing import Any

from cloudpickle import cloudpickle as cp

from .capsule import is_user_code

CLOUDPICKLE_RUNGS = ("cloudpickle", "cloudpickle-by-value")
MAX_NODES = 4000
# Names whose call reads a function's source through co_filename.
_SOURCE_READERS = {"getsource", "getsourcelines", "findsource", "getcomments"}
# Names whose call looks a module global up by its name rather than by a global op.
_DYNAMIC_LOOKUPS = {"globals", "eval", "exec", "get_type_hints"}


def source_needed(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], rung: str) -> str | None:
    """Why ``rung`` would lose what ``source`` keeps for this call, or None."""
    if rung not in CLOUDPICKLE_RUNGS:
        return None
    module = _module_of(func) if rung == "cloudpickle-by-value" else None
    cells: dict[int, str] = {}
    for obj in _walk([func, *args, *kwargs.values()]):
        if not _by_value(obj, module):
            continue
        why = _class_loss(obj) if isinstance(obj, type) else _function_loss(obj) or _shared_cell(obj, cells)
        if why:
            return f"{rung} would lose {why}; auto ships source, which keeps it"
    return None


def _shared_cell(func: types.FunctionType, cells: dict[int, str]) -> str | None:
    """Two functions closing over one variable (an ``inc`` and a ``peek``): by value, measured
    with cloudpickle 3.1, each arrives with a cell of its own, so one never sees the other's writes."""
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
        other = cells.setdefault(id(cell), func.__qualname__)
        if other != func.__qualname__:
            return f"the closure cell {name!r} that {other} and {func.__qualname__} share"
    return None


def _module_of(func: Any) -> str | None:
    while callable(getattr(func, "func", None)) and not isinstance(func, (types.FunctionType, type)):
        func = func.func  # a partial: the module by value is the function's
    return getattr(func, "__module__", None)


def _by_value(obj: Any, module: str | None) -> bool:
    """Would cloudpickle carry this class or function by value (on this rung)?"""
    if not isinstance(obj, (type, types.FunctionType)) or not is_user_code(obj):
        return False
    if module is not None and getattr(obj, "__module__", None) == module:
        return True
    try:
        return not cp._should_pickle_by_reference(obj)
    except Exception:
        return True


def _class_loss(cls: type) -> str | None:
    own = vars(cls)
    if "__slots__" in own:
        return f"{cls.__qualname__}.__slots__ (instances would get a __dict__)"
    if isinstance(cls, enum.EnumMeta):
        if len(cls.__members__) > len(cls._member_names_):
            return f"{cls.__qualname__}'s aliases (they would become members of their own)"
        for hook in ("_missing_", "__init__", "__new__"):
            if hook in own:
                return f"{cls.__qualname__}.{hook} (members are built before it exists there)"
    return None


def _function_loss(func: types.FunctionType) -> str | None:
    names = _names(func.__code__)
    if names & _SOURCE_READERS:
        return f"the source of {func.__qualname__} (inspect reads it through the host's file name)"
    if names & _DYNAMIC_LOOKUPS or {"modules", "__name__"} <= names:
        return (f"the module globals {func.__qualname__} looks up by name (globals(), eval, "
                "sys.modules[__name__], get_type_hints: by value carries only those its bytecode names)")
    if "pickle" in names and names & {"dumps", "dump"}:
        return (f"pickling its own module's objects inside {func.__qualname__} (by value, no module "
                "of that name exists there)")
    return None


def _names(code: types.CodeType) -> set[str]:
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _names(const)
    return found


def _walk(roots: list[Any]) -> Iterator[Any]:
    """Classes and functions a pickle of ``roots`` reaches, breadth first, bounded."""
    seen: set[int] = set()
    queue = collections.deque(roots)
    steps = 0
    while queue and len(seen) < MAX_NODES and steps < 10 * MAX_NODES:  # plain values count too
        steps += 1
        obj = queue.popleft()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, complex, bool, type(None), types.ModuleType)):
            continue
        seen.add(id(obj))
        if isinstance(obj, (type, types.FunctionType)):
            yield obj
        queue.extend(_children(obj))


def _children(obj: Any) -> list[Any]:
    if isinstance(obj, types.FunctionType):
        namespace = obj.__globals__
        names = cp._extract_code_globals(obj.__code__)
        cells = []
        for cell in obj.__closure__ or ():
            try:
                cells.append(cell.cell_contents)
            except ValueError:
                continue
        return [*cells, *(namespace[n] for n in names if n in namespace), *(obj.__defaults__ or ()),
                *(obj.__kwdefaults__ or {}).values(), *vars(obj).values()]
    if isinstance(obj, type):
        if not is_user_code(obj):
            return []
        return [*obj.__bases__, type(obj), *(v for k, v in vars(obj).items() if k not in ("__dict__", "__weakref__"))]
    if isinstance(obj, (staticmethod, classmethod)):
        return [obj.__func__]
    if isinstance(obj, property):
        return [obj.fget, obj.fset, obj.fdel]
    if isinstance(obj, types.MethodType):
        return [obj.__func__, obj.__self__]
    if isinstance(obj, functools.partial):
        return [obj.func, *obj.args, *obj.keywords.values()]
    if isinstance(obj, dict):  # a large argument costs no more than the walk's bound
        return [*itertools.islice(obj.keys(), MAX_NODES), *itertools.islice(obj.values(), MAX_NODES)]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(itertools.islice(obj, MAX_NODES))
    out = [type(obj)]
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict):
        out.extend(state.values())
    slots = getattr(type(obj), "__slots__", ())
    for slot in [slots] if isinstance(slots, str) else slots if isinstance(slots, (tuple, list)) else ():
        if isinstance(slot, str) and hasattr(obj, slot):
            out.append(getattr(obj, slot))
    return out

