"""The folder a target gets: the agent as one zip, and zips of the host's own cloudpickle and dill.

Zipping the host's pure-Python serializers means the target loads with exactly the versions
that dumped, and an image with nothing installed still works (seed 004). A target with
``serializers = "image"`` puts them after its own, so a call imports the image's where it has
them. The agent's zip runs as ``python agent.zip``: a ``__main__.py`` at its root starts the
far-side package, which it holds under the private name ``_prs_agent`` so that nothing a call
imports can be shadowed by it. Inside it, ``_prs_agent._cloudpickle`` is a plain copy of the
host's cloudpickle package: what the plugin's own machinery loads and dumps with
(``remote/own_cloudpickle.py``), whatever cloudpickle the call itself imports.
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

from .. import remote
from ..remote import own_cloudpickle
from .matrix import Target
from .paths import cache_dir

INJECTED = ("cloudpickle", "dill")
AGENT_ZIP = "agent.zip"
FAR_PACKAGE = "_prs_agent"  # the far side's package name on a target
# The private copies inside the far side's package: {distribution: its name there}.
PRIVATE_COPIES = {"cloudpickle": own_cloudpickle.PRIVATE}
_MAIN = f"from {FAR_PACKAGE}.__main__ import main\n\nmain()\n"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed times: the same files make the same zip


@dataclass(frozen=True)
class Bundle:
    folder: Path

    @property
    def agent(self) -> Path:
        return self.folder / AGENT_ZIP

    @property
    def libs(self) -> list[str]:
        return sorted(p.name for p in self.folder.glob("*.zip") if p.name != AGENT_ZIP)


def remote_files() -> list[Path]:
    """The far side's modules, as the host has them."""
    return sorted(Path(remote.__file__).parent.glob("*.py"))


def _package_dir(name: str) -> Path:
    return Path(importlib.import_module(name).__file__ or "").parent


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in remote_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for name in INJECTED:
        mod = importlib.import_module(name)
        digest.update(f"{name}={getattr(mod, '__version__', '?')}".encode())
    return digest.hexdigest()[:16]


def ensure_bundle() -> Bundle:
    """Build the bundle once per agent/serializer version; atomic so parallel runs agree."""
    folder = cache_dir() / "bundle" / _fingerprint()
    if (folder / AGENT_ZIP).is_file():
        return Bundle(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    for name in INJECTED:
        _zip_package(_package_dir(name), tmp / f"{name}.zip")
    zip_agent(tmp / AGENT_ZIP)
    for path in tmp.iterdir():
        path.chmod(0o644)
    tmp.chmod(0o755)
    try:
        os.rename(tmp, folder)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return Bundle(folder)


def zip_agent(dest: Path) -> None:
    """Stored, not deflated: a cold start then reads each module without zlib. The private
    copies go in the same zip, so each target's interpreter compiles them with the agent."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo("__main__.py", _EPOCH), _MAIN)
        for path in remote_files():
            zf.writestr(zipfile.ZipInfo(f"{FAR_PACKAGE}/{path.name}", _EPOCH), path.read_bytes())
        for name, private in PRIVATE_COPIES.items():
            package = _package_dir(name)
            for path in _package_files(package):
                rel = path.relative_to(package).as_posix()
                zf.writestr(zipfile.ZipInfo(f"{FAR_PACKAGE}/{private}/{rel}", _EPOCH), path.read_bytes())


def private_module(module: str) -> str:
    """A module of a private copy, as a target names it (``_prs_agent._cloudpickle.cloudpickle``),
    by its own name (``cloudpickle.cloudpickle``); any other module as it is."""
    for name, private in PRIVATE_COPIES.items():
        prefix = f"{FAR_PACKAGE}.{private}"
        if module == prefix or module.startswith(prefix + "."):
            return name + module[len(prefix):]
    return module


def agent_options(target: Target) -> list[str]:
    """The agent's options that come from the target's recipe: where its serializers come from."""
    return ["--serializers", "image"] if target.serializers == "image" else []


def _package_files(package: Path) -> list[Path]:
    return [path for path in sorted(package.rglob("*.py"))
            if "__pycache__" not in path.parts and "tests" not in path.relative_to(package).parts]


def _zip_package(package: Path, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in _package_files(package):
            zf.write(path, path.relative_to(package.parent).as_posix())
