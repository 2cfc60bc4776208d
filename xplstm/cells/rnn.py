"""NumPy twin of ``kernels/rnn.cuh``: the pointwise tanh-RNN step on whole ``(m, H)`` blocks.

On CuPy arrays the same code is the *unfused* path (separate CuPy ufunc launches).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["RNNTwin"]


class RNNTwin:
    """The pointwise tanh-RNN step for one ``(m, H)`` shape, with its scratch allocated once.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.
    dtype : dtype
    batch_size, hidden_size : int
        ``m`` and ``H``: every per-step array is ``(m, H)``.
    """

    implementation = "numpy twin"

    def __init__(self, xp: Any, dtype: Any, batch_size: int, hidden_size: int) -> None:
        self.xp = xp
        self.dtype = np.dtype(dtype)
        if xp is not np:
            self.implementation = "unfused cupy"
        self.scratch = xp.empty((batch_size, hidden_size), dtype=self.dtype)

    def forward(self, h_next: Any, recurrent: Any) -> None:
        """One forward step, in place (``rnn_forward_element``).

        Parameters
        ----------
        h_next : ndarray, (m, H)
            In: input projection plus bias. Out: ``tanh(projection + recurrent)``.
        recurrent : ndarray, (m, H)
            The recurrent product ``h_prev @ W_hh.T``.
        """
        # h_next[index] = tanh_of(h_next[index] + recurrent[index])
        h_next += recurrent
        self.xp.tanh(h_next, out=h_next)

    def backward(self, dpre: Any, h_next: Any, dy: Any, dh: Any) -> None:
        """One backward step (``rnn_backward_element``).

        Parameters
        ----------
        dpre : ndarray, (m, H)
            Written: the gradient with respect to the pre-activation.
        h_next : ndarray, (m, H)
            This step's output, saved by :meth:`forward`.
        dy, dh : ndarray, (m, H)
            Gradients reaching ``h_next`` from this step's output and from the next step.
        """
        xp = self.xp
        # dpre[index] = (dy[index] + dh[index]) * tanh_grad_from_output(h_next[index])
        xp.subtract(1, h_next, out=dpre)
        xp.add(h_next, 1, out=self.scratch)
        dpre *= self.scratch
        xp.add(dy, dh, out=self.scratch)
        xp.multiply(self.scratch, dpre, out=dpre)
