"""Find every member that makes an object unserializable, by the path a user would type.

Pickle stops at the first failure and names only a type ("cannot pickle '_thread._local'
object"); a user needs the *where*: ``func.__globals__['_thread_gpu_contexts']``. The walk
descends only into members that fail on their own, so a fine subtree costs one dump.
"""

from __future__ import annotations

import functools
import io
import socket
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cloudpickle.cloudpickle import _extract_code_globals

DEFAULT_DEPTH = 6

# What each kind of resource is, and what to do about it.
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
_KINDS: list[tuple[tuple[type, ...], str, str]] = [
    (_LOCK_TYPES, "a lock", "create the lock where it is used, or drop it in __getstate__"),
    ((threading.local,), "a thread-local",
     "do not let the shipped function use it as a global: pass what it holds as an argument, "
     "or decorate at import time so the function pickles by reference (seed 002)"),
    ((io.IOBase,), "an open file", "pass the path and open it there"),
    ((socket.socket,), "a socket", "pass the address and connect there"),
    ((types.GeneratorType,), "a generator", "pass a list of its items, or the function that makes it"),
    ((types.ModuleType,), "a module", "import it inside the function"),
]


@dataclass(frozen=True)
class Offender:
    path: str
    type_name: str
    kind: str | None
    hint: str | None
    error: str

    def __str__(self) -> str:
        kind = f": {self.kind}" if self.kind else ""
        return f"{self.path} ({self.type_name}){kind}"


def type_name(obj: Any) -> str:
    kind = type(obj)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _kind(obj: Any) -> tuple[str | None, str | None]:
    for types_, kind, hint in _KINDS:
        if isinstance(obj, types_):
            return kind, hint
    return None, None


def members(obj: Any, path: str) -> Iterator[tuple[str, Any]]:
    """The parts a serializer would have to carry, each with its path."""
    if isinstance(obj, functools.partial):
        yield f"{path}.func", obj.func
        for i, arg in enumerate(obj.args):
            yield f"{path}.args[{i}]", arg
        for key, value in obj.keywords.items():
            yield f"{path}.keywords[{key!r}]", value
    elif isinstance(obj, types.MethodType):
        yield f"{path}.__self__", obj.__self__
        yield f"{path}.__func__", obj.__func__
    elif isinstance(obj, types.FunctionType):
        yield from _function_members(obj, path)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield f"{path}[{key!r}]", value
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield f"{path}[{i}]", item
    elif isinstance(obj, (set, frozenset)):
        for i, item in enumerate(obj):
            yield f"{path}{{item {i}}}", item
    elif isinstance(obj, type):
        from .capsule import is_user_code

        if is_user_code(obj):  # by value: its methods and attributes travel too
            for key, value in vars(obj).items():
                if key not in ("__dict__", "__weakref__"):
                    yield f"{path}.{key}", value
    elif not isinstance(obj, types.ModuleType):
        for key, value in getattr(obj, "__dict__", {}).items():
            yield f"{path}.{key}", value
        for slot in getattr(type(obj), "__slots__", ()):
            if isinstance(slot, str) and hasattr(obj, slot):
                yield f"{path}.{slot}", getattr(obj, slot)


def _function_members(func: types.FunctionType, path: str) -> Iterator[tuple[str, Any]]:
    code = func.__code__
    for i, cell in enumerate(func.__closure__ or ()):
        try:
            yield f"{path}.__closure__[{i}].cell_contents", cell.cell_contents
        except ValueError:
            continue
    namespace = func.__globals__
    for name in sorted(_extract_code_globals(code)):  # the globals its bytecode really loads
        if name in namespace:
            yield f"{path}.__globals__[{name!r}]", namespace[name]
    for i, value in enumerate(func.__defaults__ or ()):
        yield f"{path}.__defaults__[{i}]", value
    for key, value in (func.__kwdefaults__ or {}).items():
        yield f"{path}.__kwdefaults__[{key!r}]", value
    for key, value in vars(func).items():
        yield f"{path}.{key}", value


def find_offenders(obj: Any, dumps: Callable[[Any], Any], path: str = "obj",
                   max_depth: int = DEFAULT_DEPTH, carried: Callable[[str, Any], bool] | None = None
                   ) -> list[Offender]:
    """Every innermost member that ``dumps`` refuses; ``obj`` itself if none of its parts does.
    ``carried(path, member)``: a member the serializer carries where it lies (the capsule makes
    a module-global lock afresh), though ``dumps`` refuses it alone: never an offender."""
    seen: set[int] = set()

    def visit(node: Any, where: str, depth: int) -> list[Offender]:
        if id(node) in seen or (carried is not None and carried(where, node)):
            return []
        seen.add(id(node))
        try:
            dumps(node)
            return []
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        found: list[Offender] = []
        if depth < max_depth:
            for child_path, child in members(node, where):
                found += visit(child, child_path, depth + 1)
        elif any(True for _ in members(node, where)):
            error += f" (the walk stopped at depth {max_depth}; look inside)"
        if found:
            return found
        kind, hint = _kind(node)
        return [Offender(where, type_name(node), kind, hint, error)]

    return visit(obj, path, 0)
