"""Generate text from a character model saved by ``xplstm train --task text``."""

from __future__ import annotations

import os

import numpy as np

from ..backend import asnumpy
from ..serialization import read_checkpoint
from .data import CharVocabulary, DataError
from .loop import checkpoint_config
from .model import CharModel
from .tasks import stored_vocabulary

__all__ = ["load_char_model", "sample_text"]


def load_char_model(
    path: str | os.PathLike, device: str = "cpu"
) -> tuple[CharModel, CharVocabulary]:
    """The character model and vocabulary of a text checkpoint (``NAME.npz`` or its state file).

    Raises
    ------
    DataError
        The checkpoint is of the digits task.
    FileNotFoundError, ValueError
        As :func:`xplstm.serialization.read_checkpoint`.
    """
    lstm, arrays = read_checkpoint(path, device)
    config = checkpoint_config(arrays)
    if config.task != "text":
        raise DataError(
            f"{os.fspath(path)} holds a {config.task} model; sample needs a text model "
            "(xplstm train --task text --text FILE)"
        )
    vocabulary = stored_vocabulary(arrays, lstm.input_size)
    lstm.eval()  # a model trained with dropout or zoneout samples with their expectations
    model = CharModel(
        len(vocabulary), lstm.hidden_size, lstm.num_layers, dtype=lstm.dtype.name, lstm=lstm
    )
    model.load_head_state(arrays)
    return model, vocabulary


def _softmax_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)``, shifted before the division so that it cannot overflow.

    As ``temperature`` goes to 0 this tends to the most likely character(s): a tiny temperature
    (``1e-310``) gives exactly that, not NaN.
    """
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max()  # <= 0, and 0 at the maximum
    with np.errstate(over="ignore"):  # -big / tiny is -inf, whose exp is the wanted 0
        scaled = shifted / temperature
    probabilities = np.exp(scaled)
    return probabilities / probabilities.sum()


def sample_text(
    model: CharModel,
    vocabulary: CharVocabulary,
    length: int,
    *,
    temperature: float = 1.0,
    seed: int | None = None,
    prime: str = "",
) -> str:
    """Generate ``length`` characters, one at a time, carrying the LSTM state.

    Parameters
    ----------
    model : CharModel
    vocabulary : CharVocabulary
    length : int
        Characters to generate (after the prime).
    temperature : float
        Divides the scores before the softmax: below 1 is more conservative, above 1 more
        varied.
    seed : int, optional
        Seeds the draws (and the first character when there is no prime).
    prime : str
        Text to start from (every character must be in the vocabulary); returned as the start
        of the result.

    Returns
    -------
    str
        ``prime`` (or one drawn character) followed by ``length`` generated characters.
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    rng = np.random.default_rng(seed)
    start = vocabulary.encode(prime) if prime else rng.integers(len(vocabulary), size=1)
    generated = [int(index) for index in start]
    logits, state = model.forward(model.one_hot(np.asarray(start)[:, None]))
    for _ in range(length):
        probabilities = _softmax_probabilities(asnumpy(logits[-1, 0]), temperature)
        following = int(rng.choice(len(vocabulary), p=probabilities))
        generated.append(following)
        logits, state = model.forward(model.one_hot(np.array([[following]])), state)
    return vocabulary.decode(np.array(generated))
