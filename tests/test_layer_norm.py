"""``xplstm.LSTM(..., layer_norm=True)``: the LayerNorm LSTM of Ba, Kiros and Hinton (2016,
section 3.1) against the float64 loop of ``tests/reference.py`` (its layer-norm Jacobians written
out), central differences, combinations with zoneout, recurrent dropout, stacking, directions and
lengths, files and errors, and the header's pieces against the twin."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from conftest import ULPS, assert_close, to_numpy
from kernel_harness.host import HostKernel, launch_spec
from test_zoneout import FLAGS, documented_noise, expected_noise, gradient_check, run_both

import xplstm
from xplstm.cells import LayerNormLSTMTwin, make_cell
from xplstm.cuda.specs import kernel_preamble, kernel_specs

LAYER_NORM_ULPS = 4 * ULPS
"""A layer norm divides the rounding error its input row carries by the row's standard deviation,
and the error of the mean it subtracts grows with ``|mean| / std``: over rows of 4 to 16 random
values, a few times the plain LSTM's error (measured: up to 1.1x ``ULPS`` through two layers)."""

CONFIGS = [
    pytest.param(dict(num_layers=1), None, {}, id="plain"),
    pytest.param(dict(num_layers=2, bidirectional=True), [6, 2, 5], {}, id="stacked-bidi-lengths"),
    pytest.param(dict(num_layers=2, batch_first=True), [6, 1, 4], FLAGS, id="with-noise"),
    pytest.param(dict(num_layers=1, bias=False), [3, 6, 2], {}, id="no-bias"),
    pytest.param(dict(num_layers=2, dropout=0.5), None, dict(zoneout_hidden=0.3), id="dropout"),
]


def device_of(xp) -> str:
    return "cpu" if xp is np else "cuda"


def randomize_norms(model, rng):
    """Gains start at 1 and shifts at 0; move them so that the test exercises them."""
    for name, value in model.named_parameters():
        if name.startswith("layer_norm_"):
            start = 1.0 if name.startswith("layer_norm_weight") else 0.0
            values = start + rng.uniform(-0.5, 0.5, value.shape)
            value[...] = model.xp.asarray(values, dtype=model.dtype)


@pytest.mark.parametrize(("config", "lengths", "flags"), CONFIGS)
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_matches_the_loop_reference(xp, dtype, config, lengths, flags, training):
    model = xplstm.LSTM(
        2, 4, **config, **flags, layer_norm=True, dtype=dtype, device=device_of(xp), seed=3
    ).train(training)
    rng = np.random.default_rng(4)
    randomize_norms(model, rng)
    if training:
        noise, masks = documented_noise(model, 6, 3)
    else:
        noise, masks = (expected_noise(model, 3) if flags else None), None
    pairs = run_both(model, xp, dtype, lengths, noise, masks, rng)
    assert {name for _, _, name in pairs} >= {f"layer_norm_weight_c_l{model.num_layers - 1}"}
    for actual, wanted, name in pairs:
        assert_close(actual, wanted, dtype, name=name, ulps=LAYER_NORM_ULPS)


def test_each_norm_acts_on_a_whole_row():
    """The reference itself: the normalized vectors have mean 0 and variance 1 - eps/(var+eps)
    before their gain, and the Jacobian product agrees with central differences."""
    rng = np.random.default_rng(0)
    v, gain, dy = rng.normal(3, 2, 9), rng.uniform(0.5, 1.5, 9), rng.standard_normal(9)
    x = ref.layer_norm(v, np.ones(9), 0.0)
    assert abs(x.mean()) < 1e-12 and abs(x.var() - v.var() / (v.var() + ref.LN_EPSILON)) < 1e-12
    numeric = [
        (dy @ ref.layer_norm(v + e, gain, 0.0) - dy @ ref.layer_norm(v - e, gain, 0.0)) / 2e-6
        for e in np.eye(9) * 1e-6
    ]
    np.testing.assert_allclose(ref.layer_norm_vjp(dy, v, gain), numeric, rtol=1e-7, atol=1e-9)


def test_a_new_layer_has_unit_gains_and_the_plain_weights_of_its_seed():
    normed, plain = xplstm.LSTM(2, 4, 2, layer_norm=True, seed=7), xplstm.LSTM(2, 4, 2, seed=7)
    for name, value in plain.named_parameters():
        np.testing.assert_array_equal(getattr(normed, name), value)
    assert normed.layer_norm_weight_ih_l0.shape == (16,) and normed.layer_norm_bias_c_l1.shape == (
        4,
    )
    for name, value in normed.named_parameters():
        if name.startswith("layer_norm_"):
            assert np.all(value == (1 if name.startswith("layer_norm_weight") else 0)), name
    names = [name for name, _ in normed.named_parameters() if name.endswith("_l0")]
    assert names[4:] == [
        "layer_norm_weight_ih_l0", "layer_norm_bias_ih_l0", "layer_norm_weight_hh_l0",
        "layer_norm_bias_hh_l0", "layer_norm_weight_c_l0", "layer_norm_bias_c_l0",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("config", "lengths"),
    [
        pytest.param(dict(num_layers=2, bidirectional=True), [5, 2, 4], id="stacked-bidi"),
        pytest.param(dict(num_layers=1, **FLAGS), None, id="with-noise"),
    ],
)
def test_gradients_match_central_differences(config, lengths):
    model = xplstm.LSTM(2, 4, **config, layer_norm=True, dtype="float64", seed=6)
    randomize_norms(model, np.random.default_rng(8))
    gradient_check(model, lengths, seed=7)


@pytest.mark.parametrize("other", [dict(proj_size=2), dict(peephole=True)], ids=["proj", "peep"])
def test_unsupported_combinations_name_both(other):
    (name,) = other
    with pytest.raises(ValueError, match=rf"layer_norm=True does not combine with {name}"):
        xplstm.LSTM(2, 4, layer_norm=True, **other)
    with pytest.raises(TypeError, match="layer_norm"):
        xplstm.GRU(2, 4, layer_norm=True)
    with pytest.raises(TypeError, match="layer_norm must be"):
        xplstm.LSTM(2, 4, layer_norm="yes")


def test_files_keep_the_flag_and_the_norms(tmp_path):
    model = xplstm.LSTM(2, 4, 2, layer_norm=True, zoneout_cell=0.2, seed=0).eval()
    randomize_norms(model, np.random.default_rng(1))
    model.save(tmp_path / "normed.npz")
    loaded = xplstm.LSTM.load(tmp_path / "normed.npz").eval()
    assert loaded.layer_norm and "layer_norm=True" in repr(loaded)
    x = np.random.default_rng(0).standard_normal((4, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x)[0], model(x)[0])


def test_inference_in_chunks_is_bitwise_the_recorded_forward(monkeypatch):
    """``no_grad`` runs the engine a chunk of steps at a time; the norms are per step, so the
    result is bitwise the same."""
    monkeypatch.setattr(xplstm.engine, "PROJECTION_CHUNK_BYTES", 4096)
    model = xplstm.LSTM(3, 8, 2, bidirectional=True, layer_norm=True, dtype="float64", seed=1)
    x = np.random.default_rng(2).standard_normal((30, 4, 3))
    y, (h_n, c_n) = model(x, lengths=[30, 7, 19, 1])
    with xplstm.no_grad():
        y_chunked, (h_chunked, c_chunked) = model(x, lengths=[30, 7, 19, 1])
    for a, b in ((y, y_chunked), (h_n, h_chunked), (c_n, c_chunked)):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------- the header's pieces


class HostLayerNormLSTM(LayerNormLSTMTwin):
    """The twin's composition with every piece launched from the kernel specs on the host."""

    implementation = "host rendering"

    def __init__(self, dtype, batch_size, hidden_size):
        super().__init__(np, dtype, batch_size, hidden_size)
        self.specs = {**kernel_specs("layer_norm", dtype), **kernel_specs("lstm_layer_norm", dtype)}
        preamble = kernel_preamble("lstm_layer_norm")
        self.kernels = {
            step: HostKernel(spec.in_params, spec.out_params, spec.operation, spec.name, preamble)
            for step, spec in self.specs.items()
        }

    def _launch(self, step, size, **named):
        launch_spec(self.kernels[step], self.specs[step], named, size)

    def statistics(self, x, width, mean, rstd):
        self._launch("statistics", x.shape[0], width=width, x=x, mean=mean, rstd=rstd)

    def normalize(self, mean, rstd, gain, shift, x_hat, value, width):
        self._launch("forward", value.size, width=width, mean=mean, rstd=rstd, gain=gain,
                     shift=shift, x_hat=x_hat, value=value)  # fmt: skip

    def backward_statistics(self, d_hat, x_hat, width, mean_d, mean_dx):
        self._launch("backward_statistics", d_hat.shape[0], width=width, d_hat=d_hat,
                     x_hat=x_hat, mean_d=mean_d, mean_dx=mean_dx)  # fmt: skip

    def normalize_backward(self, x_hat, rstd, mean_d, mean_dx, gradient, width):
        self._launch("backward", gradient.size, width=width, x_hat=x_hat, rstd=rstd,
                     mean_d=mean_d, mean_dx=mean_dx, gradient=gradient)  # fmt: skip

    def gates(self, mean_h, rstd_h, gain_h, shift_h, c_prev, gates, recurrent, c_next):
        self._launch("gates", c_next.size, hidden=self.hidden_size, mean_h=mean_h, rstd_h=rstd_h,
                     gain_h=gain_h, shift_h=shift_h, c_prev=c_prev, gates=gates,
                     recurrent=recurrent, c_next=c_next)  # fmt: skip

    def output(self, gates, c_next, mean_c, rstd_c, gain_c, shift_c, c_hat, h_next):
        self._launch("output", c_next.size, hidden=self.hidden_size, gates=gates, c_next=c_next,
                     mean_c=mean_c, rstd_c=rstd_c, gain_c=gain_c, shift_c=shift_c, c_hat=c_hat,
                     h_next=h_next)  # fmt: skip

    def output_backward(self, c_hat, gain_c, shift_c, dy, dh, gates, d_n, d_c_hat):
        self._launch("output_backward", c_hat.size, hidden=self.hidden_size, c_hat=c_hat,
                     gain_c=gain_c, shift_c=shift_c, dy=dy, dh=dh, gates=gates, d_n=d_n,
                     d_c_hat=d_c_hat)  # fmt: skip

    def gates_backward(self, c_hat, rstd_c, d_c_hat, mean_d, mean_dx, c_prev, gain_h, gates, dc,
                       d_recurrent):  # fmt: skip
        self._launch("gates_backward", c_hat.size, hidden=self.hidden_size, c_hat=c_hat,
                     rstd_c=rstd_c, d_c_hat=d_c_hat, mean_d=mean_d, mean_dx=mean_dx,
                     c_prev=c_prev, gain_h=gain_h, gates=gates, dc=dc,
                     d_recurrent=d_recurrent)  # fmt: skip


def step_reference(projection, recurrent, c_prev, dy, dh, dc, norms):
    """One step, rows independent, in float64 from the paper's equations: outputs and the
    gradients of ``sum(h * dy) + sum(c * dc)`` (``dh`` adds to ``dy``)."""
    results = {key: [] for key in ("gates", "c", "h", "d_pre", "dc_prev", "d_recurrent")}
    gain_h, shift_h, gain_c, shift_c = norms
    hidden = c_prev.shape[1]
    for row in range(c_prev.shape[0]):
        z = projection[row] + ref.layer_norm(recurrent[row], gain_h, shift_h)
        i, f = ref.sigmoid(z[:hidden]), ref.sigmoid(z[hidden : 2 * hidden])
        g, o = np.tanh(z[2 * hidden : 3 * hidden]), ref.sigmoid(z[3 * hidden :])
        c = f * c_prev[row] + i * g
        n = ref.layer_norm(c, gain_c, shift_c)
        d_h = dy[row] + dh[row]
        dn = d_h * o * (1 - np.tanh(n) ** 2)
        d_c = dc[row] + ref.layer_norm_vjp(dn, c, gain_c)
        d_pre = np.concatenate([d_c * g * i * (1 - i), d_c * c_prev[row] * f * (1 - f),
                                d_c * i * (1 - g**2), d_h * np.tanh(n) * o * (1 - o)])  # fmt: skip
        for key, value in (
            ("gates", np.concatenate([i, f, g, o])), ("c", c), ("h", o * np.tanh(n)),
            ("d_pre", d_pre), ("dc_prev", d_c * f),
            ("d_recurrent", ref.layer_norm_vjp(d_pre, recurrent[row], gain_h)),
        ):  # fmt: skip
            results[key].append(value)
    return {key: np.array(value) for key, value in results.items()}


@pytest.mark.parametrize("rows", [5, 3], ids=["all-rows", "packed-prefix"])
def test_header_and_twin_steps_match_the_equations(dtype, rows):
    batch, hidden = 5, 6
    rng = np.random.default_rng(9)
    projection = rng.normal(0, 2, (batch, 4 * hidden))
    recurrent = rng.normal(1, 3, (batch, 4 * hidden))
    c_prev, dy, dh, dc = (rng.standard_normal((batch, hidden)) for _ in range(4))
    norms = (rng.uniform(0.5, 1.5, 4 * hidden), rng.normal(0, 0.3, 4 * hidden),
             rng.uniform(0.5, 1.5, hidden), rng.normal(0, 0.3, hidden))  # fmt: skip
    wanted = step_reference(*(a[:rows] for a in (projection, recurrent, c_prev, dy, dh, dc)),
                            norms)  # fmt: skip
    cast = [np.ascontiguousarray(a, dtype=dtype) for a in norms]
    outputs = []
    for cell in (HostLayerNormLSTM(dtype, batch, hidden), make_cell("lstm_layer_norm", np, dtype,
                                                                    batch, hidden)):  # fmt: skip
        gates, product = projection.astype(dtype), recurrent.astype(dtype)
        c_next, h_next, c_hat = (np.empty((batch, hidden), dtype) for _ in range(3))
        rstd_h, rstd_c = np.empty(batch, dtype), np.empty(batch, dtype)
        saved = (rstd_h[:rows], c_hat[:rows], rstd_c[:rows])
        cell.forward(gates[:rows], product[:rows], c_prev[:rows].astype(dtype), c_next[:rows],
                     h_next[:rows], *cast, *saved)  # fmt: skip
        assert_close(gates[:rows], wanted["gates"], dtype, name="gates")
        assert_close(c_next[:rows], wanted["c"], dtype, name="c_next")
        assert_close(h_next[:rows], wanted["h"], dtype, name="h_next")
        d_carried = dc.astype(dtype)
        d_recurrent, d_n = np.empty_like(product), np.empty_like(c_hat)
        cell.backward(gates[:rows], dy[:rows].astype(dtype), dh[:rows].astype(dtype),
                      d_carried[:rows], c_prev[:rows].astype(dtype), c_next[:rows], *cast, *saved,
                      product[:rows], d_recurrent[:rows], d_n[:rows])  # fmt: skip
        assert_close(gates[:rows], wanted["d_pre"], dtype, name="d_pre")
        assert_close(d_carried[:rows], wanted["dc_prev"], dtype, name="dc_prev")
        assert_close(d_recurrent[:rows], wanted["d_recurrent"], dtype, name="d_recurrent")
        outputs.append((gates[:rows].copy(), h_next[:rows].copy(), d_recurrent[:rows].copy()))
    for header, twin in zip(*outputs, strict=True):  # the same formulas, to a few roundings
        assert_close(header, to_numpy(twin).astype(np.float64), dtype, ulps=8)


@pytest.mark.gpu
def test_cupy_builds_the_fused_steps_from_the_header():
    from conftest import cupy_or_skip

    cupy = cupy_or_skip()
    for kind in ("lstm_layer_norm", "zoneout"):
        assert make_cell(kind, cupy, np.float32, 3, 4).implementation == "fused cuda"
        assert make_cell(kind, cupy, np.float32, 3, 4, fused=False).implementation == (
            "unfused cupy"
        )
