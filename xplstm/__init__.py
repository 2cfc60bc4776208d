"""xplstm: exact, fast LSTM, GRU and RNN on NumPy or CuPy arrays.

The backend follows the arrays: NumPy arrays run on the CPU, CuPy arrays on the GPU.
"""

from .backend import asnumpy, get_array_module
from .course import (
    lstm_backward,
    lstm_cell_backward,
    lstm_cell_forward,
    lstm_forward,
    rnn_backward,
    rnn_cell_backward,
    rnn_cell_forward,
    rnn_forward,
)
from .grad_mode import is_grad_enabled, no_grad
from .gru import GRU
from .layer import LSTM
from .numerics import sigmoid, softmax
from .rnn import RNN

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "__version__",
    "asnumpy",
    "get_array_module",
    "is_grad_enabled",
    "lstm_backward",
    "lstm_cell_backward",
    "lstm_cell_forward",
    "lstm_forward",
    "no_grad",
    "rnn_backward",
    "rnn_cell_backward",
    "rnn_cell_forward",
    "rnn_forward",
    "sigmoid",
    "softmax",
]
