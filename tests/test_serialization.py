"""xplstm.serialization: the layer file and the training-state codec shared by every writer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xplstm import LSTM
from xplstm.npz_io import load_npz, save_npz_atomic
from xplstm.serialization import (
    CONFIG_KEY,
    EPOCH_KEY,
    TRAINING_PREFIXES,
    load_layer,
    load_optimizer_state,
    optimizer_state,
    read_checkpoint,
    strip_prefix,
    write_checkpoint,
)
from xplstm.training.optim import Adam


def test_layer_file_round_trips_config_and_parameters(tmp_path):
    model = LSTM(3, 4, 2, bidirectional=True, dtype="float64", seed=0)
    model.save(tmp_path / "m.npz")
    config, parameters = load_layer(tmp_path / "m.npz")
    assert config == {
        "input_size": 3,
        "hidden_size": 4,
        "num_layers": 2,
        "bias": True,
        "batch_first": False,
        "bidirectional": True,
        "dtype": "float64",
    }
    assert list(parameters) == list(model.state_dict())


def test_layer_file_of_another_version_is_refused_naming_the_path(tmp_path):
    path = tmp_path / "m.npz"
    LSTM(2, 3, seed=0).save(path)
    arrays = load_npz(path)
    stored = json.loads(str(arrays[CONFIG_KEY][()]))
    arrays[CONFIG_KEY] = np.array(json.dumps({**stored, "version": 99}))
    save_npz_atomic(path, arrays)
    with pytest.raises(ValueError, match=rf"{path} is an xplstm.LSTM checkpoint of version 99"):
        load_layer(path)


def test_optimizer_state_round_trips_under_its_prefix():
    parameters = {"w": np.ones(3)}
    optimizer = Adam(parameters, lr=0.1)
    optimizer.step({"w": np.full(3, 0.5)})
    state = optimizer_state(optimizer)
    assert all(key.startswith("optimizer.") for key in state)
    restored = Adam({"w": np.ones(3)}, lr=0.1)
    load_optimizer_state(restored, {**state, EPOCH_KEY: np.array(1)})
    for key, value in restored.state_dict().items():
        np.testing.assert_array_equal(value, state["optimizer." + key])


def test_strip_prefix_keeps_only_that_prefix():
    arrays = {"optimizer.a": 1, "optimizer.b.c": 2, "head.a": 3}
    assert strip_prefix("optimizer.", arrays) == {"a": 1, "b.c": 2}


def test_training_checkpoint_round_trips_and_refuses_unprefixed_keys(tmp_path):
    model = LSTM(2, 3, seed=1)
    write_checkpoint(tmp_path / "last.npz", model, {EPOCH_KEY: np.array(4)})
    lstm, state = read_checkpoint(tmp_path / "last.npz")
    assert state == {EPOCH_KEY: np.array(4)} and EPOCH_KEY.startswith(TRAINING_PREFIXES)
    for name, array in model.named_parameters():
        np.testing.assert_array_equal(lstm.state_dict()[name], array)
    assert LSTM.load(tmp_path / "last.npz").hidden_size == 3
    with pytest.raises(KeyError, match="lacks a prefix"):
        write_checkpoint(tmp_path / "x.npz", model, {"epoch": np.array(1)})
