"""NumPy twin of ``kernels/zoneout.cuh``: zoneout's blend of a state with its previous value.

Zoneout (Krueger et al. 2016) follows a cell's step on whole ``(m, H)`` blocks (packed batches:
a prefix of the rows). On CuPy arrays the same code is the *unfused* path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ZoneoutTwin"]


class ZoneoutTwin:
    """Zoneout on one ``(m, H)`` state, with its scratch allocated once.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.
    dtype : dtype
    batch_size, hidden_size : int
        ``m`` and ``H``: every array is ``(m, H)`` (or its first rows).
    """

    implementation = "numpy twin"

    def __init__(self, xp: Any, dtype: Any, batch_size: int, hidden_size: int) -> None:
        self.xp = xp
        self.dtype = np.dtype(dtype)
        if xp is not np:
            self.implementation = "unfused cupy"
        self.scratch = xp.empty((batch_size, hidden_size), dtype=self.dtype)
        self.release = xp.empty((batch_size, hidden_size), dtype=self.dtype)

    def forward(self, keep: Any, previous: Any, value: Any) -> None:
        """``value = keep * previous + (1 - keep) * value`` in place
        (``zoneout_forward_element``).

        Parameters
        ----------
        keep : ndarray, (m, H)
            1 where an element keeps its previous value, 0 where it takes the candidate; in
            evaluation the zoneout probability.
        previous : ndarray, (m, H)
        value : ndarray, (m, H)
            In: the candidate state. Out: the blended state.
        """
        xp, rows = self.xp, value.shape[0]
        scratch, release = self.scratch[:rows], self.release[:rows]
        # value[index] = k * previous[index] + (T(1) - k) * value[index]
        xp.subtract(1, keep, out=release)
        value *= release
        xp.multiply(keep, previous, out=scratch)
        value += scratch

    def backward(self, keep: Any, gradient: Any, carried: Any) -> None:
        """Split the gradient at the blended state (``zoneout_backward_element``).

        Parameters
        ----------
        keep : ndarray, (m, H)
        gradient : ndarray, (m, H)
            In: the gradient reaching the blended state. Out: the part reaching the candidate,
            ``(1 - keep) * gradient``.
        carried : ndarray, (m, H)
            Written: the part reaching the previous state, ``keep * gradient``.
        """
        xp, rows = self.xp, gradient.shape[0]
        release = self.release[:rows]
        # carried[index] = k * total; gradient[index] = (T(1) - k) * total
        xp.multiply(keep, gradient, out=carried)
        xp.subtract(1, keep, out=release)
        gradient *= release
