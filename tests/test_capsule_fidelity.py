"""The capsule is never less faithful than the module imported natively (issue 25, item 1).

Each shape in ``capsule_probe`` once came back different (or failed) under ``source``: a nested
class's ``__qualname__``, a cell two functions share, a class's attribute order, ``Protocol`` and
``TypedDict`` classes, an instance of the module's own class pickled inside the call, globals the
bytecode does not name, pytest's marks, and module globals cloudpickle refuses (locks, a
``struct.Struct``, a ``ContextVar``, weak caches), which a worker importing the module makes
fresh. Every cell runs on every table target and must answer what the host computes.
"""

from __future__ import annotations

import capsule_probe as probe
import pytest
from capsule_pkg import records

from pytest_remote_serial.host.capsule import dumps_source

TARGETS = ["local", "py3.9", "py3.11", "py3.13", "py3.14", "py3.15", "pypy3.11"]

# What a fresh import of capsule_probe gives (computed once by a worker importing it natively).
BEYOND = (True, False, True, 6, "<iH", (5, 6), "request_id", "none", "LookupError", 1, 1, 1, 2)

# name -> (function, args, the answer: None for "what the host computes")
SHAPES = {
    "nested class __qualname__": (probe.nested_qualname, (), None),
    "cell shared by two closures": (probe.shared_cell, (), 2),
    "class attributes in definition order": (probe.class_dict_order, (), None),
    "Protocol, runtime_checkable": (probe.protocol_ops, (), None),
    "TypedDict and a total=False subclass": (probe.typeddict_ops, (), None),
    "pickle of the module's own instance": (probe.pickles_own_instance, (), None),
    "the same, from a package no target has": (records.pickles_own_instance, (), None),
    # by value, as cloudpickle did there before the module was registered (the host has it installed)
    "cloudpickle of the module's own instance": (probe.cloudpickles_own_instance, (), (True, 4)),
    "closure whose cell holds itself": (probe.recursive_closure, (6,), None),
    "globals()[name]": (probe.by_globals, (), None),
    "globals()[name] of a lock": (probe.by_globals_lock, (), (True, True)),
    "globals()[name] of a renamed module": (probe.by_globals_renamed_module, (), True),
    "eval of module names": (probe.by_eval, (), None),
    "sys.modules[__name__]": (probe.by_sys_modules, (), None),
    "string annotations, get_type_hints": (probe.by_type_hints, (), None),
    "pytest mark on the function": (probe.marked, (4,), None),
    "pytest mark on a class": (probe.uses_marked_class, (5,), None),
    "locks, Struct, ContextVar, weak caches": (probe.beyond_cloudpickle, (), BEYOND),
}


@pytest.mark.docker
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_fidelity(table_remotes, shape, target):
    func, args, answer = SHAPES[shape]
    rt = table_remotes[target].roundtrip(func, *args, serializer="source")
    want = func(*args) if answer is None else answer
    assert rt.outcome == "ok", rt.describe()
    assert rt.result == want, "the target answered differently from the host"


def test_pytest_objects_never_travel():
    """Marks are the host's metadata: a payload names nothing of pytest."""
    data = dumps_source((probe.marked, probe.MarkedClass))
    assert b"_pytest" not in data and b"pytestmark" not in data
    assert "pytestmark" in vars(probe.marked) and "pytestmark" in vars(probe.MarkedClass)  # still here


def test_beyond_cloudpickle_is_fresh_not_copied(table_remotes):
    """A locked lock and a set event arrive as a worker importing the module makes them, and
    a condition still holds the module's one lock."""
    probe.LOCK.acquire()
    probe.EVENT.set()
    try:
        rt = table_remotes["py3.13"].roundtrip(probe.fresh_state, serializer="source")
    finally:
        probe.LOCK.release()
        probe.EVENT.clear()
    assert (rt.outcome, rt.result) == ("ok", (False, False, True)), rt.describe()


def _probe_module_here():
    import sys

    return "capsule_probe" in sys.modules


@pytest.mark.remote(isolate=False)
def test_the_module_is_registered_only_while_its_call_runs(remote):
    """In the agent's own process (state persists between calls), the shipped module leaves
    ``sys.modules`` when its call ends."""
    assert remote.call(probe.by_sys_modules, serializer="source") == 42
    assert remote.call(_probe_module_here, serializer="source") is False
    remote.call(probe.by_sys_modules, serializer="source")
    assert remote.call(_probe_module_here, serializer="cloudpickle-by-value") is False  # not another payload's


def test_a_dump_error_names_what_really_cannot_travel(table_remotes):
    rt = table_remotes["local"].roundtrip(probe.lock_and_generator, serializer="source")
    assert rt.outcome == "dump_error", rt.describe()
    assert "func.__globals__['PENDING'] (generator)" in rt.error["message"], rt.error["message"]


def test_assert_serializable_with_source_names_the_same_member():
    from pytest_remote_serial import assert_serializable

    with pytest.raises(AssertionError) as info:
        assert_serializable(probe.lock_and_generator, serializer="source")
    assert "func.__globals__['PENDING'] (generator)" in str(info.value)
    assert "'LOCK'" not in str(info.value)
