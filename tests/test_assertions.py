"""The assertion helpers downstream suites import (issue 4), on good and on bad input."""

from __future__ import annotations

import functools
import socket
import sys
import textwrap
import threading

import numpy as np
import pytest
from helpers import EXAMPLES

from pytest_remote_serial import (
    assert_portable,
    assert_roundtrip,
    assert_serializable,
    assert_source_recoverable,
)
from pytest_remote_serial.host.images import image_tag
from pytest_remote_serial.host.matrix import load_matrix

sys.path.insert(0, str(EXAMPLES / "scripts"))
sys.path.insert(0, str(EXAMPLES.parent / "tests" / "scripts"))
import curried  # noqa: E402
import encode_tools  # noqa: E402
import gpu_decorators  # noqa: E402


def make_adder(n):
    def add(x):
        return x + n

    return add


def explode(x):
    raise ValueError(f"bad value {x}")


# ------------------------------------------------------------------ assert_roundtrip


def test_roundtrip_passes_and_returns_the_record():
    rt = assert_roundtrip(make_adder(2), 40)
    assert (rt.outcome, rt.result, rt.target) == ("ok", 42, "local")


def test_roundtrip_failure_shows_outcome_phase_python_and_remote_traceback():
    with pytest.raises(AssertionError) as info:
        assert_roundtrip(explode, 3)
    message = str(info.value)
    assert "did not survive the trip to local (Python 3." in message
    assert "outcome 'call_error' in phase 'call'" in message
    assert "--- remote traceback ---" in message and "ValueError: bad value 3" in message


def test_roundtrip_dump_failure_names_the_serializer():
    with pytest.raises(AssertionError, match=r"outcome 'dump_error' in phase 'dump' \(serializer pickle\)"):
        assert_roundtrip(make_adder(1), 1, serializer="pickle")


def test_roundtrip_shows_the_rewritten_comparison(pytester):
    pytester.makepyfile("""
        from pytest_remote_serial import assert_roundtrip

        def test_wrong():
            assert_roundtrip(len, "abc", expected=4)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*returned a different value on local*", "*assert 3 == 4*"])


@pytest.mark.docker
def test_roundtrip_runs_on_the_tests_own_target_in_a_matrix_run(pytester, docker_client):
    pytester.makepyfile("""
        import sys
        from pytest_remote_serial import assert_roundtrip

        def version():
            return sys.version_info[:2]

        def test_here(remote):
            rt = assert_roundtrip(version, expected=(3, 9))
            assert rt.target == remote.target.name == "py3.9"

        def test_by_name():
            assert assert_roundtrip(version, target="py3.13", expected=(3, 13)).target == "py3.13"
    """)
    result = pytester.runpytest_subprocess("--remote-targets=py3.9", "--remote-strict", "-p", "no:cacheprovider",
                                           f"--remote-matrix-file={EXAMPLES.parent / 'matrix' / 'targets.toml'}")
    result.assert_outcomes(passed=2)


# ------------------------------------------------------------------ assert_serializable


def test_serializable_passes_on_good_input():
    assert_serializable(make_adder(3))
    assert_serializable(functools.partial(pow, 2))
    assert_serializable({"values": [1, 2, 3]}, serializer="pickle")


def test_seed_002_path_reads_as_the_issue_says():
    registry = gpu_decorators.discover(gpu_decorators.LIBRARY)
    with pytest.raises(AssertionError) as info:
        assert_serializable(registry["median"])
    assert "func.__globals__['_thread_gpu_contexts'] (_thread._local)" in str(info.value)


class Holder:
    def __init__(self):
        self.name = "fine"
        self.conn = socket.socket()


def test_every_offender_is_named_with_its_kind(tmp_path):
    lock = threading.Lock()
    log = open(tmp_path / "log.txt", "w")  # noqa: SIM115
    holder = Holder()
    gen = (i for i in range(3))

    def task(x):
        with lock:
            log.write(str(x))
        return x

    bundle = functools.partial(task, holder, key=gen)
    try:
        with pytest.raises(AssertionError) as info:
            assert_serializable({"job": bundle, "ok": [1, 2]})
    finally:
        log.close()
        holder.conn.close()
    message = str(info.value)
    for line in [
        "obj['job'].func.__closure__[0].cell_contents (_thread.lock): a lock",
        "obj['job'].func.__closure__[1].cell_contents (_io.TextIOWrapper): an open file",
        "obj['job'].args[0].conn (socket.socket): a socket",
        "obj['job'].keywords['key'] (generator): a generator",
    ]:
        assert line in message, message
    assert "obj['ok']" not in message and ".name" not in message
    assert "how to fix:" in message and "pass the path and open it there" in message


def test_the_walk_has_a_depth_bound():
    deep = {"lock": threading.Lock()}
    for _ in range(10):
        deep = {"next": deep}
    with pytest.raises(AssertionError, match=r"obj\['next'\]\['next'\] \(dict\)[\s\S]*stopped at depth 2"):
        assert_serializable(deep, max_depth=2)


# ------------------------------------------------------------------ assert_portable


def test_portable_passes_for_what_the_target_has():
    assert_portable(make_adder(1))
    assert_portable(np.sum)  # the local target has numpy


def test_portable_names_the_missing_script_module():
    with pytest.raises(AssertionError) as info:
        assert_portable(encode_tools.encode_query)
    message = str(info.value)
    assert "not portable to local" in message
    assert "encode_tools: encode_tools.encode_query" in message
    assert "serializer='cloudpickle-by-value'" in message
    assert_portable(encode_tools.encode_query, serializer="cloudpickle-by-value")


def test_pickle_globals_reads_stack_global_through_the_memo():
    import pickle

    from pytest_remote_serial.remote import diagnosis

    found, _ = diagnosis.pickle_globals(pickle.dumps([encode_tools.encode_query, encode_tools.encode_query,
                                                  np.int64(3)], protocol=5))
    assert ("encode_tools", "encode_query") in found
    assert any(module.startswith("numpy") for module, _ in found)
    found, _ = diagnosis.pickle_globals(pickle.dumps(encode_tools.encode_query, protocol=0))  # GLOBAL
    assert found == [("encode_tools", "encode_query")]


# ------------------------------------------------------------------ assert_source_recoverable


def tagged(func):
    @functools.wraps(func)
    def wrapper(*args):
        return ("tagged", func(*args))

    return wrapper


@tagged
def decorated(x):
    return x + 1


def test_source_recoverable_for_lambdas_decorated_and_cells():
    _first, second = (lambda x: x + 1), (lambda y: y * 2)
    assert assert_source_recoverable(second).strip().endswith("lambda y: y * 2")
    assert 'return ("tagged", func(*args))' in assert_source_recoverable(decorated)
    assert "def add(x)" in assert_source_recoverable(make_adder(1))


def test_source_not_recoverable_says_why():
    namespace: dict = {}
    exec("def made(x):\n    return x\n", namespace)
    with pytest.raises(AssertionError, match=r"made by exec\(\) or compile\(\) with no file[\s\S]*no source exists"):
        assert_source_recoverable(namespace["made"])
    with pytest.raises(AssertionError, match="builtin_function_or_method, not a Python function"):
        assert_source_recoverable(len)
    stdin: dict = {}
    exec(compile("def typed(x):\n    return x\n", "<stdin>", "single"), stdin)
    with pytest.raises(AssertionError, match="typed at the REPL and readline history no longer holds it"):
        assert_source_recoverable(stdin["typed"])


# ------------------------------------------------------------------ seed 004: a bare image


BARE = textwrap.dedent("""
    [targets.bare]
    debian = { suite = "bookworm", packages = ["python3"] }
""")


@pytest.mark.docker
def test_bare_image_without_cloudpickle_or_numpy_still_round_trips(pytester, docker_client):
    pytester.makefile(".toml", **{"matrix/targets": BARE})
    pytester.makepyfile(test_bare="""
        import numpy as np
        import pytest
        from pytest_remote_serial import assert_portable, assert_roundtrip

        def make_task(task_id):
            def task():
                import importlib.util
                return task_id, importlib.util.find_spec("cloudpickle").origin

            return task

        def test_closure_runs(remote):
            rt = assert_roundtrip(make_task("t-1"), expected=("t-1", remote.call(make_task("t-1"))[1]))
            assert rt.serializer == "cloudpickle" and "/opt/prs/" in rt.result[1]

        def test_numpy_is_not_there(remote):
            assert remote.missing_modules(["numpy", "json"]) == ["numpy"]
            with pytest.raises(AssertionError, match="numpy"):
                assert_portable(np.sum)
    """)
    result = pytester.runpytest_subprocess("--remote-targets=bare", "--remote-strict", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    # The image really is bare: its own Python finds neither serializer.
    tag = image_tag(load_matrix(pytester.path).targets["bare"])
    out = docker_client.containers.run(tag, ["python3", "-c", "import importlib.util as u; "
                                             "print(u.find_spec('cloudpickle'), u.find_spec('dill'))"],
                                       remove=True, network_disabled=True)
    assert out.decode().strip() == "None None"


class ByName:
    """A toolz.curry-style wrapper: holds ``func`` and pickles it by its dotted name."""

    def __init__(self, func):
        self.func = func

    def __call__(self, *args):
        return self.func(*args)

    def __reduce__(self):
        import pydoc

        return pydoc.locate, (f"{self.func.__module__}.{self.func.__qualname__}",)


def test_portable_looks_through_wrappers():
    from toolz import curry

    def decorated(*args):
        return encode_tools.encode_query(*args)

    decorated.__wrapped__ = encode_tools.encode_query
    for wrapped in (functools.partial(encode_tools.encode_query), curry(encode_tools.encode_query),
                    curried.scale(2), decorated, ByName(encode_tools.encode_query)):
        with pytest.raises(AssertionError) as info:
            assert_portable(wrapped)
        named = "curried: curried.scale" if wrapped is not None and "scale" in repr(wrapped) else \
            "encode_tools: encode_tools.encode_query"
        assert named in str(info.value), wrapped


def test_portable_fix_is_one_that_works_for_a_curry():
    with pytest.raises(AssertionError) as info:
        assert_portable(curried.scale(2))  # a function decorated with toolz.curry, partly applied
    message = str(info.value)
    # curry names a decorated function by a string whatever the serializer: by-value would not
    # help, so it is not offered; shipping the function itself (or installing the module) is.
    assert "curried: curried.scale (by name, as a string)" in message
    assert "serializer='cloudpickle-by-value'" not in message
    assert "names curried.scale by name whatever the serializer" in message
    assert "paths = [" in message
    # A partial holding a function by reference: by-value is offered, and does pass.
    with pytest.raises(AssertionError) as info:
        assert_portable(functools.partial(encode_tools.encode_query))
    assert "serializer='cloudpickle-by-value' (checked: its payload refers to none of them)" in str(info.value)
    assert_portable(functools.partial(encode_tools.encode_query), serializer="cloudpickle-by-value")


def test_serializable_hint_for_a_lambda_holding_a_lock_does_not_offer_source():
    lock = threading.Lock()
    with pytest.raises(AssertionError) as info:
        assert_serializable(lambda: lock)
    message = str(info.value)
    assert "(_thread.lock): a lock" in message
    assert "serializer='source' fails the same way" in message
    assert "ships the function as source" not in message
    # ... and where source does work, it is offered, checked.
    with pytest.raises(AssertionError) as info:
        assert_serializable(make_adder(1), serializer="pickle")
    assert "serializer='source' ships the function as source" in str(info.value)
    assert "(checked: it serializes)" in str(info.value)


def test_roundtrip_missing_module_failure_gives_a_fix_tried_on_the_target():
    with pytest.raises(AssertionError) as info:
        assert_roundtrip(encode_tools.encode_query, "Hello", serializer="cloudpickle")
    message = str(info.value)
    assert "outcome 'missing_module'" in message
    assert "how to fix:" in message
    assert "serializer='cloudpickle-by-value' works (tried on the target: ok)" in message
    assert "or make 'encode_tools' importable there: paths = [" in message
