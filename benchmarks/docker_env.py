"""The containers the benchmark starts itself: hardened like the plugin's, labelled, always removed.

Every container carries ``LABEL=<run id>``, so the ``finally`` of the run (and a SIGTERM,
turned into KeyboardInterrupt) removes all of them by label, whatever was mid-flight.
The flags mirror ``pytest_remote_serial/host/backends/containers.py`` so the floors pay the same
isolation costs as the agent does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

LABEL = "pytest-remote-serial-bench.run"
SOCK_DIR = "/run/prs"


def hardened(image: str, command: list[str], labels: dict[str, str],
             volumes: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """``containers.run`` arguments with the plugin's isolation (network none, read-only, no caps...)."""
    uid = os.geteuid()
    return dict(
        image=image, command=command, detach=True, init=True,
        network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"],
        user="65534:65534" if uid == 0 else f"{uid}:{os.getegid()}",
        read_only=True, tmpfs={"/tmp": "rw,nosuid,nodev,size=1g,mode=1777"},
        pids_limit=512, mem_limit="2g", working_dir="/tmp",
        environment={"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"},
        labels=labels, volumes=volumes or {},
    )


class DockerEnv:
    """The engine, this run's label, and the temporary folders to clean up."""

    def __init__(self) -> None:
        import docker

        self.client = docker.from_env(timeout=120)
        self.client.ping()
        self.run_id = uuid.uuid4().hex[:12]
        self.labels = {LABEL: self.run_id}
        self._dirs: list[Path] = []

    def socket_dir(self) -> tuple[Path, Path]:
        """A 0700 parent and a 0777 child, as the plugin uses for the (non-root) container user."""
        parent = Path(tempfile.mkdtemp(prefix="prs-bench-"))
        self._dirs.append(parent)
        sock_dir = parent / "sock"
        sock_dir.mkdir()
        sock_dir.chmod(0o777)
        return parent, sock_dir

    def run(self, image: str, command: list[str], sock_dir: Path | None = None) -> Any:
        volumes = {str(sock_dir): {"bind": SOCK_DIR, "mode": "rw"}} if sock_dir else None
        return self.client.containers.run(**hardened(image, command, dict(self.labels), volumes))

    def remove(self, container: Any) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound):
            self.client.api.remove_container(container.id, force=True)

    def cleanup(self) -> int:
        """Remove every container of this run (by label) and the socket folders."""
        import docker.errors

        removed = 0
        for summary in self.client.api.containers(all=True, filters={"label": f"{LABEL}={self.run_id}"}):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                self.client.api.remove_container(summary["Id"], force=True)
                removed += 1
        for folder in self._dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self._dirs.clear()
        return removed


def sigterm_as_interrupt() -> None:
    """SIGTERM (CI cancelling the job) runs the same ``finally`` as Ctrl-C."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
