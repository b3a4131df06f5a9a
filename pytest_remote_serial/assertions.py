"""One-line checks for downstream suites; each failure names the cause and the fix.

pytest rewrites the asserts in this module (registered in ``__init__``), so a wrong result
shows the comparison, not only our message.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

from . import current
from .host.capsule import SourceUnavailable, dumps_source, function_source
from .host.codecs import Codec, get_codec
from .host.members import find_offenders
from .host.module_globals import made_afresh
from .outcomes import MISSING_MODULE, OK, RoundTrip
from .remote.diagnosis import pickle_carries_code, pickle_globals
from .remote.envelope import magic_number, python_version

__tracebackhide__ = True
_UNSET: Any = ...


def _name(obj: Any) -> str:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return f"{module}.{qualname}" if module and qualname else repr(obj)


def _root(obj: Any) -> str:
    return "func" if callable(obj) and not isinstance(obj, type) else "obj"


def _unwrap(func: Any, limit: int = 10) -> list[Any]:
    """``func`` and what it wraps: ``functools.partial``/``toolz.curry``-style objects holding
    ``func``, bound methods, and anything with ``__wrapped__`` (decorators)."""
    layers = [func]
    while len(layers) <= limit:
        inner = getattr(layers[-1], "__wrapped__", None)
        if inner is None:
            inner = getattr(layers[-1], "func", None) or getattr(layers[-1], "__func__", None)
        if inner is None or not callable(inner) or any(inner is seen for seen in layers):
            break
        layers.append(inner)
    return layers


def _payload(func: Any, serializer: str | Codec) -> Any:
    """The payload of ``func`` alone; None when it does not serialize that way at all."""
    try:
        return get_codec(serializer).dumps((func, (), {}))[0]
    except Exception:
        return None


def _references(func: Any, serializer: str | Codec, payload: Any = None) -> dict[str, set[str]] | None:
    """Modules a payload of ``func`` refers to by reference: GLOBAL opcodes, and a wrapped
    function named as a ``module.qualname`` string (toolz.curry pickles its function so).
    None when ``func`` does not serialize that way at all, or its payload is no pickle stream
    (a downstream serializer's own format)."""
    payload = _payload(func, serializer) if payload is None else payload
    if payload is None:
        return None
    try:
        found, strings = pickle_globals(payload)
    except Exception:
        return None
    refs: dict[str, set[str]] = {}
    for module, name in found:
        refs.setdefault(module, set()).add(f"{module}.{name}")
    for layer in _unwrap(func):
        module, qualname = getattr(layer, "__module__", None), getattr(layer, "__qualname__", None)
        for sep in (".", ":"):  # toolz writes "module:qualname" for a function decorated with @curry
            if isinstance(module, str) and isinstance(qualname, str) and f"{module}{sep}{qualname}" in strings:
                refs.setdefault(module, set()).add(f"{module}.{qualname} (by name, as a string)")
    return refs


def _failure(rt: RoundTrip, where: str) -> str:
    error = rt.error or {}
    lines = [f"{rt.function} did not survive the trip to {where}: outcome {rt.outcome!r} "
             f"in phase {error.get('phase', '?')!r} (serializer {rt.serializer}"
             + (f", after {', '.join(rt.fallback_from)}" if rt.fallback_from else "") + ")"]
    if error.get("message"):
        lines.append(f"  {error.get('type', 'error')}: {error['message']}")
    if error.get("diagnosis"):
        lines.append(f"  cause: {error['diagnosis']}")
    if rt.remote_traceback:
        lines.append("--- remote traceback ---")
        lines.append(rt.remote_traceback.rstrip())
    return "\n".join(lines)


def assert_roundtrip(func: Callable[..., Any], *args: Any, target: str | None = None,
                     serializer: str = "auto", expected: Any = _UNSET, **kwargs: Any) -> RoundTrip:
    """Ship ``func`` to the target, call it there, and compare with ``expected``.

    The target is this test's (when it uses the ``remote`` fixture), else the one named,
    else ``local``. ``expected`` defaults to what ``func(*args, **kwargs)`` returns here.
    """
    remote = current.remote_for(target)
    rt = remote.roundtrip(func, *args, serializer=serializer, **kwargs)
    where = f"{remote.target.name} ({remote.target.python_label})"
    if rt.outcome != OK:
        message = _failure(rt, where)
        if rt.outcome == MISSING_MODULE:
            fixes = remote.fix(rt, func, args, kwargs, record=True)
            message += "\nhow to fix:\n" + "\n".join(f"  {line}" for line in fixes)
        raise AssertionError(message)
    if expected is _UNSET:
        expected = func(*args, **kwargs)
    result = rt.result
    assert result == expected, f"{rt.function} returned a different value on {where}"
    return rt


def assert_same_as_host(func: Callable[..., Any], *args: Any, target: str | None = None,
                        rtol: float | None = None, atol: float | None = None, **kwargs: Any) -> Any:
    """The target computes what the host computes (a fresh host process, ``local``); the
    failure shows where the answers part and both Pythons. Returns the ``Comparison``."""
    remote = current.remote_for(target)
    found = remote.compare(func, *args, rtol=rtol, atol=atol, **kwargs)
    if found.same:
        return found
    lines = [found.describe()]
    if found.target.outcome == OK:
        lines.append("how to fix: if the new behaviour is right, pin it in the function (e.g. math.fsum, "
                     "an explicit dtype, str(x.value)); if the difference is known, declare it: "
                     f"@pytest.mark.remote(expect={{{remote.target.name!r}: 'differs'}}); for floats, "
                     "pass rtol=/atol=")
    else:
        lines.append("the target's outcome is not the host's; remote.roundtrip(...) shows the whole record")
    raise AssertionError("\n".join(lines))


def assert_serializable(obj: Any, serializer: str = "cloudpickle", max_depth: int = 6) -> None:
    """Fail naming every member that keeps ``obj`` from serializing, by its full path."""
    codec = get_codec(serializer)

    def dumps(node: Any) -> Any:
        return codec.dumps((node, (), {}))

    try:
        dumps(obj)
        return
    except Exception as exc:
        first = f"{type(exc).__name__}: {exc}"
    carried = made_afresh if serializer in ("source", "json") else None  # the capsule remakes those
    offenders = find_offenders(obj, dumps, _root(obj), max_depth, carried)
    lines = [f"{_name(obj)} cannot be serialized with {serializer} ({first})",
             f"offending member{'s' if len(offenders) > 1 else ''}:"]
    for found in offenders:
        lines.append(f"  {found}")
        if found.error != first:
            lines.append(f"      {found.error}")
    hints = [f"  {found.path}: {found.hint}" for found in offenders if found.hint]
    lines.append("how to fix:")
    lines += hints or ["  keep such objects out of what the function uses (create them inside it, or pass "
                       "them as arguments), or give their owner a __reduce__ that leaves them out"]
    if serializer != "source":
        try:  # only suggested when it works: source carries the same data, so it often fails the same way
            get_codec("source").dumps((obj, (), {}))
            lines.append("  serializer='source' ships the function as source, with only the data it uses "
                         "(checked: it serializes)")
        except Exception as exc:
            lines.append(f"  (serializer='source' fails the same way: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})")
    raise AssertionError("\n".join(lines))


def assert_portable(func: Callable[..., Any], target: str | None = None,
                    serializer: str | Codec = "cloudpickle") -> None:
    """Fail when the payload cannot run on the target: it refers by reference to a module the
    target cannot import (looking through wrappers such as partial, curry and decorators at the
    functions they hold), or it holds code objects, which only the Python minor that wrote them
    runs (the target's bytecode magic is asked, not guessed)."""
    codec = get_codec(serializer)
    payload = _payload(func, codec)
    if payload is None:
        codec.dumps((func, (), {}))  # raises the real serialization error
        return
    refs = _references(func, codec, payload)
    if refs is None:
        raise ValueError(f"assert_portable reads pickle streams, and the {codec.name} serializer's payload is not one: "
                         f"try the call on the target instead, assert_roundtrip(func, ..., serializer={codec.name!r})")
    remote = current.remote_for(target)
    missing = remote.missing_modules(sorted(refs)) if refs else []
    foreign = remote.target.magic != magic_number() and pickle_carries_code(payload)
    if not missing and not foreign:
        return
    where = f"{remote.target.name} ({remote.target.python_label})"
    lines = []
    if foreign:
        lines.append(f"{_name(func)} is not portable to {where}: its {codec.name} payload holds code objects "
                     f"(bytecode of this host's Python {python_version()}, magic {magic_number()}), which the "
                     f"target's Python (magic {remote.target.magic}) cannot run: bytecode is not portable across "
                     "minor versions")
    if missing:
        lines.append(f"{_name(func)} is not portable to {where}: its {codec.name} payload refers by reference "
                     f"to {'modules' if len(missing) > 1 else 'a module'} the target cannot import:")
        lines += [f"  {module}: {', '.join(sorted(refs[module]))}" for module in missing]
    lines.append("how to fix:")
    for candidate in ("cloudpickle-by-value", "source"):
        if candidate == codec.name or (foreign and candidate != "source"):
            continue  # by value carries the same code objects
        other = _references(func, candidate)
        still = sorted(set(missing) & set(other or {}))
        if other is not None and not still:
            checked = "the target compiles its source; its payload refers to none of those modules" if foreign \
                else "its payload refers to none of them"
            lines.append(f"  serializer={candidate!r} (checked: {checked})")
    by_name = [r for m in missing for r in refs[m] if r.endswith("(by name, as a string)")]
    if by_name:
        lines.append(f"  {type(func).__name__} names {by_name[0].split(' ')[0]} by name whatever the serializer: "
                     "ship the function itself and apply the arguments on the target")
    if missing:
        lines.append(f"  or make {'them' if len(missing) > 1 else 'it'} importable there: paths = [\"<folder>\"] in "
                     "the matrix, or the target's packages/wheels")
    if foreign:
        lines.append(f"  or run it where the Python minor is the host's ({python_version().rsplit('.', 1)[0]})")
    raise AssertionError("\n".join(lines))


def assert_source_recoverable(func: Any) -> str:
    """Pass when the source capsule can be built for ``func``; returns the source it found."""
    inner = func
    while isinstance(inner, (functools.partial, types.MethodType)):
        inner = inner.func if isinstance(inner, functools.partial) else inner.__func__
    if not isinstance(inner, (types.FunctionType, type)):
        raise AssertionError(
            f"{_name(func)} is a {type(inner).__name__}, not a Python function: a C function has no "
            "source to recover; it ships by reference, so the target needs the module that defines it")
    try:
        source = function_source(inner) if isinstance(inner, types.FunctionType) else ""
        dumps_source(func)  # helpers, classes and everything else it uses
    except SourceUnavailable as exc:
        filename = getattr(getattr(inner, "__code__", None), "co_filename", "")
        why = {"<string>": "it was made by exec() or compile() with no file behind it",
               "<stdin>": "it was typed at the REPL and readline history no longer holds it"}.get(filename)
        raise AssertionError(f"the source of {_name(func)} cannot be recovered"
                             + (f": {why}" if why else "") + f"\n  {exc}") from None
    return source
