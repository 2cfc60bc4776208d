"""Training checkpoints: a model file for :meth:`xplstm.LSTM.load` and a full training state.

A checkpoint named ``NAME.npz`` is two ``.npz`` archives, each written atomically with
:func:`xplstm.npz_io.save_npz_atomic` (temporary file, fsync, rename):

- ``NAME.training.npz``, written first, is self-contained: the LSTM's configuration
  (``lstm.config``, JSON) and parameters (``lstm.<torch name>``) and the rest of the training
  state under the prefixes ``head.``, ``optimizer.``, ``trainer.`` and ``text.``. Resuming and
  sampling read only this file, so a run killed at any moment resumes from one complete
  checkpoint.
- ``NAME.npz`` is :meth:`xplstm.LSTM.save`'s file of the same LSTM (a plain model for
  :meth:`xplstm.LSTM.load`, which refuses keys it does not know). After a kill between the two
  writes it may lag one checkpoint behind ``NAME.training.npz``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import asnumpy
from ..layer import LSTM
from ..npz_io import load_npz, save_npz_atomic

__all__ = [
    "TRAINING_PREFIXES",
    "Checkpoint",
    "read_checkpoint",
    "training_state_path",
    "write_checkpoint",
]

LSTM_PREFIX = "lstm."
LSTM_CONFIG_KEY = LSTM_PREFIX + "config"
TRAINING_PREFIXES = ("head.", "optimizer.", "trainer.", "text.")
TRAINING_SUFFIX = ".training.npz"
_LSTM_ARGUMENTS = (
    "input_size",
    "hidden_size",
    "num_layers",
    "bias",
    "batch_first",
    "bidirectional",
)


def training_state_path(path: str | os.PathLike) -> Path:
    """``DIR/NAME.npz`` -> ``DIR/NAME.training.npz`` (a training-state path maps to itself)."""
    path = Path(path)
    if path.name.endswith(TRAINING_SUFFIX):
        return path
    stem = path.name[: -len(".npz")] if path.name.endswith(".npz") else path.name
    return path.with_name(stem + TRAINING_SUFFIX)


def _lstm_config(lstm: LSTM) -> np.ndarray:
    config = {name: getattr(lstm, name) for name in _LSTM_ARGUMENTS}
    config["dtype"] = np.dtype(lstm.dtype).name
    return np.array(json.dumps(config, sort_keys=True))


def write_checkpoint(
    path: str | os.PathLike, lstm: LSTM, training_state: Mapping[str, Any]
) -> None:
    """Write ``NAME.training.npz`` and then ``NAME.npz`` (both atomically).

    Parameters
    ----------
    path : str or path-like
        ``NAME.npz``, the model file.
    lstm : LSTM
    training_state : mapping of str to ndarray
        Every key starts with one of :data:`TRAINING_PREFIXES`.
    """
    arrays = {LSTM_CONFIG_KEY: _lstm_config(lstm)}
    arrays.update({LSTM_PREFIX + name: asnumpy(v) for name, v in lstm.named_parameters()})
    for name, value in training_state.items():
        if not name.startswith(TRAINING_PREFIXES):
            raise KeyError(f"training state key {name!r} lacks a prefix of {TRAINING_PREFIXES}")
        arrays[name] = value
    save_npz_atomic(training_state_path(path), arrays)
    lstm.save(path)


class Checkpoint:
    """A training state read from ``NAME.training.npz``, on the host until :meth:`lstm` is called.

    Parameters
    ----------
    path : str or path-like
        ``NAME.npz`` or ``NAME.training.npz``; the training state is read from the latter.

    Attributes
    ----------
    path : Path
        The training state file.
    arrays : dict of str to numpy.ndarray
        Everything in it.

    Raises
    ------
    FileNotFoundError
        If the training state file does not exist.
    ValueError
        If it is damaged or not a training checkpoint.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = training_state_path(path)
        if not self.path.exists():
            raise FileNotFoundError(
                f"{self.path} does not exist (the training state saved beside {Path(path).name})"
            )
        self.arrays = load_npz(self.path)
        if LSTM_CONFIG_KEY not in self.arrays:
            raise ValueError(f"{self.path} is not an xplstm training checkpoint")

    @property
    def training_state(self) -> dict[str, np.ndarray]:
        """The arrays under :data:`TRAINING_PREFIXES`."""
        return {k: v for k, v in self.arrays.items() if k.startswith(TRAINING_PREFIXES)}

    def lstm(self, device: str = "cpu") -> LSTM:
        """The saved LSTM, built on ``device`` (``"cpu"`` or ``"cuda"``)."""
        arrays = self.arrays
        try:
            config = json.loads(str(arrays[LSTM_CONFIG_KEY][()]))
            lstm = LSTM(**config, device=device)
            lstm.load_state_dict(
                {
                    name[len(LSTM_PREFIX) :]: value
                    for name, value in arrays.items()
                    if name.startswith(LSTM_PREFIX) and name != LSTM_CONFIG_KEY
                }
            )
        except (TypeError, ValueError, KeyError) as error:
            message = error.args[0] if error.args else error
            raise ValueError(f"{self.path} holds an unusable LSTM: {message}") from error
        return lstm


def read_checkpoint(path: str | os.PathLike, device: str = "cpu") -> tuple[LSTM, dict]:
    """The LSTM (on ``device``) and the training state of the checkpoint at ``path``.

    See :class:`Checkpoint` for ``path`` and the errors.
    """
    checkpoint = Checkpoint(path)
    return checkpoint.lstm(device), checkpoint.training_state
