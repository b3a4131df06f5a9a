"""The folder a target gets: the agent plus zips of the host's own cloudpickle and dill.

Zipping the host's pure-Python serializers means the target loads with exactly the
versions that dumped, and an image with nothing installed still works (seed 004).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..remote import agent
from .paths import cache_dir

INJECTED = ("cloudpickle", "dill")


@dataclass(frozen=True)
class Bundle:
    folder: Path

    @property
    def agent(self) -> Path:
        return self.folder / "agent.py"

    @property
    def libs(self) -> list[str]:
        return sorted(p.name for p in self.folder.glob("*.zip"))


def _package_dir(name: str) -> Path:
    return Path(importlib.import_module(name).__file__ or "").parent


def _fingerprint() -> str:
    digest = hashlib.sha256(Path(agent.__file__).read_bytes())
    for name in INJECTED:
        mod = importlib.import_module(name)
        digest.update(f"{name}={getattr(mod, '__version__', '?')}".encode())
    return digest.hexdigest()[:16]


def ensure_bundle() -> Bundle:
    """Build the bundle once per agent/serializer version; atomic so parallel runs agree."""
    folder = cache_dir() / "bundle" / _fingerprint()
    if (folder / "agent.py").is_file():
        return Bundle(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    for name in INJECTED:
        _zip_package(_package_dir(name), tmp / f"{name}.zip")
    shutil.copyfile(agent.__file__, tmp / "agent.py")
    for path in tmp.iterdir():
        path.chmod(0o644)
    tmp.chmod(0o755)
    try:
        os.rename(tmp, folder)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return Bundle(folder)


def _zip_package(package: Path, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(package.rglob("*.py")):
            if "__pycache__" in path.parts or "tests" in path.relative_to(package).parts:
                continue
            zf.write(path, path.relative_to(package.parent).as_posix())
