"""Seed 001: a function from a script module pickles by reference, and the worker has no
such module. ``assert_portable`` names the module before a worker ever sees the payload."""

import importlib.util
import sys
from pathlib import Path

import pytest

from pytest_remote_serial import assert_portable, assert_roundtrip

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
import encode_tools  # noqa: E402

HOST_MAGIC = int.from_bytes(importlib.util.MAGIC_NUMBER[:2], "little")  # this Python's bytecode


def test_the_script_module_is_named_as_missing(remote):
    with pytest.raises(AssertionError) as info:
        assert_portable(encode_tools.encode_query)
    message = str(info.value)
    assert "encode_tools: encode_tools.encode_query" in message
    assert "serializer='cloudpickle-by-value'" in message


def test_by_value_is_portable_where_its_bytecode_runs(remote):
    """By value carries the function's code objects: portable where the target's Python runs the
    host's bytecode; elsewhere assert_portable says so and names source, which round trips."""
    if remote.target.magic == HOST_MAGIC:
        assert_portable(encode_tools.encode_query, serializer="cloudpickle-by-value")
    else:
        with pytest.raises(AssertionError, match="payload holds code objects") as info:
            assert_portable(encode_tools.encode_query, serializer="cloudpickle-by-value")
        assert "serializer='source' (checked" in str(info.value)
    assert_roundtrip(encode_tools.encode_query, "Hello", serializer="source")
    assert_roundtrip(encode_tools.encode_query, "Hello")  # auto finds by-value or source itself


def test_nodes_defined_inside_functions_ship(remote):
    def create_pipeline():
        class Multiplier:
            def __init__(self, factor):
                self.factor = factor

            def multiply(self, x):
                return x * self.factor

        def apply(x, multiplier):
            return multiplier.multiply(x)

        return apply, Multiplier(4)

    apply, multiplier = create_pipeline()
    assert_roundtrip(apply, 5, multiplier, expected=20)
