"""Downstream serializers (issue 23): a framework's own dumps on the host, its own loads on the
target, classified like the built-in serializers, and never handed another Python's bytecode.

The loaders are real ones the targets have (the standard library's, joblib's from the images'
wheels, a framework module on ``paths``); nothing is mocked.
"""

from __future__ import annotations

import json
import pickle
import sys
import textwrap
import zlib

import cloudpickle
import pytest

import pytest_remote_serial as prs
from pytest_remote_serial.fixture import CallOptions, MarkerError, Remote
from pytest_remote_serial.host.codecs import UnknownSerializer, get_codec
from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import local_target

# The plainest framework: cloudpickle on the host, the standard unpickler on the worker.
CLOUD = prs.Serializer("cloud-worker", dumps=cloudpickle.dumps, loads="pickle:loads")
# A worker whose loader is missing there.
ABSENT = prs.Serializer("absent-framework", dumps=cloudpickle.dumps, loads="no_such_framework.wire:loads")
# A worker whose loader raises on these bytes (JSON cannot read a pickle): its own message.
WRONG_FORMAT = prs.Serializer("json-worker", dumps=pickle.dumps, loads="json:loads")
# dumps and loads that are not inverses: the loader returns bytes, not the call.
NOT_INVERSE = prs.Serializer("zlib-only", dumps=lambda call: zlib.compress(b"not a call"), loads="zlib:decompress")


def scale(x, factor=2):
    return x * factor


def make_adder(n):
    def add(x):
        return x + n

    return add


def behaviours():
    """Functions that raise, die and hang, by value (cloudpickle ships a test module's own
    functions by reference, and the test module is not on a worker)."""
    def raises_value_error():
        raise ValueError("the function's own error")

    def dies():
        import os

        os._exit(7)

    def sleeps():
        import time

        time.sleep(30)

    return raises_value_error, dies, sleeps


@pytest.fixture(scope="module")
def local():
    ctl = Controller([local_target()], print)
    ctl.start_all()
    yield Remote(ctl.get("local"), CallOptions(timeout=5.0), False, lambda rt: None)
    ctl.shutdown()


def test_a_serializer_is_usable_by_object_and_by_name(local):
    import math

    rt = local.roundtrip(math.fsum, [0.1] * 10, serializer=CLOUD)
    assert rt.outcome == "ok", rt.describe()
    assert rt.result == math.fsum([0.1] * 10)
    assert (rt.serializer, rt.serializer_version) == ("cloud-worker", cloudpickle.__version__)
    assert local.call(make_adder(3), 4, serializer="cloud-worker") == 7
    assert local.map(make_adder(1), [(1,), (2,), (3,)], serializer=CLOUD) == [2, 3, 4]
    assert get_codec("cloud-worker") is CLOUD


def test_the_frameworks_missing_module_is_named(local):
    rt = local.roundtrip(scale, 1, serializer=ABSENT)
    assert rt.outcome == "missing_module", rt.describe()
    assert rt.module == "no_such_framework"
    with pytest.raises(prs.MissingModuleError) as info:
        local.call(scale, 1, serializer=ABSENT)
    assert info.value.module == "no_such_framework"
    assert "fix: the absent-framework serializer's loader (no_such_framework.wire:loads) is imported on the " \
           "target: install no_such_framework there" in str(info.value)


def test_the_frameworks_load_failure_is_a_load_error_with_its_own_message(local):
    rt = local.roundtrip(scale, 1, serializer=WRONG_FORMAT)
    assert rt.outcome == "load_error", rt.describe()
    assert rt.error["type"] in ("json.decoder.JSONDecodeError", "builtins.UnicodeDecodeError")
    assert rt.error["phase"] == "load"
    assert not rt.error.get("diagnosis")  # same Python: no version blamed


def test_a_loader_that_does_not_return_the_call_is_a_load_error(local):
    rt = local.roundtrip(scale, 1, serializer=NOT_INVERSE)
    assert rt.outcome == "load_error"
    assert "zlib:decompress returned a builtins.bytes, not the call tuple" in rt.error["message"]


def test_the_functions_own_outcomes_are_as_for_the_built_in_serializers(local):
    raises_value_error, dies, sleeps = behaviours()
    with pytest.raises(ValueError, match="the function's own error"):
        local.call(raises_value_error, serializer=CLOUD)
    crashed = local.roundtrip(dies, serializer=CLOUD)
    assert (crashed.outcome, crashed.error.get("exit_code")) == ("crash", 7)
    slow = Remote(local._running, CallOptions(timeout=0.5), False, lambda rt: None)
    assert slow.roundtrip(sleeps, serializer=CLOUD).outcome == "timeout"


def test_the_result_comes_back_on_the_plugins_way_back_not_the_frameworks(local):
    """The framework's loads reads only the call; a result (here a closure plain pickle refuses)
    comes back through the agent's own dump and the host's trust boundary."""
    def make(n):  # by value, as is the closure it returns
        def add(x):
            return x + n

        return add

    back = local.call(make, 5, serializer=CLOUD)
    assert back(1) == 6


def test_names_and_loaders_are_checked_when_declared():
    with pytest.raises(ValueError, match="built-in serializer's"):
        prs.Serializer("cloudpickle", dumps=cloudpickle.dumps, loads="pickle:loads")
    with pytest.raises(ValueError, match=r"write it as \"module:attribute\""):
        prs.Serializer("x", dumps=cloudpickle.dumps, loads="pickle.loads")
    with pytest.raises(ValueError, match="dumps must be a callable"):
        prs.Serializer("x", dumps="cloudpickle:dumps", loads="pickle:loads")
    with pytest.raises(ValueError, match="two different serializers are named 'cloud-worker'"):
        prs.Serializer("cloud-worker", dumps=pickle.dumps, loads="pickle:loads")
    assert prs.Serializer("cloud-worker", dumps=cloudpickle.dumps, loads="pickle:loads") == CLOUD
    with pytest.raises(UnknownSerializer, match="declared downstream serializers: .*cloud-worker"):
        get_codec("cloud_worker")


def test_the_marker_takes_a_serializer_object_or_a_declared_name():
    class Marker:
        args = ()

        def __init__(self, **kwargs):
            self.kwargs = kwargs

    assert CallOptions.from_marker(Marker(serializer=CLOUD)).serializer is CLOUD
    assert CallOptions.from_marker(Marker(serializer="cloud-worker")).serializer == "cloud-worker"
    with pytest.raises(MarkerError, match=r"serializer='undeclared'\): use one of auto, .*cloud-worker"):
        CallOptions.from_marker(Marker(serializer="undeclared"))


MATRIX_WITH_SERIALIZER = """
    [tool.pytest_remote_serial]
    paths = ["fw"]

    [tool.pytest_remote_serial.targets.unused]
    image = "never-pulled"

    [tool.pytest_remote_serial.serializers.wire]
    dumps = "fw_host:dumps"
    loads = "fw_worker:loads"
"""


def _framework(pytester: pytest.Pytester) -> None:
    """A framework of the suite's own: its host side importable by the test process, its
    worker side only on the target's ``paths`` (as a worker image has it installed)."""
    pytester.makepyfile(fw_host="""
        import cloudpickle, zlib

        __version__ = "0.7"

        def dumps(call):
            return b"WIRE" + zlib.compress(cloudpickle.dumps(call))
    """)
    (pytester.path / "fw").mkdir()
    (pytester.path / "fw" / "fw_worker.py").write_text(textwrap.dedent("""
        import pickle, zlib

        def loads(data):
            if not data.startswith(b"WIRE"):
                raise ValueError("fw: not a WIRE frame")
            return pickle.loads(zlib.decompress(data[4:]))
    """))
    pytester.syspathinsert()


def test_a_serializer_declared_in_the_matrix_file_is_used_by_name(pytester: pytest.Pytester):
    _framework(pytester)
    pytester.makepyprojecttoml(textwrap.dedent(MATRIX_WITH_SERIALIZER))
    pytester.makepyfile(test_fw="""
        import pytest
        from pytest_remote_serial import assert_portable, assert_roundtrip

        def double(x):
            return 2 * x

        @pytest.mark.remote(serializer="wire")
        def test_marker(remote):
            rt = remote.roundtrip(lambda: 21 * 2)
            assert (rt.outcome, rt.result, rt.serializer, rt.serializer_version) == ("ok", 42, "wire", "0.7")

        def test_by_name(remote):
            rt = remote.roundtrip(double, 4, serializer="wire")
            # the test module is not on the worker: the framework ships it by reference
            assert rt.outcome == "missing_module" and rt.module == "test_fw", rt.describe()

        def test_helpers_and_compare(remote):
            assert_roundtrip(lambda x: x + 1, 1, serializer="wire", expected=2)
            assert remote.compare(lambda: [1, 2], serializer="wire").same
            with pytest.raises(ValueError, match="the wire serializer's payload is not one"):
                assert_portable(double, serializer="wire")  # its own format: nothing to read
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--remote-report=report.json")
    result.assert_outcomes(passed=3)
    report = json.loads((pytester.path / "report.json").read_text())
    assert {(c["serializer"], c["serializer_version"]) for c in report["calls"]} == {("wire", "0.7")}


@pytest.mark.parametrize("table, expected", [
    ('dumps = "fw_host:dumps"\nloads = "fw_worker.loads"',
     r"\[serializers.wire\]: loads = 'fw_worker.loads': write it as \"module:attribute\""),
    ('dumps = "fw_host:nothing"\nloads = "fw_worker:loads"',
     r"\[serializers.wire\]: dumps = 'fw_host:nothing' cannot be imported on the host \(AttributeError"),
    ('dumps = "fw_host:dumps"', r"\[serializers.wire\]: loads = None: write it as \"module:attribute\""),
    ('dumps = "fw_host:dumps"\nloads = "fw_worker:loads"\nload = "x:y"',
     r"\[serializers.wire\]: unknown key 'load'; did you mean 'loads'\?"),
])
def test_a_bad_serializer_table_is_a_usage_error_naming_it(pytester: pytest.Pytester, table, expected):
    _framework(pytester)
    pytester.makepyprojecttoml(textwrap.dedent(MATRIX_WITH_SERIALIZER).split("[tool.pytest_remote_serial.serializers")[0]
                               + "[tool.pytest_remote_serial.serializers.wire]\n" + table + "\n")
    pytester.makepyfile(test_fw="def test_nothing():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.re_match_lines([f".*{expected}.*"])


# ----------------------------------------------------------------------------- across versions
CROSS = ["py3.9", "py3.11", "py3.13"]
# joblib's executor path (loky): its cloudpickle-based pickler on the host, pickle.loads on the
# worker, and the worker has joblib from the image's wheels (matrix/targets.toml).
LOKY = prs.Serializer("loky-reducer", dumps=lambda call: __import__(
    "joblib.externals.loky.backend.reduction", fromlist=["dumps"]).dumps(call),
    loads="joblib.externals.loky.backend.reduction:loads", version="joblib-loky")
# joblib's wrapper for what the standard pickler refuses: the function pickled apart, as bytes
# inside the outer pickle.
WRAPPED = prs.Serializer("loky-wrapper", dumps=lambda call: pickle.dumps(
    (__import__("joblib").wrap_non_picklable_objects(call[0]), call[1], call[2])), loads="pickle:loads")


@pytest.fixture(scope="module")
def cross(table_remotes):
    return {t: table_remotes[t] for t in CROSS}


@pytest.mark.docker
@pytest.mark.parametrize("serializer", [CLOUD, LOKY, WRAPPED], ids=lambda s: s.name)
def test_another_pythons_bytecode_is_refused_before_the_frameworks_loader_runs(cross, serializer):
    """Measured without the scan: the 3.11 closure loaded by joblib on 3.13 and called ran 3.11
    bytecode there. With it, every other minor refuses, naming both Pythons and ``source``."""
    for name, remote in cross.items():
        rt = remote.roundtrip(make_adder(2), 40, serializer=serializer)
        if name == "py3.11":
            assert (rt.outcome, rt.result) == ("ok", 42), rt.describe()
            continue
        assert rt.outcome == "load_error", (name, rt.describe())
        assert "holds code objects" in rt.error["message"] and "serializer='source'" in rt.error["message"]
        assert f"Python {sys.version.split()[0]}" in rt.error["message"]
        assert rt.error["type"].endswith("ForeignBytecode")  # refused by the scan, not by the loader


@pytest.mark.docker
def test_a_payload_without_code_runs_on_every_minor_through_the_framework(cross):
    import math

    for name, remote in cross.items():
        rt = remote.roundtrip(math.fsum, [0.1] * 10, serializer=LOKY)
        assert (rt.outcome, rt.result) == ("ok", math.fsum([0.1] * 10)), (name, rt.describe())


def test_the_html_report_names_the_serializers_version_and_what_was_injected():
    from test_report_html import make_report

    from pytest_remote_serial.report.html import render_html

    report = make_report()
    report["calls"][0].update(serializer="joblib", serializer_version="1.5.3")
    report["targets"][0].update(packages={"cloudpickle": "3.1.3", "numpy": "1.19.5"},
                                injected={"cloudpickle": "3.1.3"}, shadowed={"cloudpickle": "2.2.0"})
    page = render_html(report)
    assert "<th>serializer</th><td>joblib 1.5.3</td>" in page
    assert "cloudpickle&nbsp;3.1.3&nbsp;(injected, hiding the target's 2.2.0), numpy&nbsp;1.19.5" in page
