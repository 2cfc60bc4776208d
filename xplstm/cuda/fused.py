"""Fused CUDA cells: each step is one CuPy ``ElementwiseKernel`` launch of a header function.

The kernels come from :mod:`xplstm.cuda.specs`, are compiled by CuPy on their first launch and
memoized per cell, dtype and device. A cell is built once per sequence call; per step it only
launches (the engine hands it C-contiguous buffers of the planned shape).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..cells.layer_norm import LayerNormLSTMSteps
from .memo import build_once
from .specs import kernel_preamble, kernel_specs

__all__ = [
    "FusedGRUCell",
    "FusedLSTMCell",
    "FusedRNNCell",
    "FusedZoneout",
    "elementwise_kernels",
    "fused_cell",
]

_KERNELS: dict[tuple[str, np.dtype, int], dict[str, Any]] = {}


def elementwise_kernels(cell: str, dtype: Any) -> dict[str, Any]:
    """``{"forward": kernel, "backward": kernel}`` for ``cell`` on the current CuPy device.

    Built once per cell, dtype and device. Raises ``TypeError`` for a dtype other than float32
    or float64.
    """
    import cupy

    dtype = np.dtype(dtype)
    specs = kernel_specs(cell, dtype)  # checks the dtype before anything is built

    def build() -> dict[str, Any]:
        preamble = kernel_preamble(cell)
        return {
            step: cupy.ElementwiseKernel(
                spec.in_params, spec.out_params, spec.operation, spec.name, preamble=preamble
            )
            for step, spec in specs.items()
        }

    return build_once(_KERNELS, (cell, dtype, cupy.cuda.runtime.getDevice()), build)


class FusedLSTMCell:
    """The LSTM step as fused kernels (same contract as :class:`xplstm.cells.LSTMTwin`)."""

    implementation = "fused cuda"

    def __init__(self, dtype: Any, batch_size: int, hidden_size: int) -> None:
        kernels = elementwise_kernels("lstm", dtype)
        self._forward, self._backward = kernels["forward"], kernels["backward"]
        self.hidden_size = hidden_size

    def forward(self, gates: Any, recurrent: Any, c_prev: Any, c_next: Any, h_next: Any) -> None:
        """One forward step (``lstm_forward_element``), all arrays C-contiguous."""
        size = c_next.shape[0] * self.hidden_size  # fewer rows than m in a packed batch
        if size:
            self._forward(recurrent, c_prev, self.hidden_size, gates, c_next, h_next, size=size)

    def backward(self, gates: Any, dy: Any, dh: Any, dc: Any, c_prev: Any, c_next: Any) -> None:
        """One backward step (``lstm_backward_element``), all arrays C-contiguous."""
        size = dc.shape[0] * self.hidden_size
        if size:
            self._backward(dy, dh, c_prev, c_next, self.hidden_size, gates, dc, size=size)


class FusedLSTMPeepholeCell:
    """The peephole-LSTM step as fused kernels (contract of
    :class:`xplstm.cells.LSTMPeepholeTwin`)."""

    implementation = "fused cuda"

    def __init__(self, dtype: Any, batch_size: int, hidden_size: int) -> None:
        kernels = elementwise_kernels("lstm_peephole", dtype)
        self._forward, self._backward = kernels["forward"], kernels["backward"]
        self.hidden_size = hidden_size

    def forward(
        self, gates: Any, recurrent: Any, c_prev: Any, c_next: Any, h_next: Any, peephole: Any
    ) -> None:
        """One forward step (``lstm_peephole_forward_element``), all arrays C-contiguous."""
        size = c_next.shape[0] * self.hidden_size
        if size:
            self._forward(recurrent, peephole, c_prev, self.hidden_size, gates, c_next, h_next,
                          size=size)  # fmt: skip

    def backward(
        self, gates: Any, dy: Any, dh: Any, dc: Any, c_prev: Any, c_next: Any, peephole: Any
    ) -> None:
        """One backward step (``lstm_peephole_backward_element``), all arrays C-contiguous."""
        size = dc.shape[0] * self.hidden_size
        if size:
            self._backward(peephole, dy, dh, c_prev, c_next, self.hidden_size, gates, dc,
                           size=size)  # fmt: skip


class FusedRNNCell:
    """The tanh-RNN step as fused kernels (same contract as :class:`xplstm.cells.RNNTwin`)."""

    implementation = "fused cuda"
    kind = "rnn"

    def __init__(self, dtype: Any, batch_size: int, hidden_size: int) -> None:
        kernels = elementwise_kernels(self.kind, dtype)
        self._forward, self._backward = kernels["forward"], kernels["backward"]
        self.size = batch_size * hidden_size

    def forward(self, h_next: Any, recurrent: Any) -> None:
        """One forward step (``rnn_forward_element``), all arrays C-contiguous."""
        if self.size:
            self._forward(recurrent, h_next, size=self.size)

    def backward(self, dpre: Any, h_next: Any, dy: Any, dh: Any) -> None:
        """One backward step (``rnn_backward_element``), all arrays C-contiguous."""
        if self.size:
            self._backward(h_next, dy, dh, dpre, size=self.size)


class FusedRNNReluCell(FusedRNNCell):
    """The ReLU-RNN step as fused kernels (``rnn_relu_*_element``)."""

    kind = "rnn_relu"


class FusedGRUCell:
    """The GRU step as fused kernels (same contract as :class:`xplstm.cells.GRUTwin`)."""

    implementation = "fused cuda"

    def __init__(self, dtype: Any, batch_size: int, hidden_size: int) -> None:
        kernels = elementwise_kernels("gru", dtype)
        self._forward, self._backward = kernels["forward"], kernels["backward"]
        self.hidden_size = hidden_size

    def forward(
        self, gates: Any, recurrent: Any, bias_hh: Any, h_prev: Any, hidden_n: Any, h_next: Any
    ) -> None:
        """One forward step (``gru_forward_element``), all arrays C-contiguous."""
        size = h_next.shape[0] * self.hidden_size  # fewer rows than m in a packed batch
        if size:
            self._forward(recurrent, bias_hh, h_prev, self.hidden_size, gates, hidden_n, h_next,
                          size=size)  # fmt: skip

    def backward(
        self, gates: Any, drecurrent: Any, dy: Any, dh: Any, h_prev: Any, hidden_n: Any
    ) -> None:
        """One backward step (``gru_backward_element``), all arrays C-contiguous."""
        size = dh.shape[0] * self.hidden_size
        if size:
            self._backward(dy, h_prev, hidden_n, self.hidden_size, gates, drecurrent, dh,
                           size=size)  # fmt: skip


class FusedZoneout:
    """Zoneout as fused kernels (same contract as :class:`xplstm.cells.ZoneoutTwin`)."""

    implementation = "fused cuda"

    def __init__(self, dtype: Any, batch_size: int, hidden_size: int) -> None:
        kernels = elementwise_kernels("zoneout", dtype)
        self._forward, self._backward = kernels["forward"], kernels["backward"]
        self.hidden_size = hidden_size

    def forward(self, keep: Any, previous: Any, value: Any) -> None:
        """``zoneout_forward_element``, all arrays C-contiguous."""
        size = value.shape[0] * self.hidden_size  # fewer rows than m in a packed batch
        if size:
            self._forward(keep, previous, value, size=size)

    def backward(self, keep: Any, gradient: Any, carried: Any) -> None:
        """``zoneout_backward_element``, all arrays C-contiguous."""
        size = gradient.shape[0] * self.hidden_size
        if size:
            self._backward(keep, gradient, carried, size=size)


class FusedLayerNormLSTMCell(LayerNormLSTMSteps):
    """The LayerNorm LSTM step as kernel launches of ``kernels/layer_norm.cuh`` (contract of
    :class:`xplstm.cells.LayerNormLSTMTwin`): each piece is one launch over rows or elements."""

    implementation = "fused cuda"

    def __init__(self, dtype: Any, batch_size: int, hidden_size: int) -> None:
        import cupy

        self.xp, self.dtype, self.hidden_size = cupy, np.dtype(dtype), hidden_size
        self._kernels = {
            **elementwise_kernels("layer_norm", dtype),
            **elementwise_kernels("lstm_layer_norm", dtype),
        }
        self._specs = {
            **kernel_specs("layer_norm", dtype),
            **kernel_specs("lstm_layer_norm", dtype),
        }
        self.row_scratch = cupy.empty((2, batch_size), dtype=self.dtype)
        self.d_c_hat = cupy.empty((batch_size, hidden_size), dtype=self.dtype)

    def _launch(self, step: str, size: int, **named: Any) -> None:
        spec = self._specs[step]
        if size:
            self._kernels[step](*(named[name] for name in (*spec.in_names, *spec.out_names)),
                                size=size)  # fmt: skip

    def statistics(self, x: Any, width: int, mean: Any, rstd: Any) -> None:
        self._launch("statistics", x.shape[0], width=width, x=x, mean=mean, rstd=rstd)

    def normalize(
        self, mean: Any, rstd: Any, gain: Any, shift: Any, x_hat: Any, value: Any, width: int
    ) -> None:
        self._launch("forward", value.size, width=width, mean=mean, rstd=rstd, gain=gain,
                     shift=shift, x_hat=x_hat, value=value)  # fmt: skip

    def backward_statistics(
        self, d_hat: Any, x_hat: Any, width: int, mean_d: Any, mean_dx: Any
    ) -> None:
        self._launch("backward_statistics", d_hat.shape[0], width=width, d_hat=d_hat,
                     x_hat=x_hat, mean_d=mean_d, mean_dx=mean_dx)  # fmt: skip

    def normalize_backward(
        self, x_hat: Any, rstd: Any, mean_d: Any, mean_dx: Any, gradient: Any, width: int
    ) -> None:
        self._launch("backward", gradient.size, width=width, x_hat=x_hat, rstd=rstd,
                     mean_d=mean_d, mean_dx=mean_dx, gradient=gradient)  # fmt: skip

    def gates(self, mean_h: Any, rstd_h: Any, gain_h: Any, shift_h: Any, c_prev: Any,
              gates: Any, recurrent: Any, c_next: Any) -> None:  # fmt: skip
        self._launch("gates", c_next.size, hidden=self.hidden_size, mean_h=mean_h,
                     rstd_h=rstd_h, gain_h=gain_h, shift_h=shift_h, c_prev=c_prev, gates=gates,
                     recurrent=recurrent, c_next=c_next)  # fmt: skip

    def output(self, gates: Any, c_next: Any, mean_c: Any, rstd_c: Any, gain_c: Any,
               shift_c: Any, c_hat: Any, h_next: Any) -> None:  # fmt: skip
        self._launch("output", c_next.size, hidden=self.hidden_size, gates=gates, c_next=c_next,
                     mean_c=mean_c, rstd_c=rstd_c, gain_c=gain_c, shift_c=shift_c, c_hat=c_hat,
                     h_next=h_next)  # fmt: skip

    def output_backward(self, c_hat: Any, gain_c: Any, shift_c: Any, dy: Any, dh: Any,
                        gates: Any, d_n: Any, d_c_hat: Any) -> None:  # fmt: skip
        self._launch("output_backward", c_hat.size, hidden=self.hidden_size, c_hat=c_hat,
                     gain_c=gain_c, shift_c=shift_c, dy=dy, dh=dh, gates=gates, d_n=d_n,
                     d_c_hat=d_c_hat)  # fmt: skip

    def gates_backward(self, c_hat: Any, rstd_c: Any, d_c_hat: Any, mean_d: Any, mean_dx: Any,
                       c_prev: Any, gain_h: Any, gates: Any, dc: Any,
                       d_recurrent: Any) -> None:  # fmt: skip
        self._launch("gates_backward", c_hat.size, hidden=self.hidden_size, c_hat=c_hat,
                     rstd_c=rstd_c, d_c_hat=d_c_hat, mean_d=mean_d, mean_dx=mean_dx,
                     c_prev=c_prev, gain_h=gain_h, gates=gates, dc=dc,
                     d_recurrent=d_recurrent)  # fmt: skip


_FUSED = {
    "lstm": FusedLSTMCell,
    "lstm_peephole": FusedLSTMPeepholeCell,
    "rnn": FusedRNNCell,
    "rnn_relu": FusedRNNReluCell,
    "gru": FusedGRUCell,
    "zoneout": FusedZoneout,
    "lstm_layer_norm": FusedLayerNormLSTMCell,
}


def fused_cell(kind: str, dtype: Any, batch_size: int, hidden_size: int) -> Any:
    """The fused CUDA cell of ``kind`` (a :data:`xplstm.cells.CELL_KINDS` entry) for one shape."""
    return _FUSED[kind](dtype, batch_size, hidden_size)
