"""Training data: seeded shuffling, the digits images as sequences, and character text.

Everything here lives on the host (NumPy); batches are moved to the model's backend by the model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "CharVocabulary",
    "DataError",
    "DigitsSplit",
    "TextWindows",
    "generator_from_array",
    "generator_to_array",
    "load_digits_split",
    "read_text",
    "text_fingerprint",
]

_UINT64_MASK = (1 << 64) - 1


class DataError(ValueError):
    """Training data that cannot be used (missing, unreadable, empty); the message says why."""


# ------------------------------------------------------------------------------ random state


def generator_to_array(rng: np.random.Generator) -> np.ndarray:
    """The full state of a PCG64 generator as a ``(6,)`` uint64 array (no pickles).

    Layout: ``state`` high and low words, ``inc`` high and low words, ``has_uint32``,
    ``uinteger``.
    """
    state = rng.bit_generator.state
    if state["bit_generator"] != "PCG64":
        raise TypeError(f"only PCG64 generators can be saved, got {state['bit_generator']}")
    words = state["state"]
    return np.array(
        [
            words["state"] >> 64,
            words["state"] & _UINT64_MASK,
            words["inc"] >> 64,
            words["inc"] & _UINT64_MASK,
            state["has_uint32"],
            state["uinteger"],
        ],
        dtype=np.uint64,
    )


def generator_from_array(array: np.ndarray) -> np.random.Generator:
    """Rebuild the generator saved by :func:`generator_to_array`, in exactly that state."""
    words = [int(word) for word in np.asarray(array, dtype=np.uint64).reshape(-1)]
    if len(words) != 6:
        raise ValueError(f"a saved PCG64 state has 6 words, got {len(words)}")
    bit_generator = np.random.PCG64()
    bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (words[0] << 64) | words[1], "inc": (words[2] << 64) | words[3]},
        "has_uint32": words[4],
        "uinteger": words[5],
    }
    return np.random.Generator(bit_generator)


# ------------------------------------------------------------------------------ digits


@dataclass
class DigitsSplit:
    """scikit-learn's 8x8 digits as sequences: each image is read row by row.

    Attributes
    ----------
    train_images, test_images : ndarray of float64, (N, 8, 8)
        Pixel intensities scaled to ``[0, 1]``; ``images[k, t]`` is row ``t``, the input at step
        ``t`` (8 features).
    train_labels, test_labels : ndarray of int64, (N,)
        Digits 0-9.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    num_classes = 10
    steps = 8
    features = 8


def load_digits_split(test_fraction: float = 0.2, split_seed: int = 0) -> DigitsSplit:
    """Load the bundled digits (needs scikit-learn) and hold out a stratified test split.

    Parameters
    ----------
    test_fraction : float
        Share of each class put in the test split.
    split_seed : int
        Seed of the split (independent of the training seed, so every run tests on the same
        images).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise DataError('the digits task needs scikit-learn: pip install "xplstm[demo]"') from error
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float64) / 16.0
    labels = np.asarray(digits.target, dtype=np.int64)
    rng = np.random.default_rng(split_seed)
    test_mask = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == digit))
        test_mask[members[: round(test_fraction * len(members))]] = True
    return DigitsSplit(images[~test_mask], labels[~test_mask], images[test_mask], labels[test_mask])


# ------------------------------------------------------------------------------ text


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file, or raise :class:`DataError` saying what is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"text file {str(path)!r} does not exist")
    if not path.is_file():
        raise DataError(f"text file {str(path)!r} is not a regular file")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read text file {str(path)!r}: {error.strerror}") from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"text file {str(path)!r} is not valid UTF-8 (byte 0x{raw[error.start]:02x} at "
            f"offset {error.start})"
        ) from error
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text:
        raise DataError(f"text file {str(path)!r} is empty")
    if len(text) < 2:
        raise DataError(
            f"text file {str(path)!r} has 1 character; a character model needs at least 2"
        )
    return text


def text_fingerprint(text: str) -> str:
    """SHA-256 of the text's UTF-8 bytes (hex), to check that a resumed run sees the same text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CharVocabulary:
    """The sorted set of characters of a text, with encoding to indices and back.

    Parameters
    ----------
    characters : str
        Distinct characters, in index order.
    """

    def __init__(self, characters: str) -> None:
        if len(set(characters)) != len(characters) or not characters:
            raise ValueError("characters must be a non-empty string of distinct characters")
        self.characters = characters
        self.index = {character: position for position, character in enumerate(characters)}

    @classmethod
    def from_text(cls, text: str) -> CharVocabulary:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.characters)

    def encode(self, text: str) -> np.ndarray:
        """``(len(text),)`` int64 indices; a character outside the vocabulary is a ``KeyError``."""
        try:
            return np.fromiter((self.index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as error:
            raise KeyError(f"character {error.args[0]!r} is not in the vocabulary") from None

    def decode(self, indices: np.ndarray) -> str:
        return "".join(self.characters[int(position)] for position in indices)

    def to_array(self) -> np.ndarray:
        """The vocabulary as a 0-d unicode array (one string), for an ``.npz`` checkpoint."""
        return np.array(self.characters, dtype=f"<U{len(self.characters)}")

    @classmethod
    def from_array(cls, array: np.ndarray, size: int) -> CharVocabulary:
        """Inverse of :meth:`to_array`; ``size`` guards against a truncated string."""
        characters = str(np.asarray(array)[()])
        if len(characters) != size:
            raise ValueError(
                f"the stored vocabulary has {len(characters)} characters but the model has {size}"
            )
        return cls(characters)


class TextWindows:
    """A text cut into windows of ``seq_length + 1`` characters for next-character prediction.

    Window ``k`` starts at character ``k * seq_length``: its first ``seq_length`` characters are
    the inputs and its last ``seq_length`` the targets, so windows share one character and every
    character after the first is a target exactly once.

    Parameters
    ----------
    text : str
    seq_length : int
        Steps per window; shortened to ``len(text) - 1`` for a shorter text.
    vocabulary : CharVocabulary, optional
        Defaults to the text's own characters.
    """

    def __init__(
        self, text: str, seq_length: int, vocabulary: CharVocabulary | None = None
    ) -> None:
        if seq_length < 1:
            raise ValueError(f"seq_length must be at least 1, got {seq_length}")
        self.vocabulary = vocabulary or CharVocabulary.from_text(text)
        self.encoded = self.vocabulary.encode(text)
        self.seq_length = min(seq_length, len(text) - 1)
        self.num_windows = (len(text) - 1) // self.seq_length

    def __len__(self) -> int:
        return self.num_windows

    def batch(self, window_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets for some windows, time-major.

        Parameters
        ----------
        window_indices : ndarray of int, (m,)

        Returns
        -------
        inputs, targets : ndarray of int64, (seq_length, m)
            Character indices; ``targets[t]`` is the character after ``inputs[t]``.
        """
        offsets = np.asarray(window_indices, dtype=np.int64) * self.seq_length
        positions = offsets[None, :] + np.arange(self.seq_length + 1)[:, None]
        chunk = self.encoded[positions]
        return chunk[:-1], chunk[1:]
