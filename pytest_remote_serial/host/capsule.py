"""The source capsule: cloudpickle's object graph, with only the code objects replaced by source.

Only code objects are bound to a Python version; everything else is data. So this is
``cloudpickle.Pickler`` itself (the target loads with the host's own cloudpickle, injected),
which already walks the globals a function's bytecode really reads, shares one namespace per
module, carries closure cells (empty ones too), class skeletons with their *current*
``__dict__``, enums, and data through its reducers. Three things change:

- user code (anything not installed: test modules, scripts, ``__main__``, notebooks) goes by
  value even where a name would find it here: the question is whether a worker *without* the
  user's code can run it;
- each code object becomes ``rebuild.src_code(capsule)``: the text of the statement that made it,
  found by position (``source.py``), compiled on the target with the module's ``__future__``
  flags; a function's globals are read from that clean compile, never from pytest's rewritten
  bytecode;
- code a library generated from no file (dataclass and namedtuple methods, ``lru_cache``,
  ``cached_property``, ``singledispatch``, ``X | Y`` unions) is regenerated on the target by
  the same generator with the same parameters.

What cannot be reproduced is a ``SourceUnavailable`` naming the member path and why.
"""

from __future__ import annotations

import copyreg
import dataclasses
import dis
import functools
import inspect
import io
import itertools
import os
import site
import sys
import sysconfig
import threading
import types
import typing
from collections import ChainMap
from functools import lru_cache
from typing import Any

import cloudpickle
from cloudpickle import cloudpickle as cp

from ..remote import assert_standin, rebuild
from ..remote.buffers import PICKLE_PROTOCOL
from . import module_globals, typing_classes
from .source import NO_SOURCE_HINT, SourceUnavailable, clean_code, code_capsule

__all__ = ["NO_SOURCE_HINT", "CapsulePickler", "SourceUnavailable", "dumps_source", "function_source",
           "standin_for_pytest_rewrite",
           "global_names", "is_user_code"]


@lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    roots.add(site.getusersitepackages())
    return tuple(os.path.realpath(r) + os.sep for r in roots)


@lru_cache(maxsize=1024)
def _module_is_user_code(name: str) -> bool:
    if name == "__main__":
        return True
    module = sys.modules.get(name)
    if module is None:
        return True
    file = getattr(module, "__file__", None)
    if not file:
        return name not in sys.builtin_module_names and not name.startswith("_")
    return not os.path.realpath(file).startswith(_installed_roots())


def is_user_code(obj: Any) -> bool:
    """Must this travel by value? Yes unless a target could import it by name from an installed
    module: the user's own code is exactly what a worker does not have."""
    name = getattr(obj, "__module__", None)
    if name is not None and name.startswith(rebuild.HOST_PACKAGE + "."):
        return False
    if isinstance(obj, (types.FunctionType, type)) and not cp._should_pickle_by_reference(obj):
        return True  # defined in a function, made at run time, or named after something else
    return name is None or _module_is_user_code(name)


def _found_by_name(func: types.FunctionType) -> bool:
    """Can the host find this very function by its module and qualname (so the way back may name it)?"""
    try:
        return functools.reduce(getattr, func.__qualname__.split("."), sys.modules[func.__module__]) is func
    except (KeyError, AttributeError):
        return False


def global_names(func: types.FunctionType) -> dict[str, None]:
    """The globals the function's source really reads (global ops, nested code included): not
    attribute names, and not the helpers pytest's assertion rewriting added to its bytecode."""
    code = clean_code(func.__code__, func.__globals__)
    return {**cp._extract_code_globals(code), **_class_body_names(code)}


_NAME_LOADS = {"LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"}


def _class_body_names(code: types.CodeType) -> dict[str, None]:
    """A class body nested in the function reads globals by LOAD_NAME (``z: typing.Any = 1``),
    which cloudpickle's global-op walk does not see."""
    found: dict[str, None] = {}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            if not const.co_flags & inspect.CO_OPTIMIZED:
                found.update({i.argval: None for i in dis.get_instructions(const) if i.opname in _NAME_LOADS})
            found.update(_class_body_names(const))
    return found


# ----------------------------------------------------------------------------- reducers


def _reduce_code(code: types.CodeType) -> tuple[Any, ...]:
    return rebuild.src_code, (code_capsule(code),)


def _reduce_cell(cell: Any) -> tuple[Any, ...]:
    """Made empty, memoized, then filled: shared by every function that holds it, and a cell
    holding its own function (recursion) breaks the cycle there."""
    try:
        contents = cell.cell_contents
    except ValueError:  # empty: it stays empty (NameError there, as here)
        return rebuild.src_cell, ()
    return rebuild.src_cell, (), (contents,), None, None, rebuild.src_cell_setstate


def _reduce_union(union: Any) -> tuple[Any, ...]:
    return rebuild.src_union, (typing.get_args(union),)


def _reduce_typevar(tv: Any) -> Any:
    found = cp._lookup_module_and_qualname(tv, name=tv.__name__)
    if found is not None and not _module_is_user_code(found[0].__name__):
        return cp._typevar_reduce(tv)
    return cp._make_typevar, cp._decompose_typevar(tv)


def _reduce_forward_ref(ref: Any) -> tuple[Any, ...]:
    # It caches a code object compiled from its string; the string is the whole of it.
    return typing.ForwardRef, (ref.__forward_arg__,)


def _reduce_newtype(new_type: Any) -> Any:
    # Pickled by name it needs the user's module there; it is only a name over a type.
    if _module_is_user_code(getattr(new_type, "__module__", None) or "__main__"):
        return typing.NewType, (new_type.__name__, new_type.__supertype__)
    return new_type.__reduce__()


_DISPATCH: dict[type, Any] = {types.CodeType: _reduce_code, types.CellType: _reduce_cell,
                              typing.TypeVar: _reduce_typevar,
                              typing.ForwardRef: _reduce_forward_ref,
                              types.ModuleType: lambda module: _reduce_module(module)}
if isinstance(typing.NewType, type):  # a class from 3.10 on; a function, pickled as one, before
    _DISPATCH[typing.NewType] = _reduce_newtype
if sys.version_info >= (3, 10):
    _DISPATCH[types.UnionType] = _reduce_union

_SINGLEDISPATCH_FILE = functools.singledispatch.__code__.co_filename


def _is_singledispatch(obj: Any) -> bool:
    return (isinstance(obj, types.FunctionType) and obj.__code__.co_filename == _SINGLEDISPATCH_FILE
            and hasattr(obj, "registry") and hasattr(obj, "dispatch"))


# Members a generator owns, per kind: dropped from the skeleton and made again on the target.
_DATACLASS_OWNED = {"__init__", "__repr__", "__eq__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__",
                    "__setattr__", "__delattr__", "__getstate__", "__setstate__", "__replace__",
                    "__match_args__", "__dataclass_fields__", "__dataclass_params__"}
_NAMEDTUPLE_OWNED = {"__new__", "_make", "_replace", "__repr__", "_asdict", "__getnewargs__", "__replace__",
                     "_fields", "_field_defaults", "__match_args__"}


def _user_written(cls: type, value: Any) -> bool:
    """A method the user wrote in the class body (kept), not one a generator made (dropped)."""
    func = getattr(value, "__func__", value)
    code = getattr(func, "__code__", None)
    return (code is not None and not code.co_filename.startswith("<")  # exec'd by the generator
            and not os.path.realpath(code.co_filename).startswith(_installed_roots()))  # its wrappers


def _dataclass_spec(cls: type, clsdict: dict[str, Any]) -> dict[str, Any]:
    params = cls.__dict__["__dataclass_params__"]
    names = ("init", "repr", "eq", "order", "unsafe_hash", "frozen", "match_args")
    spec_params = {name: getattr(params, name) for name in names if hasattr(params, name)}
    own = cls.__dict__.get("__annotations__", {})
    fields: dict[str, dict[str, Any]] = {}
    for f in cls.__dict__["__dataclass_fields__"].values():
        if f.name not in own or f._field_type is not dataclasses._FIELD:  # type: ignore[attr-defined]
            continue  # inherited (the base regenerates it), or a ClassVar/InitVar: plain class data
        options: dict[str, Any] = {"init": f.init, "repr": f.repr, "hash": f.hash, "compare": f.compare,
                                   "metadata": dict(f.metadata) or None}
        for key in ("default", "default_factory", "kw_only", "doc"):
            value = getattr(f, key, dataclasses.MISSING)
            if value is not dataclasses.MISSING and not (key == "kw_only" and value is False):
                options[key] = value
        fields[f.name] = options
    for name in fields:  # plain defaults are class attributes now; the field carries them
        clsdict.pop(name, None)
    return {"kind": "dataclass", "params": spec_params, "fields": fields}


def _generated(cls: type, clsdict: dict[str, Any]) -> dict[str, Any] | None:
    """Take the generator-made members out of ``clsdict``; say how to make them again."""
    if "__dataclass_params__" in cls.__dict__:
        owned, spec = _DATACLASS_OWNED, _dataclass_spec(cls, clsdict)
        if clsdict.get("__hash__", False) is None:
            clsdict.pop("__hash__")  # eq without a hash: the generator sets it to None again
    elif issubclass(cls, tuple) and "_fields" in cls.__dict__:
        defaults = cls.__dict__.get("_field_defaults", {})
        owned = _NAMEDTUPLE_OWNED | set(cls._fields)  # type: ignore[attr-defined]
        spec = {"kind": "namedtuple", "fields": list(cls._fields),  # type: ignore[attr-defined]
                "defaults": [defaults[f] for f in cls._fields if f in defaults]}  # type: ignore[attr-defined]
    else:
        return None
    for name in owned & set(clsdict):
        if not _user_written(cls, clsdict[name]):
            del clsdict[name]
    return spec


_ENUM_MEMBER_OWN = {"_value_", "_name_", "__objclass__", "_sort_order_"}


def _enum_members(cls: Any) -> dict[str, Any] | None:
    """Attributes a member got from the class's ``__init__`` or ``__new__`` (``Planet.EARTH.mass``):
    the skeleton's members are made before any method exists there, so they travel as data."""
    state = {name: {k: v for k, v in vars(m).items() if k not in _ENUM_MEMBER_OWN}
             for name, m in cls.__members__.items() if m.name == name}
    state = {name: attrs for name, attrs in state.items() if attrs}
    return {"kind": "enum", "members": state} if state else None


def _in_definition_order(cls: type, clsdict: dict[str, Any]) -> dict[str, Any]:
    """cloudpickle sorts a class's dict (for stable bytes); ``vars(cls)`` keeps definition order."""
    order = {name: i for i, name in enumerate(cls.__dict__)}
    return dict(sorted(clsdict.items(), key=lambda item: order.get(item[0], len(order))))


def is_pytest_object(value: Any) -> bool:
    """pytest's own objects (a ``pytestmark`` list of marks, a fixture definition) are the
    host's test metadata: a target has no pytest, and the function never needs them."""
    if isinstance(value, (list, tuple)) and value:
        return all(is_pytest_object(item) for item in value)
    return (type(value).__module__ or "").partition(".")[0] in ("_pytest", "pytest")


def _reduce_class(cls: type, as_global: Any = lambda value: value) -> tuple[Any, ...]:
    """``as_global``: what a class attribute becomes (a lock made afresh, as the module's import makes it)."""
    builder, args, (clsdict, slotstate), _, _, _ = cp._dynamic_class_reduce(cls)
    clsdict = {k: as_global(v) for k, v in _in_definition_order(cls, clsdict).items() if not is_pytest_object(v)}
    if builder is cp._make_skeleton_enum:
        members = {name: member.value for name, member in cls.__members__.items()}  # type: ignore[attr-defined]
        for name in members:  # aliases too: setting one later would be "cannot reassign member"
            clsdict.pop(name, None)
        args = (*args[:3], members, *args[4:])
        generated: dict[str, Any] | None = _enum_members(cls)
    else:
        generated = _generated(cls, clsdict)
        if generated is None and isinstance(cls, typing_classes.PROTOCOL_META):
            generated = typing_classes.protocol_spec(cls, clsdict)
    if builder is cp._make_skeleton_class:
        metaclass, name, bases, type_kwargs, tracker, extra = args
        if generated is not None and generated["kind"] == "namedtuple":
            metaclass, bases = type, cls.__bases__  # __orig_bases__ names typing.NamedTuple, a function
        if "__slots__" in cls.__dict__:  # slots exist only if the class is created with them
            type_kwargs = dict(type_kwargs, __slots__=cls.__dict__["__slots__"])
        if "__del__" in cls.__dict__:  # PyPy calls a finalizer only if the class was created with one
            type_kwargs = dict(type_kwargs, __del__=rebuild.src_finalizer)
        # The class statement's __qualname__ (Outer.Inner), which type() keeps out of __dict__.
        type_kwargs = dict(type_kwargs, __qualname__=cls.__qualname__)
        args = (metaclass, name, bases, type_kwargs, tracker, extra)
    return builder, args, (clsdict, slotstate, generated), None, None, rebuild.src_class_setstate


def _reduce_module(module: types.ModuleType) -> Any:
    """By the name it is imported as: ``_collections_abc`` calls itself ``collections.abc`` from
    3.10 on, which on 3.9 is another module."""
    standin = standin_for_pytest_rewrite(module)
    if standin is not NotImplemented:
        return standin
    name = imported_as(module)
    if name != module.__name__:
        return cp.subimport, (name,)
    return cp._module_reduce(module)


def imported_as(module: types.ModuleType) -> str:
    """The name ``module`` is in ``sys.modules`` under, which its ``__name__`` need not be."""
    if sys.modules.get(module.__name__) is not module:
        for key, value in list(sys.modules.items()):
            if value is module:
                return key
    return module.__name__


def standin_for_pytest_rewrite(obj: Any) -> Any:
    if isinstance(obj, types.ModuleType) and obj.__name__ == "_pytest.assertion.rewrite":
        return assert_standin.pytest_rewrite_standin, ()
    return NotImplemented


# ----------------------------------------------------------------------------- the pickler


def flat_dispatch(*tables: Any) -> dict[type, Any]:
    """One exact dict of reducers, earlier tables winning, made per dump from the live tables
    (``copyreg.pickle`` may add one between dumps). The C pickler looks an exact dict up in C;
    a ChainMap costs a Python ``__getitem__`` and a caught KeyError per level, per object."""
    flat: dict[type, Any] = {}
    for table in reversed(tables):
        flat.update(table)
    return flat


class CapsulePickler(cloudpickle.Pickler):
    dispatch_table: Any = ChainMap(_DISPATCH, cloudpickle.Pickler.dispatch_table)

    def __init__(self, *args: Any, trial: bool = False, **kwargs: Any) -> None:
        """``trial``: a dump that only asks whether one global can travel alone (module_globals)."""
        self.dispatch_table = flat_dispatch(_DISPATCH, cloudpickle.Pickler._dispatch_table, copyreg.dispatch_table)
        super().__init__(*args, **kwargs)
        self._trial = trial
        self._namespaces: dict[int, _Namespace] = {}  # per module: the namespace the target makes
        self._fresh: dict[int, module_globals.Fresh] = {}  # per object made afresh there
        self._attribute_level: dict[int, Any] = {}  # module-global instances whose attributes may be
        self._module_wide: dict[int, dict[str, Any]] = {}
        self._wide_only: set[int] = set()  # functions and classes reached only by name (module_globals)

    def dump(self, obj: Any) -> None:
        try:
            super().dump(obj)
        except RecursionError:
            raise SourceUnavailable("the objects nest too deeply to pickle (a very long linked "
                                    "structure?); pass a flatter structure") from None

    def as_global(self, value: Any) -> Any:
        """What a module global (or a class attribute) travels as: a ``Fresh`` for what the module's
        import makes afresh; an instance holding such objects is remembered to be reduced with them."""
        fresh = self._fresh.get(id(value))
        if fresh is not None:
            return fresh
        spec = module_globals.fresh_spec(value)
        if spec is not None:
            kind, args, kwargs = spec
            fresh = module_globals.Fresh(value, kind, tuple(self.as_global(a) for a in args), kwargs)
            self._fresh[id(value)] = fresh
            return fresh
        if module_globals.plain_state_holder(value) and any(
                module_globals.fresh_spec(v) is not None for v in vars(value).values()):
            self._attribute_level[id(value)] = value
        return value

    def _reduce_attribute_level(self, obj: Any) -> Any:
        rv = obj.__reduce_ex__(self.proto)
        if isinstance(rv, tuple) and len(rv) > 2 and isinstance(rv[2], dict):
            return (*rv[:2], {k: self.as_global(v) for k, v in rv[2].items()}, *rv[3:])
        return rv

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is module_globals.Fresh:
            return rebuild.src_fresh, (obj.kind, obj.args, obj.kwargs)
        if kind is _Namespace:
            return rebuild.src_namespace, (obj.name, obj.base)
        if kind is module_globals.Optional:
            return rebuild.src_optional_import, (obj.module, obj.qualname)
        if self._attribute_level and self._attribute_level.get(id(obj)) is obj:
            return self._reduce_attribute_level(obj)
        if kind is threading.local:
            # Its contents belong to one host thread and could not be seen from another thread,
            # let alone another process: the target gets a fresh one, as a new thread would (seed 002).
            return threading.local, ()
        if isinstance(obj, type):
            if obj.__module__ != "builtins" and obj not in cp._BUILTIN_TYPE_NAMES and is_user_code(obj):
                if typing_classes.is_typeddict(obj):
                    return typing_classes.reduce_typeddict(obj)
                if id(obj) in self._wide_only:
                    for value in vars(obj).values():
                        self._wide(getattr(value, "__func__", value))
                return _reduce_class(obj, self.as_global)
            return super().reducer_override(obj)
        if kind is types.FunctionType:
            if _is_singledispatch(obj) and is_user_code(obj.__wrapped__):
                registry = [(k, v) for k, v in obj.registry.items() if k is not object]
                return rebuild.src_singledispatch, (obj.__wrapped__, registry)
            if is_user_code(obj):
                return self._dynamic_function_reduce(obj)
            return super().reducer_override(obj)
        if kind is functools._lru_cache_wrapper and is_user_code(obj.__wrapped__):
            params = obj.cache_parameters()
            return rebuild.src_lru_cache, (obj.__wrapped__, params["maxsize"], params["typed"])
        if kind is functools.partialmethod:  # its pickled form changed in 3.14
            return rebuild.src_partialmethod, (obj.func, obj.args, obj.keywords)
        if kind is functools.cached_property and is_user_code(obj.func):
            return rebuild.src_cached_property, (obj.func, obj.attrname)
        return NotImplemented

    def _dynamic_function_reduce(self, func: types.FunctionType) -> tuple[Any, ...]:
        code, base_globals, _, _, _ = self._function_getnewargs(func)
        state, slotstate = cp._function_getstate(func)
        state = {k: v for k, v in state.items() if not is_pytest_object(v)}
        # The function's own cells, not fresh ones filled from them: a cell that two functions
        # share (a nonlocal counter with inc and peek) stays one cell there (_reduce_cell).
        closure = func.__closure__
        slotstate["__closure__"] = None
        namespace = func.__globals__
        clean = clean_code(code, namespace)
        names = dict(global_names(func))
        by_annotation = module_globals.annotation_names(func)
        names.update(dict.fromkeys(by_annotation or ()))
        f_globals = {k: namespace[k] for k in names if k in namespace}
        if id(func) in self._wide_only:  # reached only by name: what it needs, only where it is there
            f_globals = {k: self._wide(v) for k, v in f_globals.items()}
        if not self._trial and (by_annotation is None or module_globals.looks_up_by_name(clean)):
            named_ids = {id(v) for v in f_globals.values()}
            extra = {k: v for k, v in self._module_wide_globals(namespace).items() if k not in f_globals}
            self._wide_only.update(id(v) for v in extra.values() if id(v) not in named_ids)
            f_globals.update(extra)  # after the named ones: what they reach is pickled as they need it
        f_globals = {k: self.as_global(v) for k, v in f_globals.items()}
        cells = list(map(cp._get_cell_contents, func.__closure__ or ()))
        slotstate["__globals__"] = f_globals
        slotstate["_cloudpickle_submodules"] = cp._find_imported_submodules(
            clean, itertools.chain(f_globals.values(), cells))
        named = isinstance(func.__module__, str) and _found_by_name(func)
        holder = self._namespaces.get(id(namespace))
        if holder is None:  # one per module and payload, as cloudpickle's base_globals
            holder = self._namespaces[id(namespace)] = _Namespace(namespace.get("__name__"), base_globals)
        return (cp._make_function, (code, holder, None, None, closure), (state, slotstate, named),
                None, None, rebuild.src_function_setstate)

    def _wide(self, value: Any) -> Any:
        """A global of a function reached only by name: a module becomes optional, and the
        functions and classes it reaches are reached only by name too (unless pickled already)."""
        if isinstance(value, types.ModuleType):
            return module_globals.Optional(value.__name__)
        if isinstance(value, (type, types.FunctionType)):
            self._wide_only.add(id(value))
        return value

    def _module_wide_globals(self, namespace: dict[str, Any]) -> dict[str, Any]:
        found = self._module_wide.get(id(namespace))
        if found is None:
            found = module_globals.module_wide(namespace, functools.partial(module_globals.dumps_alone, type(self)))
            self._module_wide[id(namespace)] = found
        return found


class _Namespace:
    """A function's module namespace in the capsule: on the target, the ``__dict__`` of a module
    object of the same name, registered in ``sys.modules`` while the call runs (``rebuild``)."""

    __slots__ = ("base", "name")

    def __init__(self, name: str | None, base: dict[str, Any]) -> None:
        self.name, self.base = name, base


def dumps_source(obj: Any, protocol: int = PICKLE_PROTOCOL, buffer_callback: Any = None) -> bytes:
    buf = io.BytesIO()
    CapsulePickler(buf, protocol=protocol, buffer_callback=buffer_callback).dump(obj)
    return buf.getvalue()


def function_source(func: types.FunctionType) -> str:
    """The text the capsule ships for ``func``'s code (for people: dedented)."""
    import textwrap

    text = textwrap.dedent(code_capsule(func.__code__, func.__globals__)["text"]).strip()
    return (text[1:-1] if func.__code__.co_name == "<lambda>" else text) + "\n"  # our parentheses
