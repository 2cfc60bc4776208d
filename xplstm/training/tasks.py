"""The two training tasks: digits classification and a character language model.

A task owns its data (host NumPy arrays), builds its model, turns example indices into a
training step, evaluates, and names the extra arrays it needs in a checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import asnumpy
from ..grad_mode import no_grad
from ..layer import LSTM
from ..serialization import TEXT_PREFIX
from .config import TrainConfig
from .data import (
    CharVocabulary,
    DataError,
    TextWindows,
    load_digits_split,
    read_text,
    text_fingerprint,
)
from .losses import sequence_cross_entropy, softmax_cross_entropy
from .model import CharModel, SequenceClassifier

__all__ = ["VALIDATION_FRACTION", "DigitsTask", "TextTask", "make_task"]

VALIDATION_FRACTION = 0.1
"""Share of a text's windows held out (from its end) for the validation loss."""


class DigitsTask:
    """Classify scikit-learn's 8x8 digits read row by row (8 steps of 8 features)."""

    name = "digits"

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.data = load_digits_split()
        self.num_examples = len(self.data.train_labels)

    def describe(self) -> str:
        return (
            f"scikit-learn digits, {self.num_examples} training / "
            f"{len(self.data.test_labels)} test images read row by row (8 steps of 8 pixels)"
        )

    def build_model(self, device: str, lstm: LSTM | None = None) -> SequenceClassifier:
        config = self.config
        return SequenceClassifier(
            self.data.features,
            config.hidden_size,
            self.data.num_classes,
            config.num_layers,
            dtype=config.dtype,
            device=device,
            seed=config.seed,
            forget_bias=config.forget_bias,
            lstm=lstm,
            lstm_options=config.lstm_variants(),
        )

    def _inputs(self, model: SequenceClassifier, images: np.ndarray) -> Any:
        """``(m, 8, 8)`` images -> ``(8, m, 8)`` time-major inputs on the model's backend."""
        steps_first = np.ascontiguousarray(images.transpose(1, 0, 2), dtype=self.config.dtype)
        return model.xp.asarray(steps_first)

    def train_step(self, model: SequenceClassifier, indices: np.ndarray) -> tuple[float, int, int]:
        """Forward and backward on some training examples.

        Returns
        -------
        loss : float
            Mean cross-entropy of the batch.
        correct, count : int
            Correct predictions and predictions made.
        """
        labels = self.data.train_labels[indices]
        logits = model.forward(self._inputs(model, self.data.train_images[indices]))
        loss, dlogits = softmax_cross_entropy(logits, model.xp.asarray(labels))
        model.backward(dlogits)
        predicted = asnumpy(model.xp.argmax(logits, axis=1))
        return loss, int((predicted == labels).sum()), len(labels)

    def evaluate(self, model: SequenceClassifier, batch_size: int = 512) -> float:
        """Accuracy on the held-out test split."""
        correct = 0
        images, labels = self.data.test_images, self.data.test_labels
        for start in range(0, len(labels), batch_size):
            logits = model.forward(self._inputs(model, images[start : start + batch_size]))
            predicted = asnumpy(model.xp.argmax(logits, axis=1))
            correct += int((predicted == labels[start : start + batch_size]).sum())
        return correct / len(labels)

    def validation_loss(self, model: SequenceClassifier) -> float:
        """No validation split (the test split is reported as accuracy): ``nan``."""
        return math.nan

    def checkpoint_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def check_checkpoint(self, arrays: dict[str, np.ndarray]) -> None:
        """Nothing to check: the digits are bundled and the split is fixed."""


class TextTask:
    """Predict the next character of a UTF-8 text (windows of ``seq_length`` steps)."""

    name = "text"

    def __init__(self, config: TrainConfig) -> None:
        if not config.text_path:
            raise DataError("--task text needs --text FILE (a UTF-8 text file)")
        self.config = config
        text = read_text(config.text_path)
        self.fingerprint = text_fingerprint(text)
        self.windows = TextWindows(text, config.seq_length)
        self.vocabulary = self.windows.vocabulary
        # The last VALIDATION_FRACTION of the windows (the end of the text) is held out.
        windows = len(self.windows)
        held_out = max(1, int(windows * VALIDATION_FRACTION)) if windows > 1 else 0
        self.num_examples = windows - held_out
        self.validation_windows = np.arange(self.num_examples, len(self.windows))

    def describe(self) -> str:
        characters = len(self.windows.encoded)
        return (
            f"text {self.config.text_path!r}: {characters} characters, {len(self.vocabulary)} "
            f"distinct, {self.num_examples} training and {len(self.validation_windows)} held-out "
            f"validation windows (the end of the text) of {self.windows.seq_length} steps"
        )

    def build_model(self, device: str, lstm: LSTM | None = None) -> CharModel:
        config = self.config
        return CharModel(
            len(self.vocabulary),
            config.hidden_size,
            config.num_layers,
            dtype=config.dtype,
            device=device,
            seed=config.seed,
            forget_bias=config.forget_bias,
            lstm=lstm,
            lstm_options=config.lstm_variants(),
        )

    def train_step(self, model: CharModel, indices: np.ndarray) -> tuple[float, int, int]:
        """Forward and backward on some windows; counts are of characters predicted."""
        inputs, targets = self.windows.batch(indices)
        logits, _ = model.forward(model.one_hot(inputs))
        loss, dlogits = sequence_cross_entropy(logits, model.xp.asarray(targets))
        model.backward(dlogits)
        predicted = asnumpy(model.xp.argmax(logits, axis=-1))
        return loss, int((predicted == targets).sum()), targets.size

    def evaluate(self, model: CharModel) -> float:
        """No test accuracy for text (see :meth:`validation_loss`): ``nan``."""
        return math.nan

    def validation_loss(self, model: CharModel, batch_size: int = 256) -> float:
        """Mean cross-entropy per character on the held-out windows (``nan`` if none)."""
        windows = self.validation_windows
        if not len(windows):
            return math.nan
        total = 0.0
        with no_grad():
            for start in range(0, len(windows), batch_size):
                inputs, targets = self.windows.batch(windows[start : start + batch_size])
                logits, _ = model.forward(model.one_hot(inputs))
                loss, _ = sequence_cross_entropy(logits, model.xp.asarray(targets))
                total += loss * targets.size
        return total / (len(windows) * self.windows.seq_length)

    def checkpoint_arrays(self) -> dict[str, np.ndarray]:
        return {
            TEXT_PREFIX + "vocabulary": self.vocabulary.to_array(),
            TEXT_PREFIX + "fingerprint": np.array(self.fingerprint),
        }

    def check_checkpoint(self, arrays: dict[str, np.ndarray]) -> None:
        """Refuse to resume on a different text than the checkpoint was trained on."""
        stored = str(arrays[TEXT_PREFIX + "fingerprint"][()])
        if stored != self.fingerprint:
            raise DataError(
                f"text file {self.config.text_path!r} differs from the text the checkpoint was "
                "trained on; resume with the same file or start a new --checkpoint-dir"
            )


def stored_vocabulary(arrays: dict[str, np.ndarray], size: int) -> CharVocabulary:
    """The vocabulary saved in a text model's checkpoint."""
    key = TEXT_PREFIX + "vocabulary"
    if key not in arrays:
        raise DataError("the checkpoint holds no vocabulary: it is not a text model")
    return CharVocabulary.from_array(arrays[key], size)


def make_task(config: TrainConfig) -> DigitsTask | TextTask:
    if config.task == "digits":
        return DigitsTask(config)
    if config.task == "text":
        return TextTask(config)
    raise ValueError(f"task must be 'digits' or 'text', got {config.task!r}")
