"""Naming what went wrong: error records, the real cause of a load failure read from the
envelope, what a pickle stream refers to (read with ``pickletools``, never by loading), and where
JSON would change a value.

Both ends import this module: the host diagnoses its own loads of replies with it, and scans
payloads (``assert_portable``, the trust boundary) with the reader the agent uses.
"""

from __future__ import annotations

import json

from .envelope import IMPLEMENTATION, magic_number, python_name, python_version, this_python


def json_drift(obj, path):
    """Where ``obj`` would come out of JSON different from how it went in, else None.

    JSON silently turns tuples into lists and int keys into strings (seed 003); a round
    trip that changes a value must be reported, never passed as ``ok``.
    """
    kind = type(obj)
    if obj is None or kind in (bool, int, float, str):
        return None
    if kind is list:
        for i, item in enumerate(obj):
            found = json_drift(item, "%s[%d]" % (path, i))
            if found:
                return found
        return None
    if kind is dict:
        for key, item in obj.items():
            if type(key) is not str:
                return "%s has the key %r (%s), which JSON turns into the string %r" % (
                    path, key, type(key).__name__, json.dumps(key).strip('"'))
            found = json_drift(item, "%s[%r]" % (path, key))
            if found:
                return found
        return None
    if kind is tuple:
        return "%s is a tuple and would arrive as a list (JSON has no tuples)" % path
    for base in (bool, int, float, str, list, dict):
        if isinstance(obj, base):
            return "%s is a %s and would arrive as a plain %s" % (path, kind.__name__, base.__name__)
    return "%s is a %s.%s, which JSON cannot carry" % (path, kind.__module__, kind.__qualname__)


def missing_module_of(exc: BaseException | None) -> str | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return exc.name
        exc = exc.__cause__ or exc.__context__
    return None


def diagnose_load(header: dict, exc: BaseException, payload=None) -> str | None:
    """Name the real cause of a load failure from the envelope, not the symptom."""
    env = header.get("envelope", {})
    missing = missing_module_of(exc) or ""
    stdlib = stdlib_difference(env, exc, payload)
    if stdlib:
        return stdlib
    theirs = env.get("numpy")
    if theirs and (missing == "numpy" or missing.startswith("numpy.")):
        ours = _try_numpy_version()
        if not ours:
            return "payload holds numpy %s objects but numpy is not installed here" % theirs
        if theirs.split(".")[0] != ours.split(".")[0]:
            return ("array pickled by numpy %s cannot be loaded by numpy %s here (module %r "
                    "does not exist in numpy %s); send plain lists or match numpy versions"
                    % (theirs, ours, missing, ours.split(".")[0]))
    if missing or header.get("serializer") in BYTECODE_FREE:
        return None
    other = _other_library_version(header)
    if other and isinstance(exc, (AttributeError, ImportError, TypeError)):
        return ("payload written by %s %s on the host, loaded by %s %s here (the target's own): the "
                "versions differ; install the host's version on the target, or use serializer='source' "
                "(loaded with the plugin's own copy of the host's cloudpickle)" % other)
    # A downstream serializer's payload was scanned before its loader ran: it held no code of
    # another Python, so the version is not the cause.
    if header.get("loads"):
        return None
    mismatch = bytecode_mismatch(env)
    if mismatch is None:
        return None
    return ("%s: the payload was written by %s (bytecode magic %s) and cannot be loaded by %s (magic %s): "
            "%s; use serializer='source'" % (mismatch, _sender(env), env.get("magic"), this_python(),
                                             magic_number(), _not_portable(env)))


class MissingHere(AttributeError):
    """A standard library class the sender's Python has and this one lacks (``calendar.Day``
    came in 3.12): raised by the loader instead of a refusal that would send the user to trust
    settings for a class that simply does not exist here."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__("module %r has no attribute %r" % (module, name))
        self.module, self.attr = module, name


_NEVER_IMPORT = {"antigravity", "this", "turtle", "turtledemo", "idlelib", "tkinter", "__main__"}


def missing_here(module: str, name: str, may_import: bool = True):
    """``MissingHere`` when ``module`` is of this Python's standard library and has no ``name``
    (its first part), else None. Imports only standard modules, never one with effects (no
    ``__main__`` at any level); with ``may_import`` false (a reply from an untrusted target) it
    imports nothing: a module not yet imported is read with ``ast`` from its source instead."""
    import importlib
    import sys

    top = module.partition(".")[0]
    if top in _NEVER_IMPORT or "__main__" in module.split(".") \
            or top not in getattr(sys, "stdlib_module_names", ()):
        return None
    attr = name.partition(".")[0]
    mod = sys.modules.get(module)
    if mod is not None:
        return None if hasattr(mod, attr) else MissingHere(module, name)
    if not may_import:
        names = _top_level_names(module)
        return None if names is None or attr in names else MissingHere(module, name)
    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    return None if hasattr(mod, attr) else MissingHere(module, name)


def _top_level_names(module: str):
    """The names a top-level pure-Python module defines, read from its source without running
    it; None where that cannot be known (a package's submodule, C code, star imports, a module
    ``__getattr__``)."""
    import ast
    import importlib.util

    if "." in module:
        return None  # finding a submodule imports its package
    try:
        spec = importlib.util.find_spec(module)
        path = spec.origin if spec is not None else None
        if not path or not path.endswith(".py"):
            return None
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read())
    except Exception:
        return None
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.partition(".")[0])
    return None if "__getattr__" in names else names


def stdlib_difference(env: dict, exc: BaseException, payload=None) -> str | None:
    """The standard library of the two Pythons differs for what the stream holds: a class new
    in the sender's, or (3.14+) an itertools iterator, whose pickling 3.14 removed."""
    import sys

    sender = _sender(env)
    if isinstance(exc, MissingHere):
        return ("%s.%s is a class of %s's standard library that %s does not have (it is newer): the "
                "host's Python has no such class to rebuild it as; return a value both have (for an "
                "enum its .value or .name, for others a plain type)" % (exc.module, exc.attr, sender,
                                                                        this_python()))
    if sys.version_info >= (3, 14) and "state is not a dictionary" in str(exc):
        try:
            held = [name for module, name in pickle_globals(payload)[0] if module == "itertools"] \
                if payload else []
        except Exception:  # not a pickle stream: judged by the message alone
            held, payload = [], None
        if payload is None or held:
            what = "itertools.%s" % held[0] if held else "an itertools iterator"
            return ("%s cannot be unpickled on %s: Python 3.14 removed the pickling of itertools "
                    "iterators (count, cycle, chain, islice, ...), which %s still wrote; make the "
                    "iterator inside the function, or pass list(...) of its items" % (
                        what, this_python(), sender))
    return None


def _other_library_version(header: dict):
    """(library, host's version, library, version here) when the serializer's library here is
    another version than the one that dumped (a worker's own, ``serializers = "image"``)."""
    import sys

    library = header.get("serializer", "").partition("-")[0]
    theirs = header.get("envelope", {}).get("serializer_version")
    if header.get("loads") or library not in ("cloudpickle", "dill") or not theirs:
        return None
    ours = getattr(sys.modules.get(library), "__version__", None)
    if not ours or ours == theirs:
        return None
    return (library, theirs, library, ours)


# Serializers whose payload may hold code objects, i.e. bytecode for one minor version of one
# implementation; and those that never carry any, whose failures never have a bytecode cause.
CODE_SERIALIZERS = ("cloudpickle", "cloudpickle-by-value", "dill", "dill-recurse")
BYTECODE_FREE = ("source", "json", "pickle")


def bytecode_mismatch(env: dict) -> str | None:
    """"CPython 3.11 bytecode on PyPy 3.11" when the sender's bytecode is not this Python's
    (another magic number), else None."""
    if env.get("magic") in (None, magic_number()):
        return None
    theirs = python_name(env.get("implementation"), env.get("python"), minor=True)
    return "%s bytecode on %s" % (theirs, this_python(minor=True))


def _sender(env: dict) -> str:
    return python_name(env.get("implementation"), env.get("python") or "of an unknown version")


def _not_portable(env: dict) -> str:
    if env.get("implementation") not in (None, IMPLEMENTATION):
        return "code objects are not portable across implementations"
    return "code objects are not portable across minor versions"
_CODE_BUILDERS = {("dill._dill", "_create_code"), ("types", "CodeType"), ("builtins", "code")}


def pickle_globals(data) -> tuple:
    """The ``(module, name)`` globals a pickle stream refers to, and the strings it holds.

    Read with pickletools, never by loading: GLOBAL carries both names, STACK_GLOBAL takes
    the last two values pushed (strings, or memo gets of strings).
    """
    import pickletools

    found: list = []
    strings: set = set()
    memo: dict = {}
    pushes: list = []
    arg: object
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            found.append((module, attr))
            pushes.append(None)
        elif name == "STACK_GLOBAL":
            if len(pushes) >= 2 and isinstance(pushes[-2], str) and isinstance(pushes[-1], str):
                found.append((pushes[-2], pushes[-1]))
            pushes.append(None)
        elif name == "MEMOIZE":
            memo[len(memo)] = pushes[-1] if pushes else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = pushes[-1] if pushes else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            pushes.append(memo.get(arg))
        elif isinstance(arg, str) and ("UNICODE" in name or "STRING" in name):
            strings.add(arg)
            pushes.append(arg)
        else:
            pushes.append(None)
        del pushes[:-2]
    return found, strings


def carries_code(data, depth: int = 0) -> bool:
    """Does this pickle stream build code objects (cloudpickle's or dill's way)? Also a copy
    of cloudpickle vendored under another package (``joblib.externals.cloudpickle``, ...), and
    a pickle held as bytes inside this one, as a wrapper that pickles its function separately
    ships it (loky's ``wrap_non_picklable_objects``)."""
    found, strings = pickle_globals(data)
    for module, name in found:
        if (module, name) in _CODE_BUILDERS or (name == "_builtin_type" and "cloudpickle" in module
                                                 and "CodeType" in strings):
            return True
    return depth < 3 and any(pickle_carries_code(inner, depth + 1) for inner in _held_pickles(data))


def _held_pickles(data) -> list:
    import pickletools

    return [arg for op, arg, _ in pickletools.genops(data)
            if op.name in ("SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8")
            and isinstance(arg, (bytes, bytearray)) and arg[:1] == b"\x80"]


def pickle_carries_code(data, depth: int = 0) -> bool:
    """``carries_code`` for bytes that may not be a pickle stream at all (a framework's own
    format): False unless they read as one, to its STOP."""
    if not data or bytes(data[:1]) != b"\x80":  # PROTO: every pickle of protocol 2 or later starts so
        return False
    try:
        return carries_code(data, depth)
    except Exception:  # not a pickle stream after all
        return False


def foreign_bytecode(header: dict, payload) -> str | None:
    """Why a payload must not be loaded here: its code objects are another Python's bytecode.

    Measured: 3.11 code run by 3.9 raises ``SystemError: unknown opcode``, by 3.13 it
    segfaults or calls the wrong thing; PyPy's bytecode is not CPython's at all. None of that is
    the function's own behaviour. Read with pickletools, before anything is built from it.
    """
    env = header.get("envelope", {})
    downstream = bool(header.get("loads"))  # a framework's own bytes: scanned where they are a pickle
    if env.get("magic") in (None, magic_number()) or not (downstream or header.get("serializer") in CODE_SERIALIZERS):
        return None
    if not (pickle_carries_code(payload) if downstream else carries_code(payload)):
        return None
    return ("%s: the payload holds code objects written by %s (bytecode magic %s), which %s (magic %s) "
            "cannot run: %s; use serializer='source'" % (bytecode_mismatch(env), _sender(env), env.get("magic"),
                                                        this_python(), magic_number(), _not_portable(env)))


def _try_numpy_version() -> str | None:
    try:
        import numpy
    except Exception:
        return None
    return getattr(numpy, "__version__", None)


def error_info(exc: BaseException, phase: str) -> dict:
    info = {
        "phase": phase,
        "type": "%s.%s" % (type(exc).__module__, type(exc).__qualname__),
        "message": safe_str(exc),
        "traceback": format_exception(exc),
        "python": python_version(),
        "implementation": IMPLEMENTATION,
    }
    module = missing_module_of(exc)
    if module:
        info["module"] = module
    return info


def format_exception(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def print_exc() -> None:
    import traceback

    traceback.print_exc()


def safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<unprintable %s>" % type(exc).__name__
