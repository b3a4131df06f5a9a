"""The matrix: which targets exist, read from TOML and checked key by key.

Every error names the file, the target and the key, because a typo in a matrix file is
the most common way to get a silently smaller matrix.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 hosts only
    import tomli as tomllib

LOCAL = "local"
RECIPE_KINDS = ("debian", "image", "dockerfile", "interpreter")
CONTAINER_KINDS = ("debian", "image", "dockerfile")
TARGET_KEYS = {
    *RECIPE_KINDS, "python", "gpu", "paths", "transport", "memory", "pids", "engine", "context",
    "description", "trusted", "trusted_modules", "serializers", "allow_outside_paths", "reply_memory_cap",
}
# What only a container has: an interpreter target names none of these.
CONTAINER_ONLY = ("python", "memory", "pids", "engine", "context", "transport")
ENGINE_SCHEMES = ("unix://", "tcp://", "ssh://", "http://", "https://")
# The agent's own floor (docs/architecture.md, "The two sides"): an older interpreter cannot even import it.
MIN_PYTHON = (3, 9)
DEBIAN_KEYS = {"suite", "packages", "mirror", "components", "wheels"}
MATRIX_KEYS = {"targets", "paths", "trusted", "trusted_modules", "extends", "memory", "pids", "context",
               "serializers", "allow_outside_paths", "reply_memory_cap"}
# A target's ``serializers``: the host's cloudpickle and dill put before the target's own
# ("injected"), or the target's own used where it has them ("image"; docs/architecture.md,
# "Serializers and the source capsule").
SERIALIZER_SOURCES = ("injected", "image")
# A downstream serializer's table (``[serializers.NAME]``): "module:attr" strings.
DOWNSTREAM_KEYS = {"dumps", "loads", "version"}
# What a target table that only overrides an inherited (``extends``) target may hold.
OVERRIDE_KEYS = TARGET_KEYS - set(RECIPE_KINDS) | {"packages", "wheels"}
# What ``[targets.local]`` may hold: local is the host's own Python, never a recipe.
LOCAL_KEYS = {"paths", "trusted", "trusted_modules", "description", "allow_outside_paths", "reply_memory_cap"}
# Below this the agent's interpreter cannot even start (measured: ~20 MiB with the serializers).
MIN_MEMORY = 32 << 20
TRANSPORTS = ("auto", "socket", "stdio")
# A target's name is a test id's parameter, an item of --remote-targets=a,b and part of a kept
# container's name: what all three take as it is.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
BUNDLED = Path(__file__).resolve().parent.parent / "targets.toml"


class MatrixError(ValueError):
    """A matrix file that cannot be used; the message names file, target and key."""


class PathsError(MatrixError):
    """A ``paths`` entry that is no folder: a usage error even when only ``local`` runs."""


class LocalTableError(MatrixError):
    """A ``[targets.local]`` that cannot be used: a usage error even when only ``local`` runs."""


class SerializersError(MatrixError):
    """A ``[serializers.NAME]`` table that cannot work: a usage error even when only ``local`` runs."""


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
    # Results from a trusted target load with the full unpickler (docs/architecture.md, "The trust
    # boundary"); None: only local is.
    trusted: bool | None = None
    trusted_modules: tuple[str, ...] = ()
    engine: str | None = None  # a Docker engine URL (tcp://, ssh://); None: DOCKER_HOST or local
    context: str | None = None  # a docker context name, read from the docker CLI's config
    serializers: str = "injected"  # one of SERIALIZER_SOURCES
    # ``paths`` outside the project or system folders (host/mounts.py); the reply memory cap in bytes.
    allow_outside_paths: bool = False
    reply_memory_cap: int = 256 << 20

    @property
    def is_local(self) -> bool:
        return self.recipe_kind is None

    @property
    def is_interpreter(self) -> bool:
        return self.recipe_kind == "interpreter"

    @property
    def is_container(self) -> bool:
        """Runs in Docker: has an image, hardening and an engine."""
        return self.recipe_kind in CONTAINER_KINDS

    @property
    def is_trusted(self) -> bool:
        return self.is_local if self.trusted is None else self.trusted

    @property
    def host_paths(self) -> tuple[Path, ...]:
        """The ``paths`` folders on this machine, resolved, in ``sys.path`` order."""
        return tuple((self.root / p).resolve() for p in self.paths)

    def recipe_hash(self, extra: str = "") -> str:
        """Stable across runs; changes exactly when what the image is built from changes."""
        spec: Any = self.recipe
        if self.recipe_kind == "dockerfile":
            dockerfile = self.root / str(self.recipe)
            spec = {"dockerfile": str(self.recipe), "content": _read_or_missing(dockerfile),
                    "context": context_digest(dockerfile)}
        blob = json.dumps([self.recipe_kind, spec, self.python, extra], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def context_digest(dockerfile: Path) -> str:
    """Everything ``docker build`` sends from the Dockerfile's folder (what .dockerignore leaves
    in, as the docker SDK decides it): a changed COPY'd file makes a new image."""
    root = dockerfile.parent
    if not root.is_dir():
        return "missing"
    from docker.utils.build import exclude_paths

    patterns: list[str] = []
    ignore = root / ".dockerignore"
    if ignore.is_file():
        lines = (line.strip() for line in ignore.read_text(errors="replace").splitlines())
        patterns = [line for line in lines if line and not line.startswith("#")]
    digest = hashlib.sha256()
    for rel in sorted(exclude_paths(str(root), patterns, dockerfile=dockerfile.name)):
        path = root / rel
        if path.is_symlink():
            kind = f"link:{path.readlink()}"
        elif path.is_file():
            kind = f"file:{oct(path.stat().st_mode & 0o111)}:{_read_or_missing(path)}"
        else:
            kind = "dir"
        digest.update(f"{rel}\0{kind}\0".encode())
    return digest.hexdigest()


def _read_or_missing(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


@dataclass(frozen=True)
class DownstreamSpec:
    """A downstream serializer as the matrix file declares it (``[serializers.NAME]``)."""

    name: str
    dumps: str  # "module:attr", imported on the host
    loads: str  # "module:attr", imported on the target
    version: str | None
    where: str  # the table, for messages


@dataclass(frozen=True)
class Matrix:
    source: str
    targets: dict[str, Target]
    serializers: dict[str, DownstreamSpec] = field(default_factory=dict)

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


def local_target(paths: tuple[str, ...] = (), root: Path = Path("."), trusted: bool | None = None,
                 trusted_modules: tuple[str, ...] = (), allow_outside_paths: bool = False,
                 reply_memory_cap: int = 256 << 20) -> Target:
    return Target(name=LOCAL, source="built-in", paths=paths, root=root, trusted=trusted,
                  trusted_modules=trusted_modules, allow_outside_paths=allow_outside_paths,
                  reply_memory_cap=reply_memory_cap)


def find_matrix_file(rootdir: Path, explicit: str | None) -> tuple[Path, str | None]:
    """The matrix file's lookup order (README, "The matrix"). Returns the file and, for pyproject, the table to read."""
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
    own = data.get("targets")
    local_spec = own.pop(LOCAL, None) if isinstance(own, dict) else None
    data = extend(data, where)
    shared_paths = _paths(data.get("paths", []), where, "paths")
    check_paths(shared_paths, base, where)
    shared = _trust(data, where, None, ())
    boundary = _boundary(data, where, (False, 256 << 20))
    roots = (rootdir, base)
    _check_outside(shared_paths, base, roots, where, boundary[0])
    raw_targets = data.get("targets")
    if not isinstance(raw_targets, dict) or not (raw_targets or local_spec is not None):
        raise MatrixError(f"{where}: no [targets.<name>] tables; define at least one target")
    targets = {LOCAL: _local(local_spec, where, base, shared_paths, shared, boundary)}
    _check_outside(targets[LOCAL].paths[len(shared_paths):], base, roots, f"{where}: target 'local'",
                   targets[LOCAL].allow_outside_paths)
    for name, spec in raw_targets.items():
        if isinstance(spec, dict):
            # Top-level memory, pids and context are container keys: an interpreter target has none.
            defaults = {} if "interpreter" in spec else {k: data[k] for k in ("memory", "pids", "context") if k in data}
            spec = {**defaults, **spec}
        targets[name] = _target(name, spec, where, base, shared_paths, shared, boundary)
        check_paths(targets[name].paths[len(shared_paths):], base, f"{where}: target {name!r}")
        _check_outside(targets[name].paths[len(shared_paths):], base, roots, f"{where}: target {name!r}",
                       targets[name].allow_outside_paths)
    return Matrix(where, targets, _downstream(data.get("serializers", {}), where))


def _downstream(tables: Any, where: str) -> dict[str, DownstreamSpec]:
    """``[serializers.NAME]`` tables: each a ``dumps`` and a ``loads`` written "module:attr"."""
    from .downstream import check_name, check_ref

    example = '[serializers.mine]\ndumps = "mypkg.wire:dumps"\nloads = "mypkg.wire:loads"'
    if not isinstance(tables, dict):
        raise SerializersError(f"{where}: key 'serializers' must hold [serializers.<name>] tables, e.g.\n{example}")
    found = {}
    for name, spec in tables.items():
        here = f"{where}: [serializers.{name}]"
        if not isinstance(spec, dict):
            raise SerializersError(f"{here}: expected a table with dumps and loads, e.g.\n{example}")
        try:
            _check_keys(spec, DOWNSTREAM_KEYS, here)
        except MatrixError as exc:
            raise SerializersError(str(exc)) from None
        try:
            check_name(name)
            for key in ("dumps", "loads"):
                check_ref(spec.get(key), key)
        except ValueError as exc:
            raise SerializersError(f"{here}: {exc}") from None
        version = spec.get("version")
        if version is not None and not isinstance(version, str):
            raise SerializersError(f"{here}: key 'version' must be a string (e.g. \"1.5.3\")")
        found[name] = DownstreamSpec(name, spec["dumps"], spec["loads"], version, here)
    return found


def _local(spec: Any, where: str, base: Path, shared_paths: tuple[str, ...],
           shared: tuple[bool | None, tuple[str, ...]], boundary: tuple[bool, int]) -> Target:
    """``[targets.local]``: more ``paths`` (after the top-level ones) and trust for the built-in
    target. It stays the host's own Python: a recipe or a container's key is refused by name."""
    if spec is None:
        return local_target(shared_paths, base, *shared, *boundary)
    here = f"{where}: target 'local'"
    if not isinstance(spec, dict):
        raise LocalTableError(f"{here}: expected a table, got {type(spec).__name__}")
    wrong = [k for k in spec if k not in LOCAL_KEYS]
    recipes = [k for k in wrong if k in RECIPE_KINDS]
    if recipes:
        raise LocalTableError(f"{where}: target 'local' is built in (a fresh process of the host's own Python) and "
                          f"cannot be redefined: remove key {recipes[0]!r}, or give that recipe a name of its own "
                          f"([targets.\"mine\"]); [targets.local] takes only {', '.join(sorted(LOCAL_KEYS))}")
    foreign = [k for k in wrong if k in TARGET_KEYS | {"packages", "wheels"}]
    if foreign:
        why = ("local's GPU is the host's own (CuPy on this machine)" if foreign[0] == "gpu"
               else "local is a process of the host's own Python, not a container")
        raise LocalTableError(f"{here}: key {foreign[0]!r} does not apply to local ({why}); [targets.local] "
                          f"takes only {', '.join(sorted(LOCAL_KEYS))}")
    try:
        _check_keys(spec, LOCAL_KEYS, here)
        own = _paths(spec.get("paths", []), here, "paths")
        trust = _trust(spec, here, *shared)
        own_boundary = _boundary(spec, here, boundary)
    except MatrixError as exc:
        raise LocalTableError(str(exc)) from None
    check_paths(own, base, here)
    return local_target(shared_paths + own, base, *trust, *own_boundary)


def extend(data: dict[str, Any], where: str) -> dict[str, Any]:
    """``extends = "default"``: the bundled targets, each table of this file either a whole
    new recipe (replacing or adding a target) or overrides merged onto the inherited one."""
    if "extends" not in data:
        return data
    if data["extends"] != "default":
        raise MatrixError(f"{where}: extends = {data['extends']!r}; only \"default\" (the bundled targets) "
                          "can be extended")
    inherited = {name: dict(spec) for name, spec in _parse(BUNDLED)["targets"].items()}
    own = data.get("targets", {})
    if not isinstance(own, dict):
        raise MatrixError(f"{where}: key 'targets' must hold [targets.<name>] tables")
    for name, spec in own.items():
        if not isinstance(spec, dict) or name not in inherited or any(k in spec for k in RECIPE_KINDS):
            inherited[name] = spec  # a target of its own (checked as any other)
            continue
        inherited[name] = _override(inherited[name], spec, f"{where}: target {name!r}")
    return {**{k: v for k, v in data.items() if k != "extends"}, "targets": inherited}


def _override(base: dict[str, Any], spec: dict[str, Any], here: str) -> dict[str, Any]:
    """One bundled target with this file's overrides; ``packages``/``wheels`` add to its recipe."""
    _check_keys(spec, OVERRIDE_KEYS, f"{here} (overrides of the bundled target)")
    merged = {**base, **{k: v for k, v in spec.items() if k not in ("packages", "wheels")}}
    for key in ("packages", "wheels"):
        if key not in spec:
            continue
        extra = spec[key]
        if not isinstance(extra, list) or not all(isinstance(x, str) and x.strip() for x in extra):
            raise MatrixError(f"{here}: key {key!r} must be a list of names added to the inherited recipe")
        if "debian" not in merged:
            raise MatrixError(f"{here}: key {key!r} adds to a debian recipe; this target has none")
        recipe = dict(merged["debian"])
        default = ["python3"] if key == "packages" else []
        recipe[key] = list(dict.fromkeys([*recipe.get(key, default), *extra]))
        merged["debian"] = recipe
    return merged


def check_paths(paths: tuple[str, ...], base: Path, where: str) -> None:
    """A ``paths`` entry that is not a folder is a usage error now, not an unavailable target
    later (whose skipped tests would make a green run)."""
    for entry in paths:
        folder = Path(entry) if Path(entry).is_absolute() else base / entry
        if not folder.is_dir():
            why = "is a file, not a folder" if folder.exists() else "does not exist"
            raise PathsError(f"{where}: paths entry {entry!r} {why} ({folder}); give a folder relative to "
                              f"{base} (e.g. \"src\") or an absolute path")


def _check_outside(paths: tuple[str, ...], base: Path, roots: tuple[Path, ...], where: str, allowed: bool) -> None:
    from .mounts import check_outside

    problem = check_outside(paths, base, roots, where, allowed)
    if problem:
        raise PathsError(problem)


def _boundary(spec: dict[str, Any], where: str, inherited: tuple[bool, int]) -> tuple[bool, int]:
    """``allow_outside_paths`` and ``reply_memory_cap`` of a table, over those it inherits."""
    allow = spec.get("allow_outside_paths", inherited[0])
    if not isinstance(allow, bool):
        raise MatrixError(f"{where}: key 'allow_outside_paths' must be true or false")
    cap = inherited[1]
    if "reply_memory_cap" in spec:
        text = spec["reply_memory_cap"]
        cap = parse_size(text) if isinstance(text, str) else None  # type: ignore[assignment]
        if cap is None or cap <= 0:
            raise MatrixError(f"{where}: key 'reply_memory_cap' = {text!r} is not a size; use e.g. \"256m\" or "
                              "\"1g\" (what an untrusted target's reply may make the host allocate)")
    return allow, cap


def _bundled_names() -> set[str]:
    return set(_parse(BUNDLED).get("targets", {}))


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


def _trust(spec: dict[str, Any], where: str, trusted: bool | None,
           modules: tuple[str, ...]) -> tuple[bool | None, tuple[str, ...]]:
    """``trusted`` and ``trusted_modules`` of a table, over those it inherits."""
    value = spec.get("trusted", trusted)
    if value is not None and not isinstance(value, bool):
        raise MatrixError(f"{where}: key 'trusted' must be true or false")
    listed = spec.get("trusted_modules", [])
    if not isinstance(listed, list) or not all(isinstance(m, str) and m.strip() for m in listed):
        raise MatrixError(f"{where}: key 'trusted_modules' must be a list of module names, e.g. [\"pandas\"]")
    return value, modules + tuple(m.strip() for m in listed)


def parse_size(text: str) -> int | None:
    """Docker's memory notation ("512m", "2g", "1048576") in bytes; None when unreadable."""
    units = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    text = text.strip().lower()
    number, unit = text.rstrip("bkmgt"), text[len(text.rstrip("bkmgt")):]
    if unit.endswith("b") and len(unit) == 2:
        unit = unit[0]
    try:
        return int(float(number) * units[unit])
    except (ValueError, KeyError):
        return None


def _target(name: str, spec: Any, where: str, base: Path, shared_paths: tuple[str, ...],
            shared: tuple[bool | None, tuple[str, ...]] = (None, ()),
            boundary: tuple[bool, int] = (False, 256 << 20)) -> Target:
    here = f"{where}: target {name!r}"
    if not NAME.fullmatch(name):
        raise MatrixError(f"{here}: a target's name is made of letters, digits, '.', '_', '-' and '+', and "
                          "starts with a letter or digit (it is written in test ids, in --remote-targets=a,b "
                          "and in container names); rename the [targets.<name>] table, e.g. [targets.py3-12]")
    if not isinstance(spec, dict):
        raise MatrixError(f"{here}: expected a table, got {type(spec).__name__}")
    for key in ("packages", "wheels"):
        if key in spec:
            raise MatrixError(f"{here}: key {key!r} at the target's level adds to an inherited recipe "
                              f"(extends = \"default\" at the top); in a recipe of its own write "
                              f"debian = {{ suite = ..., {key} = [...] }}")
    _check_keys(spec, TARGET_KEYS, here)
    kinds = [k for k in RECIPE_KINDS if k in spec]
    if not kinds:
        hint = (f"; to change only some keys of the bundled {name!r}, put extends = \"default\" at the top"
                if name in _bundled_names() else "")
        raise MatrixError(f"{here}: no recipe; give exactly one of {', '.join(RECIPE_KINDS)}{hint}")
    if len(kinds) > 1:
        raise MatrixError(f"{here}: two recipes ({' and '.join(kinds)}); keep exactly one")
    kind = kinds[0]
    recipe = spec[kind]
    if kind == "interpreter":
        _check_interpreter(recipe, spec, here)
    elif kind == "debian":
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
    for key in ("python", "memory", "context", "engine"):
        if key in spec and not isinstance(spec[key], str):
            raise MatrixError(f"{here}: key {key!r} must be a string")
    engine, context = spec.get("engine"), spec.get("context")
    if engine is not None and context is not None:
        raise MatrixError(f"{here}: keys 'engine' and 'context' both name an engine; keep one")
    if engine is not None and not engine.startswith(ENGINE_SCHEMES):
        raise MatrixError(f"{here}: key 'engine' = {engine!r} is not an engine URL; use e.g. "
                          "\"ssh://user@host\" or \"tcp://host:2376\"")
    if context is not None and not context.strip():
        raise MatrixError(f"{here}: key 'context' must name a docker context (`docker context ls`)")
    memory = spec.get("memory", "2g")
    size = parse_size(memory)
    if size is None:
        raise MatrixError(f"{here}: key 'memory' = {memory!r} is not a size; use e.g. \"512m\" or \"2g\"")
    if size < MIN_MEMORY:
        raise MatrixError(f"{here}: key 'memory' = {memory!r} is too small for the agent's Python to start; "
                          f"give at least {MIN_MEMORY >> 20}m")
    trusted, trusted_modules = _trust(spec, here, *shared)
    allow_outside_paths, reply_memory_cap = _boundary(spec, here, boundary)
    serializers = spec.get("serializers", "injected")
    if serializers not in SERIALIZER_SOURCES:
        raise MatrixError(f"{here}: key 'serializers' = {serializers!r}; use \"image\" (the target's own "
                          "cloudpickle and dill where it has them) or \"injected\" (the host's, the default)")
    return Target(
        name=name, source=where, recipe_kind=kind, recipe=recipe,
        python=spec.get("python", "python3"), gpu=gpu,
        paths=shared_paths + _paths(spec.get("paths", []), here, "paths"),
        transport=transport, memory=memory, pids=pids, root=base,
        trusted=trusted, trusted_modules=trusted_modules, engine=engine, context=context,
        serializers=serializers, allow_outside_paths=allow_outside_paths, reply_memory_cap=reply_memory_cap,
    )


def _check_interpreter(recipe: Any, spec: dict[str, Any], here: str) -> None:
    """A path to a Python, a version ("3.12": a CPython), or a PyPy ("pypy3", "pypy3.11"), looked up
    on this machine when the target starts."""
    if not isinstance(recipe, str) or not recipe.strip():
        raise MatrixError(f"{here}: key 'interpreter' must be a path (\"/usr/bin/python3.12\"), "
                          "a version (\"3.12\") or a PyPy (\"pypy3\", \"pypy3.11\")")
    if "/" not in recipe:
        if re.fullmatch(r"pypy3(\.\d+)?", recipe):
            recipe = recipe[len("pypy"):] if "." in recipe else "3.9"  # the version part, checked below
        parts = recipe.split(".")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise MatrixError(f"{here}: key 'interpreter' = {recipe!r} is neither a path nor a version "
                              "like \"3.12\" nor a PyPy like \"pypy3\" or \"pypy3.11\"")
        if tuple(map(int, parts)) < MIN_PYTHON:
            raise MatrixError(f"{here}: key 'interpreter' = {recipe!r}: the agent needs Python "
                              f"{'.'.join(map(str, MIN_PYTHON))} or newer")
    wrong = [k for k in CONTAINER_ONLY if k in spec]
    if wrong:
        raise MatrixError(f"{here}: key {wrong[0]!r} applies to container targets only; an interpreter "
                          "target runs the agent as a process of that Python on this machine")
