"""The trust boundary (issue 12): whatever bytes a target sends, the host runs none of its code.

The four routes that ran a command on the host are here on real containers; each payload would
create a marker file on the host, and each test asserts that the file does not exist.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import decimal
import os
import pickle
import subprocess
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT

import pytest_remote_serial as prs
from pytest_remote_serial.fixture import CallOptions, Remote
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.images import image_tag
from pytest_remote_serial.host.matrix import load_matrix
from pytest_remote_serial.host.trust import Policy, UnsafeGlobal, load_reply, reply_problem
from pytest_remote_serial.remote import buffers

# Baked into the image of the site-packages route: a payload would create it on the host.
IMAGE_MARKER = "/tmp/pytest-remote-serial-rce-image-marker"


class RunsCommand:
    """A result whose pickle asks its loader to run a shell command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class CommandError(Exception):
    def __init__(self, command):
        super().__init__(command)
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class Point:
    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return type(other) is Point and other.x == self.x


def return_command(command):
    return RunsCommand(command)


def raise_command(command):
    raise CommandError(command)


def add_after_forging_the_reply(a, b, command):
    """Runs in the agent's call process and rewrites the agent's own reply path."""
    import sys

    class Forged:
        def __reduce__(self):
            import os

            return (os.system, (command,))

    call = sys.modules["_prs_agent.call"]  # the agent's own module that dumps a result
    call.dump_result = lambda obj, protocol: [pickle.dumps(Forged(), protocol=2)]
    return a + b


def add(a, b):
    return a + b


def add_up(a, b):
    """A tuple, not a bare int: the agent pickles scalars with ``pickle.dumps`` itself, so
    only a container goes through the (swapped) ``pickle.Pickler`` class."""
    return (a + b,)


def loads(data: bytes, **policy):
    return load_reply([data], Policy(**policy))


def marker(tmp_path: Path) -> Path:
    return tmp_path / f"rce-{uuid.uuid4().hex}"


# ------------------------------------------------------------------ the policy, in this process


@pytest.mark.parametrize("value", [
    {"a": [1, 2.5, "x", b"y", None, True, (1,), {3}, frozenset({4}), bytearray(b"z"), range(3), slice(1, 2)]},
    collections.OrderedDict(a=1), collections.defaultdict(list, a=[1]), collections.Counter("abc"),
    collections.deque([1, 2]), datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC),
    datetime.timedelta(3), decimal.Decimal("1.5"), uuid.UUID(int=5), Path("/x"), complex(1, 2),
    ValueError("v"), KeyError("k"), OSError(2, "gone"), type(None), Ellipsis,
])
def test_standard_data_loads(value):
    data = buffers.dump_with_buffers(pickle.Pickler, value)
    assert load_reply(data, Policy()) == value or isinstance(value, BaseException)


@pytest.mark.parametrize("array", [np.arange(5), np.arange(1 << 16) * 1.5, np.float64(2.5),
                                   np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]), np.ma.masked_array([1, 2], [0, 1])])
def test_arrays_load(array):
    data = buffers.dump_with_buffers(pickle.Pickler, array)
    np.testing.assert_array_equal(load_reply(data, Policy()), array)


@pytest.mark.parametrize(("payload", "named"), [
    (pickle.dumps(RunsCommand("true")), "posix.system"),
    (b"cbuiltins\neval\n(S'1+1'\ntR.", "builtins.eval"),
    (b"cbuiltins\ngetattr\n(cbuiltins\nobject\nS'x'\ntR.", "builtins.getattr"),
    (b"csubprocess\nPopen\n((S'true'\nltR.", "subprocess.Popen"),
    (b"cos\nsystem\n(S'true'\ntR.", "os.system"),
    # a name reached through the call's own module must still be defined there
    (f"c{__name__}\nos.system\n(S'true'\ntR.".encode(), f"{__name__}.os.system"),
    (f"c{__name__}\nadd\n(I1\nI2\ntR.".encode(), f"{__name__}.add"),
    (b"cnumpy\nload\n(S'x'\ntR.", "numpy.load"),
    (b"ccopyreg\n_reconstructor\n(cposix\nsystem\n", "posix.system"),
])
def test_anything_else_is_refused_naming_the_global(payload, named):
    with pytest.raises(UnsafeGlobal, match=named.replace(".", r"\.")) as info:
        loads(payload, owned={__name__})
    assert "trusted = true" in str(info.value)


def test_classes_of_the_calls_own_module_load_and_trusted_loads_anything():
    data = pickle.dumps(Point(3))
    with pytest.raises(UnsafeGlobal, match="test_trust.Point"):
        loads(data)
    assert loads(data, owned={__name__}) == Point(3)
    assert loads(data, listed=(__name__,)) == Point(3)
    namespace = pickle.dumps(argparse.Namespace(a=1))
    with pytest.raises(UnsafeGlobal, match="argparse.Namespace"):
        loads(namespace)
    assert loads(namespace, trusted=True) == argparse.Namespace(a=1)


def test_host_references_only_to_the_calls_own_modules():
    with pytest.raises(UnsafeGlobal, match="os.system"):
        Policy(owned={__name__}).check_host_ref("os", "system")
    with pytest.raises(UnsafeGlobal, match="host reference"):
        Policy(owned={__name__}).check_host_ref(__name__, "os.system")
    assert Policy(owned={__name__}).check_host_ref(__name__, "Point") is Point


# ------------------------------------------------------------------ real containers


@pytest.fixture(scope="module")
def remotes(docker_client):
    ctl = Controller(load_matrix(ROOT).select(["py3.9", "py3.11", "py3.14"]), print)
    ctl.start_all()
    yield {t: Remote(ctl.get(t), CallOptions(timeout=20), False, lambda rt: None)
           for t in ("py3.9", "py3.11", "py3.14")}
    ctl.shutdown()


@pytest.mark.parametrize("target", ["py3.9", "py3.11", "py3.14"])
def test_a_result_that_runs_a_command_is_refused(remotes, target, tmp_path):
    touched = marker(tmp_path)
    rt = remotes[target].roundtrip(return_command, f"touch {touched}", serializer="source")
    assert not touched.exists(), "the host ran the target's command"
    assert rt.outcome == "result_error", rt.describe()
    assert "posix.system" in rt.error["message"] and "trusted = true" in rt.error["message"]
    with pytest.raises(prs.ResultError):
        rt.raise_for_outcome()


@pytest.mark.parametrize("target", ["py3.9", "py3.11"])
def test_an_exception_that_runs_a_command_is_refused(remotes, target, tmp_path):
    touched = marker(tmp_path)
    rt = remotes[target].roundtrip(raise_command, f"touch {touched}", serializer="source")
    assert not touched.exists(), "the host ran the target's command"
    assert rt.outcome == "result_error", rt.describe()
    assert "posix.system" in rt.error["message"]
    assert rt.error["remote"]["type"].endswith("CommandError")  # what the function raised is kept


def test_a_call_that_forges_the_agents_reply_runs_nothing(remotes, tmp_path):
    touched = marker(tmp_path)
    rt = remotes["py3.11"].roundtrip(add_after_forging_the_reply, 1, 2, f"touch {touched}",
                                     serializer="cloudpickle-by-value")
    assert not touched.exists(), "the host ran the target's command"
    assert rt.outcome == "result_error" and "posix.system" in rt.error["message"], rt.describe()
    assert remotes["py3.11"].call(add, 2, 2) == 4  # isolated: the next call has the real agent


def forging_the_reply_header(fields, buffers=None):
    """A call that rewrites the header of its own reply (it runs where the agent does)."""
    def forge():
        import sys

        wire = sys.modules["_prs_agent.wire"]  # the agent's channel
        real = wire.Channel.send

        def send(self, header, bufs=()):
            if header.get("op") == "result":
                header.update(fields)
                bufs = bufs if buffers is None else buffers
            return real(self, header, bufs)

        wire.Channel.send = send
        return 1
    return forge


@pytest.mark.parametrize(("fields", "buffers", "named"), [
    ({"device": {"h2d_s": "x"}}, None, "device = {'h2d_s': 'x'}"),
    ({"device": [1, 2]}, None, "device = [1, 2]"),
    ({"device": {"h2d_s": 1.0, "arrays": -1}}, None, "device = "),
    ({"limit_hit": "pids"}, None, "limit_hit = 'pids'"),
    ({"limit_hit": {"pids": "many"}}, None, "limit_hit = {'pids': 'many'}"),
    ({"outcome": "crash", "error": {"oom": True, "limit_hit": 5}}, None, "error.limit_hit = 5"),
    ({"envelope": "x"}, None, "envelope = 'x'"),
    ({"result_type": {"a": 1}}, None, "result_type = {'a': 1}"),
    ({"phases": {"call": 1e308}}, None, "phases = "),
], ids=["device-str", "device-list", "device-negative", "limit-str", "limit-pids-str", "error-limit",
        "envelope", "result-type", "phase-huge"])
def test_a_reply_header_not_as_the_agent_writes_it_is_a_bad_reply_not_a_host_error(remotes, fields, buffers, named):
    rt = remotes["py3.11"].roundtrip(forging_the_reply_header(fields, buffers), serializer="cloudpickle")
    assert (rt.outcome, rt.error["type"]) == ("result_error", "bad_reply"), rt.describe()
    assert named in rt.error["message"] and "nothing of it was loaded" in rt.error["message"]
    assert remotes["py3.11"].call(add, 2, 2) == 4  # isolated: the next call has the real agent


def test_a_json_result_that_is_not_json_is_a_result_error(remotes):
    rt = remotes["py3.11"].roundtrip(forging_the_reply_header({"result_codec": "json"}, [b"{not json"]),
                                     serializer="cloudpickle")
    assert rt.outcome == "result_error" and "the target's JSON result is not JSON" in rt.error["message"]


@pytest.mark.parametrize(("answer", "buffers", "named"), [
    ({"items": [{"nbuf": 2}, {"nbuf": 2}]}, 3, "items = "),
    ({"items": [{"nbuf": -1}]}, 3, "items = "),
    ({"items": ["x"]}, 3, "items = "),
    ({"items": "x"}, 3, "items = 'x'"),
    ({"items": [{"nbuf": 1, "phases": {"call": "x"}}]}, 3, "items[0].phases = "),
    ({"items": [{"nbuf": 1, "device": 3}]}, 3, "items[0].device = 3"),
])
def test_a_map_reply_whose_items_claim_what_did_not_come_is_named(answer, buffers, named):
    assert named in (reply_problem(answer, buffers) or "")


def test_the_agent_s_own_replies_have_the_shape_the_host_expects():
    assert reply_problem({"outcome": "ok", "result_type": "builtins.int", "phases": {"load": 1e-4, "call": 0.0},
                          "envelope": {"python": "3.11.2"}, "device": {"h2d_s": 0.1, "d2h_s": 0.0, "arrays": 2,
                                                                       "converted": []},
                          "items": [{"nbuf": 1, "phases": {"call": 0.1}}, {"phases": {}}]}, 1) is None


EVIL_SITE = f'''
import os, pickle

_Real = pickle.Pickler


class _Command:
    def __reduce__(self):
        return (os.system, ("touch {IMAGE_MARKER}",))


class Pickler(_Real):
    """Every pickle the agent writes first runs a command, then yields the honest value."""

    def dump(self, obj):
        head = pickle.dumps(_Command(), protocol=2)[:-1] + b"0"
        self._prs_file.write(head + _dumps(obj)[2:])


def _dumps(obj):
    import io

    out = io.BytesIO()
    _Real(out, 2).dump(obj)
    return out.getvalue()


_init = _Real.__init__


def __init__(self, file, *args, **kwargs):
    _init(self, file, *args, **kwargs)
    self._prs_file = file


Pickler.__init__ = __init__
pickle.Pickler = Pickler
'''


def test_an_image_whose_site_packages_swap_the_pickler_runs_nothing(docker_client, pytester):
    """An innocent call that returns the right value, from an image that rewrote pickle.Pickler."""
    base = image_tag(load_matrix(ROOT).targets["py3.11"])
    pytester.makefile("", **{"matrix/evil/Dockerfile": textwrap.dedent(f"""
        FROM {base}
        COPY evil_pickle.py prs_evil.pth /usr/lib/python3/dist-packages/
    """)})
    pytester.makefile(".py", **{"matrix/evil/evil_pickle": EVIL_SITE})
    pytester.makefile(".pth", **{"matrix/evil/prs_evil": "import evil_pickle\n"})
    pytester.makefile(".toml", **{"matrix/targets": '[targets.evil]\ndockerfile = "evil/Dockerfile"\n'})
    if os.path.exists(IMAGE_MARKER):
        os.unlink(IMAGE_MARKER)
    ctl = Controller(load_matrix(pytester.path).select(["evil"]), print)
    try:
        remote = Remote(ctl.get("evil"), CallOptions(timeout=20), False, lambda rt: None)
        rt = remote.roundtrip(add_up, 1, 2, serializer="cloudpickle-by-value")
        assert not os.path.exists(IMAGE_MARKER), "the host ran the image's command"
        assert rt.outcome == "result_error" and "posix.system" in rt.error["message"], rt.describe()
        with pytest.raises(prs.ResultError, match="trusted = true"):
            remote.call(add_up, 1, 2)
    finally:
        ctl.shutdown()
        if os.path.exists(IMAGE_MARKER):
            os.unlink(IMAGE_MARKER)


def test_trusted_targets_load_any_class_untrusted_ones_name_it(docker_client, pytester):
    pytester.makefile(".toml", **{"matrix/targets": textwrap.dedent("""
        [targets.strict]
        debian = { suite = "bookworm", packages = ["python3", "python3-numpy"] }
        [targets.open]
        debian = { suite = "bookworm", packages = ["python3", "python3-numpy"] }
        trusted = true
    """)})
    matrix = load_matrix(pytester.path)
    assert matrix.targets["local"].is_trusted and matrix.targets["open"].is_trusted
    assert not matrix.targets["strict"].is_trusted
    ctl = Controller(matrix.select(["strict", "open"]), print)
    try:
        make = lambda: __import__("argparse").Namespace(a=1)  # noqa: E731
        strict = Remote(ctl.get("strict"), CallOptions(), False, lambda rt: None).roundtrip(make)
        assert strict.outcome == "result_error" and "argparse.Namespace" in strict.error["message"]
        opened = Remote(ctl.get("open"), CallOptions(), False, lambda rt: None).roundtrip(make)
        assert (opened.outcome, opened.result) == ("ok", argparse.Namespace(a=1))
    finally:
        ctl.shutdown()


def test_the_local_target_is_trusted_by_default(remote):
    assert remote.call(lambda: __import__("argparse").Namespace(a=1)) == argparse.Namespace(a=1)


def test_subprocess_is_not_loaded_from_a_target(remotes, tmp_path):
    touched = marker(tmp_path)

    def popen(path):
        class P:
            def __reduce__(self):
                return (subprocess.Popen, (["touch", path],))

        return P()

    rt = remotes["py3.11"].roundtrip(popen, str(touched), serializer="cloudpickle")
    assert rt.outcome == "result_error" and "subprocess.Popen" in rt.error["message"], rt.describe()
    assert not touched.exists()
