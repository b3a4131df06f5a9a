"""The record of one round trip, and the exceptions each outcome maps to (docs/architecture.md, "Outcomes").

Kept apart from any transport so downstream suites and the report can use it without
touching Docker.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .remote.envelope import python_name
from .remote.protocol import (  # one spelling for both ends
    CALL_ERROR,
    CRASH,
    DUMP_ERROR,
    LOAD_ERROR,
    MISSING_MODULE,
    OK,
    RESULT_ERROR,
    SYNTAX_ERROR,
    TIMEOUT,
    UNAVAILABLE,
)
from .remote.protocol import OUTCOMES as OUTCOMES  # the one list, re-exported for downstream suites

# Not an outcome of the round trip: what the matrices show for an ok call whose answer was
# compared with the host's and is not the same (remote.compare, compare_host=True).
DIFFERS = "differs"
PHASES = ("dump", "send", "load", "call", "result", "total")


class RemoteTraceback(Exception):
    """Carries the target's formatted traceback as the ``__cause__`` of a rebuilt exception."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n\n--- remote traceback ---\n" + self.text


class RemoteError(Exception):
    """Base of every failure that ``remote.call`` raises."""

    outcome = "error"

    def __init__(self, message: str, roundtrip: RoundTrip | None = None) -> None:
        super().__init__(message)
        self.roundtrip = roundtrip

    @property
    def remote_traceback(self) -> str | None:
        return self.roundtrip.remote_traceback if self.roundtrip else None


class SerializationError(RemoteError):
    outcome = DUMP_ERROR


class DeserializationError(RemoteError):
    outcome = LOAD_ERROR


class MissingModuleError(DeserializationError):
    outcome = MISSING_MODULE

    @property
    def module(self) -> str | None:
        return self.roundtrip.module if self.roundtrip else None


class SourceIncompatibleError(RemoteError):
    outcome = SYNTAX_ERROR


class RemoteCallError(RemoteError):
    """The function raised an exception the host cannot rebuild as its own type."""

    outcome = CALL_ERROR


class ResultError(RemoteError):
    outcome = RESULT_ERROR


class TargetCrashed(RemoteError):
    outcome = CRASH

    @property
    def signal(self) -> int | None:
        return self.roundtrip.error.get("signal") if self.roundtrip and self.roundtrip.error else None

    @property
    def exit_code(self) -> int | None:
        return self.roundtrip.error.get("exit_code") if self.roundtrip and self.roundtrip.error else None


class RemoteTimeout(RemoteError):
    outcome = TIMEOUT


class BehaviourDrift(AssertionError):
    """The call worked on the target but answered differently from the host (compare_host=True)."""

    def __init__(self, message: str, comparison: Any) -> None:
        super().__init__(message)
        self.comparison = comparison


class TargetUnavailable(RemoteError):
    """The target could not start: no engine, no GPU, a failed build. ``.reason`` says which."""

    outcome = UNAVAILABLE

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"target {target!r} is unavailable: {reason}")
        self.target = target
        self.reason = reason


ERRORS: dict[str, type[RemoteError]] = {
    cls.outcome: cls
    for cls in (SerializationError, DeserializationError, MissingModuleError, SourceIncompatibleError,
                RemoteCallError, ResultError, TargetCrashed, RemoteTimeout, TargetUnavailable)
}


@dataclasses.dataclass
class RoundTrip:
    """What happened to one call; never raises for a serialization failure (the test decides)."""

    outcome: str
    target: str
    function: str
    serializer: str
    result: Any = None
    error: dict[str, Any] | None = None
    fallback_from: list[str] = dataclasses.field(default_factory=list)
    payload_bytes: int = 0
    result_bytes: int = 0
    phases: dict[str, float] = dataclasses.field(default_factory=dict)
    exception: BaseException | None = dataclasses.field(default=None, repr=False)
    test: str | None = None
    # Device arrays moved (GPU targets): h2d_s/d2h_s copy time, kept out of the phases above,
    # and "converted": arrays that arrived as numpy because the receiver had no device.
    device: dict[str, Any] | None = None
    # Set when the call was compared with the host (remote.compare, compare_host=True).
    same_as_host: bool | None = None
    host_result_repr: str | None = None
    # The serializer's version where it has one (a library's, or a downstream framework's).
    serializer_version: str | None = None
    # Why ``auto`` shipped source where a cloudpickle rung would lose semantics (host/losses.py).
    auto_chose_source: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == OK

    @property
    def shown(self) -> str:
        """What the matrices show: the outcome, or ``differs`` for an ok call whose answer was
        compared with the host's and is not the same."""
        return DIFFERS if self.outcome == OK and self.same_as_host is False else self.outcome

    @property
    def module(self) -> str | None:
        return (self.error or {}).get("module")

    @property
    def remote_traceback(self) -> str | None:
        return (self.error or {}).get("traceback")

    def describe(self) -> str:
        """One paragraph a person can act on: outcome, phase, target Python, cause."""
        if self.ok:
            why = f" ({self.auto_chose_source})" if self.auto_chose_source else ""
            return f"{self.function} on {self.target}: ok via {self.serializer}{why}"
        err = self.error or {}
        where = python_of(err)
        parts = [f"{self.function} on {self.target}{f' ({where})' if where else ''}: "
                 f"{self.outcome} in phase {err.get('phase', '?')} via {self.serializer}"
                 + (f" {self.serializer_version}" if self.serializer_version else "")]
        if self.fallback_from:
            parts.append(f" after {', '.join(self.fallback_from)} failed")
        parts.append(f"\n  {err.get('type', 'error')}: {err.get('message', '')}")
        if err.get("diagnosis"):
            parts.append(f"\n  cause: {err['diagnosis']}")
        if err.get("hint"):
            parts.append(f"\n  fix: {err['hint']}")
        return "".join(parts)

    def raise_for_outcome(self) -> Any:
        """The result, or the exception ``ERRORS`` assigns to this outcome."""
        if self.ok:
            return self.result
        if self.outcome == CALL_ERROR and self.exception is not None:
            raise self.exception
        cls = ERRORS.get(self.outcome, RemoteError)
        exc = cls(self.describe(), self)
        if self.remote_traceback:
            raise exc from RemoteTraceback(self.remote_traceback)
        raise exc

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RoundTrip:
        """Back from a report's call entry (an xdist worker's, or a baseline's)."""
        return cls(outcome=record["outcome"], target=record["target"], function=record["function"],
                   serializer=record["serializer"], error=record.get("error"),
                   fallback_from=list(record.get("fallback_from") or []),
                   payload_bytes=int(record.get("payload_bytes") or 0),
                   result_bytes=int(record.get("result_bytes") or 0),
                   phases=dict(record.get("phases_s") or {}), test=record.get("test"),
                   device=record.get("device"), same_as_host=record.get("same_as_host"),
                   host_result_repr=record.get("host_result_repr"),
                   serializer_version=record.get("serializer_version"),
                   auto_chose_source=record.get("auto_chose_source"))

    def as_record(self) -> dict[str, Any]:
        """The call entry of the JSON report."""
        return {
            "test": self.test, "target": self.target, "function": self.function,
            "serializer": self.serializer, "serializer_version": self.serializer_version,
            "fallback_from": list(self.fallback_from),
            "outcome": self.outcome, "error": _error_summary(self.error),
            "payload_bytes": self.payload_bytes, "result_bytes": self.result_bytes,
            "phases_s": dict(self.phases),
            "device": self.device,
            **({"same_as_host": self.same_as_host, "host_result_repr": self.host_result_repr}
               if self.same_as_host is not None else {}),
            **({"auto_chose_source": self.auto_chose_source} if self.auto_chose_source else {}),
        }


def python_of(error: dict[str, Any]) -> str:
    """"PyPy 3.11.17": the Python an error record says it happened on; "" when it says none."""
    python = error.get("python")
    if not isinstance(python, str) or not python:
        return ""
    implementation = error.get("implementation")
    return python_name(implementation if isinstance(implementation, str) else None, python, cpython="Python")


def _error_summary(error: dict[str, Any] | None) -> dict[str, Any] | None:
    if not error:
        return None
    return {k: error[k] for k in ("type", "message", "phase", "module", "signal", "exit_code",
                                   "diagnosis", "hint", "traceback", "python", "implementation")
            if error.get(k) is not None}
