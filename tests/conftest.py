"""One parametrization of backend x dtype for every test that takes the ``backend`` fixture.

GPU cases carry the ``gpu`` marker and skip at run time when CuPy or a CUDA device is missing,
so collection never fails on a machine without them.
"""

from __future__ import annotations

import numpy as np
import pytest


def cupy_or_skip():
    """Import CuPy and check for a device, or skip the calling test."""
    from xplstm.devices import gpu_unavailable_reason

    cupy = pytest.importorskip("cupy")
    reason = gpu_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
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


ULPS = 64
"""The default multiple of ``eps`` in :func:`assert_close`. A pointwise result is within a few eps
of the exact one; a chain of GEMMs over the short sequences in these tests (tens of terms per
dot product, a few steps and layers) stays well inside 64 eps of the scale below."""


def assert_close(actual, expected, dtype, scale=None, name="", *, ulps=ULPS):
    """Assert ``|actual - expected| <= ulps * eps(dtype) * (|expected| + scale)`` elementwise.

    ``actual`` (a NumPy or CuPy array, or a scalar) must be finite, in ``dtype`` and of
    ``expected``'s shape; ``expected`` is a float64 reference. ``scale`` is the magnitude rounding
    errors are relative to where ``expected`` is near zero: a sum that cancels keeps the error
    of its terms. By default it is ``max(1, max |expected|)``: the tests draw inputs and weights
    of order one, so the terms are at least of order one, and a larger result is its own scale.
    Pass ``scale=0`` for a purely relative bound. Positional use ``(actual, expected, dtype,
    scale, name)`` is the same as the kernel tests' helper.
    """
    actual = np.asarray(to_numpy(actual))
    expected = np.asarray(to_numpy(expected), dtype=np.float64)
    dtype = np.dtype(dtype)
    assert actual.dtype == dtype, f"{name} came back as {actual.dtype}, not {dtype}"
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert np.all(np.isfinite(actual)), f"{name} has NaN or inf"
    if scale is None:
        scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    bound = ulps * np.finfo(dtype).eps * (np.abs(expected) + scale)
    error = np.abs(actual.astype(np.float64) - expected)
    excess = np.divide(error, bound, out=np.where(error > 0, np.inf, 0.0), where=bound > 0)
    assert np.all(excess <= 1), (
        f"{name}: error {float(error.max(initial=0.0)):.3g} is {float(excess.max()):.3g}x "
        f"the bound {ulps} eps(|expected| + {scale:.3g})"
    )


def central_difference(loss, array, index, step=1e-6):
    """``d loss() / d array.flat[index]`` by central differences, perturbing the live ``array``
    (C-contiguous, NumPy or CuPy) and restoring it. In float64 with the default step the
    truncation error is ~ step**2 and the rounding error ~ eps / step, both near 1e-10."""
    flat = array.reshape(-1)  # a view: the perturbation reaches whatever reads ``array``
    original = float(flat[index])
    flat[index] = original + step
    plus = loss()
    flat[index] = original - step
    minus = loss()
    flat[index] = original
    return (plus - minus) / (2 * step)


def numerical_gradient(loss, array, step=1e-6):
    """``d loss() / d array`` for every entry of ``array`` (a NumPy array of its shape)."""
    entries = [central_difference(loss, array, index, step) for index in range(array.size)]
    return np.array(entries).reshape(array.shape)
