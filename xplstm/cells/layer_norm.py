"""NumPy twin of ``kernels/layer_norm.cuh``: layer normalization and the LayerNorm LSTM step.

:class:`LayerNormLSTMSteps` composes one step (forward and backward) and the input
normalization over all steps from the header's functions, each a method of the same name
without ``_element``/``_row``; :class:`LayerNormLSTMTwin` implements those methods on whole
blocks with NumPy (or CuPy ufuncs: the *unfused* path), mirroring the header line by line, and
:class:`xplstm.cuda.fused.FusedLayerNormLSTMCell` as kernel launches. Blocks are C-contiguous;
a packed batch passes its first rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .activations import StackedActivations

__all__ = ["LAYER_NORM_EPSILON", "LayerNormLSTMSteps", "LayerNormLSTMTwin"]

LAYER_NORM_EPSILON = 1e-5
"""``layer_norm_epsilon`` of the header: inside the square root of every normalization."""


class LayerNormLSTMSteps:
    """The LayerNorm LSTM step (Ba, Kiros and Hinton 2016, section 3.1) from the header's pieces.

    Subclasses set ``hidden_size``, ``xp`` and ``dtype`` and implement the pieces:
    ``statistics``, ``normalize``, ``backward_statistics``, ``normalize_backward`` (the generic
    layer norm) and ``gates``, ``output``, ``output_backward``, ``gates_backward`` (the LSTM's).
    """

    hidden_size: int
    xp: Any
    dtype: Any
    row_scratch: Any  # (2, m): two row statistics of a step
    d_c_hat: Any  # (m, H): the gradient at c_hat within a backward step
    # The pieces, one per header function (see LayerNormLSTMTwin for their arguments).
    statistics: Callable[..., None]
    normalize: Callable[..., None]
    backward_statistics: Callable[..., None]
    normalize_backward: Callable[..., None]
    gates: Callable[..., None]
    output: Callable[..., None]
    output_backward: Callable[..., None]
    gates_backward: Callable[..., None]

    input_block_rows: int | None = None
    """Rows per block of the input normalization; ``None``: all rows in one call (one launch
    per piece on a GPU)."""

    def _row_scratch(self, rows: int) -> tuple[Any, Any]:
        return self.row_scratch[0, :rows], self.row_scratch[1, :rows]

    def forward(
        self,
        gates: Any,
        recurrent: Any,
        c_prev: Any,
        c_next: Any,
        h_next: Any,
        gain_h: Any,
        shift_h: Any,
        gain_c: Any,
        shift_c: Any,
        rstd_h: Any,
        c_hat: Any,
        rstd_c: Any,
    ) -> None:
        """One forward step, in place.

        Parameters
        ----------
        gates : ndarray, (m, 4H)
            In: ``LN(W_ih x_t) + bias``. Out: the activated gates ``(i, f, g, o)``.
        recurrent : ndarray, (m, 4H)
            In: ``h_{t-1} @ W_hh.T``. Out: its normalized values (kept for backward).
        c_prev : ndarray, (m, H)
        c_next, h_next : ndarray, (m, H)
            Written: ``c_next = f * c_prev + i * g``, ``h_next = o * tanh(LN(c_next))``.
        gain_h, shift_h : ndarray, (4H,)
        gain_c, shift_c : ndarray, (H,)
        rstd_h, rstd_c : ndarray, (m,)
            Written: the reciprocal standard deviations of each row of ``recurrent`` and
            ``c_next``.
        c_hat : ndarray, (m, H)
            Written: the normalized ``c_next``.
        """
        hidden, rows = self.hidden_size, c_next.shape[0]
        mean, _ = self._row_scratch(rows)
        self.statistics(recurrent, 4 * hidden, mean, rstd_h)
        self.gates(mean, rstd_h, gain_h, shift_h, c_prev, gates, recurrent, c_next)
        self.statistics(c_next, hidden, mean, rstd_c)
        self.output(gates, c_next, mean, rstd_c, gain_c, shift_c, c_hat, h_next)

    def backward(
        self,
        gates: Any,
        dy: Any,
        dh: Any,
        dc: Any,
        c_prev: Any,
        c_next: Any,
        gain_h: Any,
        shift_h: Any,
        gain_c: Any,
        shift_c: Any,
        rstd_h: Any,
        c_hat: Any,
        rstd_c: Any,
        recurrent: Any,
        d_recurrent: Any,
        d_n: Any,
    ) -> None:
        """One backward step, in place; the forward's arguments plus:

        Parameters
        ----------
        dy, dh : ndarray, (m, H)
            Gradients reaching ``h_next`` from this step's output and from the next step.
        dc : ndarray, (m, H)
            In: the gradient reaching ``c_next``. Out: the gradient with respect to ``c_prev``.
        recurrent : ndarray, (m, 4H)
            The normalized recurrent values the forward left.
        d_recurrent : ndarray, (m, 4H)
            Written: the gradient with respect to ``h_{t-1} @ W_hh.T``.
        d_n : ndarray, (m, H)
            Written: the gradient at ``gain_c * c_hat + shift_c`` (for the cell norm's
            parameters).

        ``gates`` become the gradients with respect to the four pre-activations (so with
        respect to ``LN(W_ih x_t) + bias``).
        """
        hidden, rows = self.hidden_size, dc.shape[0]
        mean_d, mean_dx = self._row_scratch(rows)
        d_c_hat = self.d_c_hat[:rows]
        self.output_backward(c_hat, gain_c, shift_c, dy, dh, gates, d_n, d_c_hat)
        self.backward_statistics(d_c_hat, c_hat, hidden, mean_d, mean_dx)
        self.gates_backward(c_hat, rstd_c, d_c_hat, mean_d, mean_dx, c_prev, gain_h, gates, dc,
                            d_recurrent)  # fmt: skip
        self.backward_statistics(d_recurrent, recurrent, 4 * hidden, mean_d, mean_dx)
        self.normalize_backward(recurrent, rstd_h, mean_d, mean_dx, d_recurrent, 4 * hidden)

    def _input_blocks(self, rows: int) -> list[slice]:
        block = self.input_block_rows or rows
        return [slice(start, min(start + block, rows)) for start in range(0, rows, block)]

    def normalize_inputs(self, values: Any, gain: Any, shift: Any, x_hat: Any, rstd: Any) -> None:
        """``values`` ``(n, 4H)`` in place to ``gain * x_hat + shift``, writing ``x_hat``
        ``(n, 4H)`` and ``rstd`` ``(n,)``: the input normalization of every step at once (in
        blocks of :attr:`input_block_rows`)."""
        width, blocks = values.shape[1], self._input_blocks(values.shape[0])
        mean = self.xp.empty(blocks[0].stop if blocks else 0, dtype=self.dtype)
        for part in blocks:
            block_mean = mean[: part.stop - part.start]
            self.statistics(values[part], width, block_mean, rstd[part])
            self.normalize(block_mean, rstd[part], gain, shift, x_hat[part], values[part], width)

    def normalize_inputs_backward(self, gradient: Any, x_hat: Any, rstd: Any) -> None:
        """``gradient`` ``(n, 4H)`` at ``x_hat`` in place to the gradient at the
        normalization's input."""
        width, blocks = gradient.shape[1], self._input_blocks(gradient.shape[0])
        means = self.xp.empty((2, blocks[0].stop if blocks else 0), dtype=self.dtype)
        for part in blocks:
            mean_d, mean_dx = means[:, : part.stop - part.start]
            self.backward_statistics(gradient[part], x_hat[part], width, mean_d, mean_dx)
            self.normalize_backward(x_hat[part], rstd[part], mean_d, mean_dx, gradient[part],
                                    width)  # fmt: skip


class LayerNormLSTMTwin(LayerNormLSTMSteps):
    """The pieces of ``kernels/layer_norm.cuh`` on whole blocks (NumPy, or CuPy ufuncs).

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.
    dtype : dtype
    batch_size, hidden_size : int
        ``m`` and ``H``.
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
        self.row_scratch = xp.empty((2, batch_size), dtype=self.dtype)
        self.d_c_hat = xp.empty(cell, dtype=self.dtype)
        self.scratch = xp.empty(cell, dtype=self.dtype)
        self.temporary = xp.empty(cell, dtype=self.dtype)
        self.block = xp.empty(block, dtype=self.dtype)
        self.ones = xp.ones(4 * hidden_size, dtype=self.dtype)
        if xp is np:  # blocks of the input norm that stay in the cache (256 KiB), not one pass
            row_bytes = 4 * hidden_size * self.dtype.itemsize  # per piece over all T*m rows
            self.input_block_rows = max(1, min(batch_size, 2**18 // row_bytes))

    def _split(self, block: Any) -> tuple[Any, Any, Any, Any]:
        size = self.hidden_size
        return tuple(block[:, k * size : (k + 1) * size] for k in range(4))  # type: ignore[return-value]

    def _like(self, array: Any) -> Any:
        """Scratch of ``array``'s shape: the step's buffers, or new for the input norm."""
        rows, width = array.shape
        if rows <= self.scratch.shape[0] and width == self.hidden_size:
            return self.scratch[:rows]
        if rows <= self.block.shape[0] and width == 4 * self.hidden_size:
            return self.block[:rows]
        return self.xp.empty_like(array)

    # ------------------------------------------------------------------ the generic layer norm

    def _row_mean(self, x: Any, width: int, out: Any) -> None:
        """``sum / T(width)`` of each row of ``x`` ``(rows, width)``: the sums as a product with
        ones (BLAS's vectorized dot, 3x NumPy's reduction along rows here)."""
        self.xp.matmul(x, self.ones[:width], out=out)
        out /= self.dtype.type(width)

    def statistics(self, x: Any, width: int, mean: Any, rstd: Any) -> None:
        """Row means and reciprocal standard deviations (``layer_norm_statistics_row``)."""
        xp = self.xp
        centered = self._like(x)
        # average = sum / T(width)
        self._row_mean(x, width, mean)
        # squares += centered * centered, centered = values[k] - average
        xp.subtract(x, mean[:, None], out=centered)
        centered *= centered
        # rstd[row] = reciprocal_sqrt_of(squares / T(width) + layer_norm_epsilon<T>())
        self._row_mean(centered, width, rstd)
        rstd += self.dtype.type(LAYER_NORM_EPSILON)
        xp.sqrt(rstd, out=rstd)
        xp.divide(1, rstd, out=rstd)

    def normalize(
        self, mean: Any, rstd: Any, gain: Any, shift: Any, x_hat: Any, value: Any, width: int
    ) -> None:
        """``layer_norm_forward_element``: ``x_hat`` written, ``value`` in place."""
        xp = self.xp
        # normalized = (value[index] - mean[row]) * rstd[row]; x_hat[index] = normalized
        xp.subtract(value, mean[:, None], out=x_hat)
        x_hat *= rstd[:, None]
        # value[index] = gain[column] * normalized + shift[column]
        xp.multiply(gain, x_hat, out=value)
        value += shift

    def backward_statistics(
        self, d_hat: Any, x_hat: Any, width: int, mean_d: Any, mean_dx: Any
    ) -> None:
        """Row means of ``d_hat`` and ``d_hat * x_hat`` (``layer_norm_backward_statistics_row``)."""
        xp = self.xp
        product = self._like(d_hat)
        self._row_mean(d_hat, width, mean_d)
        xp.multiply(d_hat, x_hat, out=product)
        self._row_mean(product, width, mean_dx)

    def normalize_backward(
        self, x_hat: Any, rstd: Any, mean_d: Any, mean_dx: Any, gradient: Any, width: int
    ) -> None:
        """``layer_norm_backward_element``: ``gradient`` in place."""
        xp = self.xp
        product = self._like(gradient)
        # rstd[row] * (gradient[index] - mean_d[row] - x_hat[index] * mean_dx[row])
        gradient -= mean_d[:, None]
        xp.multiply(x_hat, mean_dx[:, None], out=product)
        gradient -= product
        gradient *= rstd[:, None]

    # ------------------------------------------------------------------------ the LSTM's pieces

    def gates(
        self,
        mean_h: Any,
        rstd_h: Any,
        gain_h: Any,
        shift_h: Any,
        c_prev: Any,
        gates: Any,
        recurrent: Any,
        c_next: Any,
    ) -> None:
        """``lstm_layer_norm_gates_element``."""
        xp = self.xp
        product, scratch = self._like(recurrent), self._like(c_next)
        # normalized = (recurrent[gate] - mean_h[row]) * rstd_h[row]; recurrent[gate] = normalized
        recurrent -= mean_h[:, None]
        recurrent *= rstd_h[:, None]
        # pre[k] = gates[gate] + gain_h[...] * normalized + shift_h[...]
        xp.multiply(gain_h, recurrent, out=product)
        gates += product
        gates += shift_h
        # i = sigmoid(pre[0]) ... o = sigmoid(pre[3]); gates[at + k * hidden] = i, f, g, o
        self.activations.activate(gates)
        i, f, g, _ = self._split(gates)
        # c_next[index] = f * c_prev[index] + i * g
        xp.multiply(f, c_prev, out=c_next)
        xp.multiply(i, g, out=scratch)
        c_next += scratch

    def output(
        self,
        gates: Any,
        c_next: Any,
        mean_c: Any,
        rstd_c: Any,
        gain_c: Any,
        shift_c: Any,
        c_hat: Any,
        h_next: Any,
    ) -> None:
        """``lstm_layer_norm_output_element``."""
        xp = self.xp
        o = self._split(gates)[3]
        # normalized = (c_next[index] - mean_c[row]) * rstd_c[row]; c_hat[index] = normalized
        xp.subtract(c_next, mean_c[:, None], out=c_hat)
        c_hat *= rstd_c[:, None]
        # h_next[index] = o * tanh_of(gain_c[unit] * normalized + shift_c[unit])
        xp.multiply(gain_c, c_hat, out=h_next)
        h_next += shift_c
        xp.tanh(h_next, out=h_next)
        h_next *= o

    def output_backward(
        self,
        c_hat: Any,
        gain_c: Any,
        shift_c: Any,
        dy: Any,
        dh: Any,
        gates: Any,
        d_n: Any,
        d_c_hat: Any,
    ) -> None:
        """``lstm_layer_norm_output_backward_element``."""
        xp, rows = self.xp, c_hat.shape[0]
        o = self._split(gates)[3]
        tanh_n, temporary = self.scratch[:rows], self.temporary[:rows]
        # dh_total = dy[index] + dh[index]  (kept in d_c_hat until it is written)
        dh_total = xp.add(dy, dh, out=d_c_hat)
        # tanh_n = tanh_of(gain_c[unit] * c_hat[index] + shift_c[unit])
        xp.multiply(gain_c, c_hat, out=tanh_n)
        tanh_n += shift_c
        xp.tanh(tanh_n, out=tanh_n)
        # dn = dh_total * o * tanh_grad_from_output(tanh_n); d_n[index] = dn
        xp.subtract(1, tanh_n, out=temporary)
        xp.add(tanh_n, 1, out=d_n)
        temporary *= d_n
        xp.multiply(dh_total, o, out=d_n)
        d_n *= temporary
        # *o_slot = dh_total * tanh_n * sigmoid_grad_from_output(o)
        xp.subtract(1, o, out=temporary)
        temporary *= o
        xp.multiply(dh_total, tanh_n, out=o)
        o *= temporary
        # d_c_hat[index] = gain_c[unit] * dn
        xp.multiply(gain_c, d_n, out=d_c_hat)

    def gates_backward(
        self,
        c_hat: Any,
        rstd_c: Any,
        d_c_hat: Any,
        mean_d: Any,
        mean_dx: Any,
        c_prev: Any,
        gain_h: Any,
        gates: Any,
        dc: Any,
        d_recurrent: Any,
    ) -> None:
        """``lstm_layer_norm_gates_backward_element``."""
        xp, rows = self.xp, c_hat.shape[0]
        i, f, g, _ = self._split(gates)
        scratch, temporary = self.scratch[:rows], self.temporary[:rows]
        # dc_total = dc[index] + rstd_c[row] * (d_c_hat[index] - mean_d[row]
        #            - c_hat[index] * mean_dx[row])
        xp.subtract(d_c_hat, mean_d[:, None], out=scratch)
        xp.multiply(c_hat, mean_dx[:, None], out=temporary)
        scratch -= temporary
        scratch *= rstd_c[:, None]
        dc += scratch
        # gates[at] = dc_total * g * sigmoid_grad_from_output(i)  (i, f, g are read first)
        xp.multiply(dc, g, out=scratch)
        xp.subtract(1, i, out=temporary)
        temporary *= i
        scratch *= temporary
        # gates[at + 2 * hidden] = dc_total * i * tanh_grad_from_output(g)
        xp.multiply(dc, i, out=i)
        xp.add(g, 1, out=temporary)
        xp.subtract(1, g, out=g)
        g *= temporary
        g *= i
        i[...] = scratch
        # gates[at + hidden] = dc_total * c_prev[index] * sigmoid_grad_from_output(f)
        xp.multiply(dc, c_prev, out=scratch)
        # dc[index] = dc_total * f
        dc *= f
        xp.subtract(1, f, out=temporary)
        temporary *= f
        xp.multiply(scratch, temporary, out=f)
        # d_recurrent[at + k * hidden] = gain_h[k * hidden + unit] * gates[at + k * hidden]
        xp.multiply(gain_h, gates, out=d_recurrent)
