"""Seed 004: a worker image with no cloudpickle and no framework installed.

The agent is one stdlib-only module and brings the host's own cloudpickle and dill with it,
so nothing is installed in the image and nothing needs the network.
"""

from pytest_remote_serial import assert_roundtrip


def where_cloudpickle_comes_from():
    import importlib.util

    return importlib.util.find_spec("cloudpickle").origin


def make_task(task_id):
    def task():
        return {"task": task_id, "done": True}

    return task


def test_a_closure_runs_where_nothing_is_installed(remote):
    assert_roundtrip(make_task("t-1"))


def test_cloudpickle_is_the_one_the_target_reports(remote):
    origin = remote.call(where_cloudpickle_comes_from)
    if remote.target.name == "local":
        return
    if "cloudpickle" in remote.target.injected:
        # From the injected bundle's zip (/opt/prs/ in a container, the host's cache folder for an
        # interpreter target), not from the image's or that interpreter's site-packages.
        assert "/cloudpickle.zip/" in origin, origin
    else:
        # A worker that keeps its own (serializers = "image", and the image has one): that one.
        assert remote.target.serializers == "image" and "/cloudpickle.zip/" not in origin, origin
