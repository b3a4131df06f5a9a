"""pytest-xdist: each worker runs its own agents; its records travel to the controller.

Each worker starts one set of containers for the targets its tests need and removes them
itself; what it recorded goes back through ``workeroutput`` (plain JSON, as xdist wants).
"""

from __future__ import annotations

import json
import statistics
from typing import Any

WORKER_KEY = "remote_serial"


class WorkerResults:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.targets: list[dict[str, Any]] = []
        self.tests: list[dict[str, Any]] = []

    @staticmethod
    def pack(calls: list[dict[str, Any]], targets: list[dict[str, Any]], tests: list[dict[str, Any]]) -> str:
        return json.dumps({"calls": calls, "targets": targets, "tests": tests}, default=str)

    def add(self, packed: str | None) -> None:
        if not packed:
            return
        data = json.loads(packed)
        self.calls += data["calls"]
        self.targets += data["targets"]
        self.tests += data.get("tests", [])


def merge_targets(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per target; several workers' cold starts become their median, all kept."""
    merged: dict[str, dict[str, Any]] = {}
    starts: dict[str, list[float]] = {}
    for entry in entries:
        name = entry["name"]
        if entry.get("cold_start_s") is not None:
            starts.setdefault(name, []).append(float(entry["cold_start_s"]))
        current = merged.get(name)
        if current is None or (entry["available"] and not current["available"]):
            merged[name] = dict(entry)
    for name, values in starts.items():
        if len(values) > 1:
            merged[name]["cold_start_s"] = statistics.median(values)
            merged[name]["cold_starts_s"] = values
    return list(merged.values())
