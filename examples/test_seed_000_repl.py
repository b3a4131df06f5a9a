"""Seed 000: functions typed at a REPL or made by exec, shipped to a worker of another Python.

Binary pickles do not cross minor versions, so the worker needs source; a REPL cell's source
lives only in linecache (IPython, the 3.13 REPL) or readline history (the classic REPL).
"""

import linecache

import pytest

from pytest_remote_serial import assert_roundtrip, assert_source_recoverable


def define_in_a_cell(source, name, cell="<python-input-3>"):
    """What IPython and Python 3.13's REPL do with a cell: compile it, keep it in linecache."""
    linecache.cache[cell] = (len(source), None, source.splitlines(True), cell)
    namespace = {"__name__": "__main__"}
    exec(compile(source, cell, "exec"), namespace)
    return namespace[name]


CELL = '''
import math

def my_function(x):
    return math.floor(x * 2.5)
'''


def test_a_repl_cell_ships_as_source_to_every_target(remote):
    my_function = define_in_a_cell(CELL, "my_function")
    assert "return math.floor(x * 2.5)" in assert_source_recoverable(my_function)
    assert_roundtrip(my_function, 3, serializer="source")
    assert_roundtrip(my_function, 3)  # auto: by value where the Python matches, source elsewhere


def test_exec_without_a_file_says_there_is_no_source():
    namespace = {}
    exec("def made_by_exec(x):\n    return x\n", namespace)
    with pytest.raises(AssertionError, match=r"made by exec\(\) or compile\(\) with no file"):
        assert_source_recoverable(namespace["made_by_exec"])


def test_a_c_function_has_no_source():
    with pytest.raises(AssertionError, match="a C function has no source"):
        assert_source_recoverable(len)
