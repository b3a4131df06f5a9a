"""The recorded data of a run (DESIGN §5): built once, written as JSON, rendered elsewhere.

Like pytest-benchmark, the data is kept apart from the tables and pages drawn from it:
``terminal`` renders the terminal matrix, ``html`` the page, ``compare`` the diff.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

from ..host.backends.base import Running
from ..host.matrix import Target

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
    }
    if isinstance(state, Running):
        entry.update(python=state.python, image=state.image, image_id=state.image_id,
                     cold_start_s=round(state.cold_start_s, 6),
                     build_s=None if state.build_s is None else round(state.build_s, 3))
        try:
            entry["packages"] = dict(state.client.describe().get("packages", {}))
        except Exception:  # a target lost by now still has its calls in the report
            entry["packages"] = {}
    elif state is None:
        entry["reason"] = "not started: no test needed it"
    return entry


def build_report(calls: list[dict[str, Any]], targets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": host_info(),
        "targets": targets,
        "calls": calls,
    }


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
