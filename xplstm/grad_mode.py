"""``xplstm.no_grad()``: inference mode, per thread, as ``torch.no_grad()``.

Inside ``with xplstm.no_grad():`` (or in a function decorated with ``@xplstm.no_grad()``) a layer's
forward keeps nothing for a backward: the engine runs one chunk of steps at a time
(:func:`xplstm.engine.lstm_inference`), so such a forward needs about its output's memory plus
one chunk's. The setting belongs to the thread that entered it; other threads keep recording.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["is_grad_enabled", "no_grad"]


class _State(threading.local):
    def __init__(self) -> None:
        self.depth = 0  # how many no_grad() blocks this thread is inside


_state = _State()


def is_grad_enabled() -> bool:
    """False inside a :class:`no_grad` block of the calling thread, else True."""
    return _state.depth == 0


class no_grad:  # named as torch's
    """Context manager (and decorator) for inference: forwards record nothing for backward.

    Nests and is re-entrant; leaving the block (also by an exception) restores recording once
    the outermost block is left. Thread-local: it affects only the thread that entered it.
    As a decorator, ``@xplstm.no_grad()`` and ``@xplstm.no_grad`` both work, also on generator
    functions (the setting holds while the generator's body runs, not between its yields).

    Examples
    --------
    >>> import numpy as np, xplstm
    >>> model = xplstm.LSTM(3, 5, seed=0)
    >>> with xplstm.no_grad():
    ...     y, (h_n, c_n) = model(np.ones((7, 2, 3), dtype=np.float32))
    >>> y.shape
    (7, 2, 5)
    """

    def __new__(cls, function: Callable[..., Any] | None = None) -> Any:
        instance = super().__new__(cls)
        if function is None:
            return instance
        if not callable(function):
            raise TypeError(
                f"no_grad takes no arguments (or decorates a function), got {function!r}"
            )
        return instance(function)

    def __enter__(self) -> no_grad:
        _state.depth += 1
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _state.depth -= 1

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate ``function`` so that it runs under ``no_grad``."""
        if inspect.isgeneratorfunction(function):

            @functools.wraps(function)
            def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
                with no_grad():
                    iterator = function(*args, **kwargs)
                    sent = None
                    try:
                        value = iterator.send(sent)
                    except StopIteration as stop:
                        return stop.value
                while True:
                    try:
                        sent = yield value
                    except GeneratorExit:
                        iterator.close()
                        raise
                    except BaseException as error:
                        with no_grad():
                            try:
                                value = iterator.throw(error)
                            except StopIteration as stop:
                                return stop.value
                        continue
                    with no_grad():
                        try:
                            value = iterator.send(sent)
                        except StopIteration as stop:
                            return stop.value

            return generator

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return function(*args, **kwargs)

        return call
