"""pytest-remote-serial's own paths, driven through the Controller exactly as the plugin does."""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_remote_serial.host.backends.base import Running
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import Target, load_matrix

from . import workloads

ROOT = Path(__file__).resolve().parent.parent


def load_target(name: str) -> Target:
    return load_matrix(ROOT).targets[name]


def quiet(msg: str) -> None:
    print(f"    [prs] {msg}", file=sys.stderr)


class Session:
    """Every Controller this run creates, so one ``shutdown_all`` stops them all."""

    def __init__(self) -> None:
        self.controllers: list[Controller] = []

    def controller(self, targets: list[Target]) -> Controller:
        ctl = Controller(targets, quiet)
        self.controllers.append(ctl)
        return ctl

    def shutdown(self, ctl: Controller) -> None:
        ctl.shutdown()
        with contextlib.suppress(ValueError):
            self.controllers.remove(ctl)

    def shutdown_all(self) -> None:
        while self.controllers:
            ctl = self.controllers.pop()
            with contextlib.suppress(BaseException):
                ctl.shutdown()


def roundtrip_call(running: Running, isolate: bool, phases: list[dict[str, float]] | None = None,
                   ) -> Callable[[], Any]:
    """The tiny call: ``abs(-1)`` with cloudpickle, checked outside the timing by the warm-up."""
    client = running.client

    def call() -> Any:
        rt = client.roundtrip(abs, (-1,), {}, "cloudpickle", 30.0, isolate)
        if phases is not None:
            phases.append(rt.phases)
        return rt

    rt = client.roundtrip(abs, (-1,), {}, "cloudpickle", 30.0, isolate)
    if rt.outcome != "ok" or rt.result != 1:
        raise RuntimeError(f"tiny call failed (isolate={isolate}): {rt.outcome} {rt.error}")
    return call


def roundtrip_call_no_spin(running: Running) -> Callable[[], Any]:
    """The tiny non-isolated call with spin-then-block off at both ends, as
    ``PYTEST_REMOTE_SERIAL_SPIN_US=0`` sets it: every wait for the other side sleeps at once."""
    call = roundtrip_call(running, False)
    channel = running.client.channel

    def no_spin() -> Any:
        saved, channel.spin_s = channel.spin_s, 0.0
        try:
            return call()
        finally:
            channel.spin_s = saved

    return no_spin


def host_cpu_per_call(fn: Callable[[], Any], n: int) -> float:
    """This thread's CPU per call of ``fn`` (spinning for an answer shows here)."""
    fn()
    before = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - before) / n


def map_call(running: Running, n: int = 1000) -> Callable[[], Any]:
    """``remote.map``'s path: ``abs`` over ``n`` tiny items, each in a fresh process there."""
    client = running.client
    items = [(-i,) for i in range(n)]

    def call() -> Any:
        return client.map(abs, items, "cloudpickle", 30.0)

    rts = call()
    if [rt.result for rt in rts] != [i for i in range(n)]:
        raise RuntimeError(f"map failed: {[rt.outcome for rt in rts if rt.outcome != 'ok'][:3]}")
    return call


def echo_call(running: Running) -> Callable[[], Any]:
    client = running.client
    payload = [b"x"]
    assert bytes(client.echo(payload)[0]) == b"x"
    return lambda: client.echo(payload)


def median_phases(phases: list[dict[str, float]]) -> dict[str, float]:
    keys = phases[0].keys() if phases else ()
    return {k: statistics.median(p.get(k, 0.0) for p in phases) for k in keys}


def fork_probe(running: Running, n: int = 200) -> dict[str, float]:
    rt = running.client.roundtrip(workloads.fork_probe, (n,), {}, "cloudpickle-by-value", 60.0, False)
    if rt.outcome != "ok":
        raise RuntimeError(f"fork probe failed: {rt.outcome} {rt.error}")
    return dict(rt.result)


def container_cpu(api: Any, running: Running) -> Callable[[], float]:
    """The CPU seconds the running agent's container has used so far (its cgroup, via the engine)."""
    cid = running.extra["container"]

    def read() -> float:
        return float(api.stats(cid, stream=False, one_shot=True)["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9

    return read


def cpu_per_call(read_cpu: Callable[[], float], fn: Callable[[], Any], n: int) -> float:
    """Container CPU per call of ``fn``, over ``n`` calls in a row: what a call costs the target's
    CPUs, wherever it was spent (the parent, the call's process, the kernel's fork and exit)."""
    fn()
    before = read_cpu()
    for _ in range(n):
        fn()
    return (read_cpu() - before) / n


def child_faults(running: Running, n: int = 30) -> dict[str, float]:
    """Median page faults an isolated child has taken by the time the function runs."""
    minor, major = [], []
    for _ in range(n):
        rt = running.client.roundtrip(workloads.child_faults, (), {}, "cloudpickle-by-value", 30.0, True)
        if rt.outcome != "ok":
            raise RuntimeError(f"child fault probe failed: {rt.outcome} {rt.error}")
        minor.append(rt.result[0])
        major.append(rt.result[1])
    return {"minor": statistics.median(minor), "major": statistics.median(major)}


# ----------------------------------------------------------------------------- big payloads


def big_array(mib: int) -> Any:
    import numpy

    return numpy.arange(mib * (1 << 20) // 8, dtype=numpy.float64)


def numpy_roundtrip(running: Running, array: Any, isolate: bool, phases: list[dict[str, float]] | None = None,
                    ) -> Callable[[], Any]:
    """``negate_f64`` on the array, sent as a PickleBuffer (see workloads.negate_f64 for why)."""
    import numpy

    client = running.client

    def call() -> Any:
        rt = client.roundtrip(workloads.negate_f64, (pickle.PickleBuffer(array), array.shape), {},
                              "cloudpickle-by-value", 120.0, isolate)
        if rt.outcome != "ok":
            raise RuntimeError(f"64 MiB round trip failed: {rt.outcome} {rt.error}")
        if phases is not None:
            phases.append(rt.phases)
        return rt

    rt = call()
    if not (isinstance(rt.result, numpy.ndarray) and numpy.array_equal(rt.result, -array)):
        raise RuntimeError("64 MiB round trip returned the wrong array")
    return call


def plain_ndarray_outcome(running: Running) -> str:
    """What happens to a host numpy-2 ndarray argument on the target's numpy (recorded, not timed)."""
    import numpy

    rt = running.client.roundtrip(numpy.negative, (numpy.ones(4),), {}, "cloudpickle", 30.0, True)
    detail = ((rt.error or {}).get("diagnosis") or (rt.error or {}).get("message") or "") if rt.error else ""
    return f"{rt.outcome}: {detail}" if detail else rt.outcome


def echo_big(running: Running, array: Any) -> Callable[[], Any]:
    client = running.client
    view = memoryview(array).cast("B")

    def call() -> Any:
        return client.echo([view])

    got = call()
    assert len(got[0]) == view.nbytes
    return call


# ----------------------------------------------------------------------------- cold starts


def cold_start_one(session: Session, target: Target) -> tuple[float, float]:
    """A fresh Controller: (Running.cold_start_s, wall of start_all + get)."""
    ctl = session.controller([target])
    try:
        t0 = time.perf_counter()
        ctl.start_all()
        running = ctl.get(target.name)
        wall = time.perf_counter() - t0
        return running.cold_start_s, wall
    finally:
        session.shutdown(ctl)


def cold_start_anatomy(session: Session, target: Target, settle_s: float = 1.0) -> dict[str, Any]:
    """One more cold start, instrumented (never timed against anything): the engine requests
    it makes, how long after the agent's socket appeared the host connected (the backend polls
    for it), and the CPU its container burns by hello and once settled (the agent keeps
    importing after hello)."""
    import collections
    import threading

    import docker.api.client

    from pytest_remote_serial.host.backends import containers as backend

    counts: collections.Counter[str] = collections.Counter()
    seen: dict[str, float] = {}
    send, wait_and_connect = docker.api.client.APIClient.send, backend.wait_and_connect

    def counting(self: Any, request: Any, **kwargs: Any) -> Any:
        path = re.sub(r"^/v[0-9.]+", "", request.path_url.split("?")[0])
        path = re.sub(r"/[0-9a-f]{64}", "/<id>", path)
        path = re.sub(r"^/images/.+/json$", "/images/<ref>/json", path)
        counts[f"{request.method} {path}"] += 1
        return send(self, request, **kwargs)

    def watched(sock_path: Path, *args: Any, **kwargs: Any) -> Any:
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                if sock_path.exists():
                    seen["appeared"] = time.perf_counter()
                    return
                time.sleep(0.0005)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            client = wait_and_connect(sock_path, *args, **kwargs)
            seen["connected"] = time.perf_counter()
            return client
        finally:
            stop.set()
            thread.join()

    ctl = session.controller([target])
    try:
        docker.api.client.APIClient.send = counting
        backend.wait_and_connect = watched
        try:
            ctl.start_all()
            running = ctl.get(target.name)
        finally:
            docker.api.client.APIClient.send = send
            backend.wait_and_connect = wait_and_connect
        api = ctl.docker().client.api
        cid = running.extra["container"]

        def cpu() -> float:
            return float(api.stats(cid, stream=False, one_shot=True)["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9

        at_hello = cpu()
        time.sleep(settle_s)
        settled = cpu()
        lag = seen["connected"] - seen["appeared"] if len(seen) == 2 else float("nan")
        return {"requests": dict(counts), "requests_total": sum(counts.values()), "cpu_at_hello_s": at_hello,
                "cpu_settled_s": settled, "cold_start_s": running.cold_start_s, "socket_to_connected_s": lag}
    finally:
        session.shutdown(ctl)


def cold_start_many(session: Session, target: Target, count: int) -> tuple[float, list[float]]:
    """``count`` copies of the target under one Controller: (wall until every get returned, colds)."""
    copies = [dataclasses.replace(target, name=f"bench{i}") for i in range(count)]
    ctl = session.controller(copies)
    try:
        t0 = time.perf_counter()
        ctl.start_all()
        runnings = [ctl.get(t.name) for t in copies]
        wall = time.perf_counter() - t0
        return wall, [r.cold_start_s for r in runnings]
    finally:
        session.shutdown(ctl)
