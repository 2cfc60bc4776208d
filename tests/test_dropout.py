"""Inter-layer ``dropout`` with torch's semantics on ``xplstm.LSTM`` and ``xplstm.GRU``:
training and evaluation modes, seeded masks, gradients with the masks held fixed."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import reference as ref
from conftest import assert_close, central_difference, to_numpy

import xplstm

P = 0.4
LAYERS = (xplstm.LSTM, xplstm.GRU)


def device_of(xp) -> str:
    return "cpu" if xp is np else "cuda"


def documented_masks(generator, count, shape):
    """The masks the docstring of ``xplstm.LSTM.generator`` says a forward draws."""
    return [(generator.random(shape, dtype=np.float32) >= P) / (1 - P) for _ in range(count)]


@pytest.mark.parametrize("layer", LAYERS, ids=["LSTM", "GRU"])
def test_eval_mode_is_the_layer_without_dropout(layer):
    x = np.random.default_rng(0).standard_normal((6, 3, 2)).astype(np.float32)
    with_dropout = layer(2, 4, 3, dropout=P, seed=1).eval()
    without = layer(2, 4, 3, seed=1)
    assert not with_dropout.training and without.training
    np.testing.assert_array_equal(with_dropout(x)[0], without(x)[0])
    assert with_dropout.train() is with_dropout and with_dropout.training
    assert not np.array_equal(with_dropout(x)[0], without(x)[0])  # training: masks act


@pytest.mark.parametrize("layer", LAYERS, ids=["LSTM", "GRU"])
def test_training_runs_are_reproducible_from_the_seed(layer):
    x = np.random.default_rng(0).standard_normal((6, 3, 2))
    first, again = layer(2, 4, 2, dropout=P, seed=9), layer(2, 4, 2, dropout=P, seed=9)
    y_first, y_again = first(x)[0], again(x)[0]
    np.testing.assert_array_equal(y_first, y_again)
    assert not np.array_equal(first(x)[0], y_first)  # each forward draws new masks
    other = layer(2, 4, 2, dropout=P, seed=10)
    other.load_state_dict(first.state_dict())  # same weights, another mask stream
    assert not np.array_equal(other(x)[0], y_again)


def test_lstm_matches_the_loop_reference_with_the_documented_masks(xp, dtype):
    rng = np.random.default_rng(2)
    model = xplstm.LSTM(
        2, 4, 3, bidirectional=True, proj_size=3, dropout=P, dtype=dtype,
        device=device_of(xp), seed=3,
    )  # fmt: skip
    lengths = [6, 2, 5]
    x = rng.standard_normal((6, 3, 2))
    masks = documented_masks(copy.deepcopy(model.generator), 2, (6, 3, 2 * 3))
    y, (h_n, c_n) = model(xp.asarray(x, dtype=dtype), lengths=lengths)
    params = {k: to_numpy(v).astype(np.float64) for k, v in model.state_dict().items()}
    y_ref, h_ref, c_ref, tape = ref.layer_forward(
        params, x, None, None, lengths, 3, True, 4, proj_size=3, masks=masks
    )
    assert_close(y, y_ref, dtype, name="y")
    assert_close(h_n, h_ref, dtype, name="h_n")
    assert_close(c_n, c_ref, dtype, name="c_n")
    dy = rng.standard_normal(y_ref.shape)
    dx, (dh0, dc0) = model.backward(xp.asarray(dy, dtype=dtype))
    dx_ref, dh0_ref, dc0_ref, grads_ref = ref.layer_backward(
        params, tape, dy, None, None, 4, proj_size=3, masks=masks
    )
    assert np.abs(dx_ref).max() > 1e-3  # not vacuous: the gradient reaches x through both masks
    assert_close(dx, dx_ref, dtype, name="dx")
    assert_close(dh0, dh0_ref, dtype, name="dh0")
    assert_close(dc0, dc0_ref, dtype, name="dc0")
    for name, wanted in grads_ref.items():
        assert_close(model.grads[name], wanted, dtype, name=name)


@pytest.mark.parametrize("layer", LAYERS, ids=["LSTM", "GRU"])
def test_backward_matches_central_differences_with_the_masks_held_fixed(layer):
    rng = np.random.default_rng(4)
    model = layer(2, 3, 3, bidirectional=True, dropout=P, dtype="float64", seed=5)
    x = rng.standard_normal((5, 2, 2))
    weights = rng.standard_normal((5, 2, 6))
    state = copy.deepcopy(model.generator.bit_generator.state)

    def loss():
        model.generator.bit_generator.state = state  # replay the same masks
        with xplstm.no_grad():
            y = model(x, lengths=[5, 3])[0]
        return float((y * weights).sum())

    model.generator.bit_generator.state = state
    model(x, lengths=[5, 3])
    dx, _ = model.backward(weights)
    for name in ("weight_ih_l0", "weight_hh_l1_reverse", "weight_ih_l2"):
        parameter = getattr(model, name)
        for index in (0, parameter.size // 3, parameter.size - 1):
            numeric = central_difference(loss, parameter, index)
            analytic = model.grads[name].reshape(-1)[index]
            assert abs(numeric - analytic) <= 1e-7 * (1 + abs(numeric)), (name, index)
    for index in (0, 7, x.size - 1):
        numeric = central_difference(loss, x, index)
        assert abs(numeric - dx.reshape(-1)[index]) <= 1e-7 * (1 + abs(numeric))


def test_no_grad_in_training_mode_still_drops_as_torch_does():
    model = xplstm.LSTM(2, 4, 2, dropout=P, seed=6)
    x = np.ones((4, 3, 2), dtype=np.float32)
    state = copy.deepcopy(model.generator.bit_generator.state)
    recorded = model(x)[0]
    model.generator.bit_generator.state = state
    with xplstm.no_grad():
        np.testing.assert_array_equal(model(x)[0], recorded)


@pytest.mark.parametrize(
    ("dropout", "error"),
    [
        (1.0, ValueError),
        (-0.1, ValueError),
        (float("nan"), ValueError),
        ("0.5", TypeError),
        (True, TypeError),
    ],
)
@pytest.mark.parametrize("layer", LAYERS, ids=["LSTM", "GRU"])
def test_invalid_dropout_is_refused_naming_it(layer, dropout, error):
    with pytest.raises(error, match=r"dropout must be .*\[0, 1\)"):
        layer(2, 3, 2, dropout=dropout)


def test_dropout_on_one_layer_warns_that_it_does_nothing():
    with pytest.warns(UserWarning, match="num_layers=1"):
        model = xplstm.LSTM(2, 3, dropout=P)
    x = np.ones((3, 2, 2), dtype=np.float32)
    np.testing.assert_array_equal(model(x)[0], model.eval()(x)[0])


@pytest.mark.parametrize("layer", LAYERS, ids=["LSTM", "GRU"])
def test_files_and_copies_keep_dropout_and_the_mode(layer, tmp_path):
    model = layer(2, 3, 2, dropout=P, seed=8).eval()
    model.save(tmp_path / "model.npz")
    loaded = layer.load(tmp_path / "model.npz")
    assert loaded.dropout == P and loaded.training  # a loaded layer trains, as a new one
    assert f"dropout={P}" in repr(loaded)
    copied = model.to("cpu")
    assert not copied.training
    model.train()
    copied = model.to("cpu").train()
    x = np.ones((4, 2, 2), dtype=np.float32)
    np.testing.assert_array_equal(copied(x)[0], model(x)[0])  # the copy draws the same masks


def test_distributed_refuses_training_mode_dropout():
    da = pytest.importorskip("dask.array")
    from xplstm import distributed

    model = xplstm.LSTM(2, 3, 2, dropout=P, seed=0)
    x = da.zeros((4, 6, 2), chunks=(4, 3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"dropout=0.4 in training mode.*model.eval\(\)"):
        distributed.forward(model, x)
    assert distributed.forward(model.eval(), x).shape == (4, 6, 3)
