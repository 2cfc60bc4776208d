"""``xplstm.GRU``: a stacked, optionally bidirectional GRU layer shaped like ``torch.nn.GRU``.

The layer is an adapter over :mod:`xplstm.engine` (the shared orchestration, checks, files and
per-thread state live in :class:`xplstm.recurrent.RecurrentLayer`): per layer and direction it
runs :func:`xplstm.engine.gru_forward` and :func:`xplstm.engine.gru_backward`. Parameters carry
torch's names and shapes, so
``model.load_state_dict({k: v.numpy() for k, v in torch_gru.state_dict().items()})`` reproduces
a torch model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import engine
from .recurrent import SingleStateLayer
from .serialization import GRU_LAYER_FORMAT
from .workspace import Workspace

__all__ = ["GRU"]


class GRU(SingleStateLayer):
    """A multi-layer GRU over NumPy (CPU) or CuPy (GPU) arrays, shaped like ``torch.nn.GRU``.

    Each layer computes, per step and direction, with gates stacked in torch order (r, z, n)::

        r = sigmoid(x_t @ W_ir.T + b_ir + h_{t-1} @ W_hr.T + b_hr)
        z = sigmoid(x_t @ W_iz.T + b_iz + h_{t-1} @ W_hz.T + b_hz)
        n = tanh(x_t @ W_in.T + b_in + r * (h_{t-1} @ W_hn.T + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    Parameters
    ----------
    input_size : int
        Features per step of the input, ``in``.
    hidden_size : int
        Features of the hidden state, ``H``.
    num_layers : int, default 1
        Stacked layers; layer ``k > 0`` takes the ``D * H`` outputs of layer ``k - 1``.
    bias : bool, default True
        Learn ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (absent when False).
    batch_first : bool, default False
        Inputs and outputs are ``(m, T, features)`` instead of ``(T, m, features)``. The state
        is ``(num_layers * D, m, H)`` either way, as in torch.
    dropout : float, default 0.0
        In training mode, dropout on the outputs of every layer but the last, as in torch
        (see :class:`xplstm.LSTM`).
    bidirectional : bool, default False
        Add a reverse direction (``D = 2``); its parameters carry the suffix ``_reverse``.
    dtype : str or numpy dtype, default "float32"
        ``float32`` or ``float64``.
    device : str, default "cpu"
        ``"cpu"`` (NumPy arrays) or ``"cuda"`` / ``"cuda:N"`` (CuPy arrays on that GPU).
    seed : int or numpy.random.Generator, optional
        Seeds the initialization: every parameter uniform in ``[-1/sqrt(H), 1/sqrt(H))``, as
        torch does, drawn in float64 and rounded to ``dtype``.

    Attributes
    ----------
    grads : dict of str to ndarray
        Parameter gradients, keyed like :meth:`state_dict`; :meth:`backward` adds to them.

    Notes
    -----
    Everything but the cell is :class:`xplstm.LSTM`'s (see its notes): parameters
    ``weight_ih_l{k}`` ``(3H, in_k)``, ``weight_hh_l{k}`` ``(3H, H)``, ``bias_ih_l{k}`` and
    ``bias_hh_l{k}`` ``(3H,)`` (``_reverse`` for the reverse direction); ``forward(x, h0=None,
    *, lengths=None) -> (y, h_n)`` and ``backward(dy, dh_n=None) -> (dx, dh0)``; packed-sequence
    ``lengths``; per-thread forward records; :class:`xplstm.no_grad`; ``save``/``load`` (a
    GRU file is refused by ``xplstm.LSTM.load`` and the reverse). On CuPy only the plain step
    loop exists (``gpu_loop`` ``"cupy"``); under ``no_grad`` the forward runs the recording
    engine and drops its record.

    Examples
    --------
    >>> import numpy as np, xplstm
    >>> model = xplstm.GRU(3, 5, num_layers=2, bidirectional=True, seed=0)
    >>> x = np.ones((7, 4, 3), dtype=np.float32)  # (T, m, input_size)
    >>> y, h_n = model(x, lengths=[7, 2, 5, 1])
    >>> y.shape, h_n.shape
    ((7, 4, 10), (4, 4, 5))
    >>> dx, dh0 = model.backward(np.ones_like(y))
    """

    _GATES = 3
    _FORMAT = GRU_LAYER_FORMAT

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
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
        )  # fmt: skip

    def _forward_direction(
        self,
        sequence: Any,
        weights: dict[str, Any],
        initial: list[Any],
        lengths: np.ndarray | None,
        workspace: Workspace | None,
        noise: dict[str, Any],
    ) -> tuple[Any, list[Any], Any]:
        w_ih, w_hh, b_ih, b_hh = (weights.get(role) for role in ("w_ih", "w_hh", "b_ih", "b_hh"))
        h, h_last, kept = engine.gru_forward(
            sequence, w_ih, w_hh, b_ih, b_hh, initial[0],
            lengths=lengths, workspace=workspace, xp=self._placement.xp,
        )  # fmt: skip
        if workspace is None:  # under no_grad: hand out the engine's buffer, keep no record
            return h, [h_last], None
        return h, [h_last], kept

    def _backward_direction(
        self, d_output: Any, d_final: list[Any], saved: Any
    ) -> tuple[Any, list[Any], dict[str, Any]]:
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = engine.gru_backward(d_output, d_final[0], saved)
        return dx, [dh0], {"w_ih": dw_ih, "w_hh": dw_hh, "b_ih": db_ih, "b_hh": db_hh}
