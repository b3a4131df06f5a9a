"""``python benchmarks/run.py``: the same as ``python -m benchmarks``, for those who run files."""

from __future__ import annotations

import sys
from pathlib import Path


def _main() -> int:
    # Run as a file, sys.path[0] is benchmarks/ itself; the package needs the repository root.
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks.suite import main

    return main()


if __name__ == "__main__":
    raise SystemExit(_main())
