"""One parametrization of backend x dtype for every test that takes the ``backend`` fixture.

GPU cases carry the ``gpu`` marker and skip at run time when CuPy or a CUDA device is missing,
so collection never fails on a machine without them.
"""

from __future__ import annotations

import numpy as np
import pytest


def cupy_or_skip():
    """Import CuPy and check for a device, or skip the calling test."""
    cupy = pytest.importorskip("cupy")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no driver, no runtime
        pytest.skip(f"CuPy is installed but CUDA is not usable: {error}")
    if count == 0:
        pytest.skip("CuPy is installed but there is no CUDA device")
    return cupy


@pytest.fixture(
    params=[
        pytest.param("numpy", id="numpy"),
        pytest.param("cupy", id="cupy", marks=pytest.mark.gpu),
    ]
)
def xp(request):
    """The array module under test: ``numpy``, or ``cupy`` where a GPU exists."""
    if request.param == "cupy":
        return cupy_or_skip()
    return np


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def dtype(request):
    return np.dtype(request.param)


def to_numpy(array):
    """Bring an array of either backend to NumPy."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else array


def tolerance(dtype) -> float:
    """Relative tolerance for comparing a result in ``dtype`` with a float64 reference."""
    return 1e-12 if np.dtype(dtype) == np.float64 else 2e3 * float(np.finfo(np.float32).eps)
