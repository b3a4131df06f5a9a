"""pytest hooks: options, parametrization over targets, the ``remote`` fixture, the summary."""

from __future__ import annotations

import functools
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import current
from .fixture import CallOptions, MarkerError, Remote
from .host import downstream
from .host.backends.base import Running
from .host.controller import Controller
from .host.matrix import (
    LOCAL,
    LocalTableError,
    MatrixError,
    PathsError,
    SerializersError,
    Target,
    load_matrix,
    local_target,
)
from .host.transport import spin_window
from .outcomes import RoundTrip, TargetUnavailable
from .remote.envelope import python_name
from .report.compare import CompareError, Threshold, compare, failures, parse_threshold, render
from .report.outputs import OUTPUTS, OutputError, check_outputs, write_output
from .report.record import ReportError, build_report, cells, read_json, row_of, target_entry
from .report.terminal import GLYPHS, MARKUP, layout
from .report.workers import REPORT_ATTR, RUN_KEY, WORKER_KEY, Outbox, WorkerResults, merge_targets
from .verdicts import CRASHED, TestLog, apply_expectation

PARAM = "_remote_target"
KEY = pytest.StashKey["RemoteSerialPlugin"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("remote-serial", "pytest-remote-serial: call functions in real targets")
    group.addoption("--remote-matrix", action="store_true",
                    help="run every test that uses the remote fixture on all targets of the matrix")
    group.addoption("--remote-targets", metavar="a,b",
                    help="only these targets (implies --remote-matrix)")
    group.addoption("--remote-matrix-file", metavar="PATH",
                    help="matrix file (default: [tool.pytest_remote_serial] in pyproject.toml, "
                         "else matrix/targets.toml, else the bundled matrix)")
    group.addoption("--remote-strict", action="store_true",
                    help="a target that cannot start is an error, not a skip")
    group.addoption("--remote-keep", action="store_true",
                    help="keep containers between runs, keyed by a hash of the target recipe")
    group.addoption("--remote-report", metavar="PATH", help="write the JSON report of every round trip")
    group.addoption("--remote-html", metavar="PATH", help="write a self-contained HTML report")
    group.addoption("--remote-markdown", metavar="PATH",
                    help="write the matrix as GitHub-flavoured Markdown (e.g. >> $GITHUB_STEP_SUMMARY)")
    group.addoption("--remote-all-rows", action="store_true",
                    help="draw every row and target of the terminal matrix (as -v does); by default only "
                         "rows that did not pass alike everywhere are drawn, the others counted")
    group.addoption("--remote-compare", metavar="PATH", help="print the change against an earlier JSON report")
    group.addoption("--remote-compare-fail", metavar="EXPR", action="append", default=[],
                    help="fail the run past a threshold against --remote-compare, e.g. roundtrip_p50:25%% "
                         "or cold_start:0.5 (seconds); may be repeated")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "remote(serializer='auto', targets=None, gpu=False, timeout=30, isolate=True, expect=None): "
        "how the remote fixture calls functions in this test; expect={'py3.9': 'syntax_error'} "
        "declares a known gap (xfail there, strict XPASS once it works)",
    )
    plugin = RemoteSerialPlugin(config)
    config.stash[KEY] = plugin
    config.pluginmanager.register(plugin, "remote_serial_session")
    current.set_provider(plugin.remote_by_name)


class RemoteSerialPlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.explicit = _explicit_targets(config.getoption("remote_targets"))
        self.matrix_mode = bool(config.getoption("remote_matrix") or self.explicit)
        self.strict = bool(config.getoption("remote_strict"))
        self.records: list[RoundTrip] = []
        self.log = TestLog()
        self.matrix_source = "built-in"
        self.targets = self._select_targets()
        self._declare_serializers()
        self._controller: Controller | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._nodeid: str | None = None
        self.workers = WorkerResults()
        workerinput = getattr(config, "workerinput", None)
        # The run's id, on every container it starts: an xdist worker has the controller's.
        self.run: str = (workerinput or {}).get(RUN_KEY) or uuid.uuid4().hex
        self.outbox = Outbox() if workerinput is not None else None
        self.report: dict[str, Any] | None = None
        self.baseline, self.thresholds = self._baseline()
        try:  # a report that cannot be written fails now, not after the whole run
            check_outputs({name: config.getoption(name) for name in OUTPUTS})
        except OutputError as exc:
            raise pytest.UsageError(str(exc)) from None
        try:  # read again by every agent connection: a bad value fails here, before any starts
            spin_window()
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.compare_lines: list[str] = []
        self.unwritten: list[str] = []
        self._bad_markers = False

    def _select_targets(self) -> list[Target]:
        rootdir = Path(self.config.rootpath)
        if not self.matrix_mode:
            return [self._local(rootdir)]
        try:
            matrix = load_matrix(rootdir, self.config.getoption("remote_matrix_file"))
            chosen = matrix.select(self.explicit or None)
        except MatrixError as exc:
            if self.explicit and "unknown target" in str(exc):
                raise pytest.UsageError(f"--remote-targets={','.join(self.explicit)}: {exc}") from None
            raise pytest.UsageError(str(exc)) from None
        self.matrix_source = matrix.source
        return chosen

    def _declare_serializers(self) -> None:
        """The matrix file's ``[serializers.NAME]``: known by name from the start (the marker is
        checked at collection). A bad one is a usage error naming its table."""
        try:
            matrix = load_matrix(Path(self.config.rootpath), self.config.getoption("remote_matrix_file"))
        except SerializersError as exc:
            raise pytest.UsageError(str(exc)) from None
        except MatrixError:
            return  # in matrix mode _select_targets said so already; without it no target reads the file
        for spec in matrix.serializers.values():
            try:
                downstream.from_spec(spec.name, spec.dumps, spec.loads, spec.version, spec.where)
            except ValueError as exc:
                raise pytest.UsageError(str(exc)) from None

    def _baseline(self) -> tuple[dict[str, Any] | None, list[Threshold]]:
        """Read and check the baseline now: a bad path fails before any container starts."""
        path = self.config.getoption("remote_compare")
        try:
            thresholds = [parse_threshold(t) for t in self.config.getoption("remote_compare_fail")]
            if thresholds and not path:
                raise CompareError("--remote-compare-fail needs a baseline: add --remote-compare=PATH")
            return (read_json(path) if path else None), thresholds
        except (CompareError, ReportError) as exc:
            raise pytest.UsageError(str(exc)) from None

    def _local(self, rootdir: Path) -> Target:
        """Without the matrix, ``local`` is still the matrix file's: its shared ``paths`` and
        ``[targets.local]``; a file that cannot be read otherwise leaves the built-in one."""
        try:
            return load_matrix(rootdir, self.config.getoption("remote_matrix_file")).targets[LOCAL]
        except (PathsError, LocalTableError) as exc:
            raise pytest.UsageError(str(exc)) from None
        except MatrixError:
            return local_target(root=rootdir)

    @property
    def controller(self) -> Controller:
        if self._controller is None:
            hidden = [Path(self.config.rootpath).resolve()]
            hidden += [Path(str(p)).resolve() for p in self.config.args if os.path.exists(str(p))]
            self._controller = Controller(self.targets, self._progress,
                                          keep=bool(self.config.getoption("remote_keep")),
                                          hidden=hidden, run=self.run)
            self._install_signals()
        return self._controller

    def _progress(self, message: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        line = f"[remote-serial] {message}"
        if reporter is not None:
            with _write_lock:
                reporter.ensure_newline()
                reporter.write_line(line)
        else:
            print(line, flush=True)

    def _install_signals(self) -> None:
        """SIGTERM, and SIGHUP (the terminal closed, an ssh session dropped), become an interrupt,
        so the normal teardown removes every container and folder; a handler of someone else's
        (the user's, a CI runner's) is left alone."""
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(signal.Signals(signum).name)

        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) is signal.SIG_DFL:
                self._previous_handlers[sig] = signal.signal(sig, on_signal)

    # ---------------------------------------------------------------- hooks
    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        mode = "matrix" if self.matrix_mode else "local only (use --remote-matrix for all targets)"
        lines = [f"remote-serial: {mode}; targets: {', '.join(t.name for t in self.targets)}"]
        if self.matrix_mode:
            lines.append(f"remote-serial: matrix from {self.matrix_source}")
        return lines

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if PARAM not in metafunc.fixturenames or not self.matrix_mode:
            return
        names = [t.name for t in self.targets]
        try:
            options = CallOptions.from_marker(metafunc.definition.get_closest_marker("remote"))
        except MarkerError:
            return  # reported as a usage error once collection is done
        if options.targets is not None:
            names = [n for n in names if n in options.targets]
            if not names:  # an empty session-scoped parametrization is an INTERNALERROR in pytest
                chosen = ", ".join(t.name for t in self.targets)
                skip = pytest.mark.skip(
                    reason=f"targets={list(options.targets)} selects none of the chosen targets ({chosen})")
                metafunc.parametrize(PARAM, [pytest.param(None, marks=skip)], ids=["no-target"],
                                     indirect=True, scope="session")
                return
        metafunc.parametrize(PARAM, names, ids=names, indirect=True, scope="session")

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Every marker checked before anything starts: a bad one is a usage error naming the test."""
        problems = []
        known = self._known_targets()
        for item in items:
            marker = item.get_closest_marker("remote")
            if marker is None:
                continue
            try:
                options = CallOptions.from_marker(marker)
            except MarkerError as exc:
                problems.append(f"{item.nodeid}: {exc}")
                continue
            for key, names in (("targets", options.targets or ()), ("expect", [n for n, _ in options.expect])):
                unknown = [n for n in names if known is not None and n not in known]
                if unknown:
                    problems.append(f"{item.nodeid}: @pytest.mark.remote({key}=...) names unknown target(s) "
                                    f"{', '.join(map(repr, unknown))}; known: {', '.join(sorted(known or ()))}")
            if not self.matrix_mode and options.targets is not None and LOCAL not in options.targets:
                # Without --remote-matrix only `local` runs: say so instead of running it there silently.
                wanted = ",".join(options.targets)
                item.add_marker(pytest.mark.skip(
                    reason=f"targets={list(options.targets)} leaves out local, the only target without "
                           f"--remote-matrix; run it there with --remote-targets={wanted}"))
        if problems:
            self._bad_markers = True
            raise pytest.UsageError("\n".join(dict.fromkeys(problems)))

    def _known_targets(self) -> set[str] | None:
        """Every target name of the matrix (not only the selected ones); None if there is none."""
        try:
            return set(load_matrix(Path(self.config.rootpath), self.config.getoption("remote_matrix_file")).targets)
        except MatrixError:
            return None if not self.matrix_mode else {t.name for t in self.targets}

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self._bad_markers or self.config.option.collectonly:  # --co (and a usage error) start nothing
            return
        needed: list[str] = []
        for item in session.items:
            if PARAM not in getattr(item, "fixturenames", ()) or item.get_closest_marker("skip"):
                continue
            callspec = getattr(item, "callspec", None)
            name = callspec.params.get(PARAM, LOCAL) if callspec else LOCAL
            if name not in needed:
                needed.append(name)
        if needed:
            self.controller.start_all(needed)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        calls = [r.as_record() for r in self.records]
        targets = self._target_entries()
        tests = self.log.records()
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None and self.outbox is not None:
            # An xdist worker: the controller writes the report; most went with the test reports.
            workeroutput[WORKER_KEY] = self.outbox.take(self.records, self._target_entries, tests)
            return
        calls += self.workers.calls
        tests += self.workers.tests
        self.report = build_report(calls, merge_targets(targets + self.workers.targets), tests, run=self.run)
        for option in OUTPUTS:
            path = self.config.getoption(option)
            if not path:
                continue
            try:
                write_output(option, self.report, path)
            except OSError as exc:  # checked at the start; the disk may still fill up meanwhile
                self.unwritten.append(f"--{option.replace('_', '-')}={path}: could not be written: {exc}")
        if self.unwritten and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.baseline is not None:
            changes = compare(self.baseline, self.report)
            failed = failures(changes, self.thresholds)
            self.compare_lines = render(changes, str(self.config.getoption("remote_compare")), failed)
            if failed and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist: a worker is made; it labels its containers with this run's id."""
        node.workerinput[RUN_KEY] = self.run

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist: a worker finished, and what it had left joins this controller's report. One
        that died (``error``) could not remove what it started: remove it now, while the run goes on."""
        self.workers.add(getattr(node, "workeroutput", {}).get(WORKER_KEY))
        if error is not None:
            self._remove_dead_workers()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """xdist's controller: the records a worker sent with this report."""
        if self.outbox is not None:
            return
        self.workers.add(getattr(report, REPORT_ATTR, None))
        target = self._target_in(report.nodeid) if report.when == CRASHED else None
        if target is not None:  # its worker died running it: the row says so
            self.log.phase(report, target, [])

    def _target_in(self, nodeid: str) -> str | None:
        """The target a test id was parametrized with (``test_x[py3.9]``), if any."""
        return next((t.name for t in self.targets if self.matrix_mode and row_of(nodeid, t.name) != nodeid), None)

    def _remove_dead_workers(self) -> None:
        """What dead processes of this machine left: their folders and local agents, and the
        containers on every engine this run's targets use (a live run's are never touched)."""
        engines = [t for t in self.targets if t.is_container]
        try:
            self.controller.remove_dead(engines)
        except Exception as exc:  # never fail the run for it: the next run removes them too
            self._progress(f"could not remove what a dead worker left: {exc}")

    def _target_entries(self, skip: set[str] | None = None) -> list[dict[str, Any]]:
        if self._controller is None:
            return []
        status = self._controller.status()
        return [target_entry(t, status.get(name)) for name, t in self._controller.targets.items()
                if name in status and name not in (skip or ())]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report is None or (not self.report["calls"] and not self.report["tests"]):
            return
        order = [t["name"] for t in self.report["targets"]] or [t.name for t in self.targets]
        terminalreporter.section("remote-serial matrix")
        every_row = self.config.getoption("remote_all_rows") or self.config.getoption("verbose") > 0
        width = terminalreporter._tw.fullwidth
        view = layout(cells(self.report), order, width, every_row,
                      ascii_only=not _can_write(terminalreporter, "".join(GLYPHS.values()) + "…"))
        if view is not None:
            for line in view.lines():
                for text, verdict in line:
                    terminalreporter.write(text, **MARKUP.get(verdict or "", {}))
                terminalreporter.write("\n")
            for note in view.notes(width, "-v or --remote-all-rows"):
                terminalreporter.write_line(note)
        for entry in self.report["targets"]:
            if not entry["available"]:
                terminalreporter.write_line(f"{entry['name']}: unavailable: {str(entry['reason']).splitlines()[0]}")
            else:
                built = f", image built in {entry['build_s']:.0f}s" if entry.get("build_s") else ""
                how = ", ".join(f"{k} {entry[k]}" for k in ("backend", "engine", "transport") if entry.get(k))
                terminalreporter.write_line(
                    f"{entry['name']}: {python_name(entry.get('implementation'), entry['python'], cpython='Python')}, "
                    f"cold start {entry['cold_start_s']:.2f}s{built}"
                    + (f" ({how})" if how else ""))
        for text in self.unwritten:
            terminalreporter.write_line(f"remote-serial: {text}", red=True)
        for name in OUTPUTS:
            if self.config.getoption(name) and not any(t.startswith(f"--{name.replace('_', '-')}=")
                                                       for t in self.unwritten):
                terminalreporter.write_line(f"remote-serial: wrote {self.config.getoption(name)}")
        if self.compare_lines:
            terminalreporter.section("remote-serial compare")
            for text in self.compare_lines:
                terminalreporter.write_line(text)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self._nodeid = item.nodeid

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        """Every phase of a test that touched a target: its verdict, with ``expect=`` applied."""
        outcome = yield
        rep = outcome.get_result()  # type: ignore[attr-defined]
        uses = PARAM in getattr(item, "fixturenames", ())
        if not uses and not self.log.outcomes(item.nodeid):
            return
        callspec = getattr(item, "callspec", None)
        target = (callspec.params.get(PARAM) if callspec else None) or self.log.target(item.nodeid) or LOCAL
        try:
            expected = CallOptions.from_marker(item.get_closest_marker("remote")).expected_on(target)
        except MarkerError:
            expected = []
        apply_expectation(rep, target, expected, self.log.outcomes(item.nodeid))
        self.log.phase(rep, target, expected)
        if self.outbox is not None:  # an xdist worker: the records travel with the report
            finished = [self.log.record(item.nodeid)] if rep.when == "teardown" else []
            packed = self.outbox.take(self.records, self._target_entries, finished)
            if packed:
                setattr(rep, REPORT_ATTR, packed)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        current.set_provider(None)
        if self._controller is not None:
            self._controller.shutdown()
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)

    # ---------------------------------------------------------------- fixture support
    def remote_for(self, request: pytest.FixtureRequest, name: str) -> Remote:
        options = CallOptions.from_marker(request.node.get_closest_marker("remote"))
        target = next((t for t in self.targets if t.name == name), None)
        if target is None:
            raise pytest.UsageError(f"target {name!r} is not in the selected matrix")
        gpu = _has_gpu(target)
        if options.gpu and not gpu:
            why = f": {local_gpu_problem()}" if target.is_local else " (gpu = false in the matrix)"
            pytest.skip(f"needs a GPU; target {name} has none{why}")
        running = self._running(name, nodeid=request.node.nodeid)
        return Remote(running, options, gpu, self._record, test=request.node.nodeid,
                      restart=functools.partial(self.controller.get, name),
                      host=functools.partial(current.remote_for, LOCAL))

    def remote_by_name(self, name: str) -> Remote:
        """For the assertion helpers: any target of the matrix, started on first use."""
        target = next((t for t in self.targets if t.name == name), None)
        if target is None:
            try:
                matrix = load_matrix(Path(self.config.rootpath), self.config.getoption("remote_matrix_file"))
                target = matrix.select([name])[0]
            except MatrixError as exc:
                raise pytest.UsageError(str(exc)) from None
            self.controller.add(target)
        running = self._running(name, nodeid=self._nodeid)
        return Remote(running, CallOptions(), _has_gpu(target), self._record, test=self._nodeid,
                      restart=functools.partial(self.controller.get, name),
                      host=functools.partial(current.remote_for, LOCAL))

    def _record(self, rt: RoundTrip) -> None:
        self.records.append(rt)
        self.log.outcome(rt.test, rt.shown, rt.target)

    def _running(self, name: str, nodeid: str | None = None) -> Running:
        """The started target; one that cannot start skips the test (fails it under --remote-strict)."""
        try:
            return self.controller.get(name)
        except TargetUnavailable as exc:
            self.log.outcome(nodeid, "unavailable", name)
            if self.strict:
                pytest.fail(f"{exc} (--remote-strict)", pytrace=False)
            pytest.skip(str(exc))


def _can_write(terminalreporter: Any, text: str) -> bool:
    """Whether the terminal's encoding has the matrix's glyphs (else it gets ASCII ones)."""
    encoding = getattr(getattr(terminalreporter._tw, "_file", None), "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _explicit_targets(raw: str | None) -> list[str]:
    """``--remote-targets=a,b`` as names; an empty list or an empty name is a usage error (it
    would otherwise run on ``local`` only, or on fewer targets than the command line says)."""
    if raw is None:
        return []
    names = [n.strip() for n in raw.split(",")]
    if not any(names):
        raise pytest.UsageError(f"--remote-targets={raw!r} names no target: give target names separated by "
                                "commas, e.g. --remote-targets=py3.9,py3.11, use --remote-matrix for every "
                                "target, or leave the option out to run on local only")
    if not all(names):
        fixed = ",".join(filter(None, names))
        raise pytest.UsageError(f"--remote-targets={raw!r} has an empty name between its commas: give target "
                                f"names separated by single commas, e.g. --remote-targets={fixed}")
    return list(dict.fromkeys(names))


def _has_gpu(target: Target) -> bool:
    return target.gpu if not target.is_local else local_has_gpu()


_write_lock = threading.Lock()


def local_has_gpu() -> bool:
    return local_gpu_problem() is None


@functools.lru_cache(maxsize=1)
def local_gpu_problem() -> str | None:
    """The local target has a GPU when CuPy imports on the host and sees a device."""
    from .remote.buffers import device_problem

    problem = device_problem()
    return None if problem is None else f"{problem} on the host"


@pytest.fixture(scope="session")
def _remote_target(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", LOCAL))


@pytest.fixture
def remote(request: pytest.FixtureRequest, _remote_target: str) -> Iterator[Remote]:
    """Call functions in a real target: ``remote.call(func, *args)``."""
    handle = request.config.stash[KEY].remote_for(request, _remote_target)
    token = current.set_current(handle)  # the assertion helpers run on this test's target
    yield handle
    current.reset_current(token)
