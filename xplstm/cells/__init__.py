"""The recurrent cells' pointwise steps: one protocol per cell kind, one factory.

A cell is built once per sequence call for one ``(m, H)`` shape and dtype; the engine then calls
its ``forward`` and ``backward`` once per step on C-contiguous buffers it owns, with no checks in
between. :func:`make_cell` picks the implementation:

- NumPy arrays: the header's element functions compiled for the host CPU where built
  (:mod:`xplstm.cpu`, chosen by ``XPLSTM_CPU_KERNELS``), else the NumPy twin
  (``xplstm/cells/<cell>.py``, mirroring ``kernels/<cell>.cuh``);
- CuPy arrays: the fused CUDA kernels built from the same header (``xplstm.cuda.fused``), or
  with ``fused=False`` / ``XPLSTM_FUSED=0`` the twin on CuPy ufuncs (the *unfused* path).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..switches import env_switch
from .activations import StackedActivations, sigmoid
from .gru import GRUTwin
from .layer_norm import LayerNormLSTMTwin
from .lstm import LSTMPeepholeTwin, LSTMTwin
from .rnn import RNNReluTwin, RNNTwin
from .zoneout import ZoneoutTwin

__all__ = [
    "CELL_KINDS",
    "GRUCell",
    "GRUTwin",
    "LSTMCell",
    "LSTMPeepholeTwin",
    "LSTMTwin",
    "LayerNormLSTMTwin",
    "RNNCell",
    "RNNReluTwin",
    "RNNTwin",
    "StackedActivations",
    "Zoneout",
    "ZoneoutTwin",
    "fused_enabled",
    "make_cell",
    "sigmoid",
]


class LSTMCell(Protocol):
    """Pointwise LSTM step: see :class:`xplstm.cells.lstm.LSTMTwin` for the contract."""

    implementation: str

    def forward(self, gates: Any, recurrent: Any, c_prev: Any, c_next: Any, h_next: Any) -> None:
        """Gates ``(m, 4H)`` in place to activations; writes ``c_next`` and ``h_next``."""

    def backward(self, gates: Any, dy: Any, dh: Any, dc: Any, c_prev: Any, c_next: Any) -> None:
        """Gates in place to pre-activation gradients; ``dc`` in place to ``dc_prev``."""


class RNNCell(Protocol):
    """Pointwise tanh- or ReLU-RNN step: see :class:`xplstm.cells.rnn.RNNTwin` for the
    contract."""

    implementation: str

    def forward(self, h_next: Any, recurrent: Any) -> None:
        """``h_next = tanh(h_next + recurrent)`` in place."""

    def backward(self, dpre: Any, h_next: Any, dy: Any, dh: Any) -> None:
        """Writes the pre-activation gradient ``dpre``."""


class GRUCell(Protocol):
    """Pointwise GRU step: see :class:`xplstm.cells.gru.GRUTwin` for the contract."""

    implementation: str

    def forward(
        self, gates: Any, recurrent: Any, bias_hh: Any, h_prev: Any, hidden_n: Any, h_next: Any
    ) -> None:
        """Gates ``(m, 3H)`` in place to activations; writes ``hidden_n`` and ``h_next``."""

    def backward(
        self, gates: Any, drecurrent: Any, dy: Any, dh: Any, h_prev: Any, hidden_n: Any
    ) -> None:
        """Gates to input-side and ``drecurrent`` to recurrent-side pre-activation gradients;
        ``dh`` in place to its direct part ``dh_total * z``."""


_TWINS: dict[str, Any] = {
    "lstm": LSTMTwin,
    "lstm_peephole": LSTMPeepholeTwin,
    "rnn": RNNTwin,
    "rnn_relu": RNNReluTwin,
    "gru": GRUTwin,
    "zoneout": ZoneoutTwin,
    "lstm_layer_norm": LayerNormLSTMTwin,
}
CELL_KINDS = tuple(_TWINS)


def fused_enabled(fused: bool | None = None) -> bool:
    """Resolve the fused-kernel switch: the argument wins, else ``XPLSTM_FUSED`` (default on)."""
    return env_switch("XPLSTM_FUSED", True, fused)


def make_cell(
    kind: str, xp: Any, dtype: Any, batch_size: int, hidden_size: int, *, fused: bool | None = None
) -> Any:
    """The pointwise step of cell ``kind`` for one shape, dtype and backend.

    Parameters
    ----------
    kind : {"lstm", "lstm_peephole", "rnn", "rnn_relu", "gru", "zoneout", "lstm_layer_norm"}
        ``"rnn"`` is the tanh RNN, ``"rnn_relu"`` the ReLU one (same protocol);
        ``"lstm_peephole"`` takes the peephole weights as one more argument of each step;
        ``"zoneout"`` is the blend that follows a cell's step (:class:`Zoneout`);
        ``"lstm_layer_norm"`` the LayerNorm LSTM step (:class:`LayerNormLSTMTwin`'s contract).
    xp : module
        ``numpy`` or ``cupy``: the backend of every array the cell will see.
    dtype : dtype
    batch_size, hidden_size : int
        ``m`` and ``H``.
    fused : bool, optional
        CuPy only: the fused CUDA kernels (default, see :func:`fused_enabled`) or the twin on
        CuPy ufuncs. NumPy runs the compiled CPU kernels for the kinds they cover (see
        :func:`xplstm.cpu.cpu_kernels`), else the twin.

    Returns
    -------
    LSTMCell, RNNCell, GRUCell or Zoneout
    """
    if kind not in _TWINS:
        raise ValueError(f"kind must be one of {CELL_KINDS}, got {kind!r}")
    if xp is not np and fused_enabled(fused):
        from ..cuda.fused import fused_cell

        return fused_cell(kind, dtype, batch_size, hidden_size)
    if xp is np:
        from ..cpu.cells import compiled_cell

        compiled = compiled_cell(kind, dtype, batch_size, hidden_size)
        if compiled is not None:
            return compiled
    return _TWINS[kind](xp, dtype, batch_size, hidden_size)
