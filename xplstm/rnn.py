"""``xplstm.RNN``: a stacked, optionally bidirectional Elman RNN shaped like ``torch.nn.RNN``.

An adapter over :func:`xplstm.engine.rnn_forward` and :func:`xplstm.engine.rnn_backward` (the
orchestration, checks, files and per-thread state are :class:`xplstm.recurrent.RecurrentLayer`'s).
Parameters carry torch's names and shapes, so
``model.load_state_dict({k: v.numpy() for k, v in torch_rnn.state_dict().items()})`` reproduces
a torch model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import engine
from .recurrent import SingleStateLayer
from .serialization import RNN_LAYER_FORMAT
from .workspace import Workspace

__all__ = ["RNN"]

NONLINEARITIES = ("tanh", "relu")


class RNN(SingleStateLayer):
    """A multi-layer Elman RNN over NumPy (CPU) or CuPy (GPU) arrays, like ``torch.nn.RNN``.

    Each layer computes, per step and direction::

        h_t = act(x_t @ W_ih.T + b_ih + h_{t-1} @ W_hh.T + b_hh),  act = tanh or relu

    Parameters
    ----------
    input_size, hidden_size, num_layers
        As for :class:`xplstm.LSTM`.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        ``act``; ReLU's gradient is taken where the output is positive (0 elsewhere), as torch.
    bias, batch_first, dropout, bidirectional, dtype, device, seed
        As for :class:`xplstm.LSTM`: parameters ``weight_ih_l{k}`` ``(H, in_k)``,
        ``weight_hh_l{k}`` ``(H, H)``, ``bias_ih_l{k}`` and ``bias_hh_l{k}`` ``(H,)``
        (``_reverse`` for the reverse direction), initialized uniformly in
        ``[-1/sqrt(H), 1/sqrt(H))``.

    Notes
    -----
    Everything but the cell is :class:`xplstm.LSTM`'s (see its notes), with one state as in
    :class:`xplstm.GRU`: ``forward(x, h0=None, *, lengths=None) -> (y, h_n)`` and
    ``backward(dy, dh_n=None) -> (dx, dh0)``. With ``lengths`` the steps past each length run on
    zeroed inputs and are then ignored (exact, as the gradients there are zero); on CuPy the
    steps use the fused kernels of ``kernels/rnn.cuh``.

    Examples
    --------
    >>> import numpy as np, xplstm
    >>> model = xplstm.RNN(3, 5, num_layers=2, nonlinearity="relu", seed=0)
    >>> y, h_n = model(np.ones((7, 4, 3), dtype=np.float32), lengths=[7, 2, 5, 1])
    >>> y.shape, h_n.shape
    ((7, 4, 5), (2, 4, 5))
    """

    _GATES = 1
    _FORMAT = RNN_LAYER_FORMAT

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: Any = "float32",
        device: str = "cpu",
        seed: Any = None,
    ) -> None:
        super().__init__(
            input_size, hidden_size, num_layers, bias=bias, batch_first=batch_first,
            dropout=dropout, bidirectional=bidirectional, dtype=dtype, device=device, seed=seed,
            nonlinearity=nonlinearity,
        )  # fmt: skip

    def _check_nonlinearity(self, nonlinearity: Any) -> None:
        if nonlinearity is None:
            nonlinearity = "tanh"
        if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    def _forward_direction(
        self,
        sequence: Any,
        weights: dict[str, Any],
        initial: list[Any],
        lengths: np.ndarray | None,
        workspace: Workspace | None,
        noise: dict[str, Any],
    ) -> tuple[Any, list[Any], Any]:
        bias = weights["b_ih"] + weights["b_hh"] if self.bias else None
        h, h_last, kept = engine.rnn_forward(
            sequence, weights["w_ih"], weights["w_hh"], bias, initial[0],
            lengths=lengths, xp=self._placement.xp, nonlinearity=self.nonlinearity,
        )  # fmt: skip
        # The engine's h is a new array each call; under no_grad (no workspace) keep no record.
        return h, [h_last], None if workspace is None else kept

    def _backward_direction(
        self, d_output: Any, d_final: list[Any], saved: Any
    ) -> tuple[Any, list[Any], dict[str, Any]]:
        dx, dh0, dw_ih, dw_hh, dbias = engine.rnn_backward(d_output, d_final[0], saved)
        return dx, [dh0], {"w_ih": dw_ih, "w_hh": dw_hh, "b_ih": dbias, "b_hh": dbias}

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.nonlinearity == "tanh" else f"{text}, nonlinearity='relu'"
