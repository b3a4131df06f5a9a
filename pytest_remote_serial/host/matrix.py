"""The matrix: which targets exist, read from TOML and checked key by key.

Every error names the file, the target and the key, because a typo in a matrix file is
the most common way to get a silently smaller matrix.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 hosts only
    import tomli as tomllib

LOCAL = "local"
RECIPE_KINDS = ("debian", "image", "dockerfile")
TARGET_KEYS = {
    *RECIPE_KINDS, "python", "gpu", "paths", "transport", "memory", "pids", "context", "description",
}
DEBIAN_KEYS = {"suite", "packages", "mirror", "components", "wheels"}
MATRIX_KEYS = {"targets", "paths"}
TRANSPORTS = ("auto", "socket", "stdio")
BUNDLED = Path(__file__).resolve().parent.parent / "targets.toml"


class MatrixError(ValueError):
    """A matrix file that cannot be used; the message names file, target and key."""


@dataclass(frozen=True)
class Target:
    name: str
    source: str  # the file it came from, for messages
    recipe_kind: str | None = None  # None only for the built-in local target
    recipe: Any = None
    python: str = "python3"
    gpu: bool = False
    paths: tuple[str, ...] = ()
    transport: str = "auto"
    memory: str = "2g"
    pids: int = 512
    root: Path = field(default=Path("."), compare=False)

    @property
    def is_local(self) -> bool:
        return self.recipe_kind is None

    def recipe_hash(self, extra: str = "") -> str:
        """Stable across runs; changes exactly when what the image is built from changes."""
        spec: Any = self.recipe
        if self.recipe_kind == "dockerfile":
            dockerfile = self.root / str(self.recipe)
            spec = {"dockerfile": str(self.recipe), "content": _read_or_missing(dockerfile)}
        blob = json.dumps([self.recipe_kind, spec, self.python, extra], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def _read_or_missing(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


@dataclass(frozen=True)
class Matrix:
    source: str
    targets: dict[str, Target]

    def select(self, names: list[str] | None) -> list[Target]:
        if not names:
            return list(self.targets.values())
        unknown = [n for n in names if n not in self.targets]
        if unknown:
            raise MatrixError(
                f"unknown target(s) {', '.join(map(repr, unknown))} "
                f"in {self.source}; known: {', '.join(self.targets)}"
            )
        return [self.targets[n] for n in names]


def local_target(paths: tuple[str, ...] = (), root: Path = Path(".")) -> Target:
    return Target(name=LOCAL, source="built-in", paths=paths, root=root)


def find_matrix_file(rootdir: Path, explicit: str | None) -> tuple[Path, str | None]:
    """DESIGN §2's lookup order. Returns the file and, for pyproject, the table to read."""
    if explicit:
        path = Path(explicit)
        if not path.is_absolute():
            path = rootdir / path
        if not path.is_file():
            raise MatrixError(f"--remote-matrix-file: {path} does not exist")
        return path, None
    pyproject = rootdir / "pyproject.toml"
    if pyproject.is_file():
        data = _parse(pyproject)
        if "pytest_remote_serial" in data.get("tool", {}):
            return pyproject, "tool.pytest_remote_serial"
    candidate = rootdir / "matrix" / "targets.toml"
    if candidate.is_file():
        return candidate, None
    return BUNDLED, None


def load_matrix(rootdir: Path, explicit: str | None = None) -> Matrix:
    path, table = find_matrix_file(rootdir, explicit)
    data = _parse(path)
    where = str(path)
    if table:
        data = data["tool"]["pytest_remote_serial"]
        where = f"{path} [{table}]"
    if not isinstance(data, dict):
        raise MatrixError(f"{where}: expected a table")
    _check_keys(data, MATRIX_KEYS, where)
    base = path.parent if path != BUNDLED else rootdir
    shared_paths = _paths(data.get("paths", []), where, "paths")
    raw_targets = data.get("targets")
    if not isinstance(raw_targets, dict) or not raw_targets:
        raise MatrixError(f"{where}: no [targets.<name>] tables; define at least one target")
    targets = {LOCAL: local_target(shared_paths, base)}
    for name, spec in raw_targets.items():
        if name == LOCAL:
            raise MatrixError(f"{where}: target 'local' is built in and cannot be redefined")
        targets[name] = _target(name, spec, where, base, shared_paths)
    return Matrix(where, targets)


def _parse(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(f"{path}: not valid TOML: {exc}") from None


def _check_keys(spec: dict[str, Any], known: set[str], where: str) -> None:
    for key in spec:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(known))}"
            raise MatrixError(f"{where}: unknown key {key!r}; {hint}")


def _paths(value: Any, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise MatrixError(f"{where}: key {key!r} must be a list of folder names")
    return tuple(value)


def _target(name: str, spec: Any, where: str, base: Path, shared_paths: tuple[str, ...]) -> Target:
    here = f"{where}: target {name!r}"
    if not isinstance(spec, dict):
        raise MatrixError(f"{here}: expected a table, got {type(spec).__name__}")
    _check_keys(spec, TARGET_KEYS, here)
    kinds = [k for k in RECIPE_KINDS if k in spec]
    if not kinds:
        raise MatrixError(f"{here}: no recipe; give exactly one of {', '.join(RECIPE_KINDS)}")
    if len(kinds) > 1:
        raise MatrixError(f"{here}: two recipes ({' and '.join(kinds)}); keep exactly one")
    kind = kinds[0]
    recipe = spec[kind]
    if kind == "debian":
        if not isinstance(recipe, dict):
            raise MatrixError(f"{here}: key 'debian' must be a table like {{ suite = \"bookworm\" }}")
        _check_keys(recipe, DEBIAN_KEYS, f"{here} key 'debian'")
        if not isinstance(recipe.get("suite"), str):
            raise MatrixError(f"{here}: key 'debian.suite' is required (e.g. \"bookworm\")")
        packages = recipe.get("packages", ["python3"])
        if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
            raise MatrixError(f"{here}: key 'debian.packages' must be a list of package names")
        wheels = recipe.get("wheels", [])
        if not isinstance(wheels, list) or not all(isinstance(w, str) and w.strip() for w in wheels):
            raise MatrixError(f"{here}: key 'debian.wheels' must be a list of requirements "
                              "(e.g. [\"cupy-cuda12x>=13\"]), downloaded on the host and installed offline")
    elif not isinstance(recipe, str):
        raise MatrixError(f"{here}: key {kind!r} must be a string")
    gpu = spec.get("gpu", False)
    if not isinstance(gpu, bool):
        raise MatrixError(f"{here}: key 'gpu' must be true or false")
    transport = spec.get("transport", "auto")
    if transport not in TRANSPORTS:
        raise MatrixError(f"{here}: key 'transport' must be one of {', '.join(TRANSPORTS)}")
    pids = spec.get("pids", 512)
    if not isinstance(pids, int) or pids <= 0:
        raise MatrixError(f"{here}: key 'pids' must be a positive integer")
    for key in ("python", "memory", "context"):
        if key in spec and not isinstance(spec[key], str):
            raise MatrixError(f"{here}: key {key!r} must be a string")
    return Target(
        name=name, source=where, recipe_kind=kind, recipe=recipe,
        python=spec.get("python", "python3"), gpu=gpu,
        paths=shared_paths + _paths(spec.get("paths", []), here, "paths"),
        transport=transport, memory=spec.get("memory", "2g"), pids=pids, root=base,
    )
