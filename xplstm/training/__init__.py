"""Training on top of :class:`xplstm.LSTM`: heads, losses, optimizers, data, loop, checkpoints.

Everything is backend-neutral: parameters live on the LSTM's device (NumPy or CuPy), data on
the host.
"""

from .clipping import clip, clip_by_global_norm, clip_by_value
from .config import TrainConfig
from .dense import Dense
from .losses import mean_squared_error, sequence_cross_entropy, softmax_cross_entropy
from .optim import SGD, Adam

__all__ = [
    "SGD",
    "Adam",
    "Dense",
    "TrainConfig",
    "clip",
    "clip_by_global_norm",
    "clip_by_value",
    "mean_squared_error",
    "sequence_cross_entropy",
    "softmax_cross_entropy",
]
