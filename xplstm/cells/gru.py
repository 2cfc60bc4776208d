"""NumPy twin of ``kernels/gru.cuh``: the pointwise GRU step on whole ``(m, H)`` blocks.

Each block of :class:`GRUTwin` mirrors a line group of ``gru_forward_element`` or
``gru_backward_element`` (the comments quote them), working in place on preallocated buffers.
On CuPy arrays the same code is the *unfused* path: separate CuPy ufunc launches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import StackedActivations

__all__ = ["GRUTwin"]


class GRUTwin:
    """The pointwise GRU step for one ``(m, H)`` shape, with its scratch allocated once.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.
    dtype : dtype
        Element type of every buffer passed to :meth:`forward` and :meth:`backward`.
    batch_size, hidden_size : int
        ``m`` and ``H``: per-step arrays are ``(m, H)``; gate blocks ``(m, 3H)`` in torch order
        ``(r, z, n)``. A step may also cover the first ``k < m`` rows (a packed batch).
    """

    implementation = "numpy twin"

    def __init__(self, xp: Any, dtype: Any, batch_size: int, hidden_size: int) -> None:
        self.xp = xp
        self.dtype = np.dtype(dtype)
        self.hidden_size = hidden_size
        if xp is not np:
            self.implementation = "unfused cupy"
        cell = (batch_size, hidden_size)
        self.sigmoids = StackedActivations(xp, self.dtype, "ss", hidden_size)
        self.product = xp.empty((batch_size, 3 * hidden_size), dtype=self.dtype)
        self.dh_total = xp.empty(cell, dtype=self.dtype)
        self.scratch = xp.empty(cell, dtype=self.dtype)
        self.work = xp.empty((batch_size, 2 * hidden_size), dtype=self.dtype)

    def _split(self, block: Any) -> tuple[Any, Any, Any]:
        size = self.hidden_size
        return tuple(block[:, k * size : (k + 1) * size] for k in range(3))  # type: ignore[return-value]

    def forward(
        self, gates: Any, recurrent: Any, bias_hh: Any, h_prev: Any, hidden_n: Any, h_next: Any
    ) -> None:
        """One forward step, in place (``gru_forward_element``).

        Parameters
        ----------
        gates : ndarray, (m, 3H)
            In: input projection plus ``b_ih``. Out: the activated gates ``(r, z, n)``.
        recurrent : ndarray, (m, 3H)
            The recurrent product ``h_prev @ W_hh.T`` (without bias). Not modified.
        bias_hh : ndarray, (3H,)
            The recurrent bias (zeros for a layer without bias).
        h_prev : ndarray, (m, H)
        hidden_n, h_next : ndarray, (m, H)
            Written: ``W_hn h_prev + b_hn`` (saved for backward) and the new hidden state.
        """
        xp, rows, size = self.xp, h_next.shape[0], self.hidden_size
        product = self.product[:rows]  # the active rows of a packed batch
        scratch = self.scratch[:rows]
        xp.add(recurrent, bias_hh, out=product)
        r, z, n = self._split(gates)
        # r = sigmoid(gate[0] + (product[0] + bias_hh[column]));
        # z = sigmoid(gate[hidden] + (product[hidden] + bias_hh[hidden + column]))
        gates[:, : 2 * size] += product[:, : 2 * size]
        self.sigmoids.activate(gates[:, : 2 * size])
        # hn = product[2 * hidden] + bias_hh[2 * hidden + column]; hidden_n[index] = hn
        hidden_n[...] = product[:, 2 * size :]
        # n = tanh_of(gate[2 * hidden] + r * hn)
        xp.multiply(r, hidden_n, out=scratch)
        n += scratch
        xp.tanh(n, out=n)
        # h_next[index] = n + z * (h_prev[index] - n)
        xp.subtract(h_prev, n, out=h_next)
        h_next *= z
        h_next += n

    def backward(
        self, gates: Any, drecurrent: Any, dy: Any, dh: Any, h_prev: Any, hidden_n: Any
    ) -> None:
        """One backward step, in place (``gru_backward_element``).

        Parameters
        ----------
        gates : ndarray, (m, 3H)
            In: the activated gates saved by :meth:`forward`. Out: the gradients with respect to
            the input-side pre-activations (same layout).
        drecurrent : ndarray, (m, 3H)
            Out: the gradients with respect to the recurrent product plus ``b_hh``.
        dy : ndarray, (m, H)
            Gradient arriving at this step's output.
        dh : ndarray, (m, H)
            In: gradient carried into ``h_next``. Out: its direct part towards ``h_prev``,
            ``dh_total * z`` (the caller adds ``drecurrent @ W_hh``).
        h_prev, hidden_n : ndarray, (m, H)
            The state before this step and ``W_hn h_prev + b_hn`` from :meth:`forward`.
        """
        xp, rows, size = self.xp, dh.shape[0], self.hidden_size  # rows: the active rows
        dh_total, scratch, work = self.dh_total[:rows], self.scratch[:rows], self.work[:rows]
        r, z, n = self._split(gates)
        d_r, d_z, d_n = self._split(drecurrent)
        # dh_total = dy[index] + dh[index]
        xp.add(dy, dh, out=dh_total)
        # dn = dh_total * (T(1) - z) * tanh_grad_from_output(n)
        xp.subtract(h_prev, n, out=d_z)  # for dz, before n is overwritten
        xp.subtract(1, z, out=d_n)
        d_n *= dh_total
        xp.subtract(1, n, out=scratch)
        n += 1
        n *= scratch
        n *= d_n
        # gate[2 * hidden] = dn; drec[2 * hidden] = dn * r
        xp.multiply(n, r, out=d_n)
        # dh[index] = dh_total * z
        xp.multiply(dh_total, z, out=dh)
        # sigmoid_grad_from_output(z) and sigmoid_grad_from_output(r), one pass over (r, z)
        self.sigmoids.grad_from_output(gates[:, : 2 * size], work)
        # dz = dh_total * (h_prev[index] - n) * sigmoid_grad_from_output(z);
        # gate[hidden] = dz; drec[hidden] = dz
        d_z *= dh_total
        z *= d_z
        d_z[...] = z
        # dr = dn * hidden_n[index] * sigmoid_grad_from_output(r); gate[0] = dr; drec[0] = dr
        xp.multiply(n, hidden_n, out=scratch)
        r *= scratch
        d_r[...] = r
