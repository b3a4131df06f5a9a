"""Seed 002: functions decorated at run time capture a thread-local and stop pickling.

``assert_serializable`` names the member to blame by the path you would type to reach it.
"""

import sys
from pathlib import Path

import pytest

from pytest_remote_serial import assert_roundtrip, assert_serializable

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
import gpu_decorators  # noqa: E402


def test_runtime_decorated_function_names_the_thread_local():
    registry = gpu_decorators.discover(gpu_decorators.LIBRARY)
    with pytest.raises(AssertionError) as info:
        assert_serializable(registry["fmean"])
    message = str(info.value)
    assert "func.__globals__['_thread_gpu_contexts'] (_thread._local): a thread-local" in message
    assert "cannot pickle '_thread._local' object" in message


def test_import_time_decoration_pickles_by_reference():
    assert_serializable(gpu_decorators.sobel)


def test_the_write_ups_fix_minimal_decoration_ships(remote):
    registry = gpu_decorators.discover(gpu_decorators.LIBRARY, decorate=gpu_decorators.minimal_decoration)
    assert_serializable(registry["median"])
    assert_roundtrip(registry["median"], [3, 1, 2])


def test_source_capsule_ships_the_runtime_wrapper_without_the_thread_local(remote):
    registry = gpu_decorators.discover(gpu_decorators.LIBRARY)
    assert_serializable(registry["fmean"], serializer="source")
    assert_roundtrip(registry["fmean"], [1.0, 2.0, 3.0], serializer="source")
