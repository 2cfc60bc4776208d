"""NumPy twin of ``kernels/activations.cuh``: the activations and their derivatives.

Every function works on NumPy or CuPy arrays (``xp``) in their own dtype, in place where an
``out`` is given. The formulas are the header's, operation for operation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["StackedActivations", "sigmoid"]


def sigmoid(x: Any, xp: Any, out: Any = None) -> Any:
    """Logistic function: mirrors ``sigmoid`` in ``kernels/activations.cuh``.

    ``0.5 * tanh(0.5 * x) + 0.5``: ``tanh`` saturates instead of overflowing, so inputs of any
    finite size (``+-1e4`` and beyond) give 0 or 1 without a warning; the scalings are exact.

    Parameters
    ----------
    x : ndarray
    xp : module
        ``numpy`` or ``cupy``.
    out : ndarray, optional
        Where to write the result (may be ``x`` itself).
    """
    half = x.dtype.type(0.5)
    out = xp.multiply(x, half, out=out)
    xp.tanh(out, out=out)
    out *= half
    out += half
    return out


class StackedActivations:
    """A sigmoid or a tanh per gate of a stacked ``(m, G*H)`` block, in one ``tanh`` pass.

    Mirrors ``sigmoid``, ``tanh_of``, ``sigmoid_grad_from_output`` and ``tanh_grad_from_output``
    of ``kernels/activations.cuh``: a sigmoid gate is ``0.5 * tanh(0.5 * x) + 0.5`` and a tanh
    gate ``1 * tanh(1 * x) + 0`` (the same value), so one scale and one shift per column cover
    both; both derivatives are ``(1 - y) * (y + k)`` with ``k = 0`` (sigmoid) or ``1`` (tanh).

    Parameters
    ----------
    xp : module
    dtype : dtype
    kinds : str
        One letter per gate in stacking order: ``"s"`` sigmoid, ``"t"`` tanh (LSTM: ``"ssts"``).
    hidden_size : int
        ``H``: the width of each gate.
    """

    def __init__(self, xp: Any, dtype: Any, kinds: str, hidden_size: int) -> None:
        if set(kinds) - {"s", "t"}:
            raise ValueError(f"kinds must use 's' (sigmoid) and 't' (tanh), got {kinds!r}")
        is_tanh = np.repeat(np.array([kind == "t" for kind in kinds]), hidden_size)
        self.xp = xp
        self.scale = xp.asarray(np.where(is_tanh, 1.0, 0.5).astype(dtype))
        self.shift = xp.asarray(np.where(is_tanh, 0.0, 0.5).astype(dtype))
        self.derivative_shift = xp.asarray(is_tanh.astype(dtype))

    def activate(self, block: Any) -> None:
        """``block`` ``(m, G*H)`` of pre-activations becomes the activated gates, in place."""
        block *= self.scale
        self.xp.tanh(block, out=block)
        block *= self.scale
        block += self.shift

    def grad_from_output(self, block: Any, work: Any) -> None:
        """``block`` of activated gates becomes ``(1 - y) * (y + k)``, in place.

        ``work`` is a scratch array of the same shape.
        """
        self.xp.subtract(1, block, out=work)
        block += self.derivative_shift
        block *= work
