"""``xplstm.no_grad()``: inference mode, per thread, as ``torch.no_grad()``.

Inside ``with xplstm.no_grad():`` (or in a function decorated with ``@xplstm.no_grad()``) a layer's
forward keeps nothing for a backward: the engine runs one chunk of steps at a time
(:func:`xplstm.engine.lstm_inference`), so such a forward needs about its output's memory plus
one chunk's. The setting belongs to the thread that entered it; other threads keep recording.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

__all__ = ["is_grad_enabled", "no_grad"]


class _State(threading.local):
    def __init__(self) -> None:
        self.depth = 0  # how many no_grad() blocks this thread is inside


_state = _State()


def is_grad_enabled() -> bool:
    """False inside a :class:`no_grad` block of the calling thread, else True."""
    return _state.depth == 0


class no_grad(contextlib.ContextDecorator):  # named as torch's
    """Context manager (and decorator) for inference: forwards record nothing for backward.

    Nests and is re-entrant; leaving the block (also by an exception) restores recording once
    the outermost block is left. Thread-local: it affects only the thread that entered it.

    Examples
    --------
    >>> import numpy as np, xplstm
    >>> model = xplstm.LSTM(3, 5, seed=0)
    >>> with xplstm.no_grad():
    ...     y, (h_n, c_n) = model(np.ones((7, 2, 3), dtype=np.float32))
    >>> y.shape
    (7, 2, 5)
    """

    def __enter__(self) -> no_grad:
        _state.depth += 1
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _state.depth -= 1
