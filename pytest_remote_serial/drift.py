"""Behaviour drift: does the target compute what the host computes?

Serialization is half of surviving the trip; the other half is that the function still
computes the same thing on the worker's Python and packages (``sum`` of floats, enum
``str()``, numpy 2's promotion rules). A ``Comparison`` runs the call on the target and in a
fresh host process and says where the two answers part: types, array dtype/shape/values,
the first differing element, or the outcome itself.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

from .outcomes import CALL_ERROR, OK, RoundTrip

_REPR_MAX = 300


@dataclass
class Comparison:
    """The same call on the target and on the host (``local``), and whether they agree."""

    target: RoundTrip
    host: RoundTrip
    target_python: str
    host_python: str
    same: bool
    diff: str | None
    target_label: str = ""  # "PyPy 3.11.17": how messages name each side's Python
    host_label: str = ""

    def __bool__(self) -> bool:
        return self.same

    def describe(self) -> str:
        if self.same:
            return f"{self.target.function}: the same on {self.target.target} as on the host"
        return (f"{self.target.function} computes something else on {self.target.target} "
                f"({self.target_label or 'Python ' + self.target_python}) than on the host "
                f"({self.host_label or 'Python ' + self.host_python}):\n  {self.diff}")


def short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a repr that raises is itself a finding, not a crash of ours
        text = f"<{type(value).__name__} whose repr raised {type(exc).__name__}>"
    return text if len(text) <= _REPR_MAX else text[: _REPR_MAX - 3] + "..."


def compare(target: RoundTrip, host: RoundTrip, target_python: str, host_python: str,
            rtol: float | None = None, atol: float | None = None, target_label: str = "",
            host_label: str = "") -> Comparison:
    diff = outcome_diff(target, host)
    if diff is None and target.outcome == OK:
        diff = value_diff(host.result, target.result, "result", rtol, atol)
    target.same_as_host = diff is None
    target.host_result_repr = short_repr(host.result) if host.outcome == OK else f"<{host.outcome}>"
    return Comparison(target, host, target_python, host_python, diff is None, diff, target_label, host_label)


def outcome_diff(target: RoundTrip, host: RoundTrip) -> str | None:
    if target.outcome != host.outcome:
        return (f"outcome: host {host.outcome} ({_what(host)}), target {target.outcome} ({_what(target)})")
    if target.outcome == CALL_ERROR:
        theirs, ours = _exception_text(target), _exception_text(host)
        if theirs != ours:
            return f"raised: host {ours}, target {theirs}"
    return None


def _what(rt: RoundTrip) -> str:
    if rt.outcome == OK:
        return short_repr(rt.result)
    return _exception_text(rt) if rt.outcome == CALL_ERROR else (rt.error or {}).get("message", "")[:200]


def _exception_text(rt: RoundTrip) -> str:
    err = rt.error or {}
    return f"{err.get('type', '?')}: {err.get('message', '')}"


def value_diff(host: Any, target: Any, path: str, rtol: float | None, atol: float | None) -> str | None:
    """Where ``target`` differs from ``host``, first difference only; None when they agree."""
    host, target = _to_numpy(host), _to_numpy(target)
    if type(host) is not type(target):
        return (f"{path}: host {_type_name(host)} {short_repr(host)}, "
                f"target {_type_name(target)} {short_repr(target)}")
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(host, numpy.ndarray):
        return _array_diff(numpy, host, target, path, rtol, atol)
    if isinstance(host, float) or (numpy is not None and isinstance(host, numpy.floating)):
        if _close(float(host), float(target), rtol, atol):
            return None
        return f"{path}: host {short_repr(host)}, target {short_repr(target)}"
    if isinstance(host, (list, tuple)):
        if len(host) != len(target):
            return f"{path}: host has {len(host)} items, target {len(target)}"
        for i, (a, b) in enumerate(zip(host, target)):
            found = value_diff(a, b, f"{path}[{i}]", rtol, atol)
            if found:
                return found
        return None
    if isinstance(host, dict):
        if list(host) != list(target):
            return f"{path}: keys differ: host {short_repr(list(host))}, target {short_repr(list(target))}"
        for key in host:
            found = value_diff(host[key], target[key], f"{path}[{key!r}]", rtol, atol)
            if found:
                return found
        return None
    try:
        equal = bool(host == target)
    except Exception as exc:
        return f"{path}: comparing raised {type(exc).__name__}: {exc}"
    return None if equal else f"{path}: host {short_repr(host)}, target {short_repr(target)}"


def _close(a: float, b: float, rtol: float | None, atol: float | None) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if rtol is None and atol is None:
        return a == b
    return math.isclose(a, b, rel_tol=rtol or 0.0, abs_tol=atol or 0.0)


def _array_diff(numpy: Any, host: Any, target: Any, path: str, rtol: float | None, atol: float | None) -> str | None:
    if host.dtype != target.dtype:
        return f"{path}: dtype host {host.dtype}, target {target.dtype}"
    if host.shape != target.shape:
        return f"{path}: shape host {host.shape}, target {target.shape}"
    if rtol is None and atol is None or host.dtype.kind not in "fc":
        equal = numpy.asarray(host == target) | (_isnan(numpy, host) & _isnan(numpy, target))
    else:
        equal = numpy.isclose(host, target, rtol=rtol or 0.0, atol=atol or 0.0, equal_nan=True)
    if bool(numpy.all(equal)):
        return None
    where = tuple(int(i) for i in numpy.argwhere(~equal)[0])
    return (f"{path}{list(where)}: host {short_repr(host[where])}, target {short_repr(target[where])} "
            f"({int((~equal).sum())} of {equal.size} elements differ)")


def _isnan(numpy: Any, arr: Any) -> Any:
    return numpy.isnan(arr) if arr.dtype.kind in "fc" else numpy.zeros(arr.shape, bool)


def _to_numpy(value: Any) -> Any:
    """A CuPy array is compared by its values on the host."""
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(value, cupy.ndarray):
        return cupy.asnumpy(value)
    return value


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
