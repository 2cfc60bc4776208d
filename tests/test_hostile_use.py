"""Issue 11: hostile use of the sampler, the backward pass, state dicts and the command line."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from xplstm.backend import asnumpy
from xplstm.training.data import CharVocabulary
from xplstm.training.model import CharModel
from xplstm.training.sampling import sample_text


def test_a_tiny_temperature_samples_the_most_likely_character():
    vocabulary = CharVocabulary("abcde")
    model = CharModel(len(vocabulary), 6, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = sample_text(model, vocabulary, 12, temperature=1e-310, seed=0, prime="ab")
    expected = [int(index) for index in vocabulary.encode("ab")]
    logits, state = model.forward(model.one_hot(np.asarray(expected)[:, None]))
    for _ in range(12):
        expected.append(int(np.argmax(asnumpy(logits[-1, 0]))))
        logits, state = model.forward(model.one_hot(np.array([[expected[-1]]])), state)
    assert text == vocabulary.decode(np.array(expected))
