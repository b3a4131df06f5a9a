"""One agent per target per session: started together, reused by every test, always stopped.

This is the controller half of the xdist-like split: it owns lifetimes and knows nothing
of pytest, so the nox sessions and benchmarks drive it directly too.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..outcomes import TargetUnavailable
from .backends.base import Running, StartFailed, remove_dead_runs
from .backends.engines import Engine, default_engine, engine_for
from .backends.interpreter import start_interpreter
from .backends.local import start_local
from .bundle import ensure_bundle
from .images import Progress
from .matrix import Target

if TYPE_CHECKING:
    from .backends.containers import DockerBackend


class Controller:
    def __init__(self, targets: list[Target], progress: Progress, *, keep: bool = False,
                 hidden: list[Path] | None = None, run: str | None = None) -> None:
        """``run``: the id of the whole test run, shared by xdist's workers (each of which has a
        session of its own); every container is labelled with both, so a run finds its own."""
        self.targets = {t.name: t for t in targets}
        self.progress = progress
        self.keep = keep
        self.hidden = hidden or []
        self.session = uuid.uuid4().hex
        self.run = run or self.session
        self._pool = cf.ThreadPoolExecutor(max_workers=max(4, len(targets)),
                                           thread_name_prefix="prs-start")
        self._futures: dict[str, cf.Future[Running]] = {}
        self._running: dict[str, Running] = {}
        self._dockers: dict[str, DockerBackend] = {}
        self._docker_errors: dict[str, str] = {}
        self._docker_lock = threading.Lock()
        self._engine_locks: dict[str, threading.Lock] = {}
        self._stopping = threading.Event()
        removed = remove_dead_runs()
        if removed:
            progress(f"removed {removed} folder(s) left by dead runs")

    # -- docker engines, each connected once and shared by its targets
    def docker(self, engine: Engine | None = None) -> DockerBackend:
        """The backend for ``engine`` (default: DOCKER_HOST or the local engine); engines connect
        independently, so a slow or dead remote one never holds up the others."""
        from .backends.containers import DockerBackend, connect_engine, reap

        engine = engine or default_engine()
        with self._docker_lock:
            lock = self._engine_locks.setdefault(engine.key, threading.Lock())
        with lock:
            if engine.key not in self._dockers and engine.key not in self._docker_errors:
                try:
                    client = connect_engine(engine)
                except StartFailed as exc:
                    self._docker_errors[engine.key] = str(exc)
                else:
                    removed = reap(client)
                    if removed:
                        self.progress(f"removed {removed} container(s) left by dead runs on {engine.name}")
                    source = self._local_client if engine.remote else None
                    self._dockers[engine.key] = DockerBackend(client, self.session, self.progress, self.keep,
                                                              engine=engine, source=source, run=self.run)
            if engine.key not in self._dockers:
                raise StartFailed(self._docker_errors.get(engine.key) or "no Docker engine")
            return self._dockers[engine.key]

    def _local_client(self) -> Any:
        """The local engine, from which a remote one gets images already built here."""
        local = default_engine()
        if local.remote:
            raise StartFailed("no local engine")
        return self.docker(local).client

    def _start(self, target: Target) -> Running:
        if self._stopping.is_set():
            raise StartFailed("the run is stopping")
        if target.is_local:
            return start_local(target, self.hidden)
        if target.is_interpreter:
            return start_interpreter(target)
        return self.docker(engine_for(target)).start(target)

    def add(self, target: Target) -> None:
        """A target asked for by name later (``assert_roundtrip(..., target="py3.9")``)."""
        self.targets.setdefault(target.name, target)

    def start_all(self, names: list[str] | None = None) -> None:
        """Kick off every target at once; tests then wait only for the one they need."""
        chosen = names or list(self.targets)
        # Import on the caller's thread what the start threads need (cloudpickle and dill for
        # the bundle, the docker SDK): a thread importing while pytester restores sys.modules
        # around a test loses modules mid-import (KeyError from importlib).
        ensure_bundle()
        if any(self.targets[name].is_container for name in chosen):
            with contextlib.suppress(ImportError):  # a missing SDK is reported by the start itself
                import docker  # noqa: F401
        for name in chosen:
            if name not in self._futures:
                self._futures[name] = self._pool.submit(self._start, self.targets[name])

    def get(self, name: str) -> Running:
        """The running target, restarted if its agent was lost; raises TargetUnavailable."""
        running = self._running.get(name)
        if running is not None and running.client.alive:
            return running
        if running is not None:  # lost (e.g. killed by the memory limit): start a fresh one
            with contextlib.suppress(Exception):
                running.stop()
            self._futures.pop(name, None)
            del self._running[name]
        self.start_all([name])
        try:
            running = self._futures[name].result()
        except StartFailed as exc:
            raise TargetUnavailable(name, str(exc)) from None
        except Exception as exc:
            raise TargetUnavailable(name, f"{type(exc).__name__}: {exc}") from exc
        self._running[name] = running
        return running

    def remove_dead(self, targets: list[Target]) -> None:
        """What dead runs left (an xdist worker killed mid-run): folders and local agents on this
        machine, and containers on the engines of ``targets``. A live run's are never touched."""
        from .backends.containers import reap

        removed = remove_dead_runs()
        if removed:
            self.progress(f"removed {removed} folder(s) left by dead runs")
        done: set[str] = set()
        for target in targets:
            with contextlib.suppress(StartFailed):
                engine = engine_for(target)
                if engine.key not in done:
                    done.add(engine.key)
                    removed = reap(self.docker(engine).client)  # (a first connection reaps, and says so)
                    if removed:
                        self.progress(f"removed {removed} container(s) left by dead runs on {engine.name}")

    def status(self) -> dict[str, Running | str]:
        """Each started target's Running, or the reason it could not start."""
        out: dict[str, Running | str] = {}
        for name, fut in self._futures.items():
            if not fut.done():
                continue
            exc = fut.exception()
            out[name] = self._running.get(name) or (str(exc) if exc else fut.result())
        return out

    def shutdown(self) -> None:
        """Stop everything this session started, even mid-start or after Ctrl-C."""
        self._stopping.set()
        dockers = list(self._dockers.values())
        for backend in dockers:
            backend.cancelled.set()
        for fut in self._futures.values():
            fut.cancel()
        self._pool.shutdown(wait=True)
        for fut in self._futures.values():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                running = fut.result()
                with contextlib.suppress(Exception):
                    running.stop()
        for running in self._running.values():
            with contextlib.suppress(Exception):
                running.stop()
        if not self.keep:
            from .backends.containers import reap

            for backend in dockers:
                with contextlib.suppress(Exception):
                    reap(backend.client, session=self.session)
