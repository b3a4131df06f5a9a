"""Target images from their recipes, built once and found again by the recipe's hash.

No registry can be assumed, so the ``debian`` recipe builds a root filesystem with
debootstrap on the host and ``docker import``s it: nothing inside a container ever needs
the network.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .matrix import Target
from .paths import cache_dir

# Bump when the way images are built changes, so old images are rebuilt.
BUILDER_VERSION = "1"
LABEL = "pytest-remote-serial.recipe"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Trimmed from the root filesystem: nothing a target's Python needs.
SLIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "var/cache/apt/archives",
        "var/lib/apt/lists", "var/cache/debconf/templates.dat-old")

Progress = Callable[[str], None]


class BuildFailed(RuntimeError):
    """The image could not be made; the message ends with the build's last lines."""


def image_tag(target: Target) -> str:
    """Named by recipe, not by target: two targets with one recipe share one image."""
    kind = f"debian-{target.recipe['suite']}" if target.recipe_kind == "debian" else target.recipe_kind
    return f"pytest-remote-serial/{kind}:{target.recipe_hash(BUILDER_VERSION)[:12]}"


@contextlib.contextmanager
def build_lock(key: str) -> Iterator[None]:
    """One build per recipe across processes (pytest-xdist workers, parallel runs)."""
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{key}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class ImageBuilder:
    def __init__(self, client: Any, progress: Progress) -> None:
        self.client = client
        self.progress = progress
        self.cancelled = threading.Event()  # set on Ctrl-C: builds stop instead of finishing

    def find(self, target: Target) -> str | None:
        import docker.errors

        ref = target.recipe if target.recipe_kind == "image" else image_tag(target)
        try:
            self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            return None
        return str(ref)

    def ensure(self, target: Target) -> tuple[str, float | None]:
        """The image to run, and the seconds spent building it (None if it was there)."""
        found = self.find(target)
        if found:
            return found, None
        with build_lock(target.recipe_hash(BUILDER_VERSION)):
            found = self.find(target)  # another process may have built it meanwhile
            if found:
                return found, None
            start = time.monotonic()
            build = {"debian": self._debian, "dockerfile": self._dockerfile, "image": self._pull}
            ref = build[str(target.recipe_kind)](target)
            took = time.monotonic() - start
            self.progress(f"{target.name}: image {ref} ready in {took:.0f}s")
            return ref, took

    def _pull(self, target: Target) -> str:
        import docker.errors

        ref = str(target.recipe)
        self.progress(f"{target.name}: pulling {ref}")
        try:
            self.client.images.pull(ref)
        except docker.errors.APIError as exc:
            raise BuildFailed(
                f"image {ref!r} is not present and cannot be pulled ({exc.explanation or exc}); "
                "load it with `docker load`, or give the target a debian or dockerfile recipe"
            ) from None
        return ref

    def _dockerfile(self, target: Target) -> str:
        import docker.errors

        dockerfile = (target.root / str(target.recipe)).resolve()
        if not dockerfile.is_file():
            raise BuildFailed(f"dockerfile {dockerfile} does not exist (target {target.name!r})")
        tag = image_tag(target)
        self.progress(f"{target.name}: docker build -f {dockerfile}")
        try:
            self.client.images.build(
                path=str(dockerfile.parent), dockerfile=dockerfile.name, tag=tag, rm=True,
                forcerm=True, labels={LABEL: target.recipe_hash(BUILDER_VERSION)},
            )
        except docker.errors.BuildError as exc:
            lines = [str(c.get("stream") or c.get("error") or "").rstrip() for c in exc.build_log]
            raise BuildFailed(f"docker build failed: {exc.msg}\n" + "\n".join(lines[-15:])) from None
        except docker.errors.APIError as exc:
            raise BuildFailed(f"docker build failed: {exc.explanation or exc}") from None
        return tag

    def _debian(self, target: Target) -> str:
        recipe = dict(target.recipe)
        suite = recipe["suite"]
        packages = list(recipe.get("packages", ["python3"]))
        debootstrap = shutil.which("debootstrap")
        if debootstrap is None:
            raise BuildFailed("debootstrap is not installed: `apt-get install debootstrap` "
                              "(the debian recipe builds the image on this host)")
        if os.geteuid() != 0:
            raise BuildFailed("the debian recipe needs root on the host (debootstrap chroots); "
                              "run as root, or build the image elsewhere and use `image = ...`")
        mirror = recipe.get("mirror") or os.environ.get("PYTEST_REMOTE_SERIAL_MIRROR", DEFAULT_MIRROR)
        debs = cache_dir() / "debs" / suite
        debs.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"rootfs-{target.name}-", dir=_build_dir()))
        rootfs = work / "rootfs"
        cmd = [debootstrap, "--variant=minbase", f"--include={','.join(packages)}",
               f"--cache-dir={debs}"]
        if recipe.get("components"):
            cmd.append(f"--components={','.join(recipe['components'])}")
        cmd += [suite, str(rootfs), mirror]
        self.progress(f"{target.name}: debootstrap {suite} ({', '.join(packages)}) from {mirror}")
        try:
            self._run_logged(target.name, cmd, "debootstrap")
            for rel in SLIM:
                shutil.rmtree(rootfs / rel, ignore_errors=True)
            self._check_python(target, rootfs)
            return self._import(target, rootfs)
        finally:
            _unmount_below(work)
            shutil.rmtree(work, ignore_errors=True)

    def _check_python(self, target: Target, rootfs: Path) -> None:
        python = target.python if "/" in target.python else f"usr/bin/{target.python}"
        if not (rootfs / python.lstrip("/")).exists():
            raise BuildFailed(f"the image has no {target.python}: add the package that provides it "
                              f"to debian.packages, or set python = ... for target {target.name!r}")

    def _import(self, target: Target, rootfs: Path) -> str:
        tag = image_tag(target)
        repo, _, version = tag.rpartition(":")
        self.progress(f"{target.name}: docker import {tag}")
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", "-", "."],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert tar.stdout is not None
        try:
            self.client.api.import_image_from_stream(
                tar.stdout, repository=repo, tag=version,
                changes=[f"LABEL {LABEL}={target.recipe_hash(BUILDER_VERSION)}",
                         "ENV LANG=C.UTF-8", f'CMD ["{target.python}"]'],
            )
        finally:
            tar.stdout.close()
            _, err = tar.communicate()
        if tar.returncode:
            raise BuildFailed(f"tar of the root filesystem failed: {err.decode(errors='replace')[-500:]}")
        return tag

    def _run_logged(self, name: str, cmd: list[str], what: str) -> None:
        """Run a long build step, echoing a progress line now and then, keeping the tail."""
        tail: collections.deque[str] = collections.deque(maxlen=20)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True)
        assert proc.stdout is not None
        start = last = time.monotonic()

        def reader() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail.append(line.rstrip())

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        try:
            while proc.poll() is None:
                if self.cancelled.wait(0.5):
                    raise BuildFailed(f"{what} cancelled: the run is stopping")
                if time.monotonic() - last >= 15:
                    last = time.monotonic()
                    self.progress(f"{name}: {what} {last - start:.0f}s: {tail[-1] if tail else ''}")
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
            raise
        thread.join(5)
        if proc.returncode:
            raise BuildFailed(f"{what} exited with {proc.returncode}; last lines:\n" + "\n".join(tail))


def _unmount_below(path: Path) -> None:
    """An interrupted debootstrap leaves /proc and /sys mounted in the chroot: never rmtree those."""
    prefix = str(path.resolve()) + "/"
    with open("/proc/mounts") as fh:
        mounts = [line.split()[1] for line in fh if line.split()[1].startswith(prefix)]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


def _build_dir() -> Path:
    path = cache_dir() / "build"
    path.mkdir(parents=True, exist_ok=True)
    return path
