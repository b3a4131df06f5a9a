"""Run cloudpickle's suite through the source capsule per target; print counts, write JSON.

``python -m peer.run [--targets native local py3.13 py3.9] [--json peer-results.json]``.
Each target is its own pytest process (``peer/plugin.py``), so one target's agent, patches or
crash never colour another's numbers. ``native`` is the suite as shipped, for reference.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SUITE = "peer/cloudpickle_tests/cloudpickle_test.py"
COLUMNS = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
LABELS = ("code", "data", "none")


def run_target(target: str, libs: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, "-m", "pytest", SUITE, "-p", "peer.plugin", f"--peer-target={target}",
               f"--peer-out={out}", "-q", "-s", "-p", "no:cacheprovider", "--tb=no", "-o", "addopts="]
        if libs:
            cmd.append(f"--peer-libs={libs}")
        print(f"[peer] {target}: {' '.join(cmd[2:])}", flush=True)
        subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, check=False)  # failures are the finding
        if not out.exists():
            raise SystemExit(f"[peer] {target}: pytest wrote no results")
        return dict(json.loads(out.read_text()))


def table(runs: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    """Counts per target and label; the label of a test is the one the host run gave it."""
    lines = [f"{'target':<8} {'python':<8} {'label':<5} " + " ".join(f"{c:>8}" for c in COLUMNS)]
    for target, run in runs.items():
        counts: dict[str, collections.Counter[str]] = {label: collections.Counter() for label in LABELS}
        for nodeid, test in run["tests"].items():
            counts[labels.get(nodeid, test.get("label", "none"))][test["outcome"]] += 1
        for label in LABELS:
            lines.append(f"{target:<8} {run['python']:<8} {label:<5} "
                         + " ".join(f"{counts[label][c]:>8}" for c in COLUMNS))
    return "\n".join(lines)


def failures(runs: dict[str, dict[str, Any]]) -> str:
    lines = []
    for target, run in runs.items():
        for nodeid, test in sorted(run["tests"].items()):
            if test["outcome"] in ("failed", "error"):
                name = nodeid.split("::", 1)[1]
                lines.append(f"{target:<8} {name}: {test.get('reason', '')[:200]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", nargs="+", default=["native", "local", "py3.13", "py3.9"])
    parser.add_argument("--libs", default=None, help="pytest (and psutil) for the targets' Pythons")
    parser.add_argument("--json", default="peer-results.json")
    opts = parser.parse_args(argv)
    runs = {t: run_target(t, opts.libs) for t in opts.targets}
    host = runs.get("local", {}).get("tests", {})
    labels = {nodeid: test["label"] for nodeid, test in host.items()}
    Path(opts.json).write_text(json.dumps({"labels": labels, "runs": runs}, indent=1))
    print(table(runs, labels))
    print(failures(runs))
    print(f"[peer] per-test results: {opts.json}")


if __name__ == "__main__":
    main()
