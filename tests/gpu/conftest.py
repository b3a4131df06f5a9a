"""The GPU group: every test here needs a CUDA device where its functions run.

On the ``local`` target (the default) that means CuPy on the host with a device; on a GPU
image (``--remote-targets=cuda-py3.11``) the nvidia runtime and a GPU. Elsewhere each test
skips with the reason, from the ``remote`` fixture or from ``gpu_host`` below.
"""

from __future__ import annotations

import pytest

from pytest_remote_serial.plugin import local_gpu_problem


@pytest.fixture
def gpu_host() -> None:
    """For tests that drive their own pytest run: the host itself must hold CuPy arrays."""
    problem = local_gpu_problem()
    if problem:
        pytest.skip(f"needs a GPU on the host: {problem}")


@pytest.fixture
def cupy(remote):
    """CuPy on the host, for arguments made here (the ``remote`` fixture skips first when the
    target has no GPU)."""
    return pytest.importorskip("cupy", reason="arguments made on the host need CuPy on the host")
