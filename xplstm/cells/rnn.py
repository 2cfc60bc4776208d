"""NumPy twins of ``kernels/rnn.cuh``: the pointwise tanh- and ReLU-RNN steps on whole
``(m, H)`` blocks (packed batches: a prefix of the rows).

On CuPy arrays the same code is the *unfused* path (separate CuPy ufunc launches).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["RNNReluTwin", "RNNTwin"]


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


class RNNReluTwin(RNNTwin):
    """The pointwise ReLU-RNN step (``rnn_relu_*_element``); same contract as :class:`RNNTwin`."""

    def __init__(self, xp: Any, dtype: Any, batch_size: int, hidden_size: int) -> None:
        super().__init__(xp, dtype, batch_size, hidden_size)
        self.positive = xp.empty((batch_size, hidden_size), dtype=bool)

    def forward(self, h_next: Any, recurrent: Any) -> None:
        """``h_next = relu(h_next + recurrent)`` in place (``rnn_relu_forward_element``)."""
        # h_next[index] = relu_of(h_next[index] + recurrent[index])
        h_next += recurrent
        self.xp.maximum(h_next, 0, out=h_next)  # maximum keeps NaN, as relu_of

    def backward(self, dpre: Any, h_next: Any, dy: Any, dh: Any) -> None:
        """``dpre = dy + dh`` where ``h_next > 0``, else 0 (``rnn_relu_backward_element``)."""
        xp, rows = self.xp, dpre.shape[0]
        positive, total = self.positive[:rows], self.scratch[:rows]
        # dpre[index] = relu_grad_select(h_next[index], dy[index] + dh[index])
        xp.add(dy, dh, out=total)
        xp.greater(h_next, 0, out=positive)
        dpre.fill(0)
        xp.copyto(dpre, total, where=positive)
