"""The `docker` backend: targets as hardened containers, through the docker SDK.

Every container is labelled with the session, the host and the host PID, so the next run
can remove what a killed run left behind; and its agent exits when the host's connection
closes, so even a ``kill -9`` leaves nothing running for long.
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..bundle import AGENT_ZIP, agent_options, ensure_bundle
from ..client import AgentClient
from ..images import BuildFailed, ImageBuilder, Progress
from ..matrix import Target
from ..transport import DockerStdioChannel, DockerStreamChannel
from .base import (
    SOCKET_NAME,
    Running,
    StartFailed,
    private_socket_dir,
    process_start,
    ready,
    signame,
    stopped,
    wait_and_connect,
)
from .compiled import COMPILED_PATH, ensure_compiled
from .engines import Engine, connect, default_engine
from .layer import AGENT_DIR, PATHS_DIR, ensure_layer

PREFIX = "pytest-remote-serial"
L_SESSION, L_RUN, L_HOST, L_PID, L_PID_START, L_TARGET, L_KEEP = (
    f"{PREFIX}.{k}" for k in ("session", "run", "host", "pid", "pid-start", "target", "keep"))
SOCK_DIR = "/run/prs"
KEEP_IDLE_S = 4 * 3600
TIGHT_PIDS = 16  # a limit at or under which a failed start may be the limit itself
# What every container gets (docs/architecture.md, "The trust boundary"), on a local and a remote engine alike.
HARDENING = "network none, cap_drop ALL, no-new-privileges, non-root, read-only rootfs + tmpfs /tmp, pids/memory limits"


def connect_engine(engine: Engine | None = None) -> Any:
    """The docker client, or a StartFailed that names the engine and what to do."""
    return connect(engine or default_engine())


def owner_alive(labels: dict[str, str]) -> bool:
    if labels.get(L_HOST) != socket.gethostname():
        return True  # another machine's run: not ours to judge
    try:
        pid = int(labels.get(L_PID, "0"))
    except ValueError:
        return False
    return pid > 0 and process_start(pid) == labels.get(L_PID_START)


def reap(client: Any, session: str | None = None) -> int:
    """Remove this session's containers (session given) or those of dead sessions."""
    removed = 0
    kept: set[str] = set()
    # The low-level list: no per-container inspect that could race with auto-removal.
    for summary in client.api.containers(all=True, filters={"label": L_SESSION}):
        labels = summary.get("Labels") or {}
        if labels.get(L_KEEP):
            kept.add(labels[L_KEEP])
        if session is not None:
            if labels.get(L_SESSION) != session:
                continue
        elif labels.get(L_KEEP) or owner_alive(labels):
            continue
        if _remove_id(client, summary["Id"]):
            removed += 1
    if session is None:
        _prune_keep_folders(kept)
    return removed


def _prune_keep_folders(in_use: set[str]) -> None:
    """--remote-keep's socket folders whose container is gone (idle, it removed itself)."""
    root = Path(tempfile.gettempdir()) / f"prs-keep-{os.geteuid()}"
    if not root.is_dir() or root.stat().st_uid != os.geteuid():
        return
    for folder in root.iterdir():
        # A minute's grace: a parallel run may have made its folder and not yet its container.
        if folder.name not in in_use and time.time() - folder.stat().st_mtime > 60:
            shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        root.rmdir()  # only if empty


def _start_refused(target: Target, exc: Any) -> StartFailed:
    """The engine's words; and since the container runtime's own start-up threads count against
    pids.max too, under a limit of a few processes `docker start` itself can fail (runc's "cannot
    start a stopped process"): then the limit is named."""
    hint = "" if target.pids > TIGHT_PIDS else (
        f" (the target's pids limit ({target.pids}) also counts the container runtime's own "
        f"start-up threads: raise `pids` for target {target.name!r} in the matrix file)")
    return StartFailed(f"the container could not start: {exc.explanation or exc}{hint}")


def _remove(container: Any) -> bool:
    return _remove_id(container.client, container.id)


def _remove_id(client: Any, container_id: str) -> bool:
    """Force-remove and return only once it is gone, even if auto-remove got there first."""
    import docker.errors

    try:
        client.api.remove_container(container_id, force=True)
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: removal already in progress
            raise
    with contextlib.suppress(Exception):  # API errors and the read timeout alike
        client.api.wait(container_id, timeout=10, condition="removed")
    return False


def gpu_problem(client: Any) -> str | None:
    """Why a GPU target cannot run here, naming which of the two requirements is missing."""
    runtimes = (client.info() or {}).get("Runtimes", {}) or {}
    missing = []
    if "nvidia" not in runtimes:
        missing.append("the Docker engine offers no nvidia runtime (install nvidia-container-toolkit)")
    if not Path("/dev/nvidia0").exists() and not shutil.which("nvidia-smi"):
        missing.append("the host sees no NVIDIA GPU")
    return "; ".join(missing) or None


def _keep_root() -> Path:
    """Short and stable: AF_UNIX paths are limited to 107 bytes, so not under the cache dir."""
    root = Path(tempfile.gettempdir()) / f"prs-keep-{os.geteuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    if root.stat().st_uid != os.geteuid():
        raise StartFailed(f"{root} belongs to another user; remove it to use --remote-keep")
    return root


LOG_MAX = "1m"  # what a container's log keeps: its last lines name a death; the rest is a call's output


def bounded_logs(client: Any) -> dict[str, Any] | None:
    """The engine's default ``json-file`` log driver keeps everything a container writes (a call's
    gigabyte on fd 1, and over stdio every frame): the containers get it with a size cap. Any
    other driver is the engine owner's choice, and left as it is."""
    try:
        driver = (client.info() or {}).get("LoggingDriver")
    except Exception:
        return None
    if driver != "json-file":
        return None
    return {"type": "json-file", "config": {"max-size": LOG_MAX, "max-file": "1"}}


def keep_dir(target: Target, image: str) -> Path:
    """The socket folder of the kept container of this recipe (its name is the container's key)."""
    key = hashlib.sha256(f"{image}|{ensure_bundle().folder.name}|{target}".encode()).hexdigest()[:16]
    return _keep_root() / key


class DockerBackend:
    def __init__(self, client: Any, session: str, progress: Progress, keep: bool = False,
                 engine: Engine | None = None, source: Any = None, run: str | None = None) -> None:
        self.client = client
        self.session = session
        self.run = run or session
        self.keep = keep
        self.progress = progress
        self.engine = engine or default_engine()
        # A remote engine sees none of this machine's folders: no bind mount, stdio only.
        self.remote = self.engine.remote
        self.builder = ImageBuilder(client, progress, source=source)
        self.cancelled = threading.Event()
        self._compiled: dict[str, Path] = {}  # target name -> its image's compiled agent (compiled.py)
        self.builder.cancelled = self.cancelled
        self.default_transport = "stdio" if self.remote else "socket"
        self.log_config = bounded_logs(client)

    def labels(self, target: Target) -> dict[str, str]:
        return {L_SESSION: self.session, L_RUN: self.run, L_HOST: socket.gethostname(), L_PID: str(os.getpid()),
                L_PID_START: process_start(os.getpid()), L_TARGET: target.name}

    def start(self, target: Target) -> Running:
        if target.gpu:
            problem = gpu_problem(self.client)
            if problem:
                raise StartFailed(f"target {target.name!r} needs a GPU: {problem}")
        try:
            image, build_s = self.builder.ensure(target)
        except BuildFailed as exc:
            raise StartFailed(f"image for {target.name!r} could not be built: {exc}") from None
        transport = self.default_transport if target.transport == "auto" else target.transport
        if self.remote and transport == "socket":
            raise StartFailed(f"target {target.name!r}: transport = \"socket\" needs a local engine; "
                              f"{self.engine.name} is remote (use \"stdio\" or \"auto\")")
        image_id = self.client.images.get(image).id
        run_image = ensure_layer(self.client, image, target, self.labels(target), self.progress) \
            if self.remote else image
        compile_s = 0.0
        if not self.remote:  # (a remote engine gets the source in its layer)
            compiled, compile_s = ensure_compiled(self.client, image, image_id, target,
                                                  lambda: self._run_kwargs(target, image, []), _remove)
            if compiled is not None:
                self._compiled[target.name] = compiled
        if self.keep and transport == "socket":
            running = self._start_kept(target, image)
        else:
            running = self._start(target, run_image, transport)
        running.image = image
        running.build_s = build_s
        running.image_id = image_id
        running.extra.update(backend="docker", engine=self.engine.name, hardening=HARDENING,
                             agent="compiled" if target.name in self._compiled else "source",
                             paths_on_target=[f"{PATHS_DIR}/{i}" for i in range(len(target.paths))])
        if compile_s:
            running.extra["agent_compile_s"] = compile_s
        if run_image != image:
            running.extra["layer"] = run_image
        return running

    def _run_kwargs(self, target: Target, image: str, command: list[str]) -> dict[str, Any]:
        uid = os.geteuid()
        # On a remote engine the bundle and paths are in the image's layer (layer.py) instead.
        volumes = {} if self.remote else {str(ensure_bundle().folder): {"bind": AGENT_DIR, "mode": "ro"}}
        compiled = self._compiled.get(target.name)
        if compiled is not None:
            volumes[str(compiled)] = {"bind": COMPILED_PATH, "mode": "ro"}
        for i, path in enumerate(target.paths):
            host = (target.root / path).resolve()
            if not host.is_dir():
                raise StartFailed(f"target {target.name!r}: paths entry {path!r} is not a folder "
                                  f"({host})")
            if not self.remote:
                volumes[str(host)] = {"bind": f"{PATHS_DIR}/{i}", "mode": "ro"}
            command += ["--path", f"{PATHS_DIR}/{i}"]
        # Not auto-removed: an exited container keeps its logs and OOMKilled flag for the
        # message; stop() and the next run's reap() remove it. No swap beyond the memory
        # limit: a call over it is OOM-killed and named, instead of thrashing until a timeout.
        kwargs: dict[str, Any] = dict(
            image=image, command=command, auto_remove=False, init=True,
            network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"],
            user="65534:65534" if uid == 0 else f"{uid}:{os.getegid()}",
            read_only=True, tmpfs={"/tmp": "rw,nosuid,nodev,size=1g,mode=1777"},
            pids_limit=target.pids, mem_limit=target.memory, memswap_limit=target.memory, working_dir="/tmp",
            environment={"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"},
            labels=self.labels(target), volumes=volumes,
        )
        if self.log_config is not None:
            kwargs["log_config"] = self.log_config
        if target.gpu:
            import docker.types

            kwargs["device_requests"] = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
        return kwargs

    def _agent_command(self, target: Target, *mode: str) -> list[str]:
        script = COMPILED_PATH if target.name in self._compiled else f"{AGENT_DIR}/{AGENT_ZIP}"
        cmd = [target.python, script, *mode]
        for lib in ensure_bundle().libs:
            cmd += ["--lib", f"{AGENT_DIR}/{lib}"]
        return cmd + agent_options(target)

    def _create(self, target: Target, kwargs: dict[str, Any]) -> Any:
        """Create, then start: a container that was created but failed to start is removed here,
        not left for the next run's reap."""
        import docker.errors

        if self.cancelled.is_set():
            raise StartFailed("the run is stopping")
        try:
            container = self.client.containers.create(**kwargs)
        except docker.errors.APIError as exc:
            raise StartFailed(f"the container could not be created: {exc.explanation or exc}") from None
        try:
            container.start()
        except docker.errors.APIError as exc:
            _remove(container)
            raise _start_refused(target, exc) from None
        return container

    def _start(self, target: Target, image: str, transport: str) -> Running:
        start = time.monotonic()
        if transport == "stdio":
            kwargs = self._run_kwargs(target, image, self._agent_command(target, "--stdio"))
            kwargs.update(stdin_open=True)
            container, client = self._start_stdio(target, kwargs)
            parent = None
        else:
            parent, sock_dir = private_socket_dir(world_writable=True)
            sock_mode = ["--socket", f"{SOCK_DIR}/{SOCKET_NAME}", "--accept-timeout", "120"]
            kwargs = self._run_kwargs(target, image, self._agent_command(target, *sock_mode))
            kwargs["volumes"][str(sock_dir)] = {"bind": SOCK_DIR, "mode": "rw"}
            container = self._create(target, kwargs)
            try:
                client = wait_and_connect(sock_dir / SOCKET_NAME, target.name,
                                          lambda: self._exited(container, target),
                                          cause=lambda: self._account(container, target))
            except BaseException:
                _remove(container)
                raise
            finally:
                # Connected (or failed): the folder goes now. The container's /run/prs is then a
                # deleted directory, in which nothing can be created: no call writes to host disk.
                shutil.rmtree(parent, ignore_errors=True)
        cold = time.monotonic() - start
        client.diagnose = lambda: self._lost(container, target, client.sent_at)
        client.stuck = lambda: _stuck(container, target, client.sent_at)

        def stop() -> None:
            client.close()
            _remove(container)
            if parent is not None:
                shutil.rmtree(parent, ignore_errors=True)

        return Running(target=target, client=client, stop=stop, image=image, cold_start_s=cold,
                       extra={"container": container.id, "transport": transport})

    def _start_stdio(self, target: Target, kwargs: dict[str, Any]) -> tuple[Any, AgentClient]:
        """Fallback for a remote engine: frames over the container's attached stdin/stdout."""
        import docker.errors

        api = self.client.api
        run = dict(kwargs)
        volumes = run.pop("volumes")
        host_config = api.create_host_config(
            auto_remove=run.pop("auto_remove"), init=run.pop("init"),
            network_mode=run.pop("network_mode"), cap_drop=run.pop("cap_drop"),
            security_opt=run.pop("security_opt"), read_only=run.pop("read_only"),
            tmpfs=run.pop("tmpfs"), pids_limit=run.pop("pids_limit"), mem_limit=run.pop("mem_limit"),
            memswap_limit=run.pop("memswap_limit"),
            binds=volumes, device_requests=run.pop("device_requests", None), log_config=run.pop("log_config", None),
        )
        created = api.create_container(host_config=host_config, stdin_open=True, tty=False, **{
            k: run[k] for k in ("image", "command", "user", "working_dir", "environment", "labels")})
        container = self.client.containers.get(created["Id"])
        try:
            raw = api.attach_socket(container.id, params={"stdin": 1, "stdout": 1, "stderr": 1,
                                                          "stream": 1})
            sock = getattr(raw, "_sock", raw)
            # ssh:// gives an ssh process's pipes or a paramiko channel, not a plain socket.
            plain = type(sock) is socket.socket
            if plain and sock.family in (socket.AF_INET, socket.AF_INET6):
                # Small frames each way: without this, Nagle holds each reply for the peer's ACK.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            channel = DockerStdioChannel(sock) if plain else DockerStreamChannel(sock)
            try:
                container.start()
            except docker.errors.APIError as exc:
                raise _start_refused(target, exc) from None
            return container, ready(lambda: AgentClient(channel, target.name), target.name,
                                    lambda: self._account(container, target))
        except BaseException:
            _remove(container)
            raise

    def _start_kept(self, target: Target, image: str) -> Running:
        """--remote-keep: one container per recipe, found again by the next pytest run."""
        sock_dir = keep_dir(target, image)
        key = sock_dir.name
        sock_path = sock_dir / SOCKET_NAME
        start = time.monotonic()
        found = self.client.containers.list(filters={"label": f"{L_KEEP}={key}", "status": "running"})
        client = None
        if found and sock_path.exists():
            with contextlib.suppress(Exception):
                client = wait_and_connect(sock_path, target.name, lambda: None, timeout=5)
        if client is None:
            for stale in found:
                _remove(stale)
            cmd = self._agent_command(target, "--socket", f"{SOCK_DIR}/{SOCKET_NAME}", "--keep",
                                      "--accept-timeout", str(KEEP_IDLE_S))
            kwargs = self._run_kwargs(target, image, cmd)
            kwargs["volumes"][str(sock_dir)] = {"bind": SOCK_DIR, "mode": "rw"}
            kwargs["labels"][L_KEEP] = key
            # What Docker takes in a name: [a-zA-Z0-9][a-zA-Z0-9_.-]*
            kwargs["name"] = re.sub(r"[^A-Za-z0-9_-]", "_", f"prs-keep-{target.name}-{key[:8]}")
            kwargs["auto_remove"] = True  # it outlives the run: gone by itself when idle
            sock_dir.mkdir(parents=True, exist_ok=True)
            sock_dir.chmod(0o777)
            with contextlib.suppress(FileNotFoundError):
                sock_path.unlink()
            container = None
            try:
                container = self._create(target, kwargs)
                found = [container]
                client = wait_and_connect(sock_path, target.name, lambda: self._exited(container, target),
                                          cause=lambda: self._account(container, target))
            except BaseException:  # no kept agent: no world-writable folder stays behind for one
                if container is not None:
                    _remove(container)
                shutil.rmtree(sock_dir, ignore_errors=True)
                raise
            # The socket stays for later runs; the folder becomes read-only to the container user.
            sock_dir.chmod(0o555)
        kept, agent = found[0], client
        agent.diagnose = lambda: self._lost(kept, target, agent.sent_at)
        agent.stuck = lambda: _stuck(kept, target, agent.sent_at)
        return Running(target=target, client=client, stop=client.close, image=image,
                       cold_start_s=time.monotonic() - start,
                       extra={"container": found[0].id, "transport": "socket", "kept": True})

    @staticmethod
    def _exited(container: Any, target: Target) -> str | None:
        """Why the container stopped before its agent listened, from its state and last lines."""
        import docker.errors

        try:
            container.reload()
        except docker.errors.NotFound:
            return "the container exited before its agent started (and was removed)"
        if container.status in ("exited", "dead"):
            return f"the container exited before its agent started: {_death(container, target)}"
        return None

    @classmethod
    def _account(cls, container: Any, target: Target) -> str | None:
        """The agent's own account of a failed start: how the container ended (given a moment),
        or, while it still runs, its last lines (a traceback the agent printed)."""
        ended = cls._lost(container, target)
        if ended:
            return ended
        try:
            lines = container.logs(tail=30).decode(errors="replace").strip()
        except Exception:
            return None
        return f"its last lines: {lines}" if lines else None

    @staticmethod
    def _lost(container: Any, target: Target, since: float | None = None) -> str | None:
        """Why a running agent went away: the container's own account, if it ended. ``since``:
        when the request it did not answer was sent (wall clock)."""
        import docker.errors

        with contextlib.suppress(docker.errors.DockerException):
            for _ in range(20):  # the engine records the exit a moment after the socket closes
                cause = _stuck(container, target, since)
                if cause:
                    return cause
                time.sleep(0.05)
        return None


def _stuck(container: Any, target: Target, since: float | None = None) -> str | None:
    """Why the container's agent cannot answer, known at once: the container ended, or the
    agent's process (the child of the container's init) is stopped."""
    import docker.errors

    try:
        container.reload()
        if container.status in ("exited", "dead"):
            return f"the container ended: {_death(container, target, since)}"
        top = container.top(ps_args="-o pid,ppid,stat")
    except docker.errors.DockerException:
        return None
    rows = [row for row in top.get("Processes") or [] if len(row) >= 3]
    pids = {row[0] for row in rows}
    inits = {row[0] for row in rows if row[1] not in pids}  # the container's init (docker-init)
    for _, ppid, state, *_ in rows:
        if ppid in inits:
            return stopped(state, "agent's process")
    return None


def _killed_by_oom(container: Any, state: dict[str, Any], since: float | None) -> bool:
    """``OOMKilled`` is set by any OOM kill in the container, and stays set: once a call was
    OOM-killed (and named so), a later death of the agent would be blamed on it too. The agent's
    death is the OOM killer's only if it died of SIGKILL and, when it died answering a request
    sent at ``since`` (wall clock), the engine recorded an OOM kill after that."""
    if not state.get("OOMKilled") or state.get("ExitCode") != 128 + signal.SIGKILL:
        return False
    if since is None:
        return True
    last = _last_oom(container)
    return last is None or last >= since


def _last_oom(container: Any) -> float | None:
    """When the engine last recorded an OOM kill in the container, on this machine's clock
    (the engine's may differ: a remote one's); None if it cannot say."""
    try:
        api = container.client.api
        asked = time.time()
        now = _engine_time(str(api.info().get("SystemTime") or ""))
        started = _engine_time(str(container.attrs["State"].get("StartedAt") or ""))
        if now is None or started is None:
            return None
        skew = now - (asked + time.time()) / 2
        events = api.events(since=int(started), until=f"{now:.9f}", decode=True,
                            filters={"container": container.id, "event": "oom"})
        times = [int(event.get("timeNano") or 0) / 1e9 for event in events]
        return max(times) - skew if times else float("-inf")
    except Exception:  # an engine that keeps no events: as before, OOMKilled says it
        return None


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _engine_time(text: str) -> float | None:
    """The engine's RFC 3339 time (nanoseconds, any zone) as a Unix time; None if unreadable."""
    found = _RFC3339.match(text)
    if not found:
        return None
    whole, fraction, zone = found.groups()
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float(fraction or 0)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds


def _death(container: Any, target: Target, since: float | None = None) -> str:
    """Exit code, OOMKilled with the `memory` key to raise, and the last lines of the log."""
    state = container.attrs.get("State") or {}
    code = state.get("ExitCode")
    if _killed_by_oom(container, state, since):
        why = (f"killed by the out-of-memory killer at its memory limit ({target.memory}); raise "
               f"`memory` for target {target.name!r} in the matrix")
    elif isinstance(code, int) and code > 128:  # the init process says how its child ended
        why = f"exit code {code} (the agent was killed by signal {code - 128}, {signame(code - 128)})"
    else:
        why = f"exit code {code}"
    try:
        lines = container.logs(tail=10).decode(errors="replace").strip().splitlines()
    except Exception:
        lines = []
    return f"{why}; last lines: {' | '.join(line.strip() for line in lines if line.strip()) or '(none)'}"
