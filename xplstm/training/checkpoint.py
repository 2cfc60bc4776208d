"""Training checkpoints: ``NAME.training.npz`` beside the layer file ``NAME.npz``.

The format and its codec live in :mod:`xplstm.serialization`; this module keeps the names the
training code has always imported from here.
"""

from __future__ import annotations

from ..serialization import (
    TRAINING_PREFIXES,
    Checkpoint,
    read_checkpoint,
    training_state_path,
    write_checkpoint,
)

__all__ = [
    "TRAINING_PREFIXES",
    "Checkpoint",
    "read_checkpoint",
    "training_state_path",
    "write_checkpoint",
]
