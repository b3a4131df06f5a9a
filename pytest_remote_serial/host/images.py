"""Target images from their recipes, built once and found again by the recipe's hash.

No registry can be assumed, so the ``debian`` recipe builds a root filesystem with
debootstrap on the host and ``docker import``s it: nothing inside a container ever needs
the network.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
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


def debootstrap_command(debootstrap: str, recipe: dict[str, Any], packages: list[str], rootfs: Path,
                        debs: Path) -> list[str]:
    """debootstrap chooses its own mirror unless the recipe's ``mirror`` (or
    ``$PYTEST_REMOTE_SERIAL_MIRROR``) names one: no URL is written into this code."""
    cmd = [debootstrap, "--variant=minbase", f"--include={','.join(packages)}", f"--cache-dir={debs}"]
    if recipe.get("components"):
        cmd.append(f"--components={','.join(recipe['components'])}")
    mirror = recipe.get("mirror") or os.environ.get("PYTEST_REMOTE_SERIAL_MIRROR")
    return cmd + [recipe["suite"], str(rootfs), *([mirror] if mirror else [])]


class ImageBuilder:
    def __init__(self, client: Any, progress: Progress, source: Callable[[], Any] | None = None) -> None:
        self.client = client
        self.progress = progress
        self.cancelled = threading.Event()  # set on Ctrl-C: builds stop instead of finishing
        # For a remote engine: the local engine's client, whose already-built image is copied
        # over the API (save, then load) instead of being built again.
        self.source = source

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
            ref = self._copy(target) or build[str(target.recipe_kind)](target)
            took = time.monotonic() - start
            self.progress(f"{target.name}: image {ref} ready in {took:.0f}s")
            return ref, took

    def _copy(self, target: Target) -> str | None:
        """The image from the source engine, streamed through both APIs; None if it has none."""
        if self.source is None:
            return None
        ref = str(target.recipe) if target.recipe_kind == "image" else image_tag(target)
        try:
            source = self.source()
            source.images.get(ref)
        except Exception:  # no local engine, or the image is not there: build as usual
            return None
        self.progress(f"{target.name}: copying {ref} from the local engine")
        try:
            self.client.api.load_image(source.api.get_image(ref, chunk_size=1 << 20))
        except Exception as exc:
            raise BuildFailed(f"copying {ref} to the engine failed: {exc}") from None
        return ref

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
            log = list(exc.build_log)
            remove_layers(self.client, made_by(log))
            lines = [str(c.get("stream") or c.get("error") or "").rstrip() for c in log]
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
        wheels = list(recipe.get("wheels", []))
        if wheels and "python3-pip" not in packages:
            packages.append("python3-pip")  # installs the downloaded wheels inside, offline
        shared = cache_dir() / "debs" / suite
        shared.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"rootfs-{target.name}-", dir=_build_dir()))
        rootfs = work / "rootfs"
        debs = borrow_debs(shared, work / "debs")
        cmd = debootstrap_command(debootstrap, recipe, packages, rootfs, debs)
        mirror = recipe.get("mirror") or os.environ.get("PYTEST_REMOTE_SERIAL_MIRROR")
        where = f"from {mirror}" if mirror else "from debootstrap's default mirror"
        self.progress(f"{target.name}: debootstrap {suite} ({', '.join(packages)}) {where}")
        try:
            self._run_logged(target.name, cmd, "debootstrap")
            return_debs(debs, shared)
            if wheels:
                self._install_wheels(target, rootfs, wheels)
            for rel in SLIM:
                shutil.rmtree(rootfs / rel, ignore_errors=True)
            self._check_python(target, rootfs)
            return self._import(target, rootfs)
        finally:
            _unmount_below(work)
            shutil.rmtree(work, ignore_errors=True)

    def _install_wheels(self, target: Target, rootfs: Path, wheels: list[str]) -> None:
        """Wheels for the image's own Python, downloaded on the host (cached), then installed
        inside with ``--no-index`` and, where ``unshare`` exists, with no network at all."""
        tags = self._chroot_json(target, rootfs, _TAGS_SCRIPT)
        folder = download_wheels(wheels, tags, lambda cmd: self._run_logged(target.name, cmd, "pip download"),
                                 self.progress, target.name)
        inside = rootfs / "tmp" / "prs-wheels"
        shutil.copytree(folder, inside, dirs_exist_ok=True)
        cmd = [_require("chroot"), str(rootfs), _image_python(target), "-m", "pip", "install", "--no-index",
               "--find-links", "/tmp/prs-wheels", "--no-cache-dir", "--disable-pip-version-check",
               "--no-input", *wheels]
        if shutil.which("unshare"):
            cmd = [_require("unshare"), "--net", *cmd]
        self.progress(f"{target.name}: pip install {' '.join(wheels)} (offline, inside the image)")
        try:
            self._run_logged(target.name, cmd, "pip install", env=_CHROOT_ENV)
        finally:
            shutil.rmtree(inside, ignore_errors=True)

    def _chroot_json(self, target: Target, rootfs: Path, script: str) -> dict[str, Any]:
        proc = subprocess.run([_require("chroot"), str(rootfs), _image_python(target), "-c", script], env=_CHROOT_ENV,
                              capture_output=True, text=True)
        if proc.returncode:
            raise BuildFailed(f"{target.python} in the new image did not run: {proc.stderr.strip()[-500:]}")
        return dict(json.loads(proc.stdout))

    def _check_python(self, target: Target, rootfs: Path) -> None:
        if not (rootfs / _image_python(target).lstrip("/")).exists():
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

    def _run_logged(self, name: str, cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
        """Run a long build step, echoing a progress line now and then, keeping the tail."""
        tail: collections.deque[str] = collections.deque(maxlen=20)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True, env=env)
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
            raise BuildFailed(f"{what} exited with {proc.returncode}: {build_cause(list(tail))}; last lines:\n"
                              + "\n".join(tail))


def made_by(log: list[dict[str, Any]]) -> list[str]:
    """The images a classic ``docker build`` committed itself, from its log: each step's
    `` ---> <id>``, except a ``FROM`` step's (the base) and one taken from the build cache."""
    made: list[str] = []
    own = False
    for chunk in log:
        for line in str(chunk.get("stream") or "").splitlines():
            line = line.strip()
            if line.startswith("Step "):
                own = " : FROM " not in f"{line} ".upper()
            elif line == "---> Using cache":
                own = False
            elif own and line.startswith("---> ") and _IMAGE_ID.fullmatch(line[5:].strip()):
                made.append(line[5:].strip())
                own = False
    return made


_IMAGE_ID = re.compile(r"[0-9a-f]{12,64}")


def remove_layers(client: Any, ids: list[str]) -> None:
    """A failed build's own intermediate images, newest first (so each has no child left); one
    another image has come to use stays."""
    import docker.errors

    for image in reversed(ids):
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_image(image, noprune=True)


def build_cause(lines: list[str]) -> str:
    """The line of a failed build's output that says why (debootstrap's "E: ...", an error),
    to stand on the message's first line."""
    shown = [line.strip() for line in lines if line.strip()]
    for line in reversed(shown):
        if line.startswith(("E:", "ERROR", "error:", "Error:", "fatal:")) or "error" in line.lower():
            return line
    return shown[-1] if shown else "no output"


# What pip needs to know about the image's Python to pick wheels on the host.
_TAGS_SCRIPT = ("import json, platform, sys; print(json.dumps({'python': '%d.%d' % sys.version_info[:2], "
                "'implementation': sys.implementation.name, 'libc': platform.libc_ver()[1], "
                "'machine': platform.machine()}))")
_CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "LANG": "C.UTF-8", "PIP_BREAK_SYSTEM_PACKAGES": "1", "PIP_ROOT_USER_ACTION": "ignore"}


def _image_python(target: Target) -> str:
    """The target's interpreter as an absolute path inside the image."""
    return target.python if "/" in target.python else f"/usr/bin/{target.python}"


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise BuildFailed(f"{tool} is not installed on the host; the debian recipe needs it")
    return found


def manylinux_platforms(libc: str, machine: str) -> list[str]:
    """Every manylinux tag a glibc of this version can run, newest first (PEP 600 and legacy)."""
    try:
        major, minor = (int(part) for part in libc.split(".")[:2])
    except ValueError:
        raise BuildFailed(f"cannot read the image's glibc version {libc!r}; wheels need glibc") from None
    if major != 2:
        raise BuildFailed(f"the image's glibc {libc} is not 2.x; no manylinux wheel fits it")
    tags = [f"manylinux_2_{m}_{machine}" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{name}_{machine}" for floor, name in legacy.items() if minor >= floor]


def download_wheels(wheels: list[str], tags: dict[str, Any], run: Callable[[list[str]], None],
                    progress: Progress, name: str) -> Path:
    """The wheels (and their dependencies) for the image's Python and platform, in a folder
    of the cache kept by requirement set and tags, so later builds need no index at all."""
    key = hashlib.sha256(json.dumps([sorted(wheels), tags], sort_keys=True).encode()).hexdigest()[:16]
    folder = cache_dir() / "wheels" / key
    if (folder / ".complete").is_file():
        progress(f"{name}: wheels from the cache ({folder})")
        return folder
    if importlib.util.find_spec("pip") is None:
        raise BuildFailed(f"pip is not installed in the host Python ({sys.executable}); it downloads "
                          "the recipe's wheels: `python -m ensurepip` or install pip")
    partial = Path(tempfile.mkdtemp(prefix=f"wheels-{key}-", dir=_build_dir()))
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-input",
               "--disable-pip-version-check", "--progress-bar", "off", "--dest", str(partial),
               "--python-version", tags["python"],
               "--implementation", {"cpython": "cp"}.get(tags.get("implementation", "cpython"), "cp")]
        for platform in manylinux_platforms(str(tags["libc"]), str(tags["machine"])):
            cmd += ["--platform", platform]
        progress(f"{name}: pip download {' '.join(wheels)} for Python {tags['python']} "
                 f"(glibc {tags['libc']}, {tags['machine']})")
        run(cmd + wheels)
        (partial / ".complete").write_text("\n".join(sorted(p.name for p in partial.glob("*.whl"))) + "\n")
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def _unmount_below(path: Path) -> None:
    """An interrupted debootstrap leaves /proc and /sys mounted in the chroot: never rmtree those."""
    prefix = str(path.resolve()) + "/"
    with open("/proc/mounts") as fh:
        mounts = [line.split()[1] for line in fh if line.split()[1].startswith(prefix)]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


def borrow_debs(shared: Path, private: Path) -> Path:
    """A build's own package cache, seeded from the shared one by hard links: debootstraps of one
    suite running at once (py3.14, py3.15 and pypy3.11 are all sid) each move and validate files
    in their cache folder, and one sharing the folder with another exited 1 halfway."""
    private.mkdir(parents=True, exist_ok=True)
    for deb in shared.glob("*.deb"):
        try:
            os.link(deb, private / deb.name)
        except OSError:  # another file system, or the file went meanwhile
            with contextlib.suppress(OSError):
                shutil.copy2(deb, private / deb.name)
    return private


def return_debs(private: Path, shared: Path) -> None:
    """What the build downloaded joins the shared cache, each file whole (a rename) or not at all."""
    for deb in private.glob("*.deb"):
        if (shared / deb.name).exists():
            continue
        partial = shared / f".{deb.name}.{os.getpid()}.partial"
        try:
            try:
                os.link(deb, partial)
            except OSError:
                shutil.copy2(deb, partial)
            os.replace(partial, shared / deb.name)
        except OSError:
            with contextlib.suppress(OSError):
                partial.unlink()


def _build_dir() -> Path:
    path = cache_dir() / "build"
    path.mkdir(parents=True, exist_ok=True)
    return path
