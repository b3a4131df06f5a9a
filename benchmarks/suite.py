"""The run: floors, peers and our paths side by side on one image, then one table.

Order matters on a 2-core machine: the warm cases run with their three containers up (and
interleaved), then those containers go before the cold starts, which need a quiet engine.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from pytest_remote_serial.host.transport import spin_window

from . import floor, ours, peers
from .docker_env import DockerEnv, sigterm_as_interrupt
from .report import Verdict, fmt_s, ratio, series_rows, table, throughput_rows
from .stats import Case, Series, interleaved

MIB = 1 << 20


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description="pytest-remote-serial against its floors "
                                "and peers, side by side in one run (docs/architecture.md).")
    p.add_argument("--target", default="py3.11", help="matrix target whose image is used (default py3.11)")
    p.add_argument("--json", metavar="PATH", help="also write every figure as JSON here")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of warm calls (default 5)")
    p.add_argument("--repeats", type=int, default=5, help="cold starts and per-call containers (default 5)")
    p.add_argument("--mib", type=int, default=64, help="size of the bulk payload in MiB (default 64)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 round, 2 repeats")
    p.add_argument("--cold", action="store_true", help="only the start-up rows and their verdicts (any target: "
                   "the floors run the target's own interpreter, e.g. pypy3)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    if opts.quick:
        opts.rounds, opts.repeats = 1, 2
    sigterm_as_interrupt()
    from pytest_remote_serial.host.images import image_tag

    target = ours.load_target(opts.target)
    image = image_tag(target)
    env = DockerEnv()
    if not env.client.images.list(name=image):
        print(f"image {image} for {opts.target} is missing: run `python -m pytest_remote_serial images "
              f"{opts.target}` first", file=sys.stderr)
        return 2
    session = ours.Session()
    try:
        figures = (run_cold if opts.cold else run)(opts, env, session, target, image)
    except KeyboardInterrupt:
        log("interrupted: removing containers")
        return 130
    finally:
        session.shutdown_all()
        removed = env.cleanup()
        if removed:
            log(f"removed {removed} leftover container(s)")
    print(figures["text"])
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump({k: v for k, v in figures.items() if k != "text"}, fh, indent=2)
        log(f"figures written to {opts.json}")
    return 0


def run(opts: argparse.Namespace, env: DockerEnv, session: ours.Session, target: Any, image: str) -> dict[str, Any]:
    out: dict[str, Any] = {"target": opts.target, "image": image, "host_python": platform.python_version(),
                           "machine": platform.platform(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    k = opts.rounds

    # ---------------------------------------------------------------- warm, tiny calls
    log(f"starting the raw echo server, two agents and an execnet gateway on {image}")
    raw = floor.RawEcho(env, image)
    raw_spin = floor.RawEcho(env, image, spin_s=spin_window())
    ctl = session.controller([target])
    ctl.start_all()
    running = ctl.get(target.name)
    # Non-isolated calls get an agent of their own: after its first one an agent also holds an
    # inline worker beside its spares. The mixed case is measured too (call_isolated_mixed).
    ctl_inline = session.controller([target])
    ctl_inline.start_all()
    inline_running = ctl_inline.get(target.name)
    out["agent_python"] = running.python
    out["agent_cpus"] = int(running.client.hello.get("cpus") or 1)
    peer = peers.ExecnetPeer(env, image)
    phases: list[dict[str, float]] = []
    inline_phases: list[dict[str, float]] = []
    cases = [
        Case("raw_echo", raw.echo_small, 200, warmup=100),
        Case("raw_echo_paced", raw.echo_small, 20, warmup=5, pace_s=0.02),
        Case("raw_echo_spin", raw_spin.echo_small, 200, warmup=100),
        Case("agent_echo", ours.echo_call(running), 200, warmup=100),
        Case("call_inline", ours.roundtrip_call(inline_running, False, inline_phases), 100, warmup=50),
        Case("call_inline_no_spin", ours.roundtrip_call_no_spin(inline_running), 100, warmup=50),
        Case("call_isolated", ours.roundtrip_call(running, True, phases), 60, warmup=30),
        Case("call_isolated_paced", ours.roundtrip_call(running, True), 20, warmup=5, pace_s=0.02),
        Case("call_inline_paced", ours.roundtrip_call(inline_running, False), 20, warmup=5, pace_s=0.02),
        Case("call_isolated_mixed", ours.roundtrip_call(inline_running, True), 60, warmup=30),
        Case("execnet_channel", peer.call, 100, warmup=50),
        Case("execnet_remote_exec", peer.call_remote_exec, 20, warmup=10),
    ]
    warm = interleaved(cases, k, log)
    warm.update(interleaved([Case("map_1000", ours.map_call(running), 1, warmup=1)], max(3, k // 3), log))
    del phases[:30], inline_phases[:50]  # the warm-ups'
    iso_phases = {"isolated": ours.median_phases(phases), "inline": ours.median_phases(inline_phases)}
    read_cpu = ours.container_cpu(env.client.api, running)
    read_cpu_inline = ours.container_cpu(env.client.api, inline_running)
    cpu_per = {"call_inline": ours.cpu_per_call(read_cpu_inline, ours.roundtrip_call(inline_running, False), 300),
               "call_isolated": ours.cpu_per_call(read_cpu, ours.roundtrip_call(running, True), 300),
               "map_item": ours.cpu_per_call(read_cpu, ours.map_call(running), 2) / 1000}
    cpu_per["call_inline_no_spin"] = ours.cpu_per_call(read_cpu_inline, ours.roundtrip_call_no_spin(inline_running),
                                                       300)
    out["container_cpu_per_call_s"] = cpu_per
    out["host_cpu_per_call_s"] = {
        "call_inline": ours.host_cpu_per_call(ours.roundtrip_call(inline_running, False), 300),
        "call_inline_no_spin": ours.host_cpu_per_call(ours.roundtrip_call_no_spin(inline_running), 300),
    }
    # A non-isolated call: in the inline worker, a fork of the relay that forks the spares.
    probe = ours.fork_probe(inline_running)
    faults = ours.child_faults(running)

    # ---------------------------------------------------------------- 64 MiB there and back
    log(f"{opts.mib} MiB round trips")
    array = ours.big_array(opts.mib)
    nbytes = array.nbytes
    view = memoryview(array).cast("B")
    assert raw.echo_big(view) == view
    raw_fresh = floor.RawEcho(env, image, fresh=True)
    plain_outcome = ours.plain_ndarray_outcome(running)
    numpy_phases: list[dict[str, float]] = []
    big_cases = [
        Case("raw_echo_64", functools.partial(raw.echo_big, view), 2, warmup=1),
        Case("raw_echo_64_fresh", functools.partial(raw_fresh.echo_big, view), 2, warmup=1),
        Case("agent_echo_64", ours.echo_big(running, array), 2, warmup=1),
        Case("numpy_isolated", ours.numpy_roundtrip(running, array, True, numpy_phases), 2, warmup=1),
        Case("numpy_inline", ours.numpy_roundtrip(inline_running, array, False), 2, warmup=1),
    ]
    big = interleaved(big_cases, max(k, 3), log)
    big_phases = ours.median_phases(numpy_phases[2:])  # past the checking call and the warm-up
    raw_fresh.close()

    # ---------------------------------------------------------------- per-call containers
    log("per-call peers: docker exec, docker run (seed 004), new execnet gateways")
    slow = {name: Series(name) for name in ("docker_exec", "docker_run_call", "execnet_gateway_cold")}
    for _ in range(max(2, opts.repeats * 2)):
        slow["docker_exec"].times.append(peer.docker_exec())
    for _ in range(opts.repeats):
        slow["docker_run_call"].times.append(peers.docker_run_per_call(env, image))
        slow["execnet_gateway_cold"].times.append(peer.gateway_cold())

    peer.close()
    raw.close()
    raw_spin.close()
    session.shutdown(ctl)
    session.shutdown(ctl_inline)
    env.cleanup()

    cold, four_colds = cold_starts(opts, env, session, target, image)
    anatomy = ours.cold_start_anatomy(session, target)
    return summarize(out, Measured(warm, iso_phases, probe, faults, big, big_phases, nbytes, plain_outcome, slow,
                                   cold, four_colds, anatomy))


def cold_starts(opts: argparse.Namespace, env: DockerEnv, session: ours.Session, target: Any,
                image: str) -> tuple[dict[str, Series], list[float]]:
    """Floors (the target's own interpreter, with the agent's flags) and agents, interleaved."""
    log("cold starts (interleaved: ready floor, docker run CLI, one agent, four agents)")
    cold = {name: Series(name) for name in ("ready_floor", "ready_floor_four", "docker_run_cli", "agent_cold",
                                            "agent_get_wall", "four_get_wall")}
    four_colds: list[float] = []
    python = target.python
    floor.ready_floor(env, image, python)  # warm the engine's caches; discarded
    ours.cold_start_one(session, target)
    for i in range(opts.repeats):
        cold["ready_floor"].times.append(floor.ready_floor(env, image, python))
        cold["ready_floor_four"].times.append(floor.ready_floor_many(env, image, 4, python))
        cold["docker_run_cli"].times.append(floor.docker_run_cli(env, image, python))
        c, wall = ours.cold_start_one(session, target)
        cold["agent_cold"].times.append(c)
        cold["agent_get_wall"].times.append(wall)
        wall4, colds = ours.cold_start_many(session, target, 4)
        cold["four_get_wall"].times.append(wall4)
        four_colds += colds
        log(f"cold starts: repeat {i + 1}/{opts.repeats} done")
    return cold, four_colds


def run_cold(opts: argparse.Namespace, env: DockerEnv, session: ours.Session, target: Any,
             image: str) -> dict[str, Any]:
    """``--cold``: the start-up rows alone, for any target (the peers need a ``python3``)."""
    cold, four_colds = cold_starts(opts, env, session, target, image)
    ready = cold["ready_floor"].median
    text = [f"\npytest-remote-serial cold starts: target {opts.target} ({target.python}), image {image}, "
            f"host Python {platform.python_version()}",
            table("Start-up (ratio to the docker run floor, same flags as the agent's containers)",
                  ["path", "n", "median", "p10 – p90", "× floor"], series_rows(list(cold.values()), ready, LABELS))]
    verdicts = cold_verdicts(cold)
    text.append("\nPerformance targets (docs/architecture.md; ratios measured side by side in this run):")
    text += [v.line() for v in verdicts]
    return {"target": opts.target, "image": image, "host_python": platform.python_version(),
            "series": {name: s.as_json() for name, s in cold.items()}, "four_cold_start_s": four_colds,
            "verdicts": [v.as_json() for v in verdicts], "text": "\n".join(text)}


def cold_verdicts(cold: dict[str, Series]) -> list[Verdict]:
    ready = cold["ready_floor"].median
    return [
        Verdict("cold start (Running.cold_start_s) / docker run floor", ratio(cold["agent_cold"].median, ready),
                1.2, True),
        Verdict("four targets (Controller start_all → every get) / four docker runs at once",
                ratio(cold["four_get_wall"].median, cold["ready_floor_four"].median), 1.25, True),
    ]


LABELS = {
    "raw_echo": "raw Unix-socket echo (floor)",
    "raw_echo_paced": "  same, 20 ms idle before each echo",
    "raw_echo_spin": "  same, both ends spin-then-block",
    "agent_echo": "client.echo through the agent",
    "call_inline": "roundtrip abs(-1), isolate=False",
    "call_inline_no_spin": "  same, spinning off (SPIN_US=0)",
    "call_isolated": "roundtrip abs(-1), isolate=True",
    "call_isolated_paced": "  same, 20 ms idle before each call",
    "call_inline_paced": "  inline, 20 ms idle before each call",
    "call_isolated_mixed": "isolated, on an agent that ran inline calls",
    "execnet_channel": "execnet channel over docker exec -i",
    "execnet_remote_exec": "execnet remote_exec per call",
    "docker_exec": "docker exec python3 -c per call",
    "docker_run_call": "docker run --rm per call (seed 004)",
    "execnet_gateway_cold": "new execnet gateway + 1st call",
    "raw_echo_64": "raw Unix-socket echo (floor)",
    "raw_echo_64_fresh": "  same, new buffer per message both ends",
    "agent_echo_64": "client.echo through the agent",
    "numpy_isolated": "roundtrip numpy.negative, isolate=True",
    "numpy_inline": "roundtrip numpy.negative, isolate=False",
    "map_1000": "remote.map of 1,000 tiny items (whole map)",
    "ready_floor": "docker run → trivial process ready (floor)",
    "ready_floor_four": "four docker runs at once → all ready (floor)",
    "docker_run_cli": "docker run --rm python3 -c pass (CLI)",
    "agent_cold": "one agent: Running.cold_start_s",
    "agent_get_wall": "one agent: Controller start_all+get",
    "four_get_wall": "four agents: one Controller, all get",
}


@dataclass
class Measured:
    """Everything one run measured, before it is turned into the table."""

    warm: dict[str, Series]
    iso_phases: dict[str, dict[str, float]]
    probe: dict[str, float]
    faults: dict[str, float]
    big: dict[str, Series]
    big_phases: dict[str, float]
    nbytes: int
    plain_outcome: str
    slow: dict[str, Series]
    cold: dict[str, Series]
    four_colds: list[float]
    anatomy: dict[str, Any]


def summarize(out: dict[str, Any], m: Measured) -> dict[str, Any]:
    warm, iso_phases, probe, faults, big, big_phases = m.warm, m.iso_phases, m.probe, m.faults, m.big, m.big_phases
    nbytes, plain_outcome, slow, cold, four_colds = m.nbytes, m.plain_outcome, m.slow, m.cold, m.four_colds
    floor_s = warm["raw_echo"].median
    text = [f"\npytest-remote-serial benchmarks: target {out['target']} (Python {out['agent_python']}), "
            f"image {out['image']}, host Python {out['host_python']}"]
    text.append(table("Warm calls of a tiny function (ratio to the raw Unix-socket echo floor)",
                      ["path", "n", "median", "p10 – p90", "× floor"],
                      series_rows([s for name, s in warm.items() if name != "map_1000"] + list(slow.values()),
                                  floor_s, LABELS)))
    raw_mbs = 2 * nbytes / big["raw_echo_64"].median / 1e6
    text.append(table(f"{nbytes // MIB} MiB there and back (MB/s = 2 × {nbytes // MIB} MiB / median, 10^6 B)",
                      ["path", "n", "median", "MB/s", "× raw"],
                      throughput_rows(list(big.values()), nbytes, raw_mbs, LABELS)))
    ready = cold["ready_floor"].median
    text.append(table("Start-up (ratio to the docker run floor, same flags as the agent's containers)",
                      ["path", "n", "median", "p10 – p90", "× floor"],
                      series_rows(list(cold.values()), ready, LABELS)))
    iso = warm["call_isolated"].median
    text.append("\nWhere an isolated call goes (medians):")
    for mode, split in iso_phases.items():
        text.append(f"  RoundTrip.phases, {mode}: " + ", ".join(f"{k} {fmt_s(v)}" for k, v in split.items()))
    text.append(f"  tight loop {fmt_s(iso)} vs 20 ms idle before each call "
                f"{fmt_s(warm['call_isolated_paced'].median)}; inline {fmt_s(warm['call_inline'].median)}")
    text.append(f"  on an agent that has run non-isolated calls (an inline worker beside its spares): "
                f"{fmt_s(warm['call_isolated_mixed'].median)} = {ratio(warm['call_isolated_mixed'].median, iso):.2f}× "
                f"the tight loop")
    text.append(f"  fork in the agent's parent ({probe['modules']:.0f} modules loaded): fork() "
                f"{fmt_s(probe['fork'])}, fork+exit+waitpid {fmt_s(probe['fork_exit_wait'])}")
    if "child_import_scan" in probe:
        text.append(f"  agent's import scan (_installed_imports) in a fresh, unrehearsed child: "
                    f"{fmt_s(probe['child_import_scan'])}")
    text.append(f"  page faults an isolated child takes before the function runs: {faults['minor']:.0f} minor, "
                f"{faults['major']:.0f} major")
    text.append(f"  a plain host numpy-{_numpy_version()} ndarray as argument: {plain_outcome}")
    a = m.anatomy
    busiest = ", ".join(f"{k} ×{v}" for k, v in sorted(a["requests"].items(), key=lambda kv: -kv[1])[:4])
    text.append("\nWhere a cold start goes:")
    text.append(f"  {a['requests_total']} engine requests for one target ({busiest}, ...)")
    text.append(f"  the agent's socket appeared {fmt_s(a['socket_to_connected_s'])} before the host had "
                f"connected and read hello (the backend polls for it; cold_start_s {fmt_s(a['cold_start_s'])})")
    text.append(f"  CPU the agent's container used: {fmt_s(a['cpu_at_hello_s'])} by hello, "
                f"{fmt_s(a['cpu_settled_s'])} once settled (1 s later)")
    text.append(f"  four agents' own cold_start_s: median {fmt_s(statistics.median(four_colds))}, "
                f"max {fmt_s(max(four_colds))}")

    numpy_mbs = 2 * nbytes / big["numpy_isolated"].median / 1e6
    inline = warm["call_inline"].median
    text.append(f"  like for like, 20 ms idle before each call: isolated {fmt_s(warm['call_isolated_paced'].median)} / "
                f"inline {fmt_s(warm['call_inline_paced'].median)} = "
                f"{ratio(warm['call_isolated_paced'].median, warm['call_inline_paced'].median):.2f} (waking "
                "idle processes is part of both)")
    host_cpu, no_spin = out["host_cpu_per_call_s"], warm["call_inline_no_spin"].median
    text.append(f"  spin-then-block (a wait for a quick answer starts without sleeping, up to "
                f"{fmt_s(spin_window())}): inline {fmt_s(inline)} with it, {fmt_s(no_spin)} without; a call costs "
                f"the host {fmt_s(host_cpu['call_inline'])} of CPU with it, {fmt_s(host_cpu['call_inline_no_spin'])} "
                f"without, and the container {fmt_s(out['container_cpu_per_call_s']['call_inline'])} with it, "
                f"{fmt_s(out['container_cpu_per_call_s']['call_inline_no_spin'])} without")
    text.append(f"  remote.map of 1,000 tiny items: {fmt_s(warm['map_1000'].median)}, against 1,000 isolated "
                f"calls in a loop {fmt_s(1000 * iso)}")
    text.append("\nBounds this machine sets (why a ratio can stay out of reach):")
    paced_floor, paced_inline = warm["raw_echo_paced"].median, warm["call_inline_paced"].median
    text.append(f"  waking idle processes: with 20 ms idle before each, the raw echo costs {fmt_s(paced_floor)} "
                f"({ratio(paced_floor, floor_s):.1f}× the tight echo) and an inline call {fmt_s(paced_inline)} "
                f"({ratio(paced_inline, inline):.1f}× the tight inline call: after an idle stretch a call's "
                f"working set, both interpreters, comes back from memory). An isolated call does all an inline "
                f"call does, so paced isolated / inline ≥ {ratio(paced_inline, inline):.2f}")
    cpus = max(1, out["agent_cpus"])
    cpu_per = out["container_cpu_per_call_s"]
    text.append(f"  a fresh process per call: fork+exit+waitpid alone takes {fmt_s(probe['fork_exit_wait'])} in the "
                f"agent; all told an isolated call costs the container {fmt_s(cpu_per['call_isolated'])} of CPU "
                f"(an inline one {fmt_s(cpu_per['call_inline'])}), most of it the kernel's fork, copy-on-write "
                f"and exit. Spread over its {cpus} CPUs that is {fmt_s(cpu_per['call_isolated'] / cpus)} per call "
                f"= {ratio(cpu_per['call_isolated'] / cpus, warm['execnet_channel'].median):.2f}× execnet's channel "
                f"(CPU counted over 300 calls right after the timed rounds: an estimate, not a strict bound)")
    text.append(f"  remote.map: each item's process costs {fmt_s(cpu_per['map_item'])} of CPU, so 1,000 items "
                f"over {cpus} CPUs need about {fmt_s(1000 * cpu_per['map_item'] / cpus)} = "
                f"{ratio(1000 * cpu_per['map_item'] / cpus, 1000 * iso):.2f}× 1,000 isolated calls")
    call_s = big_phases.get("call", float("nan"))
    echo_64 = big["agent_echo_64"].median
    bound_s = echo_64 + call_s
    text.append(f"  {nbytes // MIB} MiB numpy: the function's own call phase (numpy.negative, memory-bound) "
                f"takes {fmt_s(call_s)}; with the agent's echo of the same bytes ({fmt_s(echo_64)}) "
                f"the round trip cannot beat {2 * nbytes / bound_s / 1e6:,.0f} MB/s = "
                f"{ratio(2 * nbytes / bound_s / 1e6, raw_mbs):.2f}× raw")
    verdicts = [  # docs/architecture.md's performance targets, in its order; JSON series keys in brackets there
        Verdict("isolated call, spare ready (20 ms idle before) / inline call",
                ratio(warm["call_isolated_paced"].median, inline), 1.5, True),
        Verdict("inline call / raw socket echo floor", ratio(inline, floor_s), 4, True),
        Verdict("isolated call, tight loop / execnet channel over docker exec -i",
                ratio(iso, warm["execnet_channel"].median), 2, True),
        Verdict("remote.map of 1,000 tiny items / 1,000 isolated calls", ratio(warm["map_1000"].median, 1000 * iso),
                0.3, True),
        *cold_verdicts(cold),
        Verdict(f"{nbytes // MIB} MiB numpy round trip (isolated) MB/s / raw socket MB/s", ratio(numpy_mbs, raw_mbs),
                0.6, False),
    ]
    bound_mbs = 2 * nbytes / bound_s / 1e6
    # The same paths judged like for like, against the bound this run measured for each (above).
    against_bounds = [
        Verdict("isolated call, 20 ms idle before / inline call, 20 ms idle before",
                ratio(warm["call_isolated_paced"].median, paced_inline), 1.25, True),
        Verdict("isolated call, tight loop / its CPU per call spread over the target's CPUs",
                ratio(iso, cpu_per["call_isolated"] / cpus), 1.2, True),
        Verdict("remote.map item / its CPU per item spread over the target's CPUs",
                ratio(warm["map_1000"].median / 1000, cpu_per["map_item"] / cpus), 1.2, True),
        Verdict(f"{nbytes // MIB} MiB numpy round trip (isolated) MB/s / the bound its call and echo set",
                ratio(numpy_mbs, bound_mbs), 0.9, False),
        Verdict("inline call / raw echo with both ends spinning", ratio(inline, warm["raw_echo_spin"].median), 5, True),
    ]
    text.append("\nPerformance targets (docs/architecture.md; ratios measured side by side in this run):")
    text += [v.line() for v in verdicts]
    text.append("Against the bounds this machine set in this run (docs/architecture.md, like for like):")
    text += [v.line() for v in against_bounds]
    text.append(f"  info  like for like, both ends spin-then-block: inline / raw echo that spins: "
                f"{ratio(inline, warm['raw_echo_spin'].median):.2f}; with spinning off at both ends: "
                f"{ratio(no_spin, floor_s):.2f}")
    text.append(f"  info  cold start as the user sees it (start_all+get) / docker run floor: "
                f"{ratio(cold['agent_get_wall'].median, ready):.2f}")
    text.append(f"  info  isolated {nbytes // MIB} MiB numpy / raw: {ratio(numpy_mbs, raw_mbs):.2f}; inline: "
                f"{ratio(2 * nbytes / big['numpy_inline'].median / 1e6, raw_mbs):.2f}")

    out["series"] = {name: s.as_json() for group in (warm, slow, big, cold) for name, s in group.items()}
    out["bulk_bytes"] = nbytes
    out["throughput_mbs"] = {name: 2 * nbytes / s.median / 1e6 for name, s in big.items()}
    out["phases_s"] = dict(iso_phases, numpy_isolated=big_phases)
    out["fork_probe_s"] = probe
    out["isolated_child_faults"] = faults
    out["four_cold_start_s"] = four_colds
    out["cold_start_anatomy"] = m.anatomy
    out["plain_ndarray_argument"] = plain_outcome
    out["verdicts"] = [v.as_json() for v in verdicts + against_bounds]
    out["text"] = "\n".join(text)
    return out


def _numpy_version() -> str:
    import numpy

    return str(numpy.__version__)
