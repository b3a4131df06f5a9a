"""``python -m benchmarks.reply_load``: what loading a reply inside the trust boundary costs on
the host, per kind of reply, against the full (trusted) unpickler, in this process only (no
target: the bytes are made here as an agent would make them). Medians of ``--repeats`` loads.

Each row is one reply: many instances of a class of the call's own module, many small numpy
arrays, many datetimes, a result the checked path must take (an OrderedDict), and one plain list.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from collections import OrderedDict
from typing import Any


class Point:
    """A class the call's own module defines (the policy allows its module)."""

    def __init__(self, x: int, y: float) -> None:
        self.x, self.y = x, y


def replies() -> dict[str, Any]:
    import numpy as np

    from benchmarks.reply_load import Point as OwnedPoint  # as the module, not __main__

    return {
        "10^4 instances of an own class": [OwnedPoint(i, i / 2) for i in range(10_000)],
        "1000 small numpy arrays": [np.arange(i % 50, dtype="f8") for i in range(1000)],
        "10^4 datetimes": [datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=i) for i in range(10_000)],
        "OrderedDict of 10^4": OrderedDict((str(i), i) for i in range(10_000)),
        "list of 10^5 ints": list(range(100_000)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reply_load")
    parser.add_argument("--repeats", type=int, default=15)
    opts = parser.parse_args(argv)
    import pickle

    from pytest_remote_serial.host.trust import Policy, load_reply
    from pytest_remote_serial.remote.buffers import dump_with_buffers

    print(f"{'reply':34} {'bytes':>9} {'trusted ms':>11} {'untrusted ms':>13} {'ratio':>6}")
    for name, value in replies().items():
        data = dump_with_buffers(pickle.Pickler, value)
        row = []
        for trusted in (True, False):
            times = []
            for _ in range(opts.repeats):
                policy = Policy(trusted=trusted, owned={"benchmarks.reply_load"})
                t0 = time.perf_counter()
                load_reply(data, policy)
                times.append(time.perf_counter() - t0)
            row.append(statistics.median(times) * 1e3)
        size = sum(len(memoryview(b)) for b in data)
        print(f"{name:34} {size:>9} {row[0]:>11.2f} {row[1]:>13.2f} {row[1] / row[0]:>6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
