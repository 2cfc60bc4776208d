"""The compiled pointwise steps behind the cell protocol of :mod:`xplstm.cells`."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LSTMCompiled", "RNNCompiled", "compiled_cell"]


class LSTMCompiled:
    """The pointwise LSTM step of ``kernels/lstm.cuh`` compiled for the host CPU.

    :class:`xplstm.cells.lstm.LSTMTwin`'s contract: the same arguments, shapes and in-place
    results, within the dtype's tolerance (the vector ``tanh`` rounds differently from
    NumPy's). Every array must be C-contiguous, of one dtype, float32 or float64.

    Parameters
    ----------
    module : module
        The loaded ``xplstm.cpu._kernels``.
    dtype : dtype
    batch_size, hidden_size : int
        ``m`` and ``H`` (a step may cover the first ``k < m`` rows of a packed batch).
    """

    implementation = "compiled host"

    def __init__(self, module: Any, dtype: Any, batch_size: int, hidden_size: int) -> None:
        self.dtype = np.dtype(dtype)
        self.hidden_size = hidden_size
        self._forward = module.lstm_forward
        self._backward = module.lstm_backward

    def forward(self, gates: Any, recurrent: Any, c_prev: Any, c_next: Any, h_next: Any) -> None:
        """One forward step, in place (``lstm_forward_at`` per element).

        Parameters
        ----------
        gates : ndarray, (m, 4H)
            In: input projection plus bias. Out: the activated gates ``(i, f, g, o)``.
        recurrent : ndarray, (m, 4H)
        c_prev : ndarray, (m, H)
        c_next, h_next : ndarray, (m, H)
            Written.
        """
        self._forward(gates, recurrent, c_prev, c_next, h_next)

    def backward(self, gates: Any, dy: Any, dh: Any, dc: Any, c_prev: Any, c_next: Any) -> None:
        """One backward step, in place (``lstm_backward_at`` per element).

        Parameters
        ----------
        gates : ndarray, (m, 4H)
            In: the activated gates. Out: the gate pre-activation gradients.
        dy, dh : ndarray, (m, H)
        dc : ndarray, (m, H)
            In: gradient into ``c_next``. Out: gradient with respect to ``c_prev``.
        c_prev, c_next : ndarray, (m, H)
        """
        self._backward(gates, dy, dh, dc, c_prev, c_next)


class RNNCompiled:
    """The pointwise tanh- or ReLU-RNN step of ``kernels/rnn.cuh`` compiled for the host CPU.

    :class:`xplstm.cells.rnn.RNNTwin`'s contract (C-contiguous arrays of one dtype, float32 or
    float64).

    Parameters
    ----------
    module : module
        The loaded ``xplstm.cpu._kernels``.
    dtype : dtype
    batch_size, hidden_size : int
    relu : bool
        The ReLU step (``rnn_relu_*_element``) instead of the tanh one.
    """

    implementation = "compiled host"

    def __init__(
        self, module: Any, dtype: Any, batch_size: int, hidden_size: int, relu: bool = False
    ) -> None:
        self.dtype = np.dtype(dtype)
        self.relu = relu
        self._forward = module.rnn_relu_forward if relu else module.rnn_forward
        self._backward = module.rnn_relu_backward if relu else module.rnn_backward

    def forward(self, h_next: Any, recurrent: Any) -> None:
        """``h_next = tanh(h_next + recurrent)`` (or ReLU) in place; both ``(m, H)``."""
        self._forward(h_next, recurrent)

    def backward(self, dpre: Any, h_next: Any, dy: Any, dh: Any) -> None:
        """Writes the pre-activation gradient ``dpre`` ``(m, H)`` from ``dy + dh``."""
        self._backward(dpre, h_next, dy, dh)


def compiled_cell(kind: str, dtype: Any, batch_size: int, hidden_size: int) -> Any:
    """The compiled step of cell ``kind``, or ``None`` where the twin must run (the
    ``XPLSTM_CPU_KERNELS`` choice, another cell kind or dtype, no build)."""
    from . import COMPILED_KINDS, compiled_module, cpu_kernels

    if kind not in COMPILED_KINDS or np.dtype(dtype) not in (np.float32, np.float64):
        return None
    if cpu_kernels() != "compiled":
        return None
    if kind == "lstm":
        return LSTMCompiled(compiled_module(), dtype, batch_size, hidden_size)
    return RNNCompiled(compiled_module(), dtype, batch_size, hidden_size, relu=kind == "rnn_relu")
