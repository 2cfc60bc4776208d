"""``xplstm.LSTM``: a stacked, optionally bidirectional LSTM layer shaped like ``torch.nn.LSTM``.

The layer is an adapter over :mod:`xplstm.engine` (the shared orchestration, checks, files and
per-thread state live in :class:`xplstm.recurrent.RecurrentLayer`): per layer and direction it
runs :func:`xplstm.engine.lstm_forward` (:func:`xplstm.engine.lstm_inference` under
``no_grad``) and :func:`xplstm.engine.lstm_backward`. Parameters carry torch's names and shapes,
so ``model.load_state_dict({k: v.numpy() for k, v in torch_lstm.state_dict().items()})``
reproduces a torch model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import engine
from .recurrent import RecurrentLayer
from .serialization import LAYER_FORMAT
from .validation import check_state_pair
from .workspace import Workspace

__all__ = ["LSTM"]


class LSTM(RecurrentLayer):
    """A multi-layer LSTM over NumPy (CPU) or CuPy (GPU) arrays, shaped like ``torch.nn.LSTM``.

    Each layer computes, per step and direction, with gates stacked in torch order (i, f, g, o)::

        i, f, g, o = split(x_t @ W_ih.T + b_ih + h_{t-1} @ W_hh.T + b_hh)
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(c_t)                 # proj_size = 0
        h_t = (sigmoid(o) * tanh(c_t)) @ W_hr.T      # proj_size = P > 0 (LSTMP)

    Parameters
    ----------
    input_size : int
        Features per step of the input, ``in``.
    hidden_size : int
        Features of the hidden and cell states, ``H``.
    num_layers : int, default 1
        Stacked layers; layer ``k > 0`` takes the ``D * H`` outputs of layer ``k - 1``.
    bias : bool, default True
        Learn ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (absent when False).
    batch_first : bool, default False
        Inputs and outputs are ``(m, T, features)`` instead of ``(T, m, features)``. States are
        ``(num_layers * D, m, features)`` either way, as in torch.
    dropout : float, default 0.0
        In training mode (:meth:`train`, the default of a new layer), each output of every
        layer but the last is zeroed with this probability before the next layer reads it, and
        the others are scaled by ``1 / (1 - dropout)``, as in torch; in ``[0, 1)``. The masks
        come from the layer's own generator (seeded by ``seed``) and the backward uses the same
        masks. :meth:`eval` turns it off.
    bidirectional : bool, default False
        Add a reverse direction (``D = 2``); its parameters carry the suffix ``_reverse``.
    proj_size : int, default 0
        With ``0 < P < H``, an LSTM with projections (torch's ``proj_size``): ``h_t`` has ``P``
        features (``weight_hr_l{k}`` ``(P, H)``, ``weight_hh_l{k}`` ``(4H, P)``), and so do the
        outputs and ``h_n``; ``c_n`` keeps ``H``. Layer ``k > 0`` takes ``D * P`` features.
    peephole : bool, default False
        Peephole connections (Gers, Schraudolph and Schmidhuber 2002): ``i`` and ``f`` also see
        ``w_ci * c_{t-1}`` and ``w_cf * c_{t-1}``, ``o`` sees ``w_co * c_t`` (elementwise), with
        ``weight_peephole_l{k}`` ``(3, H)`` rows ``(w_ci, w_cf, w_co)``, initialized to zero (so
        a new layer computes what the same seed's plain LSTM does). Not in torch: its state
        dicts lack these keys. Combines with every other option; on CuPy it runs the plain
        step loop.
    zoneout_cell, zoneout_hidden : float, default 0.0
        Zoneout (Krueger et al. 2016), in ``[0, 1)``: in training mode each element of ``c_t``
        (``h_t``) keeps its previous value with this probability, ``c_t = d * c_{t-1} + (1 - d)
        * c~_t`` with a Bernoulli mask ``d`` per element and step, where ``c~_t`` and ``h~_t =
        o * tanh(c~_t)`` (projected when ``proj_size``) are the step's results from the kept
        states; in evaluation the masks' expectation, ``c_t = p * c_{t-1} + (1 - p) * c~_t``.
    recurrent_dropout : float, default 0.0
        Variational recurrent dropout (Gal and Ghahramani 2016), in ``[0, 1)``: in training mode
        ``h_{t-1}`` enters ``W_hh`` times one mask per sequence, layer and direction, fixed
        over time (0 with this probability, else ``1 / (1 - p)``); off in evaluation. The
        states themselves (outputs, ``h_n``, zoneout) are not dropped.
    dtype : str or numpy dtype, default "float32"
        ``float32`` or ``float64``: the type of the parameters, of every computation and of
        every output. Inputs of other real types are converted to it.
    device : str, default "cpu"
        ``"cpu"`` (NumPy arrays) or ``"cuda"`` / ``"cuda:N"`` (CuPy arrays on that GPU).
    seed : int or numpy.random.Generator, optional
        Seeds the initialization: every parameter is drawn uniformly from
        ``[-1/sqrt(H), 1/sqrt(H))``, as torch does, in float64 and then rounded to ``dtype`` (so
        one seed gives the same model in both dtypes up to rounding).

    Attributes
    ----------
    grads : dict of str to ndarray
        Parameter gradients, same keys and shapes as :meth:`state_dict`, on the layer's device.
        :meth:`backward` adds to them; :meth:`zero_grad` resets them to zero.
    training : bool
        Training mode (dropout active); set by :meth:`train` and :meth:`eval`.
    generator : numpy.random.Generator
        Draws the masks of a forward in training mode, for each layer ``k`` in turn: for each
        direction (forward, then reverse), with ``zoneout_cell`` ``d_c =
        generator.random((T, m, H), dtype=float32) < zoneout_cell``, with ``zoneout_hidden``
        ``d_h = generator.random((T, m, out), dtype=float32) < zoneout_hidden`` (step ``t``
        is the ``t``-th step the direction runs: the reverse direction's first step is each
        sequence's last), with ``recurrent_dropout`` ``generator.random((m, out),
        dtype=float32) >= recurrent_dropout`` (scaled by ``1 / (1 - p)``); then, for every
        layer but the last, the dropout mask ``keep = generator.random((T, m, D * out),
        dtype=float32) >= dropout`` (time-major), applied as ``keep / (1 - dropout)``. Seeded
        from ``seed``; restore its ``bit_generator.state`` to replay a forward's masks.

    Notes
    -----
    Parameters are reachable as attributes (``model.weight_ih_l0``), through
    :meth:`named_parameters` and :meth:`parameters`; these are the live arrays (update them in
    place, e.g. ``p -= lr * model.grads[name]``). A :meth:`forward` keeps references to them for
    its :meth:`backward`, so update them after the backward, not between the two.

    Inputs (``x``, states, ``dy``, ``dstate``) must be NumPy arrays for a CPU layer and CuPy
    arrays on the layer's GPU for a CUDA layer (anything else is a ``TypeError``: move data
    explicitly). Lists are not accepted, except for ``lengths``, which always lives on the host.
    Integer and other float inputs are converted to the layer's dtype.

    **Threads.** One layer may be called from many threads at once. Each thread has its own
    forward buffers and its own pending forward: a :meth:`backward` pairs with the last
    :meth:`forward` *of the same thread* (a thread with none pending gets a ``RuntimeError``,
    never another thread's record), and each call returns exactly what it would return alone.
    Concurrent backwards all add to the one :attr:`grads`, each adding its gradients under a
    lock in one go (all of them, or none if it fails), so :attr:`grads` ends as the sum over
    the backwards; floating-point addition is not associative, so that sum may differ in the
    last bits with the order the threads finish in. Give each thread its own layer (or sum
    per-thread grads yourself) when the order must not matter. Do not update the parameters,
    call :meth:`load_state_dict` or :meth:`zero_grad` while another thread is inside a
    :meth:`forward` or :meth:`backward`; :meth:`load_state_dict` discards every thread's
    pending forward. The buffers are kept per thread while the thread lives: a pool of ``N``
    threads holds ``N`` sets.

    Examples
    --------
    >>> import numpy as np, xplstm
    >>> model = xplstm.LSTM(3, 5, num_layers=2, bidirectional=True, seed=0)
    >>> x = np.ones((7, 4, 3), dtype=np.float32)  # (T, m, input_size)
    >>> y, (h_n, c_n) = model(x, lengths=[7, 2, 5, 1])
    >>> y.shape, h_n.shape
    ((7, 4, 10), (4, 4, 5))
    >>> dx, (dh0, dc0) = model.backward(np.ones_like(y))
    """

    _GATES = 4
    _FORMAT = LAYER_FORMAT
    _STATE_MEMBERS = ("h", "c")
    _VARIANTS = (
        "proj_size", "peephole", "zoneout_cell", "zoneout_hidden", "recurrent_dropout",
        "layer_norm",
    )  # fmt: skip

    def _direction_noise(self, steps: int, batch: int) -> dict[str, Any]:
        """Zoneout's keep arrays and the recurrent-dropout mask of one layer and direction, in
        the order and shapes :attr:`generator` documents (nothing drawn in evaluation)."""
        xp, noise = self._placement.xp, {}
        widths = {"zoneout_c": self.hidden_size, "zoneout_h": self.output_size}
        rates = {"zoneout_c": self.zoneout_cell, "zoneout_h": self.zoneout_hidden}
        for name, rate in rates.items():
            if not rate:
                continue
            if self.training:
                draws = self.generator.random((steps, batch, widths[name]), dtype=np.float32)
                if self.dtype == np.float32:  # 1.0 where the state is kept, in place
                    keep = np.less(draws, rate, out=draws)
                else:
                    keep = (draws < rate).astype(self.dtype)
                noise[name] = xp.asarray(keep)
            else:  # the masks' expectation, the same every step
                noise[name] = xp.full((batch, widths[name]), rate, dtype=self.dtype)
        if self.recurrent_dropout and self.training:
            shape = (batch, self.output_size)
            kept = self.generator.random(shape, dtype=np.float32) >= self.recurrent_dropout
            scale = np.asarray(1.0 / (1.0 - self.recurrent_dropout), dtype=self.dtype)
            noise["recurrent_mask"] = xp.asarray(kept * scale)
        return noise

    def _check_state(self, name: str, value: Any, batch: int) -> list[Any]:
        members = ("h0", "c0") if name == "state" else ("dh_n", "dc_n")
        return self._state_pair(name, value, members, batch)

    def _state_pair(self, name: str, pair: Any, members: tuple[str, str], batch: int) -> list:
        """``[h, c]`` from a ``(h, c)`` pair: ``h`` ``(num_layers * D, m, out)``, ``c``
        ``(num_layers * D, m, H)``, each or ``None``."""
        h_shape, c_shape = self._state_shapes(batch)
        return check_state_pair(
            name, pair, members, (h_shape, c_shape), self._placement, self.dtype
        )

    def _state_result(self, states: list[Any]) -> tuple[Any, Any]:
        return states[0], states[1]

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
        xp = self._placement.xp
        arguments = (sequence, weights["w_ih"], weights["w_hh"], bias, initial[0], initial[1])
        variants = {"w_hr": weights.get("w_hr"), "peephole": weights.get("peephole"), **noise}
        if self.layer_norm:
            variants["layer_norm"] = {
                role: value for role, value in weights.items() if role.startswith("layer_norm_")
            }
        if workspace is None:
            h, h_last, c_last = engine.lstm_inference(
                *arguments, lengths=lengths, xp=xp, **variants
            )
            return h, [h_last, c_last], None
        h, h_last, c_last, kept = engine.lstm_forward(
            *arguments, lengths=lengths, workspace=workspace, xp=xp, **variants
        )
        return h, [h_last, c_last], kept

    def _backward_direction(
        self, d_output: Any, d_final: list[Any], saved: Any
    ) -> tuple[Any, list[Any], dict[str, Any]]:
        dx, dh0, dc0, dw_ih, dw_hh, dbias, *variants = engine.lstm_backward(
            d_output, d_final[0], d_final[1], saved
        )
        gradients = {"w_ih": dw_ih, "w_hh": dw_hh, "b_ih": dbias, "b_hh": dbias}
        return dx, [dh0, dc0], {**gradients, **(variants[0] if variants else {})}
