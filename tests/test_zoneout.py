"""Zoneout (Krueger et al. 2016) and variational recurrent dropout (Gal and Ghahramani 2016) on
``xplstm.LSTM``: the float64 loop of ``tests/reference.py`` with the masks the layer documents,
evaluation-mode expectations, central differences with the masks held fixed, seeding, files,
errors, and the zoneout step itself (header, twin, fused binding)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import reference as ref
from conftest import assert_close, central_difference, to_numpy
from kernel_harness.cells import HostCell

import xplstm
from xplstm.cells import ZoneoutTwin, make_cell

P_C, P_H, P_R = 0.3, 0.4, 0.25
FLAGS = dict(zoneout_cell=P_C, zoneout_hidden=P_H, recurrent_dropout=P_R)
CONFIGS = [
    pytest.param(dict(num_layers=1), None, FLAGS, id="all-flags"),
    pytest.param(
        dict(num_layers=2, bidirectional=True), [6, 2, 5], FLAGS, id="stacked-bidi-lengths"
    ),
    pytest.param(dict(num_layers=2, proj_size=2, batch_first=True), [6, 1, 4], FLAGS, id="proj"),
    pytest.param(dict(num_layers=1, peephole=True), [3, 6, 2], FLAGS, id="peephole"),
    pytest.param(dict(num_layers=2, dropout=0.5), None, dict(zoneout_cell=P_C), id="cell-dropout"),
    pytest.param(dict(num_layers=1), [4, 6, 1], dict(zoneout_hidden=P_H), id="hidden-only"),
    pytest.param(dict(num_layers=1), None, dict(recurrent_dropout=P_R), id="recurrent-only"),
]


def device_of(xp) -> str:
    return "cpu" if xp is np else "cuda"


def documented_noise(model, steps, batch):
    """The masks ``xplstm.LSTM.generator`` says one training forward draws, replayed from a copy
    of the generator: per layer, per direction, zoneout of c, of h, the recurrent mask; then
    the inter-layer dropout mask."""
    generator = copy.deepcopy(model.generator)
    noise, masks = {}, []
    hidden, out = model.hidden_size, model.output_size
    for layer in range(model.num_layers):
        for direction in range(model.num_directions):
            drawn = {}
            if model.zoneout_cell:
                keep = generator.random((steps, batch, hidden), dtype=np.float32)
                drawn["zoneout_c"] = (keep < model.zoneout_cell).astype(np.float64)
            if model.zoneout_hidden:
                keep = generator.random((steps, batch, out), dtype=np.float32)
                drawn["zoneout_h"] = (keep < model.zoneout_hidden).astype(np.float64)
            if model.recurrent_dropout:
                kept = generator.random((batch, out), dtype=np.float32) >= model.recurrent_dropout
                drawn["recurrent_mask"] = kept / (1.0 - model.recurrent_dropout)
            noise[layer, direction] = drawn
        if model.dropout and layer < model.num_layers - 1:
            shape = (steps, batch, model.num_directions * out)
            keep = generator.random(shape, dtype=np.float32) >= model.dropout
            masks.append(keep / (1.0 - model.dropout))
    return noise, masks or None


def expected_noise(model, batch):
    """Evaluation: zoneout's probabilities every step, no recurrent dropout."""
    noise = {}
    for layer in range(model.num_layers):
        for direction in range(model.num_directions):
            noise[layer, direction] = {
                "zoneout_c": np.full((batch, model.hidden_size), model.zoneout_cell),
                "zoneout_h": np.full((batch, model.output_size), model.zoneout_hidden),
            }
    return noise


def randomize_peepholes(model, rng):
    for name, value in model.named_parameters():
        if name.startswith("weight_peephole_"):
            value[...] = model.xp.asarray(rng.standard_normal(value.shape), dtype=model.dtype)


def run_both(model, xp, dtype, lengths, noise, masks, rng, steps=6, batch=3):
    """Forward and backward of ``model`` and of the reference with ``noise``/``masks``; returns
    pairs ``(actual, wanted, name)``."""
    rows, out, hidden = model.num_layers * model.num_directions, model.output_size, 4
    x = rng.standard_normal((steps, batch, 2))
    h0, c0 = rng.standard_normal((rows, batch, out)), rng.standard_normal((rows, batch, hidden))
    params = {k: to_numpy(v).astype(np.float64) for k, v in model.state_dict().items()}
    y_ref, h_ref, c_ref, tape = ref.layer_forward(
        params, x, h0, c0, lengths, model.num_layers, model.bidirectional, hidden,
        model.proj_size, masks=masks, noise=noise,
    )  # fmt: skip
    dy = rng.standard_normal(y_ref.shape)
    dh_n, dc_n = rng.standard_normal(h_ref.shape), rng.standard_normal(c_ref.shape)
    dx_ref, dh0_ref, dc0_ref, grads_ref = ref.layer_backward(
        params, tape, dy, dh_n, dc_n, hidden, model.proj_size, masks=masks
    )

    def layout(array):
        return array.transpose(1, 0, 2) if model.batch_first else array

    def device_array(array):
        return xp.asarray(array, dtype=dtype)

    y, (h_n, c_n) = model(
        device_array(layout(x)), (device_array(h0), device_array(c0)), lengths=lengths
    )
    dx, (dh0, dc0) = model.backward(
        device_array(layout(dy)), (device_array(dh_n), device_array(dc_n))
    )
    pairs = [
        (layout(y), y_ref, "y"), (h_n, h_ref, "h_n"), (c_n, c_ref, "c_n"),
        (layout(dx), dx_ref, "dx"), (dh0, dh0_ref, "dh0"), (dc0, dc0_ref, "dc0"),
    ]  # fmt: skip
    pairs += [(model.grads[name], wanted, name) for name, wanted in grads_ref.items()]
    return pairs


@pytest.mark.parametrize(("config", "lengths", "flags"), CONFIGS)
def test_training_matches_the_loop_reference_with_the_documented_masks(
    xp, dtype, config, lengths, flags
):
    model = xplstm.LSTM(2, 4, **config, **flags, dtype=dtype, device=device_of(xp), seed=3)
    rng = np.random.default_rng(4)
    randomize_peepholes(model, rng)
    noise, masks = documented_noise(model, 6, 3)
    for actual, wanted, name in run_both(model, xp, dtype, lengths, noise, masks, rng):
        assert_close(actual, wanted, dtype, name=name)


@pytest.mark.parametrize(("config", "lengths", "flags"), CONFIGS)
def test_evaluation_uses_the_expectations(xp, dtype, config, lengths, flags):
    model = xplstm.LSTM(2, 4, **config, **flags, dtype=dtype, device=device_of(xp), seed=3)
    model.eval()
    rng = np.random.default_rng(5)
    randomize_peepholes(model, rng)
    state = copy.deepcopy(model.generator.bit_generator.state)
    for actual, wanted, name in run_both(
        model, xp, dtype, lengths, expected_noise(model, 3), None, rng
    ):
        assert_close(actual, wanted, dtype, name=name)
    assert model.generator.bit_generator.state == state  # evaluation draws nothing


def test_the_reference_is_not_vacuous():
    """The masks change the reference's result (so matching it tests them)."""
    model = xplstm.LSTM(2, 4, 2, bidirectional=True, **FLAGS, dtype="float64", seed=3)
    noise, _ = documented_noise(model, 6, 3)
    x = np.random.default_rng(0).standard_normal((6, 3, 2))
    params = {k: np.asarray(v, np.float64) for k, v in model.state_dict().items()}
    noisy = ref.layer_forward(params, x, None, None, None, 2, True, 4, noise=noise)[0]
    plain = ref.layer_forward(params, x, None, None, None, 2, True, 4)[0]
    assert np.abs(noisy - plain).max() > 1e-2
    assert all(mask.any() and not mask.all() for m in noise.values() for mask in m.values())


def test_zoneout_keeps_exactly_the_masked_elements():
    """Where the hidden mask is 1, ``h_t`` is exactly ``h_{t-1}``; where it is 0, it is the
    step's own result (not a blend)."""
    model = xplstm.LSTM(2, 5, zoneout_hidden=0.5, dtype="float64", seed=1)
    noise, _ = documented_noise(model, 8, 4)
    keep = noise[0, 0]["zoneout_h"].astype(bool)
    y, _ = model(np.random.default_rng(2).standard_normal((8, 4, 2)))
    previous = np.concatenate([np.zeros((1, 4, 5)), y[:-1]])
    np.testing.assert_array_equal(y[keep], previous[keep])
    assert np.all(y[~keep] != previous[~keep])


def gradient_check(model, lengths, seed):
    """Central differences of a scalar loss against ``backward`` with the masks of one forward
    held fixed (the generator is rewound before every forward)."""
    rng = np.random.default_rng(seed)
    randomize_peepholes(model, rng)
    x = rng.standard_normal((5, 3, 2))
    weights = rng.standard_normal((5, 3, model.num_directions * model.output_size))
    state = copy.deepcopy(model.generator.bit_generator.state)

    def loss():
        model.generator.bit_generator.state = copy.deepcopy(state)
        with xplstm.no_grad():
            y, (h_n, c_n) = model(x, lengths=lengths)
        return float((y * weights).sum() + h_n.sum() + 0.5 * c_n.sum())

    model.generator.bit_generator.state = copy.deepcopy(state)
    model.zero_grad()
    y, (h_n, c_n) = model(x, lengths=lengths)
    dx, _ = model.backward(weights, (np.ones_like(h_n), np.full_like(c_n, 0.5)))
    for name, value in model.named_parameters():
        for index in (0, value.size // 2, value.size - 1):
            numeric = central_difference(loss, value, index)
            assert abs(model.grads[name].flat[index] - numeric) <= 1e-6 * (1 + abs(numeric)), name
    flat_x = x.reshape(-1)
    for index in (0, 7, flat_x.size - 1):
        numeric = central_difference(loss, x, index)
        assert abs(dx.flat[index] - numeric) <= 1e-6 * (1 + abs(numeric)), "x"


@pytest.mark.parametrize(
    ("config", "lengths"),
    [
        pytest.param(dict(num_layers=2, bidirectional=True), [5, 2, 4], id="stacked-bidi"),
        pytest.param(dict(num_layers=1, proj_size=2, peephole=True), None, id="proj-peephole"),
    ],
)
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_gradients_match_central_differences(config, lengths, training):
    model = xplstm.LSTM(2, 4, **config, **FLAGS, dtype="float64", seed=6).train(training)
    gradient_check(model, lengths, seed=7)


def test_a_new_layer_with_the_same_seed_draws_the_same_masks():
    x = np.random.default_rng(0).standard_normal((6, 3, 2)).astype(np.float32)
    first = xplstm.LSTM(2, 4, 2, **FLAGS, seed=11)
    again = xplstm.LSTM(2, 4, 2, **FLAGS, seed=11)
    y_first = first(x)[0]
    np.testing.assert_array_equal(again(x)[0], y_first)
    assert not np.array_equal(first(x)[0], y_first)  # each forward draws new masks
    other = xplstm.LSTM(2, 4, 2, **FLAGS, seed=12)
    other.load_state_dict(first.state_dict())
    assert not np.array_equal(other(x)[0], y_first)  # same weights, another mask stream


def test_no_grad_draws_the_masks_of_a_recorded_forward():
    x = np.random.default_rng(0).standard_normal((7, 3, 2))
    recorded = xplstm.LSTM(2, 4, 2, **FLAGS, dtype="float64", seed=2)
    inferred = xplstm.LSTM(2, 4, 2, **FLAGS, dtype="float64", seed=2)
    y = recorded(x, lengths=[7, 3, 5])[0]
    with xplstm.no_grad():
        np.testing.assert_array_equal(inferred(x, lengths=[7, 3, 5])[0], y)


@pytest.mark.parametrize("name", ["zoneout_cell", "zoneout_hidden", "recurrent_dropout"])
def test_rates_are_checked_and_named(name):
    with pytest.raises(ValueError, match=rf"{name} must be in \[0, 1\), got 1.5"):
        xplstm.LSTM(2, 4, **{name: 1.5})
    with pytest.raises(TypeError, match=f"{name} must be a number"):
        xplstm.LSTM(2, 4, **{name: "0.2"})
    for layer in (xplstm.GRU, xplstm.RNN):
        with pytest.raises(TypeError, match=name):
            layer(2, 4, **{name: 0.2})


def test_files_keep_the_rates(tmp_path):
    model = xplstm.LSTM(2, 4, 2, **FLAGS, seed=0)
    model.save(tmp_path / "noisy.npz")
    loaded = xplstm.LSTM.load(tmp_path / "noisy.npz")
    assert (loaded.zoneout_cell, loaded.zoneout_hidden, loaded.recurrent_dropout) == (
        P_C, P_H, P_R,
    )  # fmt: skip
    x = np.random.default_rng(0).standard_normal((4, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.eval()(x)[0], model.eval()(x)[0])
    assert "zoneout_cell=0.3" in repr(loaded)


# ------------------------------------------------------------------ the zoneout step itself


def zoneout_inputs(dtype, rng, fractional):
    keep = rng.random((5, 7))
    keep = keep if fractional else (keep < 0.5)
    return (
        np.ascontiguousarray(keep, dtype=dtype),
        rng.standard_normal((5, 7)).astype(dtype),
        rng.standard_normal((5, 7)).astype(dtype),
    )


@pytest.mark.parametrize("fractional", [False, True], ids=["mask", "expectation"])
def test_header_and_twin_compute_the_blend_and_its_gradient(dtype, fractional):
    rng = np.random.default_rng(0)
    keep, previous, candidate = zoneout_inputs(dtype, rng, fractional)
    k, prev, cand = (a.astype(np.float64) for a in (keep, previous, candidate))
    results = []
    for cell in (HostCell("zoneout", dtype, 5, 7), ZoneoutTwin(np, dtype, 5, 7)):
        value, gradient, carried = candidate.copy(), candidate.copy(), np.empty_like(candidate)
        cell.forward(keep, previous, value)
        cell.backward(keep, gradient, carried)
        assert_close(value, k * prev + (1 - k) * cand, dtype, name="value")
        assert_close(gradient, (1 - k) * cand, dtype, name="gradient")
        assert_close(carried, k * cand, dtype, name="carried")
        results.append((value, gradient, carried))
    if not fractional:  # a 0/1 mask selects exactly
        np.testing.assert_array_equal(results[0][0], np.where(keep == 1, previous, candidate))
    for header, twin in zip(*results, strict=True):
        np.testing.assert_array_equal(header, twin)  # the same formula, the same roundings


def test_factory_builds_the_zoneout_step():
    assert isinstance(make_cell("zoneout", np, np.float32, 2, 3), ZoneoutTwin)
