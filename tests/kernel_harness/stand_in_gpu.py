"""pytest plugin: run the ``gpu`` tests on the host stand-in for CuPy.

A check of the CuPy code paths and of the GPU test code on machines without a GPU: every
``cupy.ElementwiseKernel`` is rendered verbatim to host C++ and compiled with ``g++``, so the
fused cells run the real kernel bodies of ``kernels/*.cuh`` (it proves nothing about CUDA
itself)::

    PYTHONPATH=tests python -m pytest -p kernel_harness.stand_in_gpu -m gpu tests

It puts :func:`kernel_harness.stand_in.fake_cupy` in ``sys.modules["cupy"]``; nothing in xplstm
is patched (its arrays are ``cupy.ndarray`` to the backend dispatch).
"""

from __future__ import annotations

import sys

from .host import host_compiler
from .stand_in import fake_cupy


def pytest_configure(config) -> None:
    if host_compiler() is None:
        raise RuntimeError("the stand-in GPU needs a C++ compiler (g++) on PATH")
    sys.modules["cupy"] = fake_cupy()
