"""Hyperparameters of a training run, stored in its checkpoints as JSON text (no pickles)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

__all__ = ["RESUMABLE_CHANGES", "TrainConfig"]

# Fields a resumed run may change: they do not alter the arithmetic of the steps already planned.
RESUMABLE_CHANGES = ("epochs",)


@dataclass(frozen=True)
class TrainConfig:
    """What a training run computes; two runs with equal configs take bitwise equal steps.

    Attributes
    ----------
    task : str
        ``"digits"`` or ``"text"``.
    text_path : str or None
        The UTF-8 text file of the ``"text"`` task.
    epochs : int
        Passes over the training examples (0 only writes the initial model).
    hidden_size, num_layers : int
    lr : float
        Adam's learning rate in the first epoch.
    lr_decay : float
        Factor applied to the learning rate after every epoch (epoch ``e`` uses
        ``lr * lr_decay**e``).
    batch_size : int
        Examples per step (the last batch of an epoch may be smaller).
    seed : int
        Seeds the initial weights and the shuffling.
    dtype : str
        ``"float32"`` or ``"float64"``.
    seq_length : int
        Steps per window of the text task.
    clip_norm : float
        Global-norm gradient clipping bound (0 disables it).
    forget_bias : float
        Initial forget-gate bias.
    layer_norm : bool
        The LayerNorm LSTM (``xplstm.LSTM(layer_norm=True)``).
    zoneout_cell, zoneout_hidden : float
        Zoneout probabilities of the cell and hidden states, in ``[0, 1)``.
    recurrent_dropout : float
        Variational dropout of ``h_{t-1}`` into the recurrent product, in ``[0, 1)``.
    dropout : float
        Dropout between stacked layers, in ``[0, 1)`` (needs ``num_layers >= 2``).

    The four regularizers act in training steps only; the test accuracy, the validation loss
    and sampling run the LSTM in eval mode.
    """

    task: str = "digits"
    text_path: str | None = None
    epochs: int = 25
    hidden_size: int = 64
    num_layers: int = 1
    lr: float = 0.01
    lr_decay: float = 0.88
    batch_size: int = 16
    seed: int = 0
    dtype: str = "float32"
    seq_length: int = 64
    clip_norm: float = 5.0
    forget_bias: float = 1.0
    layer_norm: bool = False
    zoneout_cell: float = 0.0
    zoneout_hidden: float = 0.0
    recurrent_dropout: float = 0.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        checks = [
            (self.task in ("digits", "text"), f"task must be digits or text, got {self.task!r}"),
            (self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}"),
            (self.hidden_size >= 1, f"hidden size must be >= 1, got {self.hidden_size}"),
            (self.num_layers >= 1, f"layers must be >= 1, got {self.num_layers}"),
            (self.lr > 0 and np.isfinite(self.lr), f"lr must be a positive number, got {self.lr}"),
            (0 < self.lr_decay <= 1, f"lr decay must be in (0, 1], got {self.lr_decay}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (
                self.dtype in ("float32", "float64"),
                f"dtype must be float32 or float64, got {self.dtype!r}",
            ),
            (self.seq_length >= 1, f"sequence length must be >= 1, got {self.seq_length}"),
            (self.clip_norm >= 0, f"clip norm must be >= 0, got {self.clip_norm}"),
            (np.isfinite(self.forget_bias), f"forget bias must be finite, got {self.forget_bias}"),
            (
                isinstance(self.layer_norm, bool),
                f"layer norm must be true or false, got {self.layer_norm!r}",
            ),
        ]
        for name in ("zoneout_cell", "zoneout_hidden", "recurrent_dropout", "dropout"):
            value = getattr(self, name)
            words = name.replace("_", " ")
            checks.append((0 <= value < 1, f"{words} must be in [0, 1), got {value}"))
        checks.append(
            (
                self.dropout == 0 or self.num_layers >= 2,
                f"dropout acts between stacked layers: needs layers >= 2, got {self.num_layers}",
            )
        )
        for holds, message in checks:
            if not holds:
                raise ValueError(message)

    def lstm_variants(self) -> dict[str, float | bool]:
        """The keyword arguments of :class:`xplstm.LSTM` beyond its sizes."""
        return {
            "layer_norm": self.layer_norm,
            "zoneout_cell": self.zoneout_cell,
            "zoneout_hidden": self.zoneout_hidden,
            "recurrent_dropout": self.recurrent_dropout,
            "dropout": self.dropout,
        }

    def to_array(self) -> np.ndarray:
        """The config as JSON in a 0-d unicode array."""
        return np.array(json.dumps(dataclasses.asdict(self), sort_keys=True))

    @classmethod
    def from_array(cls, array: np.ndarray) -> TrainConfig:
        """Inverse of :meth:`to_array`; a damaged config is a ``ValueError``."""
        try:
            fields = json.loads(str(np.asarray(array)[()]))
            known = {field.name for field in dataclasses.fields(cls)}
            return cls(**{name: value for name, value in fields.items() if name in known})
        except (TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"the stored training config is invalid: {error}") from error

    def differences(self, other: TrainConfig) -> list[str]:
        """Names of the fields whose values differ."""
        return [
            field.name
            for field in dataclasses.fields(self)
            if getattr(self, field.name) != getattr(other, field.name)
        ]
