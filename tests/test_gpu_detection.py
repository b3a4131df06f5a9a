"""Where no GPU can run: GPU targets are unavailable with the reason, never built, and an
error under --remote-strict; gpu=True tests skip on CPU targets saying why."""

from __future__ import annotations

import pytest

from pytest_remote_serial.host.backends.containers import gpu_problem

GPU_TEST = """
import pytest

@pytest.mark.remote(gpu=True)
def test_on_gpu(remote):
    assert remote.target.gpu
    remote.call(abs, -1)

def test_any(remote):
    remote.call(abs, -1)
"""


@pytest.fixture
def no_gpu_here(docker_client) -> str:
    problem = gpu_problem(docker_client)
    if problem is None:
        pytest.skip("this machine has a GPU and the nvidia runtime")
    return problem


def test_gpu_target_is_unavailable_naming_what_is_missing(pytester, no_gpu_here):
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest_subprocess("--remote-targets=cuda-py3.11", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines([f"*target 'cuda-py3.11' needs a GPU: {no_gpu_here}*"])
    assert "debootstrap" not in result.stdout.str()  # the large image is not built for nothing


def test_gpu_target_in_the_whole_matrix_is_unavailable_too(pytester, no_gpu_here):
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest_subprocess("--remote-matrix", "-rs", "-p", "no:cacheprovider",
                                           "-k", "cuda")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*cuda-py3.11*unavailable*"])


def test_unavailable_gpu_target_is_an_error_under_strict(pytester, no_gpu_here):
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest_subprocess("--remote-targets=cuda-py3.11", "--remote-strict",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*needs a GPU*(--remote-strict)*"])


def test_gpu_marker_skips_cpu_targets_saying_why(pytester, docker_client):
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest_subprocess("--remote-targets=local,py3.11", "-rs", "-p", "no:cacheprovider")
    from pytest_remote_serial.plugin import local_gpu_problem

    if local_gpu_problem() is None:
        result.assert_outcomes(passed=3, skipped=1)
    else:
        result.assert_outcomes(passed=2, skipped=2)
        result.stdout.fnmatch_lines([f"*needs a GPU; target local has none: {local_gpu_problem()}*"])
    result.stdout.fnmatch_lines(["*needs a GPU; target py3.11 has none (gpu = false in the matrix)*"])
