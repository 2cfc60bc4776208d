"""``xplstm.LSTM(..., peephole=True)`` (Gers, Schraudolph and Schmidhuber 2002) against the
float64 loop of ``tests/reference.py``, central differences, files and errors."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from conftest import assert_close, central_difference, to_numpy

import xplstm

CONFIGS = [
    pytest.param(dict(num_layers=1), None, id="plain"),
    pytest.param(dict(num_layers=2, bidirectional=True), [5, 2, 6], id="stacked-bidi-lengths"),
    pytest.param(dict(num_layers=2, proj_size=2, batch_first=True), [6, 1, 4], id="proj-bf"),
    pytest.param(dict(num_layers=1, bias=False, dropout=0.0), None, id="no-bias"),
]


def randomize_peepholes(model, rng):
    """Peepholes start at zero; give them values so that the test exercises them."""
    xp = model.xp
    for name, value in model.named_parameters():
        if name.startswith("weight_peephole_"):
            value[...] = xp.asarray(rng.standard_normal(value.shape), dtype=model.dtype)


@pytest.mark.parametrize(("config", "lengths"), CONFIGS)
def test_matches_the_loop_reference(xp, dtype, config, lengths):
    device = "cpu" if xp is np else "cuda"
    model = xplstm.LSTM(2, 4, **config, peephole=True, dtype=dtype, device=device, seed=3)
    rng = np.random.default_rng(4)
    randomize_peepholes(model, rng)
    rows, out = model.num_layers * model.num_directions, model.output_size
    x = rng.standard_normal((6, 3, 2))
    h0, c0 = rng.standard_normal((rows, 3, out)), rng.standard_normal((rows, 3, 4))
    params = {k: to_numpy(v).astype(np.float64) for k, v in model.state_dict().items()}
    y_ref, h_ref, c_ref, tape = ref.layer_forward(
        params, x, h0, c0, lengths, model.num_layers, model.bidirectional, 4, model.proj_size
    )
    dy = rng.standard_normal(y_ref.shape)
    dh_n, dc_n = rng.standard_normal(h_ref.shape), rng.standard_normal(c_ref.shape)
    dx_ref, dh0_ref, dc0_ref, grads_ref = ref.layer_backward(
        params, tape, dy, dh_n, dc_n, 4, model.proj_size
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
    for actual, wanted, name in (
        (layout(y), y_ref, "y"), (h_n, h_ref, "h_n"), (c_n, c_ref, "c_n"),
        (layout(dx), dx_ref, "dx"), (dh0, dh0_ref, "dh0"), (dc0, dc0_ref, "dc0"),
    ):  # fmt: skip
        assert_close(actual, wanted, dtype, name=name)
    assert [k for k in model.grads if "peephole" in k]
    for name, wanted in grads_ref.items():
        assert_close(model.grads[name], wanted, dtype, name=name)


def test_a_new_peephole_layer_computes_the_plain_lstm_of_its_seed(monkeypatch):
    x = np.random.default_rng(0).standard_normal((5, 3, 2)).astype(np.float32)
    peephole = xplstm.LSTM(2, 4, 2, peephole=True, seed=7)
    plain = xplstm.LSTM(2, 4, 2, seed=7)
    for name, value in plain.named_parameters():
        np.testing.assert_array_equal(getattr(peephole, name), value)
    assert peephole.weight_peephole_l1.shape == (3, 4) and not peephole.weight_peephole_l1.any()
    # The compiled CPU kernels run the plain LSTM only (their tanh rounds apart from NumPy's).
    assert_close(peephole(x)[0], plain(x)[0].astype(np.float64), np.float32, ulps=8)
    monkeypatch.setenv("XPLSTM_CPU_KERNELS", "numpy")  # both twins: bitwise the same
    np.testing.assert_array_equal(peephole(x)[0], plain(x)[0])


def test_peephole_gradients_match_central_differences():
    rng = np.random.default_rng(8)
    model = xplstm.LSTM(2, 3, 2, bidirectional=True, peephole=True, dtype="float64", seed=9)
    randomize_peepholes(model, rng)
    x, weights = rng.standard_normal((5, 2, 2)), rng.standard_normal((5, 2, 6))

    def loss():
        with xplstm.no_grad():
            y, (_, c_n) = model(x, lengths=[5, 3])
        return float((y * weights).sum() + c_n.sum())

    y, (_, c_n) = model(x, lengths=[5, 3])
    model.backward(weights, (None, np.ones_like(c_n)))
    for name in ("weight_peephole_l0", "weight_peephole_l1_reverse"):
        parameter = getattr(model, name)
        for index in range(parameter.size):
            numeric = central_difference(loss, parameter, index)
            analytic = model.grads[name].reshape(-1)[index]
            assert abs(numeric - analytic) <= 1e-7 * (1 + abs(numeric)), (name, index)


def test_files_keep_peepholes_and_other_cells_refuse_them(tmp_path):
    model = xplstm.LSTM(2, 3, peephole=True, seed=1)
    randomize_peepholes(model, np.random.default_rng(0))
    model.save(tmp_path / "peephole.npz")
    loaded = xplstm.LSTM.load(tmp_path / "peephole.npz")
    assert loaded.peephole and "peephole=True" in repr(loaded)
    np.testing.assert_array_equal(loaded.weight_peephole_l0, model.weight_peephole_l0)
    with pytest.raises(KeyError, match=r"missing 'weight_peephole_l0'.*\(3, 3\)"):
        loaded.load_state_dict(xplstm.LSTM(2, 3).state_dict())  # e.g. a torch state dict
    with pytest.raises(TypeError, match=r"xplstm\.GRU has no peephole"):
        xplstm.GRU._uninitialized({**xplstm.GRU(2, 3)._config(), "peephole": True}, "cpu")
    with pytest.raises(TypeError, match="peephole must be True or False"):
        xplstm.LSTM(2, 3, peephole=1)


@pytest.mark.gpu
def test_a_planned_gpu_loop_asked_for_with_peepholes_is_refused():
    from conftest import cupy_or_skip

    from xplstm import engine

    cupy = cupy_or_skip()
    x = cupy.zeros((2, 1, 2), dtype=cupy.float32)
    w_ih, w_hh = cupy.zeros((12, 2), cupy.float32), cupy.zeros((12, 3), cupy.float32)
    with pytest.raises(ValueError, match="an LSTM with peephole runs the 'cupy' loop"):
        engine.lstm_forward(
            x, w_ih, w_hh, peephole=cupy.zeros((3, 3), cupy.float32), gpu_loop="graph"
        )
