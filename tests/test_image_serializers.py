"""What a call imports (issue 23): ``serializers = "image"`` uses the worker's own cloudpickle and
dill, the host's only where the image has none; the plugin's own machinery keeps the host's
cloudpickle under a private name; and ``remote.target.packages`` says what a call imports.

The worker is ``py3.11-worker`` of ``tests/worker-targets.toml``: Debian bookworm's
``python3-cloudpickle`` (2.2) and ``python3-dill`` (0.3.6), built by the project through its
``debian`` recipe.
"""

from __future__ import annotations

import dataclasses
import textwrap

import cloudpickle
import dill
import pytest
from helpers import ROOT, remote_on

from pytest_remote_serial.host.controller import Controller
from pytest_remote_serial.host.matrix import load_matrix

pytestmark = pytest.mark.docker
HOST = {"cloudpickle": cloudpickle.__version__, "dill": dill.__version__}
WORKER_MATRIX = ROOT / "tests" / "worker-targets.toml"


def targets():
    """The worker as the matrix has it (image), the same image with the host's injected first,
    and the default py3.11 image, which has no cloudpickle or dill, set to image."""
    matrix = load_matrix(ROOT, str(WORKER_MATRIX)).targets
    worker = matrix["py3.11-worker"]
    return [worker, dataclasses.replace(worker, name="worker-injected", serializers="injected"),
            dataclasses.replace(matrix["py3.11"], name="bare-image", serializers="image")]


@pytest.fixture(scope="module")
def remotes(docker_client):
    chosen = targets()
    ctl = Controller(chosen, print)
    ctl.start_all()
    yield {t.name: remote_on(ctl, t.name, 20.0) for t in chosen}
    ctl.shutdown()


def serializer_origins():
    import cloudpickle
    import dill

    return {"cloudpickle": [cloudpickle.__version__, cloudpickle.__file__],
            "dill": [dill.__version__, dill.__file__]}


def test_a_worker_set_to_image_imports_its_own_serializers_and_says_so(remotes):
    worker = remotes["py3.11-worker"]
    assert worker.target.serializers == "image"
    packages = worker.target.packages
    assert packages["cloudpickle"].startswith("2.2.") and packages["dill"].startswith("0.3.6"), packages
    assert worker.target.injected == {} and worker.target.shadowed == {}
    # A call's own imports, whatever its serializer (the capsule itself loads with the host's copy).
    for serializer in ("source", "json"):
        origins = worker.call(serializer_origins, serializer=serializer)
        debian = "/usr/lib/python3/dist-packages/"
        assert origins["cloudpickle"] == [packages["cloudpickle"], f"{debian}cloudpickle/__init__.py"]
        assert origins["dill"][0] == packages["dill"] and origins["dill"][1].startswith(debian)


def test_the_same_image_with_the_host_injected_names_what_it_hides(remotes):
    injected = remotes["worker-injected"]
    assert injected.target.packages["cloudpickle"] == HOST["cloudpickle"]
    assert injected.target.injected == HOST
    shadowed = injected.target.shadowed
    assert shadowed["cloudpickle"].startswith("2.2.") and shadowed["dill"].startswith("0.3.6"), shadowed
    origins = injected.call(serializer_origins, serializer="source")
    assert origins["cloudpickle"][0] == HOST["cloudpickle"] and "/cloudpickle.zip/" in origins["cloudpickle"][1]


def test_an_image_without_serializers_gets_the_hosts_even_when_set_to_image(remotes):
    bare = remotes["bare-image"]
    assert bare.target.injected == HOST and bare.target.shadowed == {}
    origins = bare.call(serializer_origins, serializer="source")
    assert "/cloudpickle.zip/" in origins["cloudpickle"][1] and "/dill.zip/" in origins["dill"][1]


class Meter:
    """A class the capsule rebuilds on the worker (cloudpickle's skeleton and _class_setstate)."""

    def __init__(self, scale):
        self.scale = scale

    def read(self, raw):
        return raw * self.scale


def read_meter(scale, raw):
    return Meter(scale).read(raw)


def test_the_capsule_loads_with_the_hosts_private_copy_on_an_older_cloudpickle(remotes):
    """The capsule names cloudpickle 3.1's reconstructors; the worker's 2.2 is not what loads them."""
    for name in ("py3.11-worker", "worker-injected", "bare-image"):
        rt = remotes[name].roundtrip(read_meter, 3, 14, serializer="source")
        assert (rt.outcome, rt.result) == ("ok", 42), (name, rt.describe())
        back = remotes[name].call(Meter, 2, serializer="source")  # the class goes back as the host's
        assert type(back) is Meter and back.scale == 2


def make_scaler(factor):
    def scale(x):
        return x * factor

    return scale


def test_a_host_cloudpickle_payload_meets_the_workers_own_cloudpickle(remotes):
    """The question a framework with pinned workers has: pickled by the host's cloudpickle 3.1,
    loaded by the worker's 2.2. Measured: 2.2 lacks the reconstructor 3.1 names for a
    function's state, so the worker cannot load it, and the matrix says so, naming it."""
    worker = remotes["py3.11-worker"].roundtrip(make_scaler(3), 14, serializer="cloudpickle")
    assert worker.outcome == "load_error", worker.describe()
    assert "Can't get attribute '_function_setstate'" in worker.error["message"], worker.describe()
    assert worker.error["diagnosis"].startswith(f"payload written by cloudpickle {HOST['cloudpickle']} on the "
                                                "host, loaded by cloudpickle 2.2."), worker.describe()
    # The same payload where the host's cloudpickle is injected loads and runs.
    injected = remotes["worker-injected"].roundtrip(make_scaler(3), 14, serializer="cloudpickle")
    assert (injected.outcome, injected.result) == ("ok", 42), injected.describe()


def test_the_report_names_what_calls_import(pytester, docker_client):
    pytester.makepyfile(textwrap.dedent("""
        def test_versions(remote):
            assert remote.call(abs, -5) == 5
    """))
    result = pytester.runpytest_subprocess("--remote-targets=py3.11-worker", "--remote-strict", "-p",
                                           "no:cacheprovider", "--remote-report=report.json",
                                           f"--remote-matrix-file={WORKER_MATRIX}")
    result.assert_outcomes(passed=1)
    import json

    report = json.loads((pytester.path / "report.json").read_text())
    entry = next(t for t in report["targets"] if t["name"] == "py3.11-worker")
    assert entry["serializers"] == "image" and entry["injected"] == {} and entry["shadowed"] == {}
    assert entry["packages"]["cloudpickle"].startswith("2.2.")
