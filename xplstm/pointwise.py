"""The pointwise half of an LSTM step, forward and backward, fused.

Gates are stacked in torch order ``(i, f, g, o)`` along the last axis of an ``(m, 4H)`` block.
On CuPy arrays each call is one fused CUDA kernel built from ``kernels/lstm_pointwise.cuh``;
on NumPy arrays the NumPy twin below does the same math in place on preallocated buffers.
The twin also serves as the *unfused* CuPy path (separate CuPy ufunc launches), selected with
``fused=False`` or the environment variable ``XPLSTM_FUSED=0``, so the kernels' speedup can be
measured.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["LSTMPointwise", "fused_enabled"]


def fused_enabled(fused: bool | None = None) -> bool:
    """Resolve the fused-kernel switch: the argument wins, else ``XPLSTM_FUSED`` (default on)."""
    if fused is not None:
        return bool(fused)
    setting = os.environ.get("XPLSTM_FUSED", "1").strip().lower()
    if setting in ("1", "true", "yes", "on", ""):
        return True
    if setting in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"XPLSTM_FUSED must be 0 or 1, got {setting!r}")


class LSTMPointwise:
    """Pointwise LSTM step for one batch shape, with its workspaces allocated once.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.
    dtype : dtype
        Element type of every buffer passed to :meth:`forward` and :meth:`backward`.
    batch_size, hidden_size : int
        ``m`` and ``H``: every per-step array is ``(m, H)`` or ``(m, 4H)``.
    fused : bool, optional
        CuPy only: use the fused CUDA kernels (default, see :func:`fused_enabled`) or the
        separate-ufunc twin. NumPy always runs the twin.
    """

    def __init__(
        self, xp: Any, dtype: Any, batch_size: int, hidden_size: int, fused: bool | None = None
    ) -> None:
        self.xp = xp
        self.dtype = np.dtype(dtype)
        self.hidden_size = hidden_size
        self.kernels = None
        if xp is not np and fused_enabled(fused):
            from .cuda_kernels import lstm_kernels

            self.kernels = lstm_kernels(self.dtype)
            return
        shape = (batch_size, hidden_size)
        self.scratch = xp.empty(shape, dtype=self.dtype)
        self.scratch2 = xp.empty(shape, dtype=self.dtype)
        self.upstream = xp.empty((batch_size, 4 * hidden_size), dtype=self.dtype)
        self.one_minus_gates = xp.empty((batch_size, 4 * hidden_size), dtype=self.dtype)
        # sigmoid(x) = 0.5 + 0.5 * tanh(x / 2): one tanh over all four gates, with the i, f, o
        # columns scaled by 0.5 before and after and shifted by 0.5 after.
        half = np.full(4 * hidden_size, 0.5, dtype=self.dtype)
        half[2 * hidden_size : 3 * hidden_size] = 1.0
        shift = np.full(4 * hidden_size, 0.5, dtype=self.dtype)
        shift[2 * hidden_size : 3 * hidden_size] = 0.0
        # d act / d pre = (1 - y) * (y + k): y(1 - y) for a sigmoid (k=0), 1 - y^2 for tanh (k=1).
        self.gate_scale = xp.asarray(half)
        self.gate_shift = xp.asarray(shift)
        self.derivative_shift = xp.asarray(1.0 - 2.0 * shift)

    @property
    def is_fused(self) -> bool:
        return self.kernels is not None

    @property
    def input_scale(self) -> Any:
        """``(4H,)`` factors a caller may fold into the gate weights and bias, or ``None``.

        The twin computes every gate with one ``tanh`` of the pre-activation scaled by 0.5 for
        the sigmoid gates (i, f, o). Scaling by 0.5 is exact, so a caller that multiplies its
        weight rows by these factors once, and passes ``prescaled=True``, saves a pass per step.
        """
        return None if self.kernels is not None else self.gate_scale

    def forward(
        self,
        gates: Any,
        recurrent: Any,
        c_prev: Any,
        c_next: Any,
        h_next: Any,
        *,
        prescaled: bool = False,
    ) -> None:
        """One forward step, in place.

        Parameters
        ----------
        gates : ndarray, (m, 4H)
            In: input projection plus bias. Out: the activated gates ``(i, f, g, o)``.
        recurrent : ndarray, (m, 4H)
            The recurrent product ``h_prev @ W_hh.T``, added to ``gates``.
        c_prev : ndarray, (m, H)
        c_next, h_next : ndarray, (m, H)
            Written: ``c_next = f * c_prev + i * g`` and ``h_next = o * tanh(c_next)``.
        prescaled : bool
            ``gates`` and ``recurrent`` are already multiplied by :attr:`input_scale`.
        """
        if self.kernels is not None:
            if prescaled:
                raise ValueError("the fused kernels take unscaled pre-activations")
            self.kernels.forward(gates, recurrent, c_prev, c_next, h_next)
            return
        xp, size = self.xp, self.hidden_size
        gates += recurrent
        if not prescaled:
            gates *= self.gate_scale
        xp.tanh(gates, out=gates)
        gates *= self.gate_scale
        gates += self.gate_shift
        i, f, g, o = (gates[:, k * size : (k + 1) * size] for k in range(4))
        xp.multiply(f, c_prev, out=c_next)
        xp.multiply(i, g, out=self.scratch)
        c_next += self.scratch
        xp.tanh(c_next, out=self.scratch)
        xp.multiply(o, self.scratch, out=h_next)

    def backward(self, dy: Any, dh: Any, dc: Any, gates: Any, c_prev: Any, c_next: Any) -> None:
        """One backward step, in place.

        Parameters
        ----------
        dy : ndarray, (m, H)
            Gradient arriving at this step's output.
        dh : ndarray, (m, H)
            Gradient carried into ``h_next`` from the next step (added to ``dy``). Not modified.
        dc : ndarray, (m, H)
            In: gradient carried into ``c_next``. Out: gradient with respect to ``c_prev``.
        gates : ndarray, (m, 4H)
            In: the activated gates saved by :meth:`forward`. Out: the gradients with respect to
            the four gate pre-activations (same layout).
        c_prev, c_next : ndarray, (m, H)
            Cell states before and after this step.
        """
        if self.kernels is not None:
            self.kernels.backward(dy, dh, dc, gates, c_prev, c_next)
            return
        xp, size = self.xp, self.hidden_size
        i, f, g, o = (gates[:, k * size : (k + 1) * size] for k in range(4))
        up_i, up_f, up_g, up_o = (self.upstream[:, k * size : (k + 1) * size] for k in range(4))
        dh_total, tanh_c = self.scratch, self.scratch2
        xp.add(dy, dh, out=dh_total)
        xp.tanh(c_next, out=tanh_c)
        # upstream factor of the output gate: dh * tanh(c_next)
        xp.multiply(dh_total, tanh_c, out=up_o)
        # dc += dh * o * (1 - tanh(c_next)^2)
        xp.multiply(tanh_c, tanh_c, out=tanh_c)
        xp.subtract(1, tanh_c, out=tanh_c)
        tanh_c *= o
        tanh_c *= dh_total
        dc += tanh_c
        xp.multiply(dc, g, out=up_i)
        xp.multiply(dc, c_prev, out=up_f)
        xp.multiply(dc, i, out=up_g)
        dc *= f
        # gates <- (1 - y) * (y + k) * upstream
        xp.subtract(1, gates, out=self.one_minus_gates)
        gates += self.derivative_shift
        gates *= self.one_minus_gates
        gates *= self.upstream
