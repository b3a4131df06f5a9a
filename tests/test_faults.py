"""Faults named for what they are (issue 12): limits, start-up causes, build inputs, leftovers.

Real containers with small limits, from matrix files that reuse the bookworm image's recipe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from helpers import ROOT, allocate, label, our_containers, remote_on, write_matrix

import pytest_remote_serial as prs
from pytest_remote_serial.fixture import CallOptions, Remote
from pytest_remote_serial.host.backends.base import (
    AGENT_FILE,
    LEGACY_AGE_S,
    OWNER_FILE,
    process_stamp,
    remove_dead_runs,
)
from pytest_remote_serial.host.client import RemoteLimitWarning
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.images import BuildFailed, ImageBuilder, image_tag
from pytest_remote_serial.host.matrix import MatrixError, load_matrix

BOOKWORM = 'debian = { suite = "bookworm", packages = ["python3", "python3-numpy"] }'


matrix = write_matrix


@pytest.fixture
def small(docker_client, tmp_path):
    """A bookworm target with 192 MiB of memory and 48 processes."""
    ctl = Controller(matrix(tmp_path, f"""
        [targets.small]
        {BOOKWORM}
        memory = "192m"
        pids = 48
    """).select(["small"]), print)
    yield ctl
    ctl.shutdown()


def remote(ctl, name, timeout=30.0):
    return remote_on(ctl, name, timeout)


def add(a, b):
    return a + b


def fork_until_refused(catch):
    import os
    import time

    count = 0
    while count < 10000:
        try:
            pid = os.fork()
        except OSError:
            if not catch:
                raise
            return count
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        count += 1
    return count


def threads_until_refused():
    import threading
    import time

    count = 0
    while count < 10000:
        try:
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        except RuntimeError:  # "can't start new thread": the pids limit counts threads too
            return count
        count += 1
    return count


def fork_one():
    import os

    pid = os.fork()
    if pid == 0:
        os._exit(7)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def size_and_type(data):
    return len(data), type(data).__name__


# ------------------------------------------------------------------ resource limits


@pytest.mark.docker
def test_out_of_memory_is_a_crash_naming_the_limit_and_the_key(small):
    rt = remote(small, "small").roundtrip(allocate, 400, serializer="source")
    assert rt.outcome == "crash" and rt.error["signal"] == signal.SIGKILL, rt.describe()
    assert rt.error.get("oom") and "out-of-memory killer" in rt.error["message"]
    assert "192 MiB" in rt.error["message"]
    assert "raise `memory` for target 'small'" in rt.error["hint"] and "192m" in rt.error["hint"]
    with pytest.raises(prs.TargetCrashed, match="raise `memory`"):
        rt.raise_for_outcome()
    assert remote(small, "small").call(add, 1, 2) == 3


@pytest.mark.docker
def test_pids_exhaustion_is_named_and_never_poisons_the_next_call(small):
    r = remote(small, "small")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert 0 < r.call(fork_until_refused, True, serializer="source") < 48
    assert any(isinstance(w.message, RemoteLimitWarning) and "raise `pids`" in str(w.message) for w in seen)
    rt = r.roundtrip(fork_until_refused, False, serializer="source")
    assert rt.outcome == "call_error", rt.describe()
    assert "pids limit (48 processes)" in rt.error["hint"]
    for _ in range(3):
        assert r.call(add, 1, 2) == 3


@pytest.mark.docker
@pytest.mark.parametrize("isolate", [True, False], ids=["isolated", "non-isolated"])
def test_threads_up_to_the_pids_limit_are_named_too(small, isolate):
    r = Remote(small.get("small"), CallOptions(isolate=isolate, timeout=30), False, lambda rt: None)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert 0 < r.call(threads_until_refused, serializer="source") < 48
    assert any(isinstance(w.message, RemoteLimitWarning) and "raise `pids`" in str(w.message) for w in seen)


@pytest.mark.docker
def test_the_isolated_call_after_one_at_the_pids_limit_is_not_blamed_for_it(small):
    """The spare that takes the next request is armed only once the limits are read again
    after a call that started processes: a later call that forks is measured from there."""
    r = remote(small, "small")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert 0 < r.call(fork_until_refused, True, serializer="source") < 48
    assert any(isinstance(w.message, RemoteLimitWarning) for w in seen)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert [r.call(fork_one, serializer="source") for _ in range(3)] == [7, 7, 7]
    assert not [w for w in seen if isinstance(w.message, RemoteLimitWarning)]


@pytest.mark.docker
def test_a_non_isolated_call_at_the_pids_limit_is_named_and_only_that_call(small):
    """The agent's parent forks its spares: only what the call itself started may count."""
    r = Remote(small.get("small"), CallOptions(isolate=False, timeout=30), False, lambda rt: None)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert 0 < r.call(fork_until_refused, True, serializer="source") < 48
    assert any(isinstance(w.message, RemoteLimitWarning) and "raise `pids`" in str(w.message) for w in seen)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert [r.call(add, 1, i) for i in range(3)] == [1, 2, 3]
        assert remote(small, "small").call(add, 2, 2) == 4  # isolated: a spare could be forked again
    assert not [w for w in seen if isinstance(w.message, RemoteLimitWarning)]


@pytest.mark.docker
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_arguments_travel_out_of_band_so_the_target_needs_them_once(small, kind):
    """160 MiB twice would not fit in 192 MiB: the argument must arrive as itself, not be copied."""
    data = kind(bytes(160 << 20)) if kind is not memoryview else memoryview(bytearray(160 << 20))
    rt = remote(small, "small").roundtrip(size_and_type, data, serializer="source")
    assert rt.outcome == "ok", rt.describe()
    assert rt.result == (160 << 20, kind.__name__)
    assert rt.payload_bytes >= 160 << 20


def echo(value):
    return value


@pytest.mark.parametrize("value", [b"x" * 70000, bytearray(b"y" * 70000), (b"a" * 70000, [bytearray(70000)])])
def test_bytes_results_come_back_as_themselves(remote, value):
    assert remote.call(echo, value) == value
    assert type(remote.call(echo, value)) is type(value)


def test_memoryview_keeps_format_and_shape(remote):
    import array

    view = memoryview(array.array("d", range(20000))).cast("B").cast("d", (100, 200))
    got = remote.call(echo, view)
    assert (got.format, got.shape, got.tolist()) == ("d", (100, 200), view.tolist())


# ------------------------------------------------------------------ the host's disk


def fill_socket_folder():
    import os

    written = []
    for name in ("/run/prs/filler", "/run/prs/../prs/filler2"):
        try:
            with open(name, "wb") as fh:
                fh.write(b"x" * (1 << 20))
            written.append(name)
        except OSError as exc:
            written.append(f"{type(exc).__name__}")
    return written, os.listdir("/run/prs") if os.path.isdir("/run/prs") else None


@pytest.mark.docker
def test_a_call_cannot_write_to_the_hosts_disk_through_the_socket_folder(docker_client, tmp_path):
    ctl = Controller(load_matrix(ROOT).select(["py3.11"]), print)
    try:
        running = ctl.get("py3.11")
        written, listing = remote(ctl, "py3.11").call(fill_socket_folder, serializer="source")
        assert written == ["FileNotFoundError", "FileNotFoundError"] and not listing
        attrs = docker_client.api.inspect_container(running.extra["container"])
        sources = [m["Source"] for m in attrs["Mounts"] if m["Destination"] == "/run/prs"]
        assert sources and not os.path.exists(sources[0].removesuffix("//deleted"))
    finally:
        ctl.shutdown()


# ------------------------------------------------------------------ start-up causes


@pytest.mark.docker
def test_a_missing_python_names_the_cause_from_the_containers_log(docker_client, tmp_path):
    base = image_tag(load_matrix(ROOT).targets["py3.11"])  # an image recipe: nothing to build
    ctl = Controller(matrix(tmp_path, f"""
        [targets.nopython]
        image = "{base}"
        python = "python9"
    """).select(["nopython"]), print)
    start = time.monotonic()
    try:
        with pytest.raises(prs.TargetUnavailable) as info:
            ctl.get("nopython")
    finally:
        ctl.shutdown()
    assert time.monotonic() - start < 30
    reason = info.value.reason
    assert "exited before its agent started" in reason and "exit code" in reason
    assert "python9" in reason and "last lines:" in reason
    assert not [c for c in our_containers(docker_client) if label(c, "session") == ctl.session]


def test_a_memory_limit_too_small_for_the_agent_is_named_at_once(tmp_path):
    with pytest.raises(MatrixError, match=r"'memory' = '8m' is too small .* at least 32m"):
        matrix(tmp_path, f"""
            [targets.tiny]
            {BOOKWORM}
            memory = "8m"
        """)
    with pytest.raises(MatrixError, match="'memory' = 'lots' is not a size"):
        matrix(tmp_path, f'[targets.tiny]\n{BOOKWORM}\nmemory = "lots"\n')


@pytest.mark.docker
def test_an_agent_killed_by_the_memory_limit_at_start_names_it(docker_client, tmp_path):
    """Just above the floor, importing numpy in the parent (a preload) would not fit: named."""
    ctl = Controller(matrix(tmp_path, f"""
        [targets.tight]
        {BOOKWORM}
        memory = "32m"
    """).select(["tight"]), print)
    try:
        rt = remote(ctl, "tight").roundtrip(allocate, 64, serializer="source")
        assert rt.outcome == "crash", rt.describe()
        assert "memory" in rt.error["message"] and "32" in rt.error["message"]
    except prs.TargetUnavailable as exc:  # the agent itself did not fit: named as such
        assert "out-of-memory killer" in exc.reason and "`memory`" in exc.reason
    finally:
        ctl.shutdown()


@pytest.mark.skipif(os.geteuid() != 0 or not __import__("shutil").which("debootstrap"),
                    reason="the debian recipe needs root and debootstrap")
def test_a_failed_debootstrap_names_its_cause_on_the_first_line(docker_client, tmp_path):
    target = matrix(tmp_path, """
        [targets.nosuite]
        debian = { suite = "no-such-suite-anywhere" }
    """).targets["nosuite"]
    with pytest.raises(BuildFailed) as info:
        ImageBuilder(docker_client, print).ensure(target)
    first = str(info.value).splitlines()[0]
    assert first.startswith("debootstrap exited with") and "no-such-suite-anywhere" in first, first


# ------------------------------------------------------------------ build inputs


def test_a_dockerfile_recipe_hash_covers_its_build_context(tmp_path):
    files = {"Dockerfile": "FROM scratch\nCOPY data.txt /\n", "data.txt": "one", "ignored.log": "a",
             ".dockerignore": "*.log\n"}
    for name, text in files.items():
        (tmp_path / "matrix" / "img").mkdir(parents=True, exist_ok=True)
        (tmp_path / "matrix" / "img" / name).write_text(text)

    def digest():
        return matrix(tmp_path, '[targets.d]\ndockerfile = "img/Dockerfile"\n').targets["d"].recipe_hash()

    first = digest()
    (tmp_path / "matrix" / "img" / "ignored.log").write_text("b")
    assert digest() == first  # .dockerignore'd: not sent to the build, not in the hash
    (tmp_path / "matrix" / "img" / "data.txt").write_text("two")
    assert digest() != first
    second = digest()
    (tmp_path / "matrix" / "img" / "new.txt").write_text("x")
    assert digest() != second


# ------------------------------------------------------------------ nothing left


def test_dead_runs_folders_go_live_runs_folders_stay(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        gone = tmp_path / "prs-dead"
        gone.mkdir()
        (gone / OWNER_FILE).write_text(f"{dead.pid} 1")
        (gone / AGENT_FILE).write_text(process_stamp(agent.pid))
        live = tmp_path / "prs-live"
        live.mkdir()
        (live / OWNER_FILE).write_text(process_stamp(os.getpid()))
        foreign = tmp_path / "prs-older"  # written by another version: no owner, left alone a while
        foreign.mkdir()
        stale = tmp_path / "prs-stale"  # ... and removed once untouched for longer than any run idles
        (stale / "sock").mkdir(parents=True)
        old = time.time() - LEGACY_AGE_S - 60
        for path in (stale / "sock", stale):
            os.utime(path, (old, old))
        assert remove_dead_runs(tmp_path) == 2
        assert not gone.exists() and not stale.exists() and live.exists() and foreign.exists()
        assert agent.wait(5) == -signal.SIGKILL  # the dead run's local agent is reaped
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


def test_a_kill_9_run_leaves_nothing_the_next_run_does_not_remove(pytester):
    pytester.makepyfile(test_slow="""
        import time

        def test_slow(remote):
            print("STARTED", remote.call(__import__("os").getppid), flush=True)
            remote.call(time.sleep, 60)
    """)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider"],
                            cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    agent_pid = None
    for line in proc.stdout:
        if "STARTED" in line:
            agent_pid = int(line.split("STARTED")[1].split()[0])
            break
    assert agent_pid, "the run never called its agent"
    mine = [p for p in Path("/tmp").glob("prs-*") if (p / OWNER_FILE).is_file()
            and (p / OWNER_FILE).read_text().split()[0] == str(proc.pid)]
    assert mine
    proc.kill()
    proc.wait()
    Controller([], print)  # a later run starts
    assert not [p for p in mine if p.exists()]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.path.exists(f"/proc/{agent_pid}"):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{agent_pid}") or _zombie(agent_pid), "the dead run's agent still runs"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_keep_folders_of_containers_gone_are_pruned(tmp_path, monkeypatch):
    import tempfile

    from pytest_remote_serial.host.backends.containers import _prune_keep_folders

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    root = tmp_path / f"prs-keep-{os.geteuid()}"
    for name in ("inuse", "gone", "fresh"):
        (root / name).mkdir(parents=True)
    old = time.time() - 120
    for name in ("inuse", "gone"):
        os.utime(root / name, (old, old))
    _prune_keep_folders({"inuse"})
    assert sorted(p.name for p in root.iterdir()) == ["fresh", "inuse"]  # fresh: a parallel run's, maybe


def test_describe_runs_in_a_child_and_a_child_that_dies_falls_back_to_what_is_imported():
    """The agent's describe imports importlib.metadata and numpy in a throwaway child; one that
    dies without answering (a crashing import) leaves the agent with the imported-only answer."""
    from pytest_remote_serial.remote import describe, envelope, processes

    assert processes.in_child(lambda: {"pid": os.getpid()}, lambda: {})["pid"] != os.getpid()
    assert processes.in_child(lambda: os._exit(3), lambda: {"fallback": True}) == {"fallback": True}
    assert processes.in_child(lambda: os.kill(os.getpid(), signal.SIGSEGV), lambda: {"fallback": 1}) == {"fallback": 1}
    lean = describe.describe(scan=False)
    assert lean["python"] == envelope.python_version() and lean["packages"]["cloudpickle"]
