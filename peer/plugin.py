"""pytest plugin: cloudpickle's own suite with its round trips made through the source capsule.

Loaded by ``peer/run.py`` as ``-p peer.plugin --peer-target NAME``.

- ``local`` (the host): the suite runs here, but ``pickle_depickle`` and ``subprocess_pickle_echo``
  become a capsule dump, a load in a fresh interpreter (the ``local`` target) and the echo back.
  On the same minor the rebuilt functions come back by value, so every assertion the suite makes
  about them is made about what the *target compiled from source*.
- a container (``py3.13``, ``py3.9``): what comes back from there cannot be 3.11 bytecode, so the
  *test itself* travels: its method (in a class holding only it and the non-test helpers), nested
  functions and classes, the module globals it reads, all by ``serializer="source"``. There
  ``pickle_depickle`` is the target's native cloudpickle round trip. Marks (skipif, xfail) were
  evaluated here; ``pytest.skip``/``xfail``/``importorskip`` inside a body raise there and come
  back as pytest's own outcomes.

Each test is labelled by what its routed round trips carried (host run only): ``code`` when a
payload built functions, classes or code objects by value, ``data`` when all were plain data,
``none`` when the test never called a routed helper (it pickles through cloudpickle directly,
in subprocesses or workers).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import types
import unittest
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from pytest_remote_serial import outcomes as oc
from pytest_remote_serial.fixture import CallOptions, Remote
from pytest_remote_serial.host.capsule import dumps_source
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import load_matrix
from pytest_remote_serial.remote import diagnosis

ROOT = Path(__file__).resolve().parent.parent
SUITE = Path(__file__).resolve().parent / "cloudpickle_tests"
SUITE_DIR = str(SUITE)
NATIVE = "native"
DOCKER_PATHS = "/opt/prs-paths"
# A cloudpickle stream naming one of these builds code by value: a function, a class, an enum.
_CODE_GLOBALS = {("cloudpickle.cloudpickle", name)
                 for name in ("_make_function", "_make_skeleton_class", "_make_skeleton_enum")}


class CapsuleRoundTripFailed(Exception):
    """The capsule round trip itself failed (not the test's assertion): outcome and message."""


@dataclasses.dataclass
class _State:
    target: str
    remote: Remote | None
    controller: Controller | None
    current: str = ""
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    capsule: dict[str, str] = dataclasses.field(default_factory=dict)  # nodeid -> failed outcome
    results: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


_state: _State | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("peer")
    group.addoption("--peer-target", default="local",
                    help="native (the suite as shipped, for reference), local, or a container target")
    group.addoption("--peer-out", default=None, help="write per-test results as JSON here")
    group.addoption("--peer-libs", default=None,
                    help="folder with a pytest for the target's Python (containers have none)")


def pytest_configure(config: pytest.Config) -> None:
    global _state
    from .cloudpickle_tests import testutils

    testutils._make_cwd_env = _suite_env  # upstream's points at its own checkout's layout
    name = config.getoption("peer_target")
    if name == NATIVE:
        _state = _State(name, None, None)
        return
    target = load_matrix(ROOT).select([name])[0]
    libs = config.getoption("peer_libs")
    if not target.is_local:
        # The suite folder goes along so that its child scripts find testutils and
        # mock_local_folder there; the docker backend mounts paths[i] at /opt/prs-paths/i.
        extra = ([str(Path(libs).resolve())] if libs else []) + [str(SUITE / "cloudpickle_testpkg"), str(SUITE)]
        testutils.__file__ = f"{DOCKER_PATHS}/{len(target.paths) + len(extra) - 1}/testutils.py"
        target = dataclasses.replace(target, paths=(*target.paths, *extra))
    # The suite is the project's own vendored code: its targets are trusted, so what it counts is
    # the capsule, not the trust boundary (a test that skips on a target raises pytest's Skipped
    # there, which an untrusted reply may not rebuild on the host; docs/architecture.md).
    target = dataclasses.replace(target, trusted=True)
    ctl = Controller([target], lambda *a: None)
    ctl.start_all()
    remote = Remote(ctl.get(name), CallOptions(timeout=60), False, lambda rt: None)
    _state = _State(name, remote, ctl)


def _suite_env() -> tuple[str, dict[str, str]]:
    """cwd and environment for the suite's child scripts (here, or on a target where it runs
    shipped by value): they import testutils and mock_local_folder from the suite folder, and
    cloudpickle from wherever this process has it (an injected zip on a target)."""
    import sys
    import tempfile

    suite = next((p for p in sys.path if p and os.path.isfile(os.path.join(p, "testutils.py"))), SUITE_DIR)
    path = [suite, *(p for p in sys.path if p)]
    # Grandchildren get upstream's own PYTHONPATH (its checkout layout); a user-site .pth in
    # the environment reaches them too, so testutils' `import psutil` works on a target.
    base = tempfile.mkdtemp(prefix="peer-userbase-")
    sitedir = os.path.join(base, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
    os.makedirs(sitedir)
    with open(os.path.join(sitedir, "peer.pth"), "w") as fh:
        fh.write("\n".join(path) + "\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), PYTHONUSERBASE=base)
    return suite, env


def pytest_unconfigure(config: pytest.Config) -> None:
    if _state is None:
        return
    out = config.getoption("peer_out")
    if out:
        python = _state.remote.target.python if _state.remote else platform.python_version()
        Path(out).write_text(json.dumps({"target": _state.target, "python": python,
                                         "tests": _state.results}, indent=1))
    if _state.controller is not None:
        _state.controller.shutdown()


# ----------------------------------------------------------------------------- host: routed helpers


def _identity(obj: Any) -> Any:
    return obj


def _echo(obj: Any, protocol: Any = None) -> Any:
    """``pickle_depickle`` through the capsule: the dump's own exception is raised as it is, as
    the original helper raises what ``cloudpickle.dumps`` raises."""
    assert _state is not None and _state.remote is not None
    if _state.labels.get(_state.current) != "code":
        _state.labels[_state.current] = _label(obj)
    dumps_source(obj)  # raises like cloudpickle.dumps does
    rt = _state.remote.roundtrip(_identity, obj, serializer="source")
    if rt.outcome == oc.OK:
        return rt.result
    _state.capsule[_state.current] = rt.outcome
    message = (rt.error or {}).get("message", "")
    raise CapsuleRoundTripFailed(f"{rt.outcome}: {message}")


def _label(obj: Any) -> str:
    """``code`` if cloudpickle itself would carry code by value for ``obj`` (read from its
    stream, never by loading), else ``data``."""
    try:
        found, strings = diagnosis.pickle_globals(cloudpickle.dumps(obj))
    except Exception:
        return "data"  # the test expects pickling to fail: nothing reaches a target either way
    builds_code = ("cloudpickle.cloudpickle", "_builtin_type") in found and "CodeType" in strings
    return "code" if builds_code or _CODE_GLOBALS & set(found) else "data"


def _subprocess_echo(original: Any) -> Any:
    def subprocess_pickle_echo(input_data: Any, protocol: Any = None, timeout: Any = None,
                               add_env: Any = None) -> Any:
        if add_env:  # the environment is the point of the test: keep cloudpickle's own child
            return original(input_data, protocol=protocol, add_env=add_env)
        return _echo(input_data, protocol)
    return subprocess_pickle_echo


# ----------------------------------------------------------------------------- containers: ship the test


def _child_path() -> None:
    """On a target, children the test starts see what this process sees (the injected
    cloudpickle, pytest), as on a worker where they are installed."""
    import sys

    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)


def _run_case(cls: type, name: str) -> None:
    """Runs on the target: unittest's own order, without its result bookkeeping, so that
    exceptions (assertions, pytest's skip and xfail) travel back as they are."""
    _child_path()
    case = cls(name)
    case.setUp()
    try:
        getattr(case, name)()
    finally:
        case.tearDown()
        case.doCleanups()


def _run_function(func: Any, kwargs: dict[str, Any]) -> None:
    _child_path()
    func(**kwargs)


def _slim_case(cls: type, name: str) -> type:
    """A class with this test and the non-test helpers only: the whole TestCase would carry
    every other test's globals (psutil through testutils), so one missing module would fail all."""
    attrs: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is unittest.TestCase or not issubclass(klass, unittest.TestCase):
            continue
        for key, value in vars(klass).items():
            if key.startswith("__") and key not in ("__module__", "__qualname__", "__doc__"):
                continue
            if not key.startswith("test") or key == name:
                attrs[key] = value
    return type(cls.__name__, (unittest.TestCase,), attrs)


def _ship(item: pytest.Item) -> None:
    assert _state is not None and _state.remote is not None
    cls = getattr(item, "cls", None)
    if cls is not None and issubclass(cls, unittest.TestCase):
        rt = _state.remote.roundtrip(_run_case, _slim_case(cls, item.name), item.name, serializer="source")
    else:
        func = item.obj  # type: ignore[attr-defined]
        kwargs = {k: item.funcargs[k] for k in item._fixtureinfo.argnames}  # type: ignore[attr-defined]
        rt = _state.remote.roundtrip(_run_function, func, kwargs, serializer="source")
    if rt.outcome == oc.OK:
        return
    error = rt.error or {}
    kind = str(error.get("type", "")).rpartition(".")[2]
    if rt.outcome == oc.CALL_ERROR and kind in ("Skipped", "XFailed"):
        # pytest's own outcome raised there (importorskip, skip, xfail): the same here.
        (pytest.skip if kind == "Skipped" else pytest.xfail)(f"on {_state.target}: {error.get('message')}")
    if rt.outcome == oc.CALL_ERROR and rt.exception is not None:
        raise rt.exception
    _state.capsule[item.nodeid] = rt.outcome
    raise CapsuleRoundTripFailed(f"{rt.outcome}: {error.get('diagnosis') or error.get('message', '')}")


# ----------------------------------------------------------------------------- hooks


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    assert _state is not None
    modules = {item.module for item in items if getattr(item, "module", None)}  # type: ignore[attr-defined]
    if _state.target == NATIVE:
        return
    for item in items:
        if _state.target != "local":
            item.runtest = types.MethodType(lambda self: _ship(self), item)  # type: ignore[method-assign]
    if _state.target == "local":
        for module in modules:
            if hasattr(module, "pickle_depickle"):
                module.pickle_depickle = _echo
                module.subprocess_pickle_echo = _subprocess_echo(module.subprocess_pickle_echo)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    assert _state is not None
    _state.current = item.nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    assert _state is not None
    entry = _state.results.setdefault(report.nodeid, {"outcome": "passed"})
    if report.when == "call" or report.outcome != "passed":
        if hasattr(report, "wasxfail"):
            entry["outcome"] = "xpassed" if report.passed else "xfailed"
        elif report.failed and report.when != "call":
            entry["outcome"] = "error"
        else:
            entry["outcome"] = report.outcome
        if report.failed or report.skipped:
            crash = getattr(report.longrepr, "reprcrash", None)
            longrepr = report.longrepr
            text = crash.message if crash is not None else str(
                longrepr[2] if isinstance(longrepr, tuple) else longrepr)
            entry["reason"] = text.strip().splitlines()[0][:300] if text.strip() else ""
    if report.when == "teardown":
        entry["label"] = _state.labels.get(report.nodeid, "none")
        if report.nodeid in _state.capsule:
            entry["capsule_outcome"] = _state.capsule[report.nodeid]
