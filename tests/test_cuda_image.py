"""The cuda-py3.11 image, where it has been built (`./dev images cuda-py3.11`): CuPy, numpy 2
and NVRTC are installed, and CuPy's kernel headers compile, offline and without a GPU."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_remote_serial.host.images import ImageBuilder
from pytest_remote_serial.host.matrix import load_matrix

ROOT = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent("""
    import os
    import cupy, numpy
    import nvidia.cuda_runtime
    from cupy.cuda import compiler
    from cupy_backends.cuda.libs import nvrtc

    base = os.path.join(os.path.dirname(cupy.__file__), "_core", "include")
    cccl = os.path.join(base, "cupy", "_cccl")
    includes = [base, cccl + "/libcudacxx", cccl + "/thrust", cccl + "/cub",
                list(nvidia.cuda_runtime.__path__)[0] + "/include"]
    source = ('#include <cupy/complex.cuh>\\n#include <cupy/carray.cuh>\\n'
              'extern "C" __global__ void twice(float* x) { x[threadIdx.x] *= 2.0f; }')
    ptx, _ = compiler._NVRTCProgram(source, "twice.cu").compile(
        ("-arch=compute_80", "-std=c++17") + tuple("-I" + i for i in includes))
    print("CUPY", cupy.__version__, "NUMPY", numpy.__version__, "NVRTC", "%d.%d" % nvrtc.getVersion(),
          "PTX", len(ptx), ".entry twice" in (ptx.decode() if isinstance(ptx, bytes) else ptx))
""")


@pytest.fixture(scope="module")
def cuda_image(docker_client) -> str:
    target = load_matrix(ROOT).targets["cuda-py3.11"]
    found = ImageBuilder(docker_client, print).find(target)
    if found is None:
        pytest.skip("the cuda-py3.11 image is built only on request: `./dev images cuda-py3.11`")
    return found


def test_cuda_image_has_cupy_numpy2_and_nvrtc_and_compiles_offline(docker_client, cuda_image):
    out = docker_client.containers.run(cuda_image, ["python3", "-c", PROBE], network_mode="none",
                                       remove=True, user="65534:65534", environment={"HOME": "/tmp"})
    words = out.decode().split()
    found = dict(zip(words[0:8:2], words[1:8:2], strict=True))
    assert int(found["CUPY"].split(".")[0]) >= 13
    assert int(found["NUMPY"].split(".")[0]) >= 2  # CuPy 14 needs numpy 2; bookworm's is 1.24
    assert found["NVRTC"].startswith("12.")
    assert int(found["PTX"]) > 0 and words[-1] == "True"
