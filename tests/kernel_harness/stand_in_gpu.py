"""pytest plugin: run the ``gpu`` tests on the host stand-in for CuPy.

A smoke test of the CuPy code paths and the GPU test code on machines without a GPU (the fused
kernels run as a host build of ``kernels/*.cuh``; it proves nothing about CUDA)::

    PYTHONPATH=tests python -m pytest -p kernel_harness.stand_in_gpu -m gpu tests

It puts :func:`kernel_harness.host.fake_cupy` in ``sys.modules["cupy"]`` and teaches xplstm's
backend dispatch to tell its arrays (a NumPy subclass) from NumPy's.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from .host import HostKernels, build_host_library, fake_cupy, host_compiler


def pytest_configure(config) -> None:
    compiler = host_compiler()
    if compiler is None:
        raise RuntimeError("the stand-in GPU needs a C++ compiler on PATH")
    kernels = Path(__file__).resolve().parents[2] / "kernels"
    library = build_host_library(compiler, kernels, Path(tempfile.mkdtemp(prefix="xplstm-")))
    cupy = fake_cupy(HostKernels(library))
    sys.modules["cupy"] = cupy

    def is_cupy_array(obj) -> bool:
        return isinstance(obj, cupy.ndarray)

    def get_array_module(*arrays, names=None):
        return cupy if any(is_cupy_array(a) for a in arrays) else np

    import xplstm  # noqa: F401  (load every module that binds these names)

    for name, module in list(sys.modules.items()):
        if name == "xplstm" or name.startswith("xplstm."):
            if hasattr(module, "get_array_module"):
                module.get_array_module = get_array_module
            if hasattr(module, "is_cupy_array"):
                module.is_cupy_array = is_cupy_array
