"""Public activations that never overflow or warn, in the dtype of their input.

``sigmoid`` is the NumPy twin's (``xplstm.cells.activations``, mirroring
``kernels/activations.cuh``); ``softmax`` is the output layer's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import get_array_module
from .cells.activations import sigmoid as _sigmoid

__all__ = ["sigmoid", "silent_non_finite", "softmax"]


def silent_non_finite() -> Any:
    """NumPy's floating-point warnings off: inf and NaN in the data propagate as in torch."""
    return np.errstate(invalid="ignore", over="ignore", divide="ignore")


def _check_floating(name: str, array: Any) -> Any:
    dtype = getattr(array, "dtype", None)
    if dtype is None or dtype.kind != "f":
        described = f"dtype {dtype}" if dtype is not None else type(array).__name__
        raise TypeError(f"{name} must be a floating-point NumPy or CuPy array, got {described}")
    return array


def sigmoid(x: Any, xp: Any = None, out: Any = None) -> Any:
    """Logistic function ``0.5 * tanh(0.5 * x) + 0.5`` in ``x``'s dtype, never overflowing.

    Parameters
    ----------
    x : ndarray
        Floating point, NumPy or CuPy.
    xp : module, optional
        ``numpy`` or ``cupy``; found from ``x`` when ``None``.
    out : ndarray, optional
        Where to write the result (may be ``x`` itself).
    """
    _check_floating("x", x)
    return _sigmoid(x, get_array_module(x) if xp is None else xp, out=out)


def softmax(z: Any, xp: Any = None, axis: int = 0) -> Any:
    """Softmax along ``axis`` (the class axis; 0 in the course layout ``(n_y, m)``).

    The per-column maximum is subtracted first, so no ``exp`` overflows; a column holding inf
    or NaN comes out NaN, without a warning. ``xp`` is found from ``z`` when ``None``.
    """
    _check_floating("z", z)
    xp = get_array_module(z) if xp is None else xp
    with silent_non_finite():
        shifted = z - z.max(axis=axis, keepdims=True)
        xp.exp(shifted, out=shifted)
        shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted
