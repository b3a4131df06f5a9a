"""Rebuilding what a source capsule carries, on the target: each code object compiled from its
statement's text by this Python, functions and classes given the state cloudpickle carried, and
what a library generated from no file (dataclass and namedtuple methods, ``lru_cache``,
``cached_property``, ``singledispatch``, ``X | Y``) made again here by the same generator.

The host's ``CapsulePickler`` is cloudpickle's own Pickler with one change: each code object is
reduced to ``src_code(capsule)``, the exact text of the statement that made it. Everything else
(globals, cells, defaults, class skeletons, enum members, data) is cloudpickle's own data, loaded
with the host's cloudpickle, which the target has under a private name (``own_cloudpickle``).
Only code is bound to a version.

Both ends import this module: a capsule names these functions (``PAYLOAD_API``), and the host
compiles capsules with the same ``compile_capsule`` to check them.
"""

from __future__ import annotations

import os
import sys

from .envelope import python_version

# What the host calls this package. Payloads name its functions so; a target, which has the
# package under another name (see host/bundle.py), maps them to its own (payloads.HostNames).
HOST_PACKAGE = "pytest_remote_serial.remote"

# Classes and functions rebuilt here from host source, by id: on the way back they travel
# as references to the host's own objects (a class made here from 3.9 source must come
# back as the host's class, not as 3.9 bytecode the host cannot load).
_FROM_HOST: dict = {}


def _remember_host_object(obj, module, qualname):
    if "<locals>" not in qualname and "<lambda>" not in qualname:
        _FROM_HOST[id(obj)] = (obj, module, qualname)


def compile_capsule(capsule, remember_lines=True):
    """The code object of one ``def`` or ``lambda``, compiled from its statement's text without
    running it: decorators and default expressions live in the surrounding code, so they are
    never evaluated again (their values travel as data). Free variables become parameters of
    a synthetic outer function, ``__class__`` a synthetic class, so the cells line up."""
    import __future__

    import ast

    text = capsule["text"]
    indented = text[:1] in (" ", "\t")
    shift = capsule["line"] - (2 if indented else 1)
    try:
        tree = ast.parse("if 1:\n" + text if indented else text, capsule["filename"])
    except SyntaxError as exc:
        if exc.lineno:
            exc.lineno += shift
        raise
    stmt = tree.body[0].body[0] if indented else tree.body[0]
    ast.increment_lineno(stmt, shift)
    body = [stmt]
    freevars = list(capsule["freevars"])
    if "__class__" in freevars:
        holder = ast.parse("class __prs_class__:\n    pass").body[0]
        holder.body = body
        body = [holder]
    params = [name for name in freevars if name != "__class__"]
    if params:
        outer = ast.parse("def __prs_outer__(%s):\n    pass" % ", ".join(params)).body[0]
        outer.body = body
        body = [outer]
    flags = 0
    for name in capsule["futures"]:
        feature = getattr(__future__, name, None)
        flags |= feature.compiler_flag if feature is not None else 0
    module = ast.Module(body=body, type_ignores=[])
    code = _find_code(compile(module, capsule["filename"], "exec", flags=flags, dont_inherit=True),
                      capsule["name"], capsule["firstlineno"])
    if code is None or list(code.co_freevars) != freevars:
        raise ValueError("the source of %s at %s line %d compiled into %s on Python %s, not a code "
                         "object with free variables %s" % (
                             capsule["name"], capsule["filename"], capsule["firstlineno"],
                             "nothing of that name" if code is None else "free variables %s" % (code.co_freevars,),
                             python_version(), tuple(freevars)))
    if remember_lines:
        _remember_lines(capsule)
    return code


def _find_code(code, name, firstlineno):
    """The first code object of that name and line, depth first: the statement's own."""
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            if const.co_name == name and const.co_firstlineno == firstlineno:
                return const
            found = _find_code(const, name, firstlineno)
            if found is not None:
                return found
    return None


def _remember_lines(capsule):
    """Tracebacks here show the user's own lines, at their own line numbers."""
    import linecache

    filename = capsule["filename"]
    if os.path.exists(filename):
        return
    entry = linecache.cache.get(filename)
    lines = list(entry[2]) if entry is not None and entry[1] is None else []
    text = capsule["text"].splitlines(True)
    start = capsule["line"] - 1
    lines += ["\n"] * max(0, start + len(text) - len(lines))
    lines[start:start + len(text)] = text
    linecache.cache[filename] = (sum(len(x) for x in lines), None, lines, filename)


def src_code(capsule):
    return compile_capsule(capsule)


def src_cell():
    """An empty cell, filled by ``src_cell_setstate`` once memoized (``types.CellType()`` is 3.8+
    CPython only)."""
    if False:  # a free variable never bound: its cell stays empty
        cell = None
    return (lambda: cell).__closure__[0]  # noqa: F821


def src_cell_setstate(cell, state):
    cell.cell_contents = state[0]


def src_function_setstate(func, state):
    """``named``: the host finds this function by module and qualname, so it may go back by name."""
    from .own_cloudpickle import cloudpickle

    cp = cloudpickle()

    state, slotstate, named = state
    if _ABSENT in slotstate["__globals__"].values():
        slotstate["__globals__"] = {k: v for k, v in slotstate["__globals__"].items() if v is not _ABSENT}
    cp._function_setstate(func, (state, slotstate))
    if named:
        _remember_host_object(func, func.__module__, func.__qualname__)


def src_class_setstate(cls, state):
    from .own_cloudpickle import cloudpickle

    cp = cloudpickle()

    clsdict, slotstate, generated = state
    cp._class_setstate(cls, (clsdict, slotstate))
    if generated:
        _REGENERATE[generated["kind"]](cls, generated)
    return cls  # it goes back by cloudpickle's tracker id (_host_ref): its __qualname__ is not restored


def src_finalizer(self):
    """A rebuilt class's ``__del__`` until its own is set from the class's state. It must be in
    the namespace the class is created with: PyPy never calls a ``__del__`` added to a class after
    its creation (it warns "a __del__ method added to an existing type will not be called"), and
    setting the class's own in place of this one is then honoured there as on CPython."""
    return None


class _ModuleFor:
    """Library generators look classes' modules up in sys.modules (dataclasses does, for string
    annotations); the user's module does not exist here, so stand one in while they run."""

    def __init__(self, cls):
        self.name = cls.__module__
        self.added = self.name not in sys.modules

    def __enter__(self):
        if self.added:
            import types

            sys.modules[self.name] = types.ModuleType(self.name)

    def __exit__(self, *exc):
        if self.added:
            sys.modules.pop(self.name, None)


def _regenerate_dataclass(cls, spec):
    """The host's dataclass methods were made by exec() from no file: make them again here, by
    this Python's dataclasses, with the same parameters and fields."""
    import dataclasses
    import inspect

    def accepted(func, options, what):
        known = inspect.signature(func).parameters
        for key, value in options.items():
            if key not in known and value:
                raise TypeError("%s uses %s=%r, which Python %s's dataclasses does not support"
                                % (what, key, value, python_version()))
        return {k: v for k, v in options.items() if k in known}

    slots = {name: cls.__dict__[name] for name in spec["fields"] if name in cls.__dict__}
    for name, options in spec["fields"].items():
        setattr(cls, name, dataclasses.field(**accepted(dataclasses.field, options, "field %r of %s" % (
            name, cls.__qualname__))))
    with _ModuleFor(cls):
        dataclasses.dataclass(cls, **accepted(dataclasses.dataclass, spec["params"], cls.__qualname__))
    for name, descriptor in slots.items():  # slot descriptors, not class-level defaults
        setattr(cls, name, descriptor)


def _regenerate_namedtuple(cls, spec):
    """A namedtuple's ``__new__`` is made by eval(): take this Python's, from the same call."""
    import collections

    # rename=True: fields a rename=True namedtuple renamed (``_1``) are refused otherwise; the
    # names are the class's own, so nothing is renamed again.
    template = collections.namedtuple(cls.__name__, spec["fields"], defaults=spec["defaults"],
                                      module=cls.__module__, rename=True)
    for name, value in vars(template).items():
        if name not in cls.__dict__ and name not in ("__doc__", "__module__", "__dict__", "__weakref__"):
            setattr(cls, name, value)


def _regenerate_enum_members(cls, spec):
    for name, attrs in spec["members"].items():
        vars(cls[name]).update(attrs)


def _regenerate_protocol(cls, spec):
    """What this Python's typing computes for a Protocol from its members (3.12+: the member
    names at creation, and ``runtime_checkable``'s non-method members), computed again now
    that they are set."""
    import typing

    type(typing.Protocol).__init__(cls, cls.__name__, cls.__bases__, {})
    if spec["runtime"]:
        typing.runtime_checkable(cls)


_REGENERATE = {"dataclass": _regenerate_dataclass, "namedtuple": _regenerate_namedtuple,
               "enum": _regenerate_enum_members, "protocol": _regenerate_protocol}


def src_typeddict(name, bases, namespace, kwargs, keys, tracker_id):
    """A TypedDict's class statement run again by this Python's typing; the required and
    optional keys are the host's (where this Python has such a set)."""
    import types

    from .own_cloudpickle import cloudpickle

    cls = types.new_class(name, bases, kwargs, lambda ns: ns.update(namespace))
    for key, value in keys.items():
        if key in cls.__dict__:
            setattr(cls, key, value)
    return cloudpickle()._lookup_class_or_track(tracker_id, cls)


def src_lru_cache(func, maxsize, typed):
    import functools

    return functools.lru_cache(maxsize=maxsize, typed=typed)(func)


def src_cached_property(func, attrname):
    import functools

    prop = functools.cached_property(func)
    prop.attrname = attrname  # __set_name__ ran on the host, not here
    return prop


def src_partialmethod(func, args, keywords):
    import functools

    return functools.partialmethod(func, *args, **keywords)


def src_singledispatch(func, registry):
    import functools

    dispatcher = functools.singledispatch(func)
    for cls, impl in registry:
        dispatcher.register(cls, impl)
    return dispatcher


def src_union(args):
    import functools
    import operator

    try:
        return functools.reduce(operator.or_, args)
    except TypeError:
        raise TypeError("Python %s cannot build the union %s (X | Y between types needs Python 3.10): "
                        "add 'from __future__ import annotations' to the module, or write "
                        "typing.Optional / typing.Union" % (python_version(), " | ".join(map(repr, args))))


_ABSENT = ("a module global this Python cannot import",)


def src_optional_import(module, qualname):
    """A module (or an installed module's function or class) the code reaches only by name
    (``globals()``, ``eval``): left out where this target lacks it, as a name the code may
    never look up must not fail the load."""
    import importlib

    try:
        found = importlib.import_module(module)
        for part in (qualname or "").split(".") if qualname else ():
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return _ABSENT
    return found


def src_fresh(kind, args, kwargs):
    """A module global a worker importing the module makes afresh (a lock unlocked, a ``Struct``
    of the same format, a ``ContextVar`` of the same name and default, an empty weak cache)."""
    import contextvars
    import struct
    import threading
    import weakref

    makers = {"Lock": threading.Lock, "RLock": threading.RLock, "Event": threading.Event,
              "Condition": threading.Condition, "Semaphore": threading.Semaphore,
              "BoundedSemaphore": threading.BoundedSemaphore, "Struct": struct.Struct,
              "ContextVar": contextvars.ContextVar, "WeakValueDictionary": weakref.WeakValueDictionary,
              "WeakKeyDictionary": weakref.WeakKeyDictionary, "WeakSet": weakref.WeakSet}
    return makers[kind](*args, **kwargs)


# The modules the payload being loaded shipped namespaces of (src_namespace), for shipped.py.
_SHIPPED: list = []


def src_namespace(name, base):
    """A shipped function's globals: the ``__dict__`` of a module object of its module's name,
    so that ``sys.modules[__name__]`` and pickling the module's own classes find it during the call."""
    import types

    module = types.ModuleType(name if isinstance(name, str) else "__prs_shipped__")
    namespace = module.__dict__
    namespace.update(base)
    if isinstance(name, str):
        _SHIPPED.append(module)
    return namespace


# What a payload may name in this module (see payloads.HostNames); nothing else of the agent.
PAYLOAD_API = frozenset(("src_code", "src_cell", "src_cell_setstate", "src_function_setstate",
                         "src_class_setstate", "src_lru_cache",
                         "src_cached_property", "src_partialmethod", "src_singledispatch", "src_union",
                         "src_finalizer", "src_typeddict", "src_fresh", "src_namespace",
                         "src_optional_import"))
