"""The source capsule: user functions and classes travel as source, everything else as data.

Code objects are not portable across minor versions, source is. This is a pickle stream
(plain protocol 5, loadable by any Python >= 3.9) in which every function or class that a
target could not import by name is reduced to its source plus the globals, closure cells
and defaults it really uses; the agent compiles it there. Pickle's memo gives recursion
and shared references for free, as cloudpickle does with code objects.
"""

from __future__ import annotations

import ast
import builtins
import copy
import io
import linecache
import os
import pickle
import site
import sys
import sysconfig
import textwrap
import threading
import types
from functools import lru_cache
from typing import Any

from ..remote import agent

NO_SOURCE_HINT = (
    "define it in a file (or a notebook cell), keep the REPL's source in linecache, or use "
    "serializer='cloudpickle' for targets with the host's Python version"
)


class SourceUnavailable(ValueError):
    """No source exists for a function the capsule must ship; the message says how to fix it."""


@lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    roots.add(site.getusersitepackages())
    return tuple(os.path.realpath(r) + os.sep for r in roots)


def needs_source(obj: Any) -> bool:
    """Would a target fail to import this by name? Then it must travel as source."""
    qualname = getattr(obj, "__qualname__", "")
    if "<locals>" in qualname or "<lambda>" in qualname:
        return True
    name = getattr(obj, "__module__", None)
    if name == agent.HOST_MODULE:  # the capsule's own rebuild functions: by name, always
        return False
    module = sys.modules.get(name or "")
    if module is None or name == "__main__":
        return True
    if not _found_by_name(obj, module, qualname):
        return True  # e.g. a functools.wraps wrapper made at run time: its name points elsewhere
    file = getattr(module, "__file__", None)
    if not file:
        return name not in sys.builtin_module_names and not str(name).startswith("_")
    real = os.path.realpath(file)
    return not real.startswith(_installed_roots())


def _found_by_name(obj: Any, module: types.ModuleType, qualname: str) -> bool:
    try:
        return agent.lookup_qualname(module, qualname) is obj
    except AttributeError:
        return False


# ----------------------------------------------------------------------------- finding source


def _source_trees(filename: str, module_globals: dict[str, Any] | None) -> list[ast.Module]:
    """Where the object's source may be, best first: its file or REPL cell (linecache holds
    files, IPython's ``<ipython-input-…>`` and 3.13's ``<python-input-N>``), then the
    statements in readline's history, newest first (the classic ``<stdin>`` REPL)."""
    lines = linecache.getlines(filename, module_globals)
    if lines:
        text = "".join(lines)
        try:
            return [ast.parse(text)]
        except SyntaxError:  # a cell with magics: parse what we can around the object
            return [ast.parse(textwrap.dedent(text))]
    return _history_trees()


def _no_source(what: str, filename: str) -> SourceUnavailable:
    return SourceUnavailable(f"no source exists for {what}: {filename!r} is not a file, and neither "
                             f"linecache nor readline history holds it; {NO_SOURCE_HINT}")


_CONTINUATION = ("else", "elif", "except", "finally", ")", "]", "}")


def _history_trees() -> list[ast.Module]:
    """Each statement typed at a readline REPL, parsed, newest first; unparsable ones skipped."""
    readline = sys.modules.get("readline")  # imported by the REPL itself; never import it here
    if readline is None:
        return []
    lines = [readline.get_history_item(i) or "" for i in range(1, readline.get_current_history_length() + 1)]
    starts = [i for i, line in enumerate(lines)
              if line[:1] not in ("", " ", "\t") and not line.startswith(_CONTINUATION)
              and not (i and lines[i - 1].startswith("@"))]
    trees = []
    for k in reversed(range(len(starts))):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        try:
            trees.append(ast.parse("\n".join(lines[starts[k]:end]) + "\n"))
        except SyntaxError:
            continue
    return trees


def _code_columns(code: types.CodeType) -> set[int]:
    cols = set()
    for pos in getattr(code, "co_positions", lambda: [])():
        if pos[0] == code.co_firstlineno and pos[2] is not None:
            cols.add(pos[2])
    return cols


def find_function_node(func: types.FunctionType) -> ast.AST:
    code = func.__code__
    trees = _source_trees(code.co_filename, func.__globals__)
    for tree in trees:
        candidates = _function_nodes(tree, code)
        if candidates:
            return candidates[0]
    if not linecache.getlines(code.co_filename, func.__globals__):
        raise _no_source(func.__qualname__, code.co_filename)
    raise SourceUnavailable(f"the source of {func.__qualname__} could not be located in "
                            f"{code.co_filename!r} at line {code.co_firstlineno} (was the file changed "
                            f"since it was imported?)")


def _function_nodes(tree: ast.Module, code: types.CodeType) -> list[Any]:
    first = code.co_firstlineno
    candidates: list[Any]
    if code.co_name == "<lambda>":
        candidates = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda) and n.lineno == first]
        if len(candidates) > 1:
            cols = _code_columns(code)
            exact = [n for n in candidates
                     if any(n.body.col_offset <= c < (n.body.end_col_offset or 10**9) for c in cols)]
            # The innermost lambda whose body holds the code's first instruction.
            candidates = sorted(exact, key=lambda n: n.body.col_offset, reverse=True)[:1] or candidates
        if len(candidates) > 1:
            argnames = list(code.co_varnames[: code.co_argcount])
            candidates = [n for n in candidates if [a.arg for a in n.args.args] == argnames] or candidates
    else:
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
        candidates = [n for n in ast.walk(tree) if isinstance(n, kinds) and n.name == code.co_name
                      and first in {n.lineno, *(d.lineno for d in n.decorator_list)}]
    return candidates


def function_source(func: types.FunctionType) -> str:
    """Source that re-creates ``func`` itself: decorators (already applied) and default and
    annotation expressions (re-evaluated there) are stripped; values travel as data."""
    node = copy.deepcopy(find_function_node(func))
    if isinstance(node, ast.Lambda):
        node.args = _neutral_args(node.args)
        return f"{agent.LAMBDA_NAME} = {ast.unparse(node)}\n"
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    node.decorator_list = []
    node.returns = None
    node.args = _neutral_args(node.args)
    return ast.unparse(node) + "\n"


def _neutral_args(args: ast.arguments) -> ast.arguments:
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            arg.annotation = None
    args.defaults = [ast.Constant(None) for _ in args.defaults]
    args.kw_defaults = [None if d is None else ast.Constant(None) for d in args.kw_defaults]
    return args


def class_source(cls: type, filename: str, namespace: dict[str, Any] | None) -> str:
    first = _class_line(cls)
    nodes = [n for tree in _source_trees(filename, namespace) for n in ast.walk(tree)
             if isinstance(n, ast.ClassDef) and n.name == cls.__name__
             and (first is None or first in {n.lineno, *(d.lineno for d in n.decorator_list)})]
    if not nodes:
        raise _no_source(f"class {cls.__qualname__}", filename)
    return ast.unparse(nodes[0]) + "\n"


def _class_file(cls: type) -> str:
    for value in vars(cls).values():
        func = getattr(value, "__func__", value)
        if isinstance(func, types.FunctionType):
            return func.__code__.co_filename
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if not file:
        raise SourceUnavailable(f"class {cls.__qualname__} has no methods and no source file; "
                                f"{NO_SOURCE_HINT}")
    return str(file)


def _class_line(cls: type) -> int | None:
    return getattr(cls, "__firstlineno__", None)  # 3.13+; older: match by name only


# ----------------------------------------------------------------------------- what goes along


def used_names(code: types.CodeType) -> set[str]:
    """Global names the code (and every nested code object) may load."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= used_names(const)
    return names


def _globals_for(names: set[str], namespace: dict[str, Any], skip: str | None = None) -> dict[str, Any]:
    out = {}
    for name in sorted(names):
        if name == skip or name not in namespace:
            continue
        if name in vars(builtins) and namespace[name] is vars(builtins)[name]:
            continue
        if name.startswith("__") and name.endswith("__"):
            continue
        out[name] = namespace[name]
    return out


def _class_names(cls: type, source: str) -> set[str]:
    names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
    for value in vars(cls).values():
        func = getattr(value, "__func__", value)
        if isinstance(func, types.FunctionType):
            names |= used_names(func.__code__)
    return names


# ----------------------------------------------------------------------------- the pickler


class CapsulePickler(pickle.Pickler):
    def dump(self, obj: Any) -> None:
        try:
            super().dump(obj)
        except RecursionError:
            raise SourceUnavailable("the objects refer to each other in a cycle the source capsule "
                                    "cannot rebuild; ship them by value with serializer='cloudpickle'") from None

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is threading.local:
            # Its contents belong to one host thread and could not be seen from another thread,
            # let alone another process: the target gets a fresh one, as a new thread would.
            return threading.local, ()
        if isinstance(obj, types.ModuleType):
            return agent.src_import, (obj.__name__,)
        if isinstance(obj, types.FunctionType) and needs_source(obj):
            return self._reduce_function(obj)
        if isinstance(obj, type) and needs_source(obj) and obj.__module__ != "builtins":
            return self._reduce_class(obj)
        return NotImplemented

    def _reduce_function(self, func: types.FunctionType) -> tuple[Any, ...]:
        code = func.__code__
        skeleton = {
            "source": function_source(func), "name": code.co_name, "module": func.__module__,
            "filename": code.co_filename, "freevars": list(code.co_freevars),
        }
        cells = {}
        for name, cell in zip(code.co_freevars, func.__closure__ or ()):
            try:
                cells[name] = cell.cell_contents
            except ValueError:  # an empty cell (recursion not yet bound)
                continue
        state = {
            "globals": _globals_for(used_names(code), func.__globals__),
            "closure": cells, "defaults": func.__defaults__, "kwdefaults": func.__kwdefaults__,
            "name": func.__name__, "qualname": func.__qualname__, "doc": func.__doc__,
            "dict": dict(func.__dict__),
        }
        return agent.src_function, (skeleton,), state, None, None, agent.src_fill_function

    def _reduce_class(self, cls: type) -> tuple[Any, ...]:
        module = sys.modules.get(cls.__module__)
        namespace = vars(module) if module is not None else {}
        filename = _class_file(cls)
        source = class_source(cls, filename, namespace)
        capsule = {
            "source": source, "name": cls.__name__, "qualname": cls.__qualname__,
            "module": cls.__module__, "filename": filename,
            "globals": _globals_for(_class_names(cls, source), namespace, skip=cls.__name__),
        }
        return agent.src_class, (capsule,)


def dumps_source(obj: Any, protocol: int = agent.PICKLE_PROTOCOL, buffer_callback: Any = None) -> bytes:
    buf = io.BytesIO()
    CapsulePickler(buf, protocol=protocol, buffer_callback=buffer_callback).dump(obj)
    return buf.getvalue()
