"""A framework tested through its own serializer: joblib, from PyPI.

joblib's process executor (loky) ships each call with its own pickler (cloudpickle-based,
``joblib.externals.loky.backend.reduction.dumps``) and its workers load it with the standard
unpickler that the same module exports as ``loads``. A suite declares that path once and uses
it like any serializer. A worker of the framework has it installed: this project's matrix
(matrix/targets.toml) installs joblib from PyPI into each image through ``wheels``, offline.

What the matrix shows is joblib's real behaviour across Pythons: what it ships by reference
(a library function) runs on every minor; what it ships by value (a closure, a lambda) carries
bytecode, which only the host's minor can run, and is refused elsewhere before joblib's loader
ever sees it. A target without joblib (the interpreter targets, or the bundled default images)
says so: ``missing_module`` naming joblib.
"""

import math

import pytest
from joblib.externals.loky.backend import reduction

import pytest_remote_serial as prs

JOBLIB = prs.Serializer("joblib", dumps=reduction.dumps, loads="joblib.externals.loky.backend.reduction:loads")

# Another minor than the host's 3.11: bytecode does not port (refused, naming both Pythons).
OTHER_MINORS = {name: "load_error" for name in ("py3.9", "py3.10", "py3.12", "py3.13", "py3.14")}


@pytest.fixture
def worker(remote):
    """The target as a joblib worker: one without joblib is not one (the last test shows how it fails)."""
    if remote.missing_modules(["joblib"]):
        pytest.skip(f"joblib is not installed on {remote.target.name}: a worker of the framework has it "
                    "(add it to the target's wheels, as matrix/targets.toml does)")
    return remote


def make_scaler(factor):
    def scale(x):
        return x * factor

    return scale


@pytest.mark.remote(serializer=JOBLIB)
def test_a_library_function_runs_on_every_worker(worker):
    """By reference: only names travel, and every minor loads them."""
    assert worker.call(math.fsum, [0.1] * 10) == math.fsum([0.1] * 10)


@pytest.mark.remote(serializer=JOBLIB, expect=OTHER_MINORS)
def test_a_closure_runs_only_on_the_hosts_minor(worker):
    """By value: joblib ships the closure's code object, bound to Python 3.11."""
    assert worker.call(make_scaler(3), 14) == 42


@pytest.mark.remote(serializer="joblib", expect=OTHER_MINORS)
def test_a_lambda_by_name(worker):
    """The serializer by its name, as a marker elsewhere in the suite would give it."""
    assert worker.call(lambda x: x * x, 12) == 144


def test_the_record_names_joblib_and_its_version(remote):
    import joblib

    rt = remote.roundtrip(math.fsum, [1.0, 2.0], serializer=JOBLIB)
    assert (rt.serializer, rt.serializer_version) == ("joblib", joblib.__version__)
    if remote.missing_modules(["joblib"]):
        assert (rt.outcome, rt.module) == ("missing_module", "joblib"), rt.describe()
    else:
        assert (rt.outcome, rt.result) == ("ok", 3.0), rt.describe()
