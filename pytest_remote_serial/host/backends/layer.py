"""For a remote engine: the agent bundle and the ``paths`` folders as one small image layer.

A remote engine cannot bind-mount this machine's folders, and a read-only root filesystem
refuses ``put_archive``. So the files go in once through the engine API (``put_archive`` into
a stopped container of the target's image, then ``commit``), and the layer is found again by
the hash of its content and its base: an unchanged bundle and unchanged ``paths`` cost nothing
on the next run, a changed file makes a new layer and the old one is dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Any

from ..bundle import ensure_bundle
from ..images import Progress, build_lock
from ..matrix import Target
from .base import StartFailed

AGENT_DIR = "/opt/prs"
PATHS_DIR = "/opt/prs-paths"
REPO = "pytest-remote-serial/layer"
L_LAYER = "pytest-remote-serial.layer"
L_LAYER_TARGET = "pytest-remote-serial.layer-target"
SKIP = {"__pycache__", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, mode: int = 0o644) -> None:
    """Owned by root, readable by the container's non-root user, with a fixed time: the same
    content makes the same tar, hence the same hash."""
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.mtime = 0
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    else:
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))


def _add_tree(tar: tarfile.TarFile, folder: Path, dest: str) -> None:
    _add(tar, dest)
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIP)
        rel = Path(root).relative_to(folder)
        for d in dirs:
            _add(tar, f"{dest}/{(rel / d).as_posix()}")
        for f in sorted(files):
            path = Path(root) / f
            if not path.is_file():
                continue  # a dangling link or a socket: nothing to carry
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            _add(tar, f"{dest}/{(rel / f).as_posix()}", path.read_bytes(), mode)


def layer_tar(target: Target) -> bytes:
    """``opt/prs`` (agent and serializer zips) and ``opt/prs-paths/<i>`` (each ``paths`` entry)."""
    bundle = ensure_bundle()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "opt")
        _add(tar, AGENT_DIR.lstrip("/"))
        for path in sorted(bundle.folder.iterdir()):
            _add(tar, f"{AGENT_DIR.lstrip('/')}/{path.name}", path.read_bytes())
        if target.paths:
            _add(tar, PATHS_DIR.lstrip("/"))
        for i, entry in enumerate(target.paths):
            host = (target.root / entry).resolve()
            if not host.is_dir():
                raise StartFailed(f"target {target.name!r}: paths entry {entry!r} is not a folder ({host})")
            _add_tree(tar, host, f"{PATHS_DIR.lstrip('/')}/{i}")
    return buf.getvalue()


def ensure_layer(client: Any, image: str, target: Target, labels: dict[str, str], progress: Progress) -> str:
    """The tag of ``image`` plus the bundle and ``paths``, made on ``client``'s engine if missing."""
    import docker.errors

    data = layer_tar(target)
    base_id = client.images.get(image).id
    key = hashlib.sha256(base_id.encode() + hashlib.sha256(data).digest()).hexdigest()
    tag = key[:16]
    ref = f"{REPO}:{tag}"
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(ref)
        return ref
    with build_lock(f"layer-{key}"):
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.get(ref)
            return ref
        progress(f"{target.name}: sending the agent bundle and paths ({len(data) >> 10} KiB) as layer {ref}")
        api = client.api
        # Never started: no process runs, and the session labels let a later run reap it.
        created = api.create_container(image=image, command=["/prs-never-started"], labels=labels,
                                       network_disabled=True)
        try:
            if not api.put_archive(created["Id"], "/", data):
                raise StartFailed(f"target {target.name!r}: the engine refused the agent bundle (put_archive)")
            api.commit(created["Id"], repository=REPO, tag=tag,
                       changes=[f"LABEL {L_LAYER}={key}", f"LABEL {L_LAYER_TARGET}={target.name}"])
        except docker.errors.APIError as exc:
            raise StartFailed(f"target {target.name!r}: the agent layer could not be made on the "
                              f"engine: {exc.explanation or exc}") from None
        finally:
            with contextlib.suppress(docker.errors.APIError):
                api.remove_container(created["Id"], force=True)
    _drop_older(client, target.name, ref)
    return ref


def _drop_older(client: Any, name: str, keep: str) -> None:
    """Earlier layers of this target (older bundle or ``paths``); one in use stays."""
    import docker.errors

    for image in client.images.list(filters={"label": f"{L_LAYER_TARGET}={name}"}):
        if keep in image.tags:
            continue
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(image.id, noprune=False)
