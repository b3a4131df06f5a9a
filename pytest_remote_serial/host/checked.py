"""Calls a reply may make (docs/architecture.md, "The trust boundary").

A pickle is a program: REDUCE, NEWOBJ, OBJ/INST, BUILD's ``__setstate__`` and the container
opcodes on a non-builtin container call whatever object is on the stack. Restricting the
globals a reply may *name* is not enough: a function of the test module may be named (a
result that is a reference to it) but never called with the target's arguments. So an
untrusted reply loads through ``CheckedUnpickler``, which checks every call: the callable
must be one of a fixed set of constructors (each with a checker of its arguments that also
says how many bytes it allocates), or a class (never a function) the policy allows. The
allocations add up against the reply's memory limit, so 48 bytes cannot make 2 GB.

Most replies name only classes that are safe to call with any arguments at a fixed cost
(datetimes, exceptions, the call's own plain classes): those load with the C unpickler,
whose ``find_class`` sends anything else here (``FastUnpickler``, ``_Slow``).
"""

from __future__ import annotations

import collections
import copyreg
import enum
import pickle
import sys
from collections.abc import Callable
from typing import Any

from . import arrays
from .replies import ResultUnpickler

HOW_TO_ALLOW = ("if you trust this target, set `trusted = true` on it (or on the whole matrix) in the "
                "matrix file, or list the module in `trusted_modules = [...]`")
Checker = Callable[[tuple[Any, ...], dict[str, Any]], int]
_SLOT = 8  # a reference in a container
_INT = 32  # an int beyond the small-int cache
_HASHED = 3  # a set's or dict's table beside its items


class Refused(pickle.UnpicklingError):
    """A reply the host will not load untrusted: a ``result_error`` naming the fix."""


class UnsafeGlobal(Refused):
    """The bytes from a target asked the host to load or call a global outside the trust boundary."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"the target's reply refers to {what}, which the host does not load from a "
                         f"target ({reason}); {HOW_TO_ALLOW}")
        self.what = what


class ReplyTooLarge(Refused):
    """A reply whose calls would allocate more than its memory limit."""


def name_of(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return f"{module}.{getattr(obj, '__qualname__', None) or type(obj).__qualname__}"


# ------------------------------------------------------------------ the fixed constructors


def _free(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return 0


def _items(value: Any, per_item: int) -> int:
    """What materialising an iterable argument costs: a range makes new ints."""
    if type(value) is range:
        return len(value) * (per_item + _INT)
    if isinstance(value, (str, bytes, bytearray, tuple, list, dict, set, frozenset, collections.deque)):
        return len(value) * per_item
    return 0  # an object of an allowed class: it iterates by its own code


def _container(per_item: int) -> Checker:
    def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        return sum(_items(a, per_item) for a in args) + len(kwargs) * per_item
    return check


def _bytes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    if args and type(args[0]) is int:
        return max(args[0], 0)
    return _items(args[0], 1) if args else 0


def _type(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    if len(args) != 1 or kwargs:
        raise UnsafeGlobal("builtins.type", "type(...) makes a class from the target's arguments; only type(x) "
                                            "is allowed")
    return 0


def _getattr(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Enum members pickle as ``getattr(cls, name)`` on some versions: that getattr only."""
    if len(args) != 2 or kwargs or not isinstance(args[0], enum.EnumMeta) or args[1] not in args[0].__members__:
        raise UnsafeGlobal("builtins.getattr", "getattr loads only a member of an enum class")
    return 0


def _encode(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Protocols 0-2 write bytes as ``_codecs.encode(text, 'latin1')``: no other codec."""
    if kwargs or len(args) != 2 or args[1] not in ("latin1", "latin-1") or type(args[0]) is not str:
        raise UnsafeGlobal("_codecs.encode", "only encode(text, 'latin1'), as pickle writes bytes")
    return len(args[0])


def _pairs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """A mapping from pairs: a range (the one lazy iterable a reply can make) fails at its first
    item, so the cost is that of what the reply holds."""
    return _container(_SLOT * _HASHED * 2)(args, kwargs)


def _defaultdict(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """The factory is called later, by the test's own code, with no arguments: it must be what a
    reply may call."""
    factory = args[0] if args else None
    if factory is not None and _current:
        if checker_of(_current[-1].fixed, factory) is None and not (
                isinstance(factory, type) and _current[-1].callable_class(factory)):
            raise UnsafeGlobal(name_of(factory), "a defaultdict's factory is called like a reply's call")
    return _pairs(args[1:], kwargs)


def _array(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return _items(args[1], 8) if len(args) > 1 else 0


_BUILTIN_COSTS: dict[str, Checker] = {
    "bool": _free, "int": _free, "float": _free, "complex": _free, "str": _container(1), "bytes": _bytes,
    "bytearray": _bytes, "list": _container(_SLOT), "tuple": _container(_SLOT), "dict": _pairs,
    "set": _container(_SLOT * _HASHED), "frozenset": _container(_SLOT * _HASHED), "range": _free, "slice": _free,
    "object": _free, "type": _type, "getattr": _getattr,
}
_STDLIB_COSTS: dict[str, dict[str, Checker]] = {
    "collections": {"OrderedDict": _pairs, "defaultdict": _defaultdict,
                    "deque": _container(_SLOT), "Counter": _container(_SLOT * _HASHED), "ChainMap": _free},
    "datetime": {n: _free for n in ("date", "time", "datetime", "timedelta", "timezone", "tzinfo")},
    "decimal": {"Decimal": _free},
    "fractions": {"Fraction": _free},
    "uuid": {"UUID": _free, "SafeUUID": _free},
    "pathlib": {n: _free for n in ("PurePath", "PurePosixPath", "PureWindowsPath", "Path", "PosixPath",
                                   "WindowsPath")},
    "ipaddress": {n: _free for n in ("IPv4Address", "IPv6Address", "IPv4Network", "IPv6Network", "IPv4Interface",
                                     "IPv6Interface")},
    "array": {"array": _array, "_array_reconstructor": lambda a, k: len(a[3]) if len(a) == 4 and
              isinstance(a[3], bytes) else 0},
    "re": {"_compile": _free},
    "types": {"SimpleNamespace": _free},
    "_codecs": {"encode": _encode},
}
# Imported on demand (never anything else): standard modules that only define data types.
STDLIB_DATA_MODULES = frozenset(_STDLIB_COSTS) | {"copyreg", "numpy"}


def fixed_names(module: str) -> set[str]:
    """The names of ``module`` in the fixed set (plus copyreg's reconstructors)."""
    if module == "builtins":
        return set(_BUILTIN_COSTS) | {"Ellipsis", "NotImplemented"}
    if module == "copyreg":
        return {"_reconstructor", "__newobj__", "__newobj_ex__"}
    return set(_STDLIB_COSTS.get(module, ()))


_fixed_cache: dict[int, tuple[Any, Checker]] = {}
_fixed_key: list[tuple[bool, ...]] = []
_WATCHED = (*_STDLIB_COSTS, "numpy", "numpy.ma.core", "numpy._core.multiarray", "numpy.core.multiarray")


def fixed_checkers() -> dict[int, tuple[Any, Checker]]:
    """id(callable) -> (callable, checker) for the fixed set, of the modules loaded so far."""
    import builtins

    key = tuple(m in sys.modules for m in _WATCHED)
    if _fixed_key and _fixed_key[0] == key:
        return _fixed_cache
    found: dict[int, tuple[Any, Checker]] = {}
    for name, check in _BUILTIN_COSTS.items():
        found[id(getattr(builtins, name))] = (getattr(builtins, name), check)
    for module, names in _STDLIB_COSTS.items():
        mod = sys.modules.get(module)
        for name, check in names.items() if mod is not None else ():
            obj = getattr(mod, name, None)
            if obj is not None:
                found[id(obj)] = (obj, check)
    for obj, check in arrays.checkers().items():
        found[id(obj)] = (obj, check)
    for obj, check in ((copyreg._reconstructor, _reconstructor), (copyreg.__newobj__, _newobj),  # type: ignore[attr-defined]
                       (copyreg.__newobj_ex__, _newobj_ex)):  # type: ignore[attr-defined]
        found[id(obj)] = (obj, check)
    _fixed_cache.clear()
    _fixed_cache.update(found)
    _fixed_key[:] = [key]
    return _fixed_cache


def checker_of(fixed: dict[int, tuple[Any, Checker]], obj: Any) -> Checker | None:
    """The checker of ``obj`` if it is one of the fixed constructors (by identity), else None."""
    entry = fixed.get(id(obj))
    return entry[1] if entry is not None and entry[0] is obj else None


# A class a reply may call (set by the unpickler while it loads: copyreg's helpers ask it).
_current: list[CheckedUnpickler] = []


def _reconstructor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """``copyreg._reconstructor(cls, base, state)``: ``base.__new__(cls, state)``, ``base.__init__``."""
    if kwargs or len(args) != 3 or not isinstance(args[0], type) or not isinstance(args[1], type) \
            or not issubclass(args[0], args[1]):
        raise UnsafeGlobal("copyreg._reconstructor", "arguments other than (class, its base, state)")
    unpickler = _current[-1]
    unpickler.class_cost(args[0], ())
    return 0 if args[1] is object else unpickler.class_cost(args[1], (args[2],))


def _newobj(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    if not args or not isinstance(args[0], type):
        raise UnsafeGlobal("copyreg.__newobj__", "a first argument that is not a class")
    return _current[-1].class_cost(args[0], args[1:], kwargs, methods=("__new__",))


def _newobj_ex(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    if kwargs or len(args) != 3 or not isinstance(args[0], type) or type(args[1]) is not tuple \
            or type(args[2]) is not dict:
        raise UnsafeGlobal("copyreg.__newobj_ex__", "arguments other than (class, args, kwargs)")
    return _current[-1].class_cost(args[0], args[1], args[2], methods=("__new__",))


# ------------------------------------------------------------------ the checking unpickler


# The pure-Python unpickler: its opcodes are methods a subclass can wrap (typeshed has no stubs for it).
_PyUnpickler: Any = pickle._Unpickler


class CheckedUnpickler(_PyUnpickler):
    """The pure-Python unpickler, with every calling opcode checked (see the module's doc).
    ``callable_class(cls)`` is the policy's: may a reply call this class? ``limit``: bytes its
    calls may allocate."""

    dispatch: dict[int, Any] = dict(_PyUnpickler.dispatch)

    def __init__(self, file: Any, *, buffers: Any, find_class: Callable[[str, str], Any],
                 callable_class: Callable[[type], bool], limit: int, limit_key: str) -> None:
        super().__init__(file, buffers=buffers)
        self._find_class = find_class
        self.callable_class = callable_class
        self.limit = limit
        self.limit_key = limit_key
        self.spent = 0
        self.fixed = fixed_checkers()

    def find_class(self, module: str, name: str) -> Any:
        return self._find_class(module, name)

    def load(self) -> Any:
        _current.append(self)
        try:
            return super().load()
        finally:
            _current.pop()

    # -------------------------------------------------------------- deciding a call
    def _spend(self, cost: int, what: str) -> None:
        self.spent += cost
        if self.spent > self.limit:
            raise ReplyTooLarge(
                f"the target's reply would make the host allocate more than its limit of {self.limit >> 20} MiB "
                f"(calling {what} alone: {cost >> 20} MiB); nothing of it was kept; raise `{self.limit_key}` "
                f"for this target in the matrix, or set `trusted = true` on it")

    def _allowed_owner(self, base: type) -> bool:
        return base is object or checker_of(self.fixed, base) is not None or self.callable_class(base)

    def _check_methods(self, cls: type, methods: tuple[str, ...]) -> None:
        """A method a call runs must come from a class a reply may build: an own class that
        inherits ``__init__`` from ``subprocess.Popen`` is not a data type."""
        for method in methods:
            owner = next((base for base in cls.__mro__ if method in vars(base)), None)
            if owner is not None and not self._allowed_owner(owner):
                raise UnsafeGlobal(f"{name_of(cls)}.{method}", f"inherited from {name_of(owner)}, a class the host "
                                                               "does not build from a target")

    def class_cost(self, cls: type, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None,
                   methods: tuple[str, ...] = ("__new__", "__init__")) -> int:
        """A class called (or only ``__new__``'d): one the policy allows, whose ``methods`` come from
        classes it allows, at the cost of the first fixed constructor it builds on."""
        check = checker_of(self.fixed, cls)
        if check is not None:
            return check(args, kwargs or {})
        if not self.callable_class(cls):
            raise UnsafeGlobal(name_of(cls), "a class the host does not build from a target's arguments")
        self._check_methods(cls, methods)
        if isinstance(cls, enum.EnumMeta) and (len(args) != 1 or kwargs):
            raise UnsafeGlobal(name_of(cls), "an enum class is called only to look a member up by value")
        for base in cls.__mro__[1:]:
            check = checker_of(self.fixed, base)
            if check is not None:
                return check(args, kwargs or {})
        return 0

    def call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> int:
        what = name_of(func)
        try:
            check = checker_of(self.fixed, func)
            if check is not None:
                cost = check(args, kwargs or {})
            elif isinstance(func, type):
                cost = self.class_cost(func, args, kwargs)
            else:
                raise UnsafeGlobal(what, "a reply may call only the constructors of data types and classes, "
                                         "never a function")
        except arrays.ArrayRefused as exc:
            raise UnsafeGlobal(what, f"numpy's reconstructors only, with the arguments numpy writes: {exc}") from None
        self._spend(cost, what)
        return cost

    # -------------------------------------------------------------- the calling opcodes
    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        if type(args) is not tuple:
            raise pickle.UnpicklingError("REDUCE with arguments that are not a tuple")
        self.call(func, args)
        stack[-1] = func(*args)
    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        if not isinstance(cls, type) or type(args) is not tuple:
            raise pickle.UnpicklingError("NEWOBJ of something that is not a class")
        self._spend(self.class_cost(cls, args, methods=("__new__",)), name_of(cls))
        self.append(cls.__new__(cls, *args))
    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        if not isinstance(cls, type) or type(args) is not tuple or type(kwargs) is not dict:
            raise pickle.UnpicklingError("NEWOBJ_EX of something that is not a class")
        self._spend(self.class_cost(cls, args, kwargs, methods=("__new__",)), name_of(cls))
        self.append(cls.__new__(cls, *args, **kwargs))
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass: Any, args: Any) -> None:  # OBJ and INST
        self.call(klass, tuple(args))
        super()._instantiate(klass, args)

    def load_build(self) -> None:
        state = self.stack[-1]
        inst = self.stack[-2]
        if arrays.builds(inst):
            try:
                arrays.check_state(inst, state)
            except arrays.ArrayRefused as exc:
                raise UnsafeGlobal(name_of(type(inst)), f"numpy's own states only: {exc}") from None
        else:
            self._may_run_methods_of(inst, "BUILD (its __setstate__ or attributes)", ("__setstate__", "__setattr__"))
        if type(state) is tuple and len(state) == 2 and isinstance(state[1], dict) \
                and ({"__class__", "__dict__"} & state[1].keys()):
            raise UnsafeGlobal(f"{name_of(type(inst))}.__class__", "a BUILD that rebinds an object's class")
        super().load_build()
    dispatch[pickle.BUILD[0]] = load_build

    def _may_run_methods_of(self, inst: Any, how: str, methods: tuple[str, ...]) -> None:
        cls = type(inst)
        if cls in (list, dict, set, object) or checker_of(self.fixed, cls) is not None or arrays.builds(inst):
            return
        if isinstance(inst, BaseException) or self.callable_class(cls):
            self._check_methods(cls, methods)
            return
        raise UnsafeGlobal(name_of(cls), f"{how} of an object whose class the host does not build from a target")

    def load_append(self) -> None:
        self._may_run_methods_of(self.stack[-2], "APPEND", ("append",))
        super().load_append()
    dispatch[pickle.APPEND[0]] = load_append

    def load_appends(self) -> None:
        self._may_run_methods_of(self.metastack[-1][-1], "APPENDS", ("extend", "append"))
        super().load_appends()
    dispatch[pickle.APPENDS[0]] = load_appends

    def load_setitem(self) -> None:
        self._may_run_methods_of(self.stack[-3], "SETITEM", ("__setitem__",))
        super().load_setitem()
    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self) -> None:
        self._may_run_methods_of(self.metastack[-1][-1], "SETITEMS", ("__setitem__",))
        super().load_setitems()
    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_additems(self) -> None:
        self._may_run_methods_of(self.metastack[-1][-1], "ADDITEMS", ("add",))
        super().load_additems()
    dispatch[pickle.ADDITEMS[0]] = load_additems


# ------------------------------------------------------------------ the fast path

# Constructors whose cost no argument can raise beyond what the reply holds: the C unpickler may
# hand them out (a defaultdict's factory is then itself one of the classes it hands out).
_FAST_CHECKERS = (_free, _pairs, _defaultdict)


class _Slow(Exception):
    """The C unpickler met a global it may not hand out unchecked: load again, checked."""


def fast_class(cls: Any, callable_class: Callable[[type], bool]) -> bool:
    """A class that may be called with any arguments at a fixed cost, and whose instances
    cannot be called: what the C unpickler may hand out without checking each call."""
    if not isinstance(cls, type) or issubclass(cls, type) or isinstance(cls, enum.EnumMeta):
        return False
    fixed = fixed_checkers()
    for base in cls.__mro__:
        if "__call__" in vars(base) and base is not object:
            return False
        check = checker_of(fixed, base)
        if check is not None:
            if check not in _FAST_CHECKERS:
                return False
        elif base is tuple and "__new__" in vars(cls):
            continue  # a namedtuple: its own __new__ takes its fields
        elif not (base is object or issubclass(base, BaseException) or callable_class(base)):
            return False
    return True


class FastUnpickler(ResultUnpickler):
    """The C unpickler, for replies that name only ``fast_class`` classes."""

    def __init__(self, file: Any, *, buffers: Any, find_class: Callable[[str, str], Any],
                 callable_class: Callable[[type], bool]) -> None:
        super().__init__(file, buffers=buffers)
        self._find = find_class
        self._callable_class = callable_class

    def find_class(self, module: str, name: str) -> Any:
        obj = self._find(module, name)  # (the policy maps moved modules)
        if not self.fast(obj):
            raise _Slow(f"{module}.{name}")
        return obj

    def fast(self, obj: Any) -> bool:
        if obj is None or obj is Ellipsis or obj is NotImplemented:
            return True
        return fast_class(obj, self._callable_class)
