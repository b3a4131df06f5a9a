"""The object a test gets as ``remote``: call, roundtrip and map on one target."""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import drift
from . import outcomes as oc
from .drift import Comparison
from .host.backends.base import Running
from .host.codecs import Codec, UnknownSerializer, choices, get_codec
from .host.losses import source_needed
from .host.matrix import LOCAL
from .outcomes import RoundTrip
from .remote.envelope import IMPLEMENTATION, python_name

DEFAULT_TIMEOUT = 30.0
# A day: past it a test is not waiting for a call but hung; far below where a deadline stops
# fitting a poll() in milliseconds (24.8 days).
MAX_TIMEOUT = 86400.0
MARKER_KEYS = ("serializer", "targets", "gpu", "timeout", "isolate", "expect", "compare_host")
# What ``expect=`` may name: every outcome a round trip can end in but ``ok``, and ``differs``
# (a call compared with the host whose result was not the same).
EXPECTABLE = tuple(o for o in oc.OUTCOMES if o not in (oc.OK, oc.UNAVAILABLE)) + ("differs",)


class MarkerError(ValueError):
    """A ``@pytest.mark.remote(...)`` argument that cannot work; the message names the fix."""


@dataclass(frozen=True)
class CallOptions:
    """What ``@pytest.mark.remote(...)`` sets for a test."""

    serializer: str | Codec = "auto"  # a name, or a downstream Serializer itself
    targets: tuple[str, ...] | None = None
    gpu: bool = False
    timeout: float = DEFAULT_TIMEOUT
    isolate: bool = True
    compare_host: bool = False
    # target name -> the outcomes declared as known there (any one of them makes the test xfail)
    expect: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def expected_on(self, target: str) -> list[str]:
        return next((list(outcomes) for name, outcomes in self.expect if name == target), [])

    @classmethod
    def from_marker(cls, marker: Any) -> CallOptions:
        """The options, checked one by one; MarkerError names the argument and the fix."""
        if marker is None:
            return cls()
        if marker.args:
            raise MarkerError("@pytest.mark.remote takes keyword arguments only, e.g. "
                              "@pytest.mark.remote(serializer='source', timeout=10)")
        kwargs = dict(marker.kwargs)
        unknown = set(kwargs) - set(MARKER_KEYS)
        if unknown:
            raise MarkerError(f"@pytest.mark.remote: unknown argument(s) {', '.join(sorted(unknown))}; "
                              f"use {', '.join(MARKER_KEYS)}")
        serializer = kwargs.get("serializer", "auto")
        if serializer != "auto":
            try:
                get_codec(serializer)
            except UnknownSerializer:
                raise MarkerError(f"@pytest.mark.remote(serializer={serializer!r}): {choices()}") from None
        targets = kwargs.get("targets")
        if targets is not None:
            if isinstance(targets, str) or not all(isinstance(t, str) for t in targets):
                raise MarkerError(f"@pytest.mark.remote(targets={targets!r}): give a list of target names, "
                                  f"e.g. targets=[{targets!r}]" if isinstance(targets, str) else
                                  f"@pytest.mark.remote(targets={targets!r}): give a list of target names")
            kwargs["targets"] = tuple(targets)
        timeout = kwargs.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
                or not 0 < timeout <= MAX_TIMEOUT:
            raise MarkerError(f"@pytest.mark.remote(timeout={timeout!r}): give a positive number of seconds up "
                              f"to {MAX_TIMEOUT:.0f} (a day), e.g. timeout=10")
        kwargs["timeout"] = float(timeout)
        for key in ("gpu", "isolate", "compare_host"):
            if key in kwargs and not isinstance(kwargs[key], bool):
                raise MarkerError(f"@pytest.mark.remote({key}={kwargs[key]!r}): give True or False")
        if "expect" in kwargs:
            kwargs["expect"] = _expect(kwargs["expect"])
        return cls(**kwargs)


def _expect(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``{"py3.9": "syntax_error"}`` or ``{"py3.9": ["syntax_error", "load_error"]}``, checked."""
    example = "e.g. expect={'py3.9': 'syntax_error'}"
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise MarkerError(f"@pytest.mark.remote(expect={value!r}): give a dict of target name -> outcome, {example}")
    out = []
    for target, outcomes in value.items():
        listed = [outcomes] if isinstance(outcomes, str) else outcomes
        if not isinstance(listed, (list, tuple)) or not listed or not all(isinstance(o, str) for o in listed):
            raise MarkerError(f"@pytest.mark.remote(expect={{{target!r}: {outcomes!r}}}): give an outcome name "
                              f"or a list of them, {example}")
        bad = [o for o in listed if o not in EXPECTABLE]
        if bad:
            why = " ('ok' is what every other target does: leave the target out of expect)" if "ok" in bad else ""
            raise MarkerError(f"@pytest.mark.remote(expect={{{target!r}: {outcomes!r}}}): {bad[0]!r} is not an "
                              f"outcome a round trip can be expected to end in{why}; use one of "
                              f"{', '.join(EXPECTABLE)}")
        out.append((target, tuple(listed)))
    return tuple(out)


class TargetInfo:
    """``remote.target``: what the test is running against."""

    def __init__(self, running: Running, gpu: bool) -> None:
        self._running = running
        self.name = running.target.name
        self.python = running.python
        self.implementation = running.implementation  # sys.implementation.name there: "cpython", "pypy"
        self.image = running.image
        self.gpu = gpu
        # The matrix's ``paths`` as folders of this machine: on the target's sys.path, and on
        # PYTHONPATH for the processes a call starts.
        self.paths = tuple(str(p) for p in running.target.host_paths)

    @property
    def magic(self) -> int:
        """The bytecode magic number of the target's Python: code objects run only where it is
        the host's."""
        return int(self._running.client.hello["magic"])

    @property
    def packages(self) -> dict[str, str]:
        """Distribution name -> version, as a call imports it (the serializers and numpy by the
        module an ``import`` finds there, whichever side brought it)."""
        return dict(self._running.client.describe()["packages"])

    @property
    def serializers(self) -> str:
        """Where a call's cloudpickle and dill come from: ``"injected"`` (the host's first) or
        ``"image"`` (the target's own where it has them)."""
        return self._running.target.serializers

    @property
    def injected(self) -> dict[str, str]:
        """Those of ``packages`` that the host brought, because the target has none or because
        they come first (``serializers = "injected"``)."""
        return dict(self._running.client.describe().get("injected", {}))

    @property
    def shadowed(self) -> dict[str, str]:
        """The target's own versions that an injected one hides from calls."""
        return dict(self._running.client.describe().get("shadowed", {}))

    @property
    def python_label(self) -> str:
        """"Python 3.11.7", "PyPy 3.11.17": the target's Python as messages name it."""
        return python_name(self.implementation, self.python, cpython="Python")

    def __repr__(self) -> str:
        return f"<target {self.name} python={self.python} image={self.image}>"


# Outcomes after which the next rung of the ``auto`` ladder is tried; a crash, a timeout
# or an error of the function itself ends the ladder (docs/architecture.md, "Serializers").
RETRY_ON = {oc.DUMP_ERROR, oc.LOAD_ERROR, oc.MISSING_MODULE, oc.SYNTAX_ERROR}


def ladder(target_python: str, implementation: str = IMPLEMENTATION) -> list[str]:
    """Same implementation and major.minor as the host: by value first; another version, or
    another implementation (PyPy's bytecode is not CPython's): only source ports."""
    same = (implementation == IMPLEMENTATION
            and target_python.split(".")[:2] == platform.python_version().split(".")[:2])
    return ["cloudpickle", "cloudpickle-by-value", "source"] if same else ["source"]


def next_rung(rungs: list[str], tried: str, outcome: str) -> str | None:
    if outcome not in RETRY_ON:
        return None
    if tried == "cloudpickle" and outcome != oc.MISSING_MODULE:
        return "source"  # by-value only helps when a module was missing
    later = rungs[rungs.index(tried) + 1:]
    return later[0] if later else None


class Remote:
    def __init__(self, running: Running, options: CallOptions, gpu: bool,
                 record: Callable[[RoundTrip], None], test: str | None = None,
                 restart: Callable[[], Running] | None = None, host: Callable[[], Remote] | None = None) -> None:
        """``restart``: the target again, with a fresh agent, once this one's was lost (a crash
        costs only its own call, also within a test). ``host``: the ``local`` remote that
        ``compare`` runs the call on as well, asked for on first use."""
        self._running = running
        self._options = options
        self._record = record
        self._test = test
        self._restart = restart
        self._host = host
        self.target = TargetInfo(running, gpu)

    def roundtrip(self, func: Callable[..., Any], *args: Any, serializer: str | Codec | None = None,
                  **kwargs: Any) -> RoundTrip:
        """Serialize, load and call on the target; the record, never a serialization raise."""
        rt = self._roundtrip(func, args, kwargs, serializer)
        self._record(rt)
        return rt

    def compare(self, func: Callable[..., Any], *args: Any, rtol: float | None = None,
                atol: float | None = None, serializer: str | Codec | None = None, **kwargs: Any) -> Comparison:
        """The call on this target and in a fresh host process (``local``): do they agree?

        ``rtol``/``atol`` loosen float and array comparisons (so they are not passed to ``func``).
        """
        host_remote = self if self.target.name == LOCAL else self._host_remote()
        target_rt = self._roundtrip(func, args, kwargs, serializer)
        host_rt = host_remote._roundtrip(func, args, kwargs, serializer)
        result = drift.compare(target_rt, host_rt, self.target.python, host_remote.target.python, rtol, atol,
                               self.target.python_label, host_remote.target.python_label)
        self._record(target_rt)
        return result

    def _host_remote(self) -> Remote:
        if self._host is None:
            raise RuntimeError(f"compare runs the call on the local target as well, and this Remote for "
                               f"{self.target.name} was made without one: pass host= (the remote fixture "
                               "and the assertion helpers do)")
        return self._host()

    def _roundtrip(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                   serializer: str | Codec | None) -> RoundTrip:
        chosen = serializer or self._options.serializer
        rungs = ladder(self.target.python, self.target.implementation) if chosen == "auto" else [get_codec(chosen).name]
        tried: list[str] = []
        rung: str | Codec = rungs[0]
        because = None
        while True:
            if chosen == "auto" and because is None and (because := source_needed(func, args, kwargs, str(rung))):
                rung = "source"  # a same-version rung would answer differently (host/losses.py)
            rt = self._once(func, args, kwargs, rung)
            nxt = next_rung(rungs, rt.serializer, rt.outcome) if chosen == "auto" else None
            if nxt is None:
                break
            tried.append(rt.serializer)
            rung = nxt
        rt.fallback_from = tried
        rt.auto_chose_source = because
        rt.test = self._test
        return rt

    def _once(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
              serializer: str | Codec) -> RoundTrip:
        if not self._running.client.alive and self._restart is not None:
            self._running = self.target._running = self._restart()
        return self._running.client.roundtrip(func, args, kwargs, serializer,
                                              timeout=self._options.timeout, isolate=self._options.isolate)

    def call(self, func: Callable[..., Any], *args: Any, serializer: str | Codec | None = None,
             **kwargs: Any) -> Any:
        """The result, or the exception its outcome raises (``outcomes.ERRORS``), with the fix
        the assertion helpers give (``fix``); under ``compare_host=True`` also a
        ``BehaviourDrift`` when the host computes something else."""
        if not self._options.compare_host:
            rt = self.roundtrip(func, *args, serializer=serializer, **kwargs)
        else:
            found = self.compare(func, *args, serializer=serializer, **kwargs)
            if found.target.outcome == oc.OK and not found.same:
                raise oc.BehaviourDrift(found.describe(), found)
            rt = found.target
        if rt.outcome == oc.MISSING_MODULE and rt.error is not None:
            rt.error.setdefault("hint", "; ".join(self.fix(rt, func, args, kwargs)))
        return rt.raise_for_outcome()

    def fix(self, rt: RoundTrip, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
            record: bool = False) -> list[str]:
        """How to fix a missing module, tried on the target rather than guessed: each built-in
        serializer that carries the function by value, and what it gave there."""
        module = (rt.error or {}).get("module") or "the module"
        loads = get_codec(rt.serializer).loads  # a downstream serializer's own loader
        top = module.partition(".")[0]
        if loads and top == loads.partition(".")[0].partition(":")[0]:
            return [f"the {rt.serializer} serializer's loader ({loads}) is imported on the target: install {top} "
                    "there, as on the framework's workers (the target's wheels, packages or paths)"]
        lines = []
        tried = {rt.serializer, *rt.fallback_from}
        for candidate in ("cloudpickle-by-value", "source"):
            if candidate in tried:
                continue
            again = self.roundtrip(func, *args, serializer=candidate, **kwargs) if record else \
                self._roundtrip(func, args, kwargs, candidate)
            verdict = "works (tried on the target: ok)" if again.outcome == oc.OK else \
                f"does not help (tried on the target: {again.outcome})"
            lines.append(f"serializer={candidate!r} {verdict}")
        lines.append(f"or make {module!r} importable there: paths = [\"<folder holding it>\"] in the matrix, or "
                     "add it to the target's packages/wheels")
        return lines

    def missing_modules(self, modules: list[str]) -> list[str]:
        """Which of these modules the target cannot import (asked there, never guessed)."""
        return self._running.client.missing_modules(modules)

    def map(self, func: Callable[..., Any], iterable: Iterable[tuple[Any, ...]], serializer: str | Codec | None = None,
            roundtrips: bool = False, concurrency: int | None = None) -> list[Any]:
        """Like ``[func(*a) for a in iterable]`` on the target, in order: the function ships once,
        and each item runs in a fresh process there, as many at a time as the target has CPUs
        (``concurrency`` to choose). Raises for the first item that failed, in order; with
        ``roundtrips=True`` returns every item's ``RoundTrip`` instead."""
        items = [tuple(args) for args in iterable]
        chosen = serializer or self._options.serializer
        if not items:
            return []
        if chosen == "json" or not self._options.isolate or self._options.compare_host:
            # JSON cannot carry a list of argument tuples unchanged; inline calls share state
            # in order; compare_host compares call by call.
            rts = [self.roundtrip(func, *args, serializer=chosen) for args in items]
        else:
            first = self._roundtrip(func, items[0], {}, chosen)  # auto finds its rung on one item
            rest = self._running.client.map(func, items[1:], first.serializer, self._options.timeout,
                                            concurrency)
            rts = [first, *rest]
            for rt in rts:
                rt.fallback_from = list(first.fallback_from)
                rt.test = self._test
                self._record(rt)
        if roundtrips:
            return rts
        return [rt.raise_for_outcome() for rt in rts]

    def __repr__(self) -> str:
        return f"<remote on {self.target.name}>"
