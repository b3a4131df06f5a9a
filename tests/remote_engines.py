"""A simulated remote machine for the tests: a second dockerd and an sshd on loopback.

Both run in a private mount namespace whose /tmp, /run and the plugin's cache folder are
empty tmpfs: a container there that bind-mounts any folder of this machine's /tmp or cache
fails to start, exactly as on another machine. The dockerd listens on 127.0.0.1 only (TCP) and
on the namespace's own /run/docker.sock, which is what `docker system dial-stdio` reaches over
ssh. Everything is started by the fixtures and stopped (and its folders removed) in teardown.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pytest_remote_serial.host.paths import cache_dir

START_TIMEOUT_S = 90.0


class CannotSimulate(RuntimeError):
    """Why this machine cannot host the simulated remote engine; the test skip's reason."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _need(tool: str) -> str:
    found = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/sbin/{tool}") if os.access(p, os.X_OK)), None)
    if found is None:
        raise CannotSimulate(f"{tool} is not installed")
    return found


def _mnt_ns(pid: int) -> str | None:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/ns/mnt")
    return None


@dataclass
class SecondEngine:
    root: Path  # on disk outside the namespace's tmpfs: data root, logs, keys
    port: int
    proc: subprocess.Popen[bytes]
    namespace: str | None = None
    sshd: subprocess.Popen[bytes] | None = None
    ssh_port: int | None = None

    @property
    def tcp(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def ssh(self) -> str:
        return f"ssh://root@127.0.0.1:{self.ssh_port}"

    def log(self, name: str = "dockerd.log") -> str:
        with contextlib.suppress(OSError):
            return (self.root / name).read_text(errors="replace")[-1500:]
        return ""

    # ---------------------------------------------------------------- start
    @classmethod
    def start(cls) -> SecondEngine:
        if os.geteuid() != 0:
            raise CannotSimulate("a second dockerd in a private mount namespace needs root")
        dockerd, unshare = _need("dockerd"), _need("unshare")
        root = Path("/var/tmp") / f"prs-engine-{uuid.uuid4().hex[:10]}"
        root.mkdir(mode=0o700, parents=True)
        (root / "daemon.json").write_text("{}")  # not /etc/docker/daemon.json: the main engine's
        cache = cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        driver = "fuse-overlayfs" if shutil.which("fuse-overlayfs") and os.path.exists("/dev/fuse") else "vfs"
        port = free_port()
        script = (
            "set -e; mount -t tmpfs -o size=256m,mode=1777 tmpfs /tmp; "
            f"mount -t tmpfs -o size=16m tmpfs '{cache}'; mount -t tmpfs -o mode=755 tmpfs /run; "
            f"exec '{dockerd}' --config-file '{root}/daemon.json' --data-root '{root}/data' "
            f"--exec-root /run/prs-docker --pidfile /run/prs-docker.pid "
            f"-H tcp://127.0.0.1:{port} -H unix:///run/docker.sock "
            f"--bridge=none --iptables=false --ip6tables=false --storage-driver={driver}")
        with (root / "dockerd.log").open("wb") as log:
            proc = subprocess.Popen([unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        engine = cls(root, port, proc)
        try:
            engine._wait_ready()
        except BaseException:
            engine.stop()
            raise
        return engine

    def _wait_ready(self) -> None:
        import docker

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CannotSimulate(f"the second dockerd exited with {self.proc.returncode}: {self.log()}")
            ns = _mnt_ns(self.proc.pid)
            if ns and ns != _mnt_ns(os.getpid()):
                self.namespace = ns
            with contextlib.suppress(Exception):
                client = docker.DockerClient(base_url=self.tcp, timeout=5)
                try:
                    client.ping()
                    return
                finally:
                    client.close()
            time.sleep(0.3)
        raise CannotSimulate(f"the second dockerd did not answer within {START_TIMEOUT_S:.0f}s: {self.log()}")

    def start_sshd(self) -> Path:
        """sshd inside the namespace, key-only, for root on 127.0.0.1; returns a folder holding an
        ``ssh`` wrapper (with a throwaway key and known_hosts) to put first on PATH, and a HOME
        for paramiko (~/.ssh/config and known_hosts)."""
        sshd, keygen, nsenter = _need("sshd"), _need("ssh-keygen"), _need("nsenter")
        ssh = _need("ssh")
        if self.namespace is None:
            raise CannotSimulate("the second dockerd is not in a mount namespace of its own")
        d = self.root / "ssh"
        d.mkdir(mode=0o700)
        for key in ("host_key", "client_key"):
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True, timeout=30)
        shutil.copy(d / "client_key.pub", d / "authorized_keys")
        self.ssh_port = free_port()
        (d / "sshd_config").write_text(
            f"Port {self.ssh_port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n"
            f"AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n"
            "StrictModes no\n"  # the keys live under /var/tmp, which is world-writable (sticky)
            f"PidFile {d}/sshd.pid\n")
        (d / "known_hosts").write_text(f"[127.0.0.1]:{self.ssh_port} {(d / 'host_key.pub').read_text()}")
        config = (f"Host 127.0.0.1\n  IdentityFile {d}/client_key\n  IdentitiesOnly yes\n"
                  f"  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
                  "  ConnectTimeout 10\n")
        (d / "ssh_config").write_text(config)
        bin_dir = d / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "ssh"
        wrapper.write_text(f"#!/bin/sh\nexec '{ssh}' -F '{d}/ssh_config' \"$@\"\n")
        wrapper.chmod(0o755)
        home = d / "home"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "config").write_text(config)
        shutil.copy(d / "known_hosts", home / ".ssh" / "known_hosts")
        with (self.root / "sshd.log").open("wb") as log:
            self.sshd = subprocess.Popen(
                [nsenter, "-t", str(self.proc.pid), "-m", "--", "/bin/sh", "-c",
                 f"mkdir -p /run/sshd && exec '{sshd}' -D -e -f '{d}/sshd_config'"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.sshd.poll() is not None:
                raise CannotSimulate(f"sshd exited with {self.sshd.returncode}: {self.log('sshd.log')}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.ssh_port), 1):
                return d
            time.sleep(0.2)
        raise CannotSimulate(f"sshd did not listen within 20s: {self.log('sshd.log')}")

    # ---------------------------------------------------------------- stop
    def stop(self) -> None:
        """sshd, then dockerd (it stops its containers and containerd), then anything else still
        in the namespace; then the folders. Bounded: SIGKILL after a grace period."""
        for proc, grace in ((self.sshd, 5), (self.proc, 30)):
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self._kill_namespace()
        if not self._mounted_below():
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_namespace(self) -> None:
        """containerd shims and the like that outlived dockerd: only processes in our namespace."""
        if self.namespace is None:
            return
        for _ in range(3):
            left = [int(p) for p in os.listdir("/proc") if p.isdigit() and _mnt_ns(int(p)) == self.namespace]
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)

    def _mounted_below(self) -> bool:
        prefix = str(self.root) + "/"
        with open("/proc/mounts") as fh:
            return any(line.split()[1].startswith(prefix) for line in fh)

    def running(self) -> list[int]:
        """Processes still alive that this engine started (for the teardown test)."""
        pids = [p.pid for p in (self.proc, self.sshd) if p is not None and p.poll() is None]
        if self.namespace:
            pids += [int(p) for p in os.listdir("/proc") if p.isdigit() and _mnt_ns(int(p)) == self.namespace]
        return pids
