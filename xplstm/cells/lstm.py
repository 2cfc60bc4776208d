"""NumPy twin of ``kernels/lstm.cuh``: the pointwise LSTM step on whole ``(m, H)`` blocks.

Each block of :class:`LSTMTwin` mirrors a line group of ``lstm_forward_at`` or
``lstm_backward_at`` (the comments quote them), working in place on preallocated buffers.
On CuPy arrays the same code is the *unfused* path: separate CuPy ufunc launches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import StackedActivations

__all__ = ["LSTMPeepholeTwin", "LSTMTwin"]


class LSTMTwin:
    """The pointwise LSTM step for one ``(m, H)`` shape, with its scratch allocated once.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.
    dtype : dtype
        Element type of every buffer passed to :meth:`forward` and :meth:`backward`.
    batch_size, hidden_size : int
        ``m`` and ``H``: per-step arrays are ``(m, H)``; gate blocks ``(m, 4H)`` in torch order
        ``(i, f, g, o)``. A step may also cover the first ``k < m`` rows (a packed batch).
    """

    implementation = "numpy twin"

    def __init__(self, xp: Any, dtype: Any, batch_size: int, hidden_size: int) -> None:
        self.xp = xp
        self.dtype = np.dtype(dtype)
        self.hidden_size = hidden_size
        if xp is not np:
            self.implementation = "unfused cupy"
        cell, block = (batch_size, hidden_size), (batch_size, 4 * hidden_size)
        self.activations = StackedActivations(xp, self.dtype, "ssts", hidden_size)
        self.scratch = xp.empty(cell, dtype=self.dtype)
        self.dh_total = xp.empty(cell, dtype=self.dtype)
        self.tanh_c = xp.empty(cell, dtype=self.dtype)
        self.temporary = xp.empty(cell, dtype=self.dtype)
        self.upstream = xp.empty(block, dtype=self.dtype)
        self.work = xp.empty(block, dtype=self.dtype)

    def _split(self, block: Any) -> tuple[Any, Any, Any, Any]:
        size = self.hidden_size
        return tuple(block[:, k * size : (k + 1) * size] for k in range(4))  # type: ignore[return-value]

    def forward(self, gates: Any, recurrent: Any, c_prev: Any, c_next: Any, h_next: Any) -> None:
        """One forward step, in place (``lstm_forward_element``, ``lstm_forward_at``).

        Parameters
        ----------
        gates : ndarray, (m, 4H)
            In: input projection plus bias. Out: the activated gates ``(i, f, g, o)``.
        recurrent : ndarray, (m, 4H)
            The recurrent product ``h_prev @ W_hh.T``.
        c_prev : ndarray, (m, H)
        c_next, h_next : ndarray, (m, H)
            Written: ``c_next = f * c_prev + i * g`` and ``h_next = o * tanh(c_next)``.
        """
        xp = self.xp
        scratch = self.scratch[: c_next.shape[0]]  # the active rows of a packed batch
        # i = sigmoid(gate[0] + product[0]) ... o = sigmoid(gate[3 * hidden] + ...);
        # gate[k] = i, f, g, o
        gates += recurrent
        self.activations.activate(gates)
        i, f, g, o = self._split(gates)
        # c = f * c_prev + i * g; c_next = c
        xp.multiply(f, c_prev, out=c_next)
        xp.multiply(i, g, out=scratch)
        c_next += scratch
        # h_next = o * tanh_of(c)
        xp.tanh(c_next, out=scratch)
        xp.multiply(o, scratch, out=h_next)

    def backward(self, gates: Any, dy: Any, dh: Any, dc: Any, c_prev: Any, c_next: Any) -> None:
        """One backward step, in place (``lstm_backward_element``, ``lstm_backward_at``).

        Parameters
        ----------
        gates : ndarray, (m, 4H)
            In: the activated gates saved by :meth:`forward`. Out: the gradients with respect to
            the four gate pre-activations (same layout).
        dy : ndarray, (m, H)
            Gradient arriving at this step's output.
        dh : ndarray, (m, H)
            Gradient carried into ``h_next`` from the next step. Not modified.
        dc : ndarray, (m, H)
            In: gradient carried into ``c_next``. Out: gradient with respect to ``c_prev``.
        c_prev, c_next : ndarray, (m, H)
            Cell states before and after this step.
        """
        xp, rows = self.xp, dc.shape[0]  # fewer than m: the active rows of a packed batch
        upstream, work = self.upstream[:rows], self.work[:rows]
        i, f, g, o = self._split(gates)
        up_i, up_f, up_g, up_o = self._split(upstream)
        dh_total, tanh_c = self.dh_total[:rows], self.tanh_c[:rows]
        tanh_grad, temporary = self.scratch[:rows], self.temporary[:rows]
        # dh_total = dy + dh; tanh_c = tanh_of(c_next)
        xp.add(dy, dh, out=dh_total)
        xp.tanh(c_next, out=tanh_c)
        # dc_total = dc + dh_total * o * tanh_grad_from_output(tanh_c)
        xp.subtract(1, tanh_c, out=tanh_grad)
        xp.add(tanh_c, 1, out=temporary)
        tanh_grad *= temporary
        xp.multiply(dh_total, o, out=temporary)
        temporary *= tanh_grad
        dc += temporary
        # the factors beside each derivative: dc_total * g, dc_total * c_prev, dc_total * i,
        # dh_total * tanh_c
        xp.multiply(dc, g, out=up_i)
        xp.multiply(dc, c_prev, out=up_f)
        xp.multiply(dc, i, out=up_g)
        xp.multiply(dh_total, tanh_c, out=up_o)
        # dc = dc_total * f
        dc *= f
        # gate[k] = factor * sigmoid_grad_from_output(i) ... tanh_grad_from_output(g) ...
        self.activations.grad_from_output(gates, work)
        gates *= upstream


class LSTMPeepholeTwin(LSTMTwin):
    """The pointwise peephole-LSTM step (``lstm_peephole_*_element``): :class:`LSTMTwin`'s
    contract with one more argument, ``peephole`` ``(3, H)``, the rows ``(w_ci, w_cf, w_co)``."""

    def __init__(self, xp: Any, dtype: Any, batch_size: int, hidden_size: int) -> None:
        super().__init__(xp, dtype, batch_size, hidden_size)
        self.input_gates = StackedActivations(xp, self.dtype, "sst", hidden_size)
        self.output_gate = StackedActivations(xp, self.dtype, "s", hidden_size)
        self.d_o = xp.empty((batch_size, hidden_size), dtype=self.dtype)

    def forward(  # type: ignore[override]
        self, gates: Any, recurrent: Any, c_prev: Any, c_next: Any, h_next: Any, peephole: Any
    ) -> None:
        """One forward step, in place (``lstm_peephole_forward_element``)."""
        xp, width = self.xp, 3 * self.hidden_size
        scratch = self.scratch[: c_next.shape[0]]
        w_ci, w_cf, w_co = peephole[0], peephole[1], peephole[2]
        gates += recurrent
        i, f, g, o = self._split(gates)
        # i = sigmoid(gate[0] + product[0] + peephole[unit] * c_before); f: peephole[hidden + unit]
        xp.multiply(w_ci, c_prev, out=scratch)
        i += scratch
        xp.multiply(w_cf, c_prev, out=scratch)
        f += scratch
        self.input_gates.activate(gates[:, :width])  # i, f, g
        # c = f * c_before + i * g
        xp.multiply(f, c_prev, out=c_next)
        xp.multiply(i, g, out=scratch)
        c_next += scratch
        # o = sigmoid(gate[3 * hidden] + product[3 * hidden] + peephole[2 * hidden + unit] * c)
        xp.multiply(w_co, c_next, out=scratch)
        o += scratch
        self.output_gate.activate(o)
        # h_next[index] = o * tanh_of(c)
        xp.tanh(c_next, out=scratch)
        xp.multiply(o, scratch, out=h_next)

    def backward(  # type: ignore[override]
        self,
        gates: Any,
        dy: Any,
        dh: Any,
        dc: Any,
        c_prev: Any,
        c_next: Any,
        peephole: Any,
    ) -> None:
        """One backward step, in place (``lstm_peephole_backward_element``)."""
        xp, rows, width = self.xp, dc.shape[0], 3 * self.hidden_size
        w_ci, w_cf, w_co = peephole[0], peephole[1], peephole[2]
        upstream, work = self.upstream[:rows], self.work[:rows]
        i, f, g, o = self._split(gates)
        up_i, up_f, up_g, _ = self._split(upstream)
        dh_total, tanh_c, d_o = self.dh_total[:rows], self.tanh_c[:rows], self.d_o[:rows]
        tanh_grad, temporary = self.scratch[:rows], self.temporary[:rows]
        # dh_total = dy[index] + dh[index]; tanh_c = tanh_of(c_next[index])
        xp.add(dy, dh, out=dh_total)
        xp.tanh(c_next, out=tanh_c)
        # d_o = dh_total * tanh_c * sigmoid_grad_from_output(o)
        xp.multiply(dh_total, tanh_c, out=d_o)
        xp.subtract(1, o, out=temporary)
        temporary *= o
        d_o *= temporary
        # dc_total = dc[index] + dh_total * o * tanh_grad_from_output(tanh_c)
        #            + d_o * peephole[2 * hidden + unit]
        xp.subtract(1, tanh_c, out=tanh_grad)
        xp.add(tanh_c, 1, out=temporary)
        tanh_grad *= temporary
        xp.multiply(dh_total, o, out=temporary)
        temporary *= tanh_grad
        dc += temporary
        xp.multiply(d_o, w_co, out=temporary)
        dc += temporary
        # d_i = dc_total * g * sigmoid_grad(i); d_f = dc_total * c_prev * sigmoid_grad(f);
        # gate[2 * hidden] = dc_total * i * tanh_grad(g); gate[3 * hidden] = d_o
        xp.multiply(dc, g, out=up_i)
        xp.multiply(dc, c_prev, out=up_f)
        xp.multiply(dc, i, out=up_g)
        # dc[index] = dc_total * f + d_i * peephole[unit] + d_f * peephole[hidden + unit]
        dc *= f
        self.input_gates.grad_from_output(gates[:, :width], work[:, :width])
        gates[:, :width] *= upstream[:, :width]
        o[...] = d_o
        xp.multiply(i, w_ci, out=temporary)  # i, f now hold d_i, d_f
        dc += temporary
        xp.multiply(f, w_cf, out=temporary)
        dc += temporary
