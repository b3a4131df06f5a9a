"""Which Docker engine a target runs on, and whether it is remote.

An engine reached over ``tcp://`` or ``ssh://`` (directly, through ``DOCKER_HOST`` or a docker
context) is *remote*: its containers cannot see this machine's folders, so nothing is
bind-mounted and the agent talks over the attach stream (docs/architecture.md, "Backends").
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
from dataclasses import dataclass
from typing import Any

from ..matrix import Target
from .base import StartFailed

LOCAL_DEFAULT = "unix:///var/run/docker.sock"
REMOTE_SCHEMES = ("tcp://", "ssh://", "http://", "https://")
CONNECT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Engine:
    url: str  # what docker-py connects to
    name: str  # what reports and messages say: the URL, or the context and its URL
    context: str | None = None
    tls: Any = None  # a context's TLS settings, if it has any

    @property
    def remote(self) -> bool:
        return self.url.startswith(REMOTE_SCHEMES)

    @property
    def key(self) -> str:
        """Targets with the same key share one connection and one backend."""
        return self.name


def engine_location() -> str:
    return os.environ.get("DOCKER_HOST") or LOCAL_DEFAULT


def default_engine() -> Engine:
    return Engine(engine_location(), engine_location())


def engine_for(target: Target) -> Engine:
    """The target's engine: its ``engine`` URL, its docker ``context``, else ``DOCKER_HOST``."""
    if target.engine:
        return Engine(target.engine, target.engine)
    if target.context:
        return context_engine(target.context, target.name)
    return default_engine()


def context_engine(name: str, target: str = "?") -> Engine:
    """A docker context (``docker context create``) read from the CLI's own config."""
    from docker.context import ContextAPI

    try:
        ctx = ContextAPI.get_context(name)
    except Exception as exc:  # a corrupt context store: name it
        raise StartFailed(f"docker context {name!r} (target {target!r}) cannot be read: {exc}") from None
    if ctx is None:
        try:
            known = ", ".join(sorted(c.Name for c in ContextAPI.contexts())) or "none"
        except Exception:
            known = "?"
        raise StartFailed(f"target {target!r}: no docker context {name!r} (known: {known}); create it with "
                          f"`docker context create {name} --docker host=ssh://user@host` or use "
                          "`engine = \"ssh://user@host\"`")
    host = ctx.Host or LOCAL_DEFAULT
    return Engine(host, f"context {name} ({host})", context=name, tls=ctx.TLSConfig or None)


def paramiko_available() -> bool:
    return importlib.util.find_spec("paramiko") is not None


def use_ssh_cli() -> bool:
    """As the docker CLI does: the ``ssh`` command (all of ~/.ssh/config, agents, ProxyJump)
    when installed; paramiko otherwise, or when PYTEST_REMOTE_SERIAL_SSH=paramiko."""
    if os.environ.get("PYTEST_REMOTE_SERIAL_SSH", "").lower() == "paramiko":
        return False
    return shutil.which("ssh") is not None


def connect_timeout() -> float:
    """PYTEST_REMOTE_SERIAL_CONNECT_TIMEOUT (seconds) for a slow link; 30 s by default."""
    try:
        return float(os.environ.get("PYTEST_REMOTE_SERIAL_CONNECT_TIMEOUT", CONNECT_TIMEOUT_S))
    except ValueError:
        return CONNECT_TIMEOUT_S


def connect(engine: Engine, timeout: float | None = None) -> Any:
    """A docker client that answered a ping, within ``timeout``; else a StartFailed naming the
    engine and the fix. ``ssh://`` goes through paramiko when installed, else the ``ssh`` CLI."""
    import docker

    if engine.url.startswith("ssh://") and not paramiko_available():
        raise StartFailed(f"the engine {engine.name} is reached over ssh://, which docker-py supports only "
                          "with paramiko installed: pip install 'pytest-remote-serial[ssh]'")
    timeout = connect_timeout() if timeout is None else timeout
    result: dict[str, Any] = {}

    def attempt() -> None:
        try:
            if engine.url == engine_location() and engine.context is None:
                client = docker.from_env(timeout=30, use_ssh_client=use_ssh_cli())
            else:
                client = docker.DockerClient(base_url=engine.url, tls=engine.tls or False, timeout=30,
                                             use_ssh_client=use_ssh_cli())
            result["client"] = client
            client.ping()
            result["ok"] = True
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=attempt, daemon=True, name="prs-engine-connect")
    thread.start()
    thread.join(timeout)
    if result.get("ok"):
        return result["client"]
    if "client" in result:  # a half-open connection (an ssh process) must not outlive the failure
        try:
            result["client"].close()
        except Exception:
            pass
    why = result.get("error") or f"no answer within {timeout:.0f}s"
    hint = ("check `ssh` to that host works without a password prompt and that its user may use docker"
            if engine.url.startswith("ssh://") else "start the engine or fix the address")
    raise StartFailed(f"no Docker engine at {engine.name} ({why}); {hint} "
                      "(without --remote-matrix, tests run on the local target)")
