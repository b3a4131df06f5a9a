"""The recorded data of a run (docs/architecture.md, "Reports"): built once, written as JSON, rendered elsewhere.

Like pytest-benchmark, the data is kept apart from the tables and pages drawn from it:
``terminal`` renders the terminal matrix, ``html`` the page, ``compare`` the diff.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..host.backends.base import Running
from ..host.matrix import Target
from ..outcomes import DIFFERS

VERSION = 1


def host_info() -> dict[str, Any]:
    import cloudpickle
    import dill

    packages = {"cloudpickle": cloudpickle.__version__, "dill": dill.__version__}
    try:
        import numpy

        packages["numpy"] = numpy.__version__
    except ImportError:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "packages": packages}


def target_entry(target: Target, state: Running | str | None) -> dict[str, Any]:
    """One target: what it ran, or why it could not start."""
    entry: dict[str, Any] = {
        "name": target.name, "python": None, "image": None, "image_id": None, "gpu": target.gpu,
        "available": isinstance(state, Running), "reason": state if isinstance(state, str) else None,
        "cold_start_s": None, "build_s": None, "packages": {},
        # Where and how it ran; known from the matrix even when it could not start.
        "backend": "local" if target.is_local else "interpreter" if target.is_interpreter else "docker",
        "engine": target.engine or (f"context {target.context}" if target.context else None),
        "transport": None, "hardening": None, "serializers": target.serializers,
        # The matrix's paths as this machine's folders, and (once started) where the target has them.
        "paths": [str(p) for p in target.host_paths], "paths_on_target": None,
    }
    if isinstance(state, Running):
        entry.update(_how(target, state))
        entry.update(python=state.python, implementation=state.implementation, image=state.image,
                     image_id=state.image_id,
                     cold_start_s=round(state.cold_start_s, 6),
                     build_s=None if state.build_s is None else round(state.build_s, 3))
        try:
            described = state.client.describe()
            entry["packages"] = dict(described.get("packages", {}))
            # What a call imports that the host brought, and the target's own versions it hides.
            entry["injected"] = dict(described.get("injected", {}))
            entry["shadowed"] = dict(described.get("shadowed", {}))
        except Exception:  # a target lost by now still has its calls in the report
            entry["packages"] = {}
    elif state is None:
        entry["reason"] = "not started: no test needed it"
    return entry


def _how(target: Target, state: Running) -> dict[str, Any]:
    """Backend, engine and transport as the running target's own record gives them; the
    defaults are what the local and docker backends do when they say nothing more."""
    extra = state.extra or {}
    backend = extra.get("backend") or ("local" if target.is_local else
                                       "interpreter" if target.is_interpreter else "docker")
    engine = extra.get("engine")
    if engine is None and backend == "docker":
        engine = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"  # docker.engine_location
    transport = extra.get("transport") or ("socket" if target.is_local else None)
    how = {"backend": backend, "engine": engine, "transport": transport}
    how.update({k: extra[k] for k in ("hardening", "interpreter", "layer", "paths_on_target") if k in extra})
    return how


def build_report(calls: list[dict[str, Any]], targets: list[dict[str, Any]],
                 tests: list[dict[str, Any]] | None = None, run: str | None = None) -> dict[str, Any]:
    """``run``: the id every container of the run is labelled with (``pytest-remote-serial.run``)."""
    return {
        "version": VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": run,
        "host": host_info(),
        "targets": targets,
        "calls": calls,
        "tests": tests or [],
    }


# The test's own result, most serious first: a cell two tests share shows the worse one.
VERDICTS = ("error", "failed", "xpassed", "xfailed", "skipped", "passed")


def row_of(nodeid: str | None, target: str | None) -> str:
    """The matrix row of a test id: the id without the target's own parameter, so that
    ``test_x[a-py3.9]`` and ``test_x[a-py3.11]`` share a row and ``test_x[b-py3.9]`` has its own."""
    text = nodeid or "?"
    if not text.endswith("]") or "[" not in text or not target:
        return text
    base, _, params = text[:-1].partition("[")
    if params == target:
        return base
    if params.startswith(f"{target}-"):
        return f"{base}[{params[len(target) + 1:]}]"
    if params.endswith(f"-{target}"):
        return f"{base}[{params[:-len(target) - 1]}]"
    if f"-{target}-" in params:
        return f"{base}[{params.replace(f'-{target}-', '-', 1)}]"
    return text


def call_outcome(call: dict[str, Any]) -> str:
    """A call's outcome as the matrices show it: an ok call whose result differed from the
    host's (``same_as_host`` false) is ``differs``."""
    outcome = str(call.get("outcome") or "unknown")
    return DIFFERS if outcome == "ok" and call.get("same_as_host") is False else outcome


def test_record(nodeid: str, target: str, verdict: str, outcomes: list[str], duration_s: float,
                expected: list[str] | None = None, reason: str | None = None) -> dict[str, Any]:
    """One entry of the report's ``tests``: the test's verdict beside its round trips' outcomes."""
    return {"nodeid": nodeid, "target": target, "verdict": verdict, "outcomes": list(outcomes),
            "duration_s": round(duration_s, 6), "expected": list(expected) if expected else None,
            "reason": reason}


@dataclass
class Cell:
    """One test id on one target, as every renderer draws it: coloured by ``verdict``
    (None for an old report without ``tests``), labelled with ``outcomes``."""

    row: str
    target: str
    verdict: str | None = None
    outcomes: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    reason: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def median_s(self) -> float | None:
        totals = [float(t) for t in ((c.get("phases_s") or {}).get("total") for c in self.calls)
                  if isinstance(t, (int, float))]
        return statistics.median(totals) if totals else None

    @property
    def label(self) -> str:
        """The outcome text: every distinct outcome, or a dash when no round trip was made."""
        return "+".join(self.outcomes) if self.outcomes else "-"


def cells(report: dict[str, Any]) -> dict[tuple[str, str], Cell]:
    """Calls and test verdicts of a report grouped by (row, target), in first-seen order."""
    out: dict[tuple[str, str], Cell] = {}
    verdict_of: dict[str, str] = {}
    for test in report.get("tests") or []:
        if not isinstance(test, dict) or not isinstance(test.get("nodeid"), str):
            continue
        key = (row_of(test["nodeid"], test.get("target")), str(test.get("target")))
        cell = out.setdefault(key, Cell(*key))
        verdict = str(test.get("verdict"))
        verdict_of[test["nodeid"]] = verdict
        cell.verdict = _worse(cell.verdict, verdict)
        cell.outcomes = list(dict.fromkeys(cell.outcomes + [str(o) for o in test.get("outcomes") or []]))
        cell.expected = list(dict.fromkeys(cell.expected + list(test.get("expected") or [])))
        cell.reason = cell.reason or test.get("reason")
    for call in report.get("calls") or []:
        if not isinstance(call, dict):
            continue
        key = (row_of(call.get("test"), call.get("target")), str(call.get("target")))
        if key not in out:  # a helper's call on another target, or an old report without tests
            out[key] = Cell(*key, verdict=verdict_of.get(str(call.get("test"))))
        cell = out[key]
        cell.calls.append(call)
        outcome = call_outcome(call)
        if outcome not in cell.outcomes:
            cell.outcomes.append(outcome)
    return out


def _worse(a: str | None, b: str) -> str:
    if a is None:
        return b
    rank = {v: i for i, v in enumerate(VERDICTS)}
    return a if rank.get(a, 0) <= rank.get(b, 0) else b


def write_json(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Written whole to a temporary name, then renamed: a reader never sees half a report."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
    tmp.replace(out)
    return out


class ReportError(ValueError):
    """A report file that cannot be used as a baseline; the message names the file and the fix."""


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    file = Path(path)
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise ReportError(f"{file}: no such report; write one first with --remote-report={file}") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{file}: not a JSON report ({exc}); write one with --remote-report") from None
    if not isinstance(data, dict) or data.get("version") != VERSION or "calls" not in data:
        raise ReportError(f"{file}: not a pytest-remote-serial report of version {VERSION} "
                          f"(found version {data.get('version') if isinstance(data, dict) else '?'}); "
                          "write a new one with --remote-report")
    problem = _shape_problem(data)
    if problem:
        raise ReportError(f"{file}: not a usable pytest-remote-serial report: {problem}; "
                          "write a new one with --remote-report")
    return data


def _shape_problem(data: dict[str, Any]) -> str | None:
    """What the comparison reads, checked up front: a malformed baseline is a usage error."""
    if not isinstance(data["calls"], list):
        return "'calls' is not a list"
    for i, call in enumerate(data["calls"]):
        if not isinstance(call, dict):
            return f"calls[{i}] is not an object"
        if not isinstance(call.get("target"), str) or not isinstance(call.get("outcome"), str):
            return f"calls[{i}] lacks a 'target' or 'outcome' string"
        if call.get("test") is not None and not isinstance(call["test"], str):
            return f"calls[{i}].test is not a string"
        phases = call.get("phases_s")
        if phases is not None and (not isinstance(phases, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in phases.values())):
            return f"calls[{i}].phases_s is not an object of numbers"
    targets = data.get("targets", [])
    if not isinstance(targets, list):
        return "'targets' is not a list"
    for i, target in enumerate(targets):
        if not isinstance(target, dict) or not isinstance(target.get("name"), str):
            return f"targets[{i}] is not an object with a 'name'"
        cold = target.get("cold_start_s")
        if cold is not None and (isinstance(cold, bool) or not isinstance(cold, (int, float))):
            return f"targets[{i}].cold_start_s is not a number"
    return None
