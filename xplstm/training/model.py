"""Small models built from :class:`xplstm.layer.LSTM` and a :class:`Dense` head.

Both models keep time-major inputs ``(T, m, features)`` and expose their parameters and
gradients as flat dicts with prefixed names (``"lstm.weight_ih_l0"``, ``"head.weight"``), which is
what the optimizers and checkpoints use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..backend import asnumpy
from ..layer import LSTM
from ..serialization import HEAD_PREFIX, LSTM_PREFIX
from .dense import Dense

__all__ = ["CharModel", "SequenceClassifier", "init_forget_bias"]


def init_forget_bias(lstm: LSTM, value: float) -> None:
    """Set the forget-gate bias of every layer and direction so that it adds up to ``value``.

    Gates are stacked in torch order ``(i, f, g, o)``, so the forget gate is rows ``H:2H`` of
    ``bias_ih_*`` and ``bias_hh_*``; the first gets ``value`` and the second zero (the engine
    adds them).
    """
    hidden = lstm.hidden_size
    state = lstm.state_dict()
    found = False
    for name, array in state.items():
        if name.startswith("bias_ih"):
            array[hidden : 2 * hidden] = value
            found = True
        elif name.startswith("bias_hh"):
            array[hidden : 2 * hidden] = 0
    if not found:
        raise ValueError("the LSTM has no biases (bias=False): cannot set a forget-gate bias")
    lstm.load_state_dict(state)


def _head_rng(seed: int | None) -> np.random.Generator:
    """A generator for the head's weights that differs from the LSTM's for the same seed."""
    return np.random.default_rng(None if seed is None else [seed, 1])


class _LSTMWithHead:
    """Shared plumbing of the models: ``self.lstm``, ``self.head`` and their parameters."""

    lstm: LSTM
    head: Dense

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        num_layers: int,
        *,
        dtype: str,
        device: str,
        seed: int | None,
        forget_bias: float | None,
        lstm: LSTM | None,
        lstm_options: Mapping[str, Any] | None,
    ) -> None:
        self.lstm = lstm or LSTM(
            input_size,
            hidden_size,
            num_layers,
            dtype=dtype,
            device=device,
            seed=seed,
            **(lstm_options or {}),
        )
        if lstm is None and forget_bias is not None:
            init_forget_bias(self.lstm, forget_bias)
        self.head = Dense(
            hidden_size, output_size, rng=_head_rng(seed), dtype=dtype, xp=self.lstm.xp
        )

    @property
    def xp(self) -> Any:
        """``numpy`` or ``cupy``: where the parameters live."""
        return self.lstm.xp

    def parameters(self) -> dict[str, Any]:
        """The live parameter arrays (updated in place by an optimizer), by prefixed name."""
        named = {LSTM_PREFIX + name: value for name, value in lstm_parameters(self.lstm).items()}
        named.update({HEAD_PREFIX + name: value for name, value in self.head.params.items()})
        return named

    def gradients(self) -> dict[str, Any]:
        """The accumulated gradients, with the names of :meth:`parameters`."""
        named = {LSTM_PREFIX + name: value for name, value in self.lstm.grads.items()}
        named.update({HEAD_PREFIX + name: value for name, value in self.head.grads.items()})
        return named

    def zero_grad(self) -> None:
        self.lstm.zero_grad()
        self.head.zero_grad()

    def head_state(self) -> dict[str, np.ndarray]:
        """The head's weights as host arrays with prefixed names (for a checkpoint)."""
        return {HEAD_PREFIX + name: asnumpy(value) for name, value in self.head.params.items()}

    def load_head_state(self, arrays: dict[str, np.ndarray]) -> None:
        prefix = len(HEAD_PREFIX)
        self.head.load_state_dict(
            {name[prefix:]: value for name, value in arrays.items() if name.startswith(HEAD_PREFIX)}
        )


def lstm_parameters(lstm: LSTM) -> dict[str, Any]:
    """The LSTM's live parameter arrays by torch name (the same keys as its ``state_dict``)."""
    return dict(lstm.named_parameters())


class SequenceClassifier(_LSTMWithHead):
    """Classify a whole sequence from the top layer's output at the last step.

    Parameters
    ----------
    input_size, hidden_size, num_classes, num_layers : int
    dtype : str
        ``"float32"`` or ``"float64"``.
    device : str
        ``"cpu"`` (NumPy) or ``"cuda"`` (CuPy).
    seed : int, optional
        Seeds the initial weights.
    forget_bias : float, optional
        Initial forget-gate bias (see :func:`init_forget_bias`); ``None`` keeps the LSTM's.
    lstm : LSTM, optional
        An existing LSTM (a loaded checkpoint's) instead of a new one.
    lstm_options : mapping, optional
        More keyword arguments of the new :class:`xplstm.LSTM` (``layer_norm``,
        ``zoneout_cell``, ``dropout``, ...).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_classes: int,
        num_layers: int = 1,
        *,
        dtype: str = "float32",
        device: str = "cpu",
        seed: int | None = None,
        forget_bias: float | None = 1.0,
        lstm: LSTM | None = None,
        lstm_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_classes,
            num_layers,
            dtype=dtype,
            device=device,
            seed=seed,
            forget_bias=forget_bias,
            lstm=lstm,
            lstm_options=lstm_options,
        )
        self.num_classes = num_classes
        self._output_shape: tuple[int, ...] = ()

    def forward(self, inputs: Any) -> Any:
        """Class scores.

        Parameters
        ----------
        inputs : ndarray, (T, m, input_size)
            On the model's backend, in its dtype.

        Returns
        -------
        logits : ndarray, (m, num_classes)
        """
        outputs, _ = self.lstm.forward(inputs)
        self._output_shape = outputs.shape
        return self.head.forward(outputs[-1])

    def backward(self, dlogits: Any) -> None:
        """Accumulate gradients of every parameter from ``dlogits`` ``(m, num_classes)``."""
        dlast = self.head.backward(dlogits)
        doutputs = self.xp.zeros(self._output_shape, dtype=dlast.dtype)
        doutputs[-1] = dlast
        self.lstm.backward(doutputs)


class CharModel(_LSTMWithHead):
    """Next-character model: one-hot characters in, class scores for the next one at every step.

    Parameters
    ----------
    vocab_size, hidden_size, num_layers : int
    dtype, device, seed, forget_bias, lstm, lstm_options
        As for :class:`SequenceClassifier`.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        dtype: str = "float32",
        device: str = "cpu",
        seed: int | None = None,
        forget_bias: float | None = 1.0,
        lstm: LSTM | None = None,
        lstm_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            vocab_size,
            hidden_size,
            vocab_size,
            num_layers,
            dtype=dtype,
            device=device,
            seed=seed,
            forget_bias=forget_bias,
            lstm=lstm,
            lstm_options=lstm_options,
        )
        self.vocab_size = vocab_size

    def one_hot(self, indices: np.ndarray) -> Any:
        """``(T, m)`` character indices -> ``(T, m, vocab_size)`` one-hot on the model's backend."""
        dtype = self.head.weight.dtype
        encoded = np.zeros((*indices.shape, self.vocab_size), dtype=dtype)
        np.put_along_axis(encoded, np.asarray(indices)[..., None], 1, axis=-1)
        return self.xp.asarray(encoded)

    def forward(self, inputs: Any, state: Any = None) -> tuple[Any, Any]:
        """Scores for the next character at every step.

        Parameters
        ----------
        inputs : ndarray, (T, m, vocab_size)
            One-hot characters on the model's backend.
        state : tuple of ndarray, optional
            ``(h, c)``, each ``(num_layers, m, hidden_size)``, carried between calls when sampling.

        Returns
        -------
        logits : ndarray, (T, m, vocab_size)
        state : tuple of ndarray
        """
        outputs, state = self.lstm.forward(inputs, state)
        return self.head.forward(outputs), state

    def backward(self, dlogits: Any) -> None:
        """Accumulate gradients of every parameter from ``dlogits`` ``(T, m, vocab_size)``."""
        self.lstm.backward(self.head.backward(dlogits))
