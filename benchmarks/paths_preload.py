"""``python -m benchmarks.paths_preload``: what an isolated call pays to import a heavy package
from the target's ``paths``, beside numpy (installed in the image, so preloaded) in the same run.

Each isolated call is a fresh fork of the agent's parent: a package the parent holds is
inherited, one it does not is imported again by every call, and from a read-only mount with
``PYTHONDONTWRITEBYTECODE`` that means compiling its source again each time. The agent preloads
what a call imported from ``paths`` as it does installed packages (docs/architecture.md,
"Isolation"), so after the first call the heavy import should cost what numpy's does.

    python -m benchmarks.paths_preload --target py3.13 --wheel networkx-3.6.1-py3-none-any.whl

Without ``--wheel`` a pure-Python package is generated (300 modules of 40 functions each), so it
runs offline. Only the ratio to numpy's row means anything on a shared machine; a paced call
(0.3 s apart) lets the agent replace the spares forked before a preload.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import load_matrix


def import_it(name: str) -> bool:
    """Run on the target: import ``name``; say whether the call process had it already."""
    import importlib
    import sys

    had = name in sys.modules
    importlib.import_module(name)
    return had


def generate(folder: Path, name: str = "heavylib", modules: int = 300, functions: int = 40) -> str:
    pkg = folder / name
    pkg.mkdir(parents=True)
    body = "\n".join(f"def f{i}(x, y=1):\n    z = [x * {i} + y for _ in range(3)]\n    return sum(z) % {i + 7}\n"
                     for i in range(functions))
    for m in range(modules):
        (pkg / f"m{m}.py").write_text(body)
    (pkg / "__init__.py").write_text("".join(f"from . import m{m}\n" for m in range(modules)))
    return name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.paths_preload", description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default="py3.13")
    p.add_argument("--wheel", help="a pure-Python wheel unpacked into the paths folder (e.g. networkx's)")
    p.add_argument("--module", help="the module to import (default: the wheel's top-level package)")
    p.add_argument("--calls", type=int, default=8)
    opts = p.parse_args(argv)
    import pytest_remote_serial

    print(f"[bench] code under test: {Path(pytest_remote_serial.__file__).parent}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="prs-bench-paths-") as tmp:
        root = Path(tmp)
        libs = root / "libs"
        libs.mkdir()
        if opts.wheel:
            with zipfile.ZipFile(opts.wheel) as wheel:
                wheel.extractall(libs)
            module = opts.module or Path(opts.wheel).name.split("-")[0]
        else:
            module = generate(libs)
        (root / "pyproject.toml").write_text(
            f'[tool.pytest_remote_serial]\nextends = "default"\n\n'
            f'[tool.pytest_remote_serial.targets."{opts.target}"]\npaths = ["libs"]\n')
        target = load_matrix(root).targets[opts.target]
        ctl = Controller([target], lambda msg: print(f"[bench] {msg}", file=sys.stderr))
        rows: dict[str, list[tuple[float, float, bool]]] = {module: [], "numpy": []}
        try:
            client = ctl.get(target.name).client
            print(f"[bench] {target.name}: Python {client.hello.get('python')}", file=sys.stderr)
            for _ in range(opts.calls):
                for name in rows:
                    rt = client.roundtrip(import_it, (name,), {}, "source", 120.0)
                    if rt.outcome != "ok":
                        print(rt.describe(), file=sys.stderr)
                        return 1
                    rows[name].append((rt.phases.get("call", 0.0), rt.phases.get("total", 0.0), bool(rt.result)))
                    time.sleep(0.3)
        finally:
            ctl.shutdown()
    print(f"{'import in an isolated call':<28} {'first call':>11} {'later: median call':>19} {'total':>9}  "
          "held by the fork")
    totals = {}
    for name, samples in rows.items():
        later = samples[1:]
        totals[name] = statistics.median(s[1] for s in later)
        print(f"{name:<28} {samples[0][0] * 1000:>9.1f}ms {statistics.median(s[0] for s in later) * 1000:>17.1f}ms "
              f"{totals[name] * 1000:>7.1f}ms  {sum(s[2] for s in later)}/{len(later)}")
    print(f"round trip of a later call, {module} / numpy: {totals[module] / max(totals['numpy'], 1e-9):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
