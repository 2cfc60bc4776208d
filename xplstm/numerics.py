"""Public activations that never overflow or warn, in the dtype of their input.

``sigmoid`` is the NumPy twin's (``xplstm.cells.activations``, mirroring
``kernels/activations.cuh``); ``softmax`` is the output layer's.
"""

from __future__ import annotations

from typing import Any

from .cells.activations import sigmoid

__all__ = ["sigmoid", "softmax"]


def softmax(z: Any, xp: Any, axis: int = 0) -> Any:
    """Softmax along ``axis`` (the class axis; 0 in the course layout ``(n_y, m)``).

    The per-column maximum is subtracted first, so no ``exp`` overflows.
    """
    shifted = z - z.max(axis=axis, keepdims=True)
    xp.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted
