"""Reversing each sequence of a padded batch within its own length (the reverse direction).

Without lengths this is ``array[::-1]``. With lengths, step ``t`` of sequence ``b`` comes from
step ``L_b - 1 - t`` while ``t < L_b`` and stays in place after, so the padding stays at the
end. The map is its own inverse: the same object reverses a layer's inputs and un-reverses its
outputs and gradients, each with one gather.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["Reversal"]


class Reversal:
    """Reverse each sequence of a time-major ``(T, m, F)`` array within its length.

    Parameters
    ----------
    lengths : numpy.ndarray of int, (m,), or None
        Checked lengths (:func:`xplstm.validation.check_lengths`); ``None`` when every sequence
        has ``T`` steps.
    steps : int
        ``T``.
    batch : int
        ``m``.
    xp : module
        ``numpy`` or ``cupy``: where the gather indices live.

    Notes
    -----
    Calling the object on a ``(T, m, F)`` array returns a fresh C-contiguous ``(T, m, F)``
    array.
    """

    def __init__(self, lengths: np.ndarray | None, steps: int, batch: int, xp: ModuleType):
        self.time_index = None
        if lengths is not None:
            step = np.arange(steps)[:, None]
            source = np.where(step < lengths[None, :], lengths[None, :] - 1 - step, step)
            self.time_index = xp.asarray(source)
            self.batch_index = xp.arange(batch)[None, :]

    def __call__(self, array: Any) -> Any:
        if self.time_index is None:
            return array[::-1].copy()
        return array[self.time_index, self.batch_index]
