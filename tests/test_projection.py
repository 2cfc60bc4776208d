"""``xplstm.LSTM(..., proj_size=P)`` (LSTMP, torch's projections) without torch: the float64
loop reference of ``tests/reference.py``, finite differences, no_grad, files and errors.

The torch comparison is in ``test_layer_oracle.py`` (every configuration, with ``proj_size``).
"""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from conftest import assert_close, central_difference, to_numpy

import xplstm

HIDDEN, PROJ = 5, 3

CONFIGS = [
    pytest.param(dict(num_layers=1), None, id="plain"),
    pytest.param(dict(num_layers=2, bidirectional=True), [4, 6, 1, 3], id="stacked-bidi-lengths"),
    pytest.param(dict(num_layers=2, batch_first=True, bias=False), [6, 2, 5, 6], id="bf-nobias"),
]


def device_of(xp) -> str:
    return "cpu" if xp is np else "cuda"


def layout(model, array):
    """Time-major to the model's layout, or back (the same transpose)."""
    return array.transpose(1, 0, 2) if model.batch_first else array


def run_both(model, xp, dtype, lengths, rng):
    """The layer's forward and backward next to the reference's, on the same random data."""
    rows, out = model.num_layers * model.num_directions, model.proj_size
    x = rng.standard_normal((6, 4, 2))
    h0, c0 = rng.standard_normal((rows, 4, out)), rng.standard_normal((rows, 4, HIDDEN))
    params = {name: to_numpy(v).astype(np.float64) for name, v in model.state_dict().items()}
    y_ref, h_ref, c_ref, tape = ref.layer_forward(
        params, x, h0, c0, lengths, model.num_layers, model.bidirectional, HIDDEN, proj_size=PROJ
    )
    dy = rng.standard_normal(y_ref.shape)
    dh_n, dc_n = rng.standard_normal(h_ref.shape), rng.standard_normal(c_ref.shape)
    expected_backward = ref.layer_backward(params, tape, dy, dh_n, dc_n, HIDDEN, proj_size=PROJ)

    device = [xp.asarray(a, dtype=dtype) for a in (layout(model, x), h0, c0, layout(model, dy))]
    y, (h_n, c_n) = model(device[0], (device[1], device[2]), lengths=lengths)
    dstate = (xp.asarray(dh_n, dtype=dtype), xp.asarray(dc_n, dtype=dtype))
    dx, (dh0, dc0) = model.backward(device[3], dstate)
    ours = (layout(model, y), h_n, c_n, layout(model, dx), dh0, dc0)
    return ours, (y_ref, h_ref, c_ref, *expected_backward)


@pytest.mark.parametrize(("config", "lengths"), CONFIGS)
def test_forward_and_backward_match_the_loop_reference(xp, dtype, config, lengths):
    model = xplstm.LSTM(
        2, HIDDEN, **config, proj_size=PROJ, dtype=dtype, device=device_of(xp), seed=7
    )
    ours, expected = run_both(model, xp, dtype, lengths, np.random.default_rng(3))
    y, h_n, c_n, dx, dh0, dc0 = ours
    y_ref, h_ref, c_ref, dx_ref, dh0_ref, dc0_ref, grads_ref = expected
    directions = model.num_directions
    assert y.shape == (6, 4, directions * PROJ)
    assert h_n.shape == (model.num_layers * directions, 4, PROJ)
    assert c_n.shape == (model.num_layers * directions, 4, HIDDEN)
    for actual, wanted, name in (
        (y, y_ref, "y"), (h_n, h_ref, "h_n"), (c_n, c_ref, "c_n"),
        (dx, dx_ref, "dx"), (dh0, dh0_ref, "dh0"), (dc0, dc0_ref, "dc0"),
    ):  # fmt: skip
        assert actual.dtype == dtype
        assert_close(actual, wanted, dtype, name=name)
    assert list(model.grads) == list(grads_ref)
    for name, wanted in grads_ref.items():
        assert_close(model.grads[name], wanted, dtype, name=name)


def test_parameters_have_torchs_names_shapes_and_order():
    model = xplstm.LSTM(2, HIDDEN, 2, bidirectional=True, proj_size=PROJ)
    shapes = {name: tuple(value.shape) for name, value in model.named_parameters()}
    assert list(shapes)[:5] == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_hr_l0"
    ]  # fmt: skip
    assert shapes["weight_hh_l0"] == (4 * HIDDEN, PROJ)
    assert shapes["weight_hr_l0_reverse"] == (PROJ, HIDDEN)
    assert shapes["weight_ih_l1"] == (4 * HIDDEN, 2 * PROJ)  # layer 1 reads D * P features
    assert len(shapes) == 2 * 2 * 5


def test_projection_gradient_matches_central_differences():
    rng = np.random.default_rng(5)
    model = xplstm.LSTM(2, HIDDEN, 2, proj_size=PROJ, dtype="float64", seed=1)
    x = rng.standard_normal((5, 3, 2))
    weights = rng.standard_normal((5, 3, PROJ)), rng.standard_normal((2, 3, PROJ))

    def loss():
        with xplstm.no_grad():
            y, (h_n, _) = model(x, lengths=[5, 2, 4])
        return float((y * weights[0]).sum() + (h_n * weights[1]).sum())

    model(x, lengths=[5, 2, 4])
    model.backward(weights[0], (weights[1], None))
    for name in ("weight_hr_l0", "weight_hr_l1", "weight_hh_l1"):
        parameter = getattr(model, name)
        for index in (0, parameter.size // 2, parameter.size - 1):
            numeric = central_difference(loss, parameter, index)
            analytic = model.grads[name].reshape(-1)[index]
            assert abs(numeric - analytic) <= 1e-7 * (1 + abs(numeric)), (name, index)


def test_no_grad_forward_is_bitwise_the_recorded_one(dtype):
    model = xplstm.LSTM(2, HIDDEN, 2, bidirectional=True, proj_size=PROJ, dtype=dtype, seed=2)
    x = np.random.default_rng(0).standard_normal((7, 3, 2)).astype(dtype)
    y, (h_n, c_n) = model(x, lengths=[7, 1, 4])
    with xplstm.no_grad():
        y2, (h2, c2) = model(x, lengths=[7, 1, 4])
    for recorded, inferred in ((y, y2), (h_n, h2), (c_n, c2)):
        np.testing.assert_array_equal(recorded, inferred)


def test_save_and_load_keep_the_projection(tmp_path):
    model = xplstm.LSTM(2, HIDDEN, 2, proj_size=PROJ, seed=4)
    model.save(tmp_path / "lstmp.npz")
    loaded = xplstm.LSTM.load(tmp_path / "lstmp.npz")
    assert loaded.proj_size == PROJ
    x = np.ones((3, 2, 2), dtype=np.float32)
    np.testing.assert_array_equal(loaded(x)[0], model(x)[0])
    assert "proj_size=3" in repr(loaded)


@pytest.mark.parametrize(
    ("proj_size", "error", "match"),
    [
        (HIDDEN, ValueError, "proj_size must be smaller than hidden_size"),
        (-1, ValueError, "proj_size must be a non-negative int"),
        (True, TypeError, "proj_size must be a non-negative int"),
        (1.5, TypeError, "proj_size must be a non-negative int"),
    ],
)
def test_invalid_proj_size_is_refused_naming_it(proj_size, error, match):
    with pytest.raises(error, match=match):
        xplstm.LSTM(2, HIDDEN, proj_size=proj_size)


def test_states_of_the_wrong_width_are_refused_naming_the_member():
    model = xplstm.LSTM(2, HIDDEN, proj_size=PROJ)
    x = np.zeros((3, 2, 2), dtype=np.float32)
    h0, c0 = np.zeros((1, 2, PROJ), np.float32), np.zeros((1, 2, HIDDEN), np.float32)
    model(x, (h0, c0))  # h0 has P features, c0 has H
    with pytest.raises(ValueError, match=r"h0\) has shape \(1, 2, 5\) but \(1, 2, 3\)"):
        model(x, (c0, c0))
    with pytest.raises(ValueError, match=r"c0\) has shape \(1, 2, 3\) but \(1, 2, 5\)"):
        model(x, (h0, h0))


@pytest.mark.gpu
def test_a_planned_gpu_loop_asked_for_with_a_projection_is_refused():
    from conftest import cupy_or_skip

    from xplstm import engine

    cupy = cupy_or_skip()
    x = cupy.zeros((2, 1, 2), dtype=cupy.float32)
    w_ih, w_hh = cupy.zeros((4 * HIDDEN, 2), cupy.float32), cupy.zeros((4 * HIDDEN, PROJ))
    w_hr = cupy.zeros((PROJ, HIDDEN), dtype=cupy.float32)
    with pytest.raises(ValueError, match="proj_size runs the 'cupy' loop"):
        engine.lstm_forward(x, w_ih, w_hh.astype(cupy.float32), w_hr=w_hr, gpu_loop="plan")
