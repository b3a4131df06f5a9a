"""pytest-xdist: each worker runs its own agents; its records travel to the controller.

Each worker starts one set of containers for the targets its tests need and removes them
itself. What it records travels as it goes, on the test reports xdist already sends (an
attribute of the report, which xdist serializes with it), so a worker that dies mid-run
(``kill -9``, the OOM killer, a segfault in a test) loses none of the rows it finished; what
is left at its end (a session fixture's calls) goes back through ``workeroutput``. All of it is
plain JSON, as xdist wants.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from typing import Any

WORKER_KEY = "remote_serial"
RUN_KEY = "remote_serial_run"  # workerinput: the run's id, shared by the controller and its workers
REPORT_ATTR = "remote_serial"  # the attribute of a test report that carries a worker's new records


class WorkerResults:
    """On the controller: every worker's records, as they arrive."""

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


class Outbox:
    """On a worker: what has not been sent to the controller yet, each record sent once."""

    def __init__(self) -> None:
        self._calls = 0
        self._targets: set[str] = set()
        self._tests: set[str] = set()

    def take(self, calls: list[Any], targets: Callable[[set[str]], list[dict[str, Any]]],
             tests: list[dict[str, Any]]) -> str | None:
        """``calls``: every call record so far (those not sent yet are taken); ``targets(sent)``:
        the target entries of the targets not in ``sent``; ``tests``: finished test records."""
        new_calls = [c if isinstance(c, dict) else c.as_record() for c in calls[self._calls:]]
        self._calls = len(calls)
        new_targets = targets(self._targets)
        self._targets.update(t["name"] for t in new_targets)
        new_tests = [t for t in tests if t["nodeid"] not in self._tests]
        self._tests.update(t["nodeid"] for t in new_tests)
        if not (new_calls or new_targets or new_tests):
            return None
        return WorkerResults.pack(new_calls, new_targets, new_tests)


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
