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
import io
import pickle
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..remote.buffers import DeviceCopies, attach_device_loads
from ..remote.diagnosis import missing_here
from ..remote.protocol import PROTOCOL
from . import arrays
from .checked import (
    HOW_TO_ALLOW,
    STDLIB_DATA_MODULES,
    CheckedUnpickler,
    FastUnpickler,
    Refused,
    ReplyTooLarge,
    UnsafeGlobal,
    _Slow,
    fast_class,
    fixed_names,
)
from .replies import ResultUnpickler, _load_host_ref, load_result, lookup_qualname

__all__ = ["HOW_TO_ALLOW", "NotImported", "Policy", "Refused", "ReplyTooLarge", "UnsafeGlobal", "load_reply"]

# Never owned by the user, whatever module a function came from: the serializers and this plugin.
_NOT_OWNED = {"builtins", "__main__", "cloudpickle", "dill", "pytest_remote_serial", "_pytest", "pytest"}
# The default of ``reply_memory_cap``, and the multiple of its own bytes a reply may always use.
REPLY_MEMORY_CAP = 256 << 20
REPLY_BYTES_MULTIPLE = 64


class NotImported(pickle.UnpicklingError):
    """A reply named a module the host has not imported: loading it would run its code."""

    def __init__(self, module: str) -> None:
        super().__init__(f"the target's reply names module {module!r}, which the host has not imported, and a "
                         f"reply never makes the host import a module (importing runs it); import it in the test "
                         f"module, or {HOW_TO_ALLOW}")
        self.module = module


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


def _imported(module: str, may_import: bool = False) -> Any:
    """The module as the host has it; imported only where the caller says importing is harmless."""
    mod = sys.modules.get(module)
    if mod is not None:
        return mod
    if not may_import:
        if not _findable(module.partition(".")[0]):  # the host could not load it at all: say so
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        raise NotImported(module)
    return importlib.import_module(module)


def _resolve(module: str, qualname: str, may_import: bool = False) -> Any:
    return lookup_qualname(_imported(module, may_import), qualname)


@dataclass
class Policy:
    """What one reply may name and call: the target's trust, the user's modules, those listed,
    and how much its calls may allocate."""

    trusted: bool = False
    owned: set[str] = field(default_factory=set)
    listed: tuple[str, ...] = ()
    # Modules the payload referred to, computed only when first needed (a scan of the pickle).
    sent: Callable[[], set[str]] | None = None
    memory_cap: int = REPLY_MEMORY_CAP
    _sent_cache: set[str] | None = None

    def _sent(self) -> set[str]:
        if self._sent_cache is None:
            self._sent_cache = set()
            if self.sent is not None:
                self._sent_cache = {m for m in self.sent() if is_user_module(m)}
        return self._sent_cache

    def _own(self, module: str) -> bool:
        return module in self.owned or module in self._sent()

    def find(self, module: str, name: str) -> Any:
        """A global a reply names (a value, or a callable whose calls are checked apart)."""
        module = ResultUnpickler.map_module(module)
        what = f"{module}.{name}"
        missing = missing_here(module, name, may_import=False)  # a newer Python's class: named as such
        if missing is not None:
            raise missing
        if name in fixed_names(module):
            return _resolve(module, name, may_import=module in STDLIB_DATA_MODULES)
        top = module.partition(".")[0]
        if top == "numpy":
            obj = _resolve(module, name, may_import=module in arrays.NUMPY_MODULES)
            if any(obj is f for f in arrays.checkers()) or arrays.nameable(module, obj):
                return obj
            raise UnsafeGlobal(what, "only numpy's array reconstructors and in-memory array classes load")
        if _under(module, self.listed):
            obj = _resolve(module, name, may_import=True)
            if _under(str(getattr(obj, "__module__", "")), self.listed):
                return obj
            raise UnsafeGlobal(what, f"it is defined in {getattr(obj, '__module__', '?')}, not in a "
                                     "listed module")
        if self._own(module):
            obj = _resolve(module, name)
            if getattr(obj, "__module__", None) == module and (isinstance(obj, type) or callable(obj)):
                return obj  # a function only as a value: calling it is refused (checked.py)
            raise UnsafeGlobal(what, f"only classes and functions defined in {module}, the call's own module, "
                                     "load")
        if "." not in name and top in sys.modules:
            obj = getattr(sys.modules.get(module), name, None)
            if isinstance(obj, type) and (issubclass(obj, BaseException)
                                          or (isinstance(obj, enum.EnumMeta) and is_stdlib(module)
                                              and module != "__main__")):
                return obj
        if module not in sys.modules:
            _imported(module)  # raises: missing here, or never imported
        if module == "builtins":
            raise UnsafeGlobal(what, "a builtin that is not a data type")
        raise UnsafeGlobal(what, "not a data type, an array, an exception or a class of the call's own "
                                 "modules")

    def callable_class(self, cls: type) -> bool:
        """A class a reply may call (or ``__new__``) with its own arguments."""
        if issubclass(cls, type):
            return False
        module = str(getattr(cls, "__module__", ""))
        if self._own(module) or _under(module, self.listed):
            return True
        if sys.modules.get(module) is None:
            return False
        return issubclass(cls, BaseException) or (isinstance(cls, enum.EnumMeta) and is_stdlib(module)
                                                  and module != "__main__")

    def check_host_ref(self, module: str, qualname: str) -> Any:
        """An object the target rebuilt from host source, named back as the host's own."""
        what = f"{module}.{qualname} (a host reference)"
        if self.trusted:
            return lookup_qualname(importlib.import_module(module), qualname)
        if self._own(module) or _under(module, self.listed):
            obj = _resolve(module, qualname)
            if getattr(obj, "__module__", None) == module and (isinstance(obj, type) or callable(obj)):
                return obj
            raise UnsafeGlobal(what, f"it is not a class or function defined in {module}")
        raise UnsafeGlobal(what, "not a module the host sent")


def reply_limit(policy: Policy, buffers: list[Any]) -> int:
    """What a reply's calls may allocate: the cap, or a multiple of its own bytes if more."""
    size = sum(memoryview(b).nbytes for b in buffers)
    return max(policy.memory_cap, REPLY_BYTES_MULTIPLE * size)


def _fast_host_ref(pid: Any, policy: Policy) -> Any:
    """A host reference on the fast path: one it may hand out unchecked, or back to the checked one.
    (A function of its own, not a closure over the unpickler: that would be a reference cycle.)"""
    obj = _load_host_ref(pid, policy.check_host_ref)
    if not fast_class(obj, policy.callable_class):
        raise _Slow(repr(pid))
    return obj


def load_reply(buffers: list[Any], policy: Policy, copies: DeviceCopies | None = None) -> Any:
    """A result or an exception from a target, loaded inside the trust boundary: trusted, with
    the full unpickler; else with the C unpickler while the reply names only classes it may
    call freely, and checked call by call from the first global that is not one."""
    if policy.trusted:
        return load_result(buffers, copies, host_ref=policy.check_host_ref)
    copies = DeviceCopies() if copies is None else copies
    fast = FastUnpickler(io.BytesIO(buffers[0]), buffers=buffers[1:], find_class=policy.find,
                         callable_class=policy.callable_class)

    attach_device_loads(fast, copies, lambda pid: _fast_host_ref(pid, policy))
    try:
        return fast.load()
    except _Slow:
        pass
    checked = CheckedUnpickler(io.BytesIO(buffers[0]), buffers=buffers[1:], find_class=policy.find,
                               callable_class=policy.callable_class, limit=reply_limit(policy, buffers),
                               limit_key="reply_memory_cap")
    attach_device_loads(checked, copies, lambda pid: _load_host_ref(pid, policy.check_host_ref))
    return checked.load()


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
