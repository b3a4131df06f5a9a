"""Functions the benchmark ships into the target; sent with ``cloudpickle-by-value``.

They import inside their body so that, pickled by value, they carry nothing of the host.
"""

from __future__ import annotations

from typing import Any


def negate_f64(buf: Any, shape: tuple[int, ...]) -> Any:
    """The 64 MiB round trip: a float64 array in, its negation out, both ways out of band.

    The host's numpy 2 pickles arrays as ``numpy._core...``, which numpy 1 cannot load, so the
    array travels as a ``pickle.PickleBuffer`` (arriving here as the received ``bytearray``,
    no copy) and comes back as the target's own ndarray, which the host's result unpickler maps.
    """
    import numpy

    return numpy.negative(numpy.frombuffer(buf, dtype=numpy.float64).reshape(shape))


def fork_probe(n: int) -> dict[str, float]:
    """Run inline in the agent's long-lived parent: what one fork costs there.

    ``fork``: until the parent's ``fork()`` returns; ``fork_exit_wait``: until an immediately
    exiting child is reaped, i.e. what an isolated call pays if its spare is forked on demand.
    """
    import os
    import statistics
    import time

    fork, full = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        t1 = time.perf_counter()
        os.waitpid(pid, 0)
        t2 = time.perf_counter()
        fork.append(t1 - t0)
        full.append(t2 - t0)
    import struct
    import sys

    out = {"fork": statistics.median(fork), "fork_exit_wait": statistics.median(full),
           "modules": float(len(sys.modules))}
    # What the agent's per-call import scan costs in a fresh child, if this agent has one.
    scan = getattr(sys.modules.get("__main__"), "_installed_imports", None)
    if scan is not None:
        took = []
        for _ in range(max(1, n // 10)):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                t0 = time.perf_counter()
                scan()
                os.write(w, struct.pack("d", time.perf_counter() - t0))
                os._exit(0)
            os.close(w)
            took.append(struct.unpack("d", os.read(r, 8))[0])
            os.close(r)
            os.waitpid(pid, 0)
        out["child_import_scan"] = statistics.median(took)
    return out


def child_faults() -> tuple[int, int]:
    """Called isolated: page faults (minor, major) the forked child took before user code ran.

    A child's rusage starts at zero at fork, so this counts the copy-on-write and first-touch
    faults of receiving and loading the call: a fixed cost of isolation per call.
    """
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_minflt, ru.ru_majflt
