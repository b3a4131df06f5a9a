"""The trust boundary: what the host agrees to rebuild from a target's bytes (docs/architecture.md,
"The trust boundary").

A pickle is a program: every global it names is called with arguments the sender chose.
A target runs code the host does not control (its image, its site-packages, the call
itself, which can rewrite the agent's reply path), so whatever bytes arrive, the host
loads only globals that rebuild data: builtin and standard data types, the array
libraries' reconstructors, exceptions, and the classes of the modules the host itself
sent or owns. ``trusted = true`` in the matrix lifts the restriction for a target.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import pickle
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..remote.buffers import DeviceCopies
from ..remote.diagnosis import missing_here
from ..remote.protocol import PROTOCOL
from .replies import ResultUnpickler, load_result, lookup_qualname

# Builtins that only make data (never eval, exec, getattr, open, __import__, compile, ...).
_BUILTIN_DATA = {
    "bool", "int", "float", "complex", "str", "bytes", "bytearray", "list", "tuple", "dict", "set",
    "frozenset", "range", "slice", "object", "type", "Ellipsis", "NotImplemented", "memoryview",
}
# Standard-library globals that plain pickle emits for data types, by module.
_STDLIB_DATA = {
    "collections": {"OrderedDict", "defaultdict", "deque", "Counter", "ChainMap"},
    "datetime": {"date", "time", "datetime", "timedelta", "timezone", "tzinfo"},
    "decimal": {"Decimal"},
    "fractions": {"Fraction"},
    "uuid": {"UUID", "SafeUUID"},
    "pathlib": {"PurePath", "PurePosixPath", "PureWindowsPath", "Path", "PosixPath", "WindowsPath"},
    "ipaddress": {"IPv4Address", "IPv6Address", "IPv4Network", "IPv6Network", "IPv4Interface",
                  "IPv6Interface"},
    "array": {"array", "_array_reconstructor"},
    "re": {"_compile"},
    "types": {"SimpleNamespace"},
    "copyreg": {"_reconstructor", "__newobj__", "__newobj_ex__"},
    "_codecs": {"encode"},
}
# The array libraries: their reconstructors by name, and any of their classes.
_ARRAY_LIBRARIES = ("numpy", "cupy")
_ARRAY_RECONSTRUCTORS = {"_reconstruct", "scalar", "_frombuffer", "_mareconstruct", "dtype"}
# Never owned by the user, whatever module a function came from: the serializers and this plugin.
_NOT_OWNED = {"builtins", "__main__", "cloudpickle", "dill", "pytest_remote_serial", "_pytest", "pytest"}
# Standard modules importing which has effects beyond defining names.
_NEVER_IMPORT = {"antigravity", "this", "turtle", "turtledemo", "idlelib", "tkinter", "__main__"}
HOW_TO_ALLOW = ("if you trust this target, set `trusted = true` on it (or on the whole matrix) in the "
                "matrix file, or list the module in `trusted_modules = [...]`")


class UnsafeGlobal(pickle.UnpicklingError):
    """The bytes from a target asked the host to load a global outside the trust boundary."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"the target's reply refers to {what}, which the host does not load from a "
                         f"target ({reason}); {HOW_TO_ALLOW}")
        self.what = what


def is_stdlib(module: str) -> bool:
    top = module.partition(".")[0]
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return top in names or top in sys.builtin_module_names
    mod = sys.modules.get(top)  # Python 3.9: judged by where an imported module lives
    file = getattr(mod, "__file__", None) or ""
    return mod is not None and (not file or "-packages" not in file)


def is_user_module(module: object) -> bool:
    return (isinstance(module, str) and bool(module) and module.partition(".")[0] not in _NOT_OWNED
            and not is_stdlib(module))


def owned_modules(objects: Iterable[Any]) -> set[str]:
    """The user's modules behind a call: the function's, and its arguments' types'."""
    found = set()
    for obj in objects:
        for candidate in (getattr(obj, "__module__", None), type(obj).__module__):
            if is_user_module(candidate):
                found.add(str(candidate))
    return found


def _findable(top: str) -> bool:
    """Whether a top-level module exists here, found without importing (nothing runs)."""
    if top in sys.modules:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _under(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _resolve(module: str, qualname: str) -> Any:
    return lookup_qualname(importlib.import_module(module), qualname)


def _enum_member(cls: Any, name: str) -> Any:
    """Enum members pickle as ``getattr(cls, name)`` (3.11+): a getattr that yields nothing else."""
    members = getattr(cls, "__members__", None) if isinstance(cls, enum.EnumMeta) else None
    if members is None or not isinstance(name, str) or name not in members:
        raise UnsafeGlobal("builtins.getattr", "getattr loads only a member of an enum class")
    return members[name]


@dataclass
class Policy:
    """What one reply may load: the target's trust, the user's modules and those listed."""

    trusted: bool = False
    owned: set[str] = field(default_factory=set)
    listed: tuple[str, ...] = ()
    # Modules the payload referred to, computed only when first needed (a scan of the pickle).
    sent: Callable[[], set[str]] | None = None
    _sent_cache: set[str] | None = None

    def _sent(self) -> set[str]:
        if self._sent_cache is None:
            self._sent_cache = set()
            if self.sent is not None:
                self._sent_cache = {m for m in self.sent() if is_user_module(m)}
        return self._sent_cache

    def allows_class(self, module: str, name: str) -> bool:
        """Cheap decisions first; False means: resolve, then ``check_object``."""
        if module == "builtins":
            return name in _BUILTIN_DATA
        return name in _STDLIB_DATA.get(module, ())

    def check_global(self, module: str, name: str) -> Any:
        what = f"{module}.{name}"
        if self.allows_class(module, name):
            return _resolve(module, name)
        top = module.partition(".")[0]
        if top in _ARRAY_LIBRARIES:
            obj = _resolve(module, name)
            if name in _ARRAY_RECONSTRUCTORS or isinstance(obj, type):
                return obj
            raise UnsafeGlobal(what, f"only {top}'s array reconstructors and classes load")
        if _under(module, self.listed):
            obj = _resolve(module, name)
            if _under(str(getattr(obj, "__module__", "")), self.listed):
                return obj
            raise UnsafeGlobal(what, f"it is defined in {getattr(obj, '__module__', '?')}, not in a "
                                     "listed module")
        if module in self.owned or module in self._sent():
            obj = _resolve(module, name)
            if isinstance(obj, type) and obj.__module__ == module:
                return obj
            raise UnsafeGlobal(what, f"only classes defined in {module}, the call's own module, load")
        exc = self._exception(module, name)
        if exc is not None:
            return exc
        if not _findable(top):  # trusted or not, the host could not load it: say so
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        if module == "builtins" and name == "getattr":
            return _enum_member
        if module == "builtins":
            raise UnsafeGlobal(what, "a builtin that is not a data type")
        raise UnsafeGlobal(what, "not a data type, an array, an exception or a class of the call's own "
                                 "modules")

    def check_host_ref(self, module: str, qualname: str) -> Any:
        """An object the target rebuilt from host source, named back as the host's own."""
        what = f"{module}.{qualname} (a host reference)"
        if self.trusted:
            return _resolve(module, qualname)
        if module in self.owned or _under(module, self.listed) or module in self._sent():
            obj = _resolve(module, qualname)
            if getattr(obj, "__module__", None) == module and (isinstance(obj, type) or callable(obj)):
                return obj
            raise UnsafeGlobal(what, f"it is not a class or function defined in {module}")
        raise UnsafeGlobal(what, "not a module the host sent")

    @staticmethod
    def _exception(module: str, name: str) -> type[BaseException] | None:
        """Exceptions of imported or standard modules: building one runs no code of the target's."""
        if "." in name or module.partition(".")[0] in _NEVER_IMPORT:
            return None
        mod = sys.modules.get(module)
        if mod is None and is_stdlib(module):
            try:
                mod = importlib.import_module(module)
            except Exception:
                return None
        obj = getattr(mod, name, None) if mod is not None else None
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return obj
        return None


class RestrictedUnpickler(ResultUnpickler):
    def __init__(self, file: Any, *, buffers: Any, policy: Policy) -> None:
        super().__init__(file, buffers=buffers)
        self.policy = policy

    def find_class(self, module: str, name: str) -> Any:
        module = ResultUnpickler.map_module(module)
        missing = missing_here(module, name)  # a newer Python's class: named as such, trusted or not
        if missing is not None:
            raise missing
        if self.policy.trusted:
            return super().find_class(module, name)
        return self.policy.check_global(module, name)


def load_reply(buffers: list[Any], policy: Policy, copies: DeviceCopies | None = None) -> Any:
    """A result or an exception from a target, loaded inside the trust boundary."""
    def unpickler(file: Any, buffers: Any) -> pickle.Unpickler:
        return RestrictedUnpickler(file, buffers=buffers, policy=policy)

    return load_result(buffers, copies, unpickler=unpickler, host_ref=policy.check_host_ref)



# ----------------------------------------------------------------------------- reply headers
# The header around the pickles is the target's too: a call can write anything on the agent's
# connection. What the host reads from it must have the shape the agent writes, or the round
# trip ends as a bad reply instead of a TypeError in the test run.


def _seconds(value: Any) -> bool:
    return type(value) in (int, float) and 0 <= value < 1e9


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _device_ok(device: Any) -> bool:
    return type(device) is dict and _seconds(device.get("h2d_s", 0.0)) and _seconds(device.get("d2h_s", 0.0)) \
        and _count(device.get("arrays", 0)) and type(device.get("converted", [])) is list


def _limit_ok(hit: Any) -> bool:
    return type(hit) is dict and (hit.get("pids") is None or _count(hit["pids"]))


def _phases_ok(phases: Any) -> bool:
    return type(phases) is dict and all(_seconds(phases[k]) for k in ("load", "call", "result") if k in phases)


# Field, check (of a value that is present and not None), the shape the agent writes.
_SHAPES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("device", _device_ok, "absent or a dict of non-negative seconds and counts"),
    ("limit_hit", _limit_ok, "absent or a dict with a pids count"),
    ("envelope", lambda v: type(v) is dict, "a dict"),
    ("result_type", lambda v: type(v) is str, "a string"),
    ("phases", _phases_ok, "a dict of non-negative seconds"),
)


def reply_problem(answer: dict[str, Any], buffers: int) -> str | None:
    """What in a reply's header is not as the agent writes it, named; None if nothing.
    ``buffers``: how many buffers came with it (a map's items claim theirs from them)."""
    for name, ok, shape in _SHAPES:
        value = answer.get(name)
        if value is not None and not ok(value):
            return f"{name} = {value!r:.120} (the agent writes {shape})"
    error = answer.get("error")
    if type(error) is dict and error.get("limit_hit") is not None and not _limit_ok(error["limit_hit"]):
        return f"error.limit_hit = {error['limit_hit']!r:.120} (the agent writes absent or a dict with a pids count)"
    items = answer.get("items")
    if items is None:
        return None
    claimed = 0
    for item in items if type(items) is list else [None]:
        nbuf: Any = item.get("nbuf", 0) if type(item) is dict else None
        claimed += nbuf if _count(nbuf) else buffers + 1
    if claimed > buffers:
        return f"items = {items!r:.120} (the agent writes a list of dicts claiming the buffers that came)"
    for i, item in enumerate(items):
        problem = reply_problem(item, buffers) if "items" not in item else "items inside an item"
        if problem:
            return f"items[{i}].{problem}"
    return None


def _implementation(value: Any) -> bool:
    """``sys.implementation.name``: lower-case, a name ("cpython", "pypy")."""
    return type(value) is str and 0 < len(value) < 32 and value.isidentifier() and value.islower()


def hello_problem(hello: dict[str, Any]) -> str | None:
    """What in an agent's hello is not as this host's agent writes it: another protocol (an
    agent of another version), or fields of the wrong shape."""
    if hello.get("op") != "hello":
        return f"op = {hello.get('op')!r:.60} instead of 'hello'"
    if hello.get("protocol") != PROTOCOL:
        return (f"protocol {hello.get('protocol')!r:.60}, where this host speaks {PROTOCOL} (an agent of "
                "another pytest-remote-serial version: remove the target's kept container or cached agent)")
    checks = [("python", lambda v: type(v) is str and v[:1].isdigit()), ("implementation", _implementation),
              ("cache_tag", lambda v: type(v) is str and len(v) < 64), ("cpus", lambda v: _count(v) and v > 0),
              ("magic", _count), ("pid", _count), ("pickle_protocol", _count)]
    for name, ok in checks:
        if not ok(hello.get(name)):
            return f"{name} = {hello.get(name)!r:.60}"
    return None


def describe_problem(answer: dict[str, Any]) -> str | None:
    for key in ("packages", "injected", "shadowed"):
        found = answer.get(key, {}) if key != "packages" else answer.get(key)
        if type(found) is not dict or not all(type(k) is str and type(v) is str for k, v in found.items()):
            return f"{key} = {found!r:.120} (the agent writes a dict of names to version strings)"
    return None
