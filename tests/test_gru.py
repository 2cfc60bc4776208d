"""``xplstm.GRU``: its kernel header, NumPy twin and engine against float64 formulas, finite
differences, the layer's API (checks, files, threads, ``no_grad``) and the GPU path.

The GRU header (``kernels/gru.cuh``) is built on the host from the kernel specs and compared,
with the twin, to the float64 formulas written out below; the engine and the layer are compared
to a plain float64 loop and to central finite differences. The ``gpu`` cases run on CuPy (the
host stand-in under ``-p kernel_harness.stand_in_gpu``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_close, central_difference, cupy_or_skip, to_numpy
from kernel_harness.host import HostKernel, host_compiler, launch_spec

import xplstm
from xplstm import engine
from xplstm.cells import GRUTwin, make_cell
from xplstm.cuda.specs import kernel_preamble, kernel_specs

DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
SHAPES = [(1, 1), (3, 5), (7, 33)]


# ----------------------------------------------------------------------- float64 formulas


def ref_sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))


def ref_step(projection, recurrent, bias_hh, h_prev):
    """torch.nn.GRU's step in float64: activated gates, ``W_hn h + b_hn`` and ``h_next``."""
    projection, recurrent, bias_hh, h_prev = (
        np.asarray(a, np.float64) for a in (projection, recurrent, bias_hh, h_prev)
    )
    product = recurrent + bias_hh
    x_r, x_z, x_n = np.split(projection, 3, axis=1)
    h_r, h_z, h_n = np.split(product, 3, axis=1)
    r, z = ref_sigmoid(x_r + h_r), ref_sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    return np.concatenate([r, z, n], axis=1), h_n, (1 - z) * n + z * h_prev


def ref_step_backward(gates, hidden_n, h_prev, dy, dh):
    """Input-side and recurrent-side pre-activation gradients and ``dh_total * z``."""
    gates, hidden_n, h_prev, dy, dh = (
        np.asarray(a, np.float64) for a in (gates, hidden_n, h_prev, dy, dh)
    )
    r, z, n = np.split(gates, 3, axis=1)
    total = dy + dh
    dn = total * (1 - z) * (1 - n**2)
    dz = total * (h_prev - n) * z * (1 - z)
    dr = dn * hidden_n * r * (1 - r)
    return np.concatenate([dr, dz, dn], axis=1), np.concatenate([dr, dz, dn * r], axis=1), total * z


def ref_sequence(x, w_ih, w_hh, b_ih, b_hh, h0, lengths=None):
    """A plain float64 loop over ``(T, m, n_in)``: outputs (zero past lengths) and ``h_n``."""
    x, w_ih, w_hh, b_ih, b_hh, h0 = (
        np.asarray(a, np.float64) for a in (x, w_ih, w_hh, b_ih, b_hh, h0)
    )
    steps, batch, _ = x.shape
    lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths)
    h, outputs = h0.copy(), np.zeros((steps, batch, h0.shape[1]))
    for t in range(steps):
        _, _, h_next = ref_step(x[t] @ w_ih.T + b_ih, h @ w_hh.T, b_hh, h)
        running = (t < lengths)[:, None]
        h = np.where(running, h_next, h)
        outputs[t] = np.where(running, h_next, 0.0)
    return outputs, h


# ----------------------------------------------------------------------- step inputs


def random_inputs(rng, batch, hidden, dtype):
    width = 3 * hidden
    return (
        rng.normal(0, 2, (batch, width)).astype(dtype),
        rng.normal(0, 1, (batch, width)).astype(dtype),
        rng.normal(0, 1, width).astype(dtype),
        rng.normal(0, 1, (batch, hidden)).astype(dtype),
    )


class HostGRU:
    """The GRU kernel specs launched on NumPy arrays through the host rendering."""

    implementation = "host build"

    def __init__(self, dtype, batch_size, hidden_size):
        preamble = kernel_preamble("gru")
        self.specs = kernel_specs("gru", dtype)
        self.hidden_size = hidden_size
        self.kernels = {
            step: HostKernel(spec.in_params, spec.out_params, spec.operation, spec.name, preamble)
            for step, spec in self.specs.items()
        }

    def _launch(self, step, names, arrays, rows):
        named = dict(zip(names, arrays, strict=True))
        named["hidden"] = self.hidden_size
        launch_spec(self.kernels[step], self.specs[step], named, rows * self.hidden_size)

    def forward(self, gates, recurrent, bias_hh, h_prev, hidden_n, h_next):
        names = ("gates", "recurrent", "bias_hh", "h_prev", "hidden_n", "h_next")
        self._launch("forward", names, (gates, recurrent, bias_hh, h_prev, hidden_n, h_next),
                     h_next.shape[0])  # fmt: skip

    def backward(self, gates, drecurrent, dy, dh, h_prev, hidden_n):
        names = ("gates", "drecurrent", "dy", "dh", "h_prev", "hidden_n")
        self._launch("backward", names, (gates, drecurrent, dy, dh, h_prev, hidden_n),
                     dh.shape[0])  # fmt: skip


def run_step(cell, xp, projection, recurrent, bias_hh, h_prev, dy, dh):
    """Forward then backward through ``cell`` on copies; every result as NumPy."""
    gates = xp.array(projection)
    recurrent, bias_hh, h_prev = xp.asarray(recurrent), xp.asarray(bias_hh), xp.asarray(h_prev)
    hidden_n, h_next = xp.empty_like(h_prev), xp.empty_like(h_prev)
    before = to_numpy(recurrent).copy()
    cell.forward(gates, recurrent, bias_hh, h_prev, hidden_n, h_next)
    np.testing.assert_array_equal(to_numpy(recurrent), before, err_msg="recurrent modified")
    forward = tuple(to_numpy(a).copy() for a in (gates, hidden_n, h_next))
    drecurrent, dh = xp.full_like(gates, np.nan), xp.array(dh)
    dy = xp.asarray(dy)
    cell.backward(gates, drecurrent, dy, dh, h_prev, hidden_n)
    return forward, tuple(to_numpy(a) for a in (gates, drecurrent, dh))


def check_step(cell, xp, dtype, batch, hidden, seed=0):
    rng = np.random.default_rng(seed)
    projection, recurrent, bias_hh, h_prev = random_inputs(rng, batch, hidden, dtype)
    dy, dh = (rng.normal(0, 1, (batch, hidden)).astype(dtype) for _ in range(2))
    (gates, hidden_n, h_next), backward = run_step(
        cell, xp, projection, recurrent, bias_hh, h_prev, dy, dh
    )
    ref_gates, ref_hidden_n, ref_h = ref_step(projection, recurrent, bias_hh, h_prev)
    assert_close(gates, ref_gates, dtype, None, "gates", ulps=8)
    assert_close(hidden_n, ref_hidden_n, dtype, None, "hidden_n", ulps=8)
    assert_close(h_next, ref_h, dtype, None, "h_next", ulps=8)
    # The backward from the cell's own saved activations, against the formulas on them.
    expected = ref_step_backward(gates, hidden_n, h_prev, dy, dh)
    scale = 1.0 + max(float(np.abs(a).max()) for a in (dy, dh, hidden_n))
    for name, actual, reference in zip(
        ("d_gates", "d_recurrent", "dh"), backward, expected, strict=True
    ):
        assert_close(actual, reference, dtype, scale, name, ulps=16)
    return (gates, hidden_n, h_next), backward


# ----------------------------------------------------------------------- the header and the twin


@pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler on PATH")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_header_and_twin_match_the_formulas_and_each_other(dtype, shape):
    batch, hidden = shape
    host = check_step(HostGRU(dtype, batch, hidden), np, dtype, batch, hidden)
    twin = check_step(GRUTwin(np, dtype, batch, hidden), np, dtype, batch, hidden)
    # Same formulation, operation for operation: the same values up to a rounding or two
    # (the host compiler may contract a multiply-add).
    for name, a, b in zip(("forward", "backward"), host, twin, strict=True):
        for part_a, part_b in zip(a, b, strict=True):
            assert_close(part_a, part_b, dtype, None, name, ulps=4)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_twin_runs_a_prefix_of_rows(dtype):
    """A packed batch steps only its first rows; a twin built for more rows serves it."""
    rng = np.random.default_rng(3)
    wide = GRUTwin(np, dtype, 9, 4)
    projection, recurrent, bias_hh, h_prev = random_inputs(rng, 3, 4, dtype)
    dy, dh = (rng.normal(0, 1, (3, 4)).astype(dtype) for _ in range(2))
    exact = GRUTwin(np, dtype, 3, 4)
    wide_results = run_step(wide, np, projection, recurrent, bias_hh, h_prev, dy, dh)
    exact_results = run_step(exact, np, projection, recurrent, bias_hh, h_prev, dy, dh)
    for a, b in zip(wide_results, exact_results, strict=True):
        for part_a, part_b in zip(a, b, strict=True):
            np.testing.assert_array_equal(part_a, part_b)


def test_twin_is_stable_for_extreme_pre_activations():
    dtype = np.dtype(np.float64)
    values = np.array([1e4, 100.0, 1.0, 0.0, -1.0, -100.0, -1e4])
    projection = np.repeat(values[:, None], 3, axis=1)
    zeros = np.zeros_like(projection)
    h_prev = np.linspace(-1, 1, values.size)[:, None]
    with np.errstate(all="raise"):
        (gates, _, h_next), _ = run_step(
            GRUTwin(np, dtype, values.size, 1), np, projection, zeros, np.zeros(3), h_prev,
            np.ones_like(h_prev), np.ones_like(h_prev),
        )  # fmt: skip
    ref_gates, _, ref_h = ref_step(projection, zeros, np.zeros(3), h_prev)
    assert_close(gates, ref_gates, dtype, None, "gates", ulps=8)
    assert_close(h_next, ref_h, dtype, None, "h_next", ulps=8)


# ----------------------------------------------------------------------- the engine


def problem(rng, steps=5, batch=4, n_in=3, hidden=4, dtype=np.float64):
    def draw(*shape, spread=0.5):
        return rng.normal(0, spread, shape).astype(dtype)

    return (draw(steps, batch, n_in, spread=1.0), draw(3 * hidden, n_in), draw(3 * hidden, hidden),
            draw(3 * hidden), draw(3 * hidden), draw(batch, hidden))  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("lengths", [None, [5, 2, 4, 1], [3, 3, 3, 3]], ids=str)
def test_engine_forward_matches_the_float64_loop(dtype, lengths):
    x, w_ih, w_hh, b_ih, b_hh, h0 = problem(np.random.default_rng(0), dtype=dtype)
    lengths = None if lengths is None else np.array(lengths)
    y, h_n, _ = engine.gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths=lengths)
    ref_y, ref_h_n = ref_sequence(x, w_ih, w_hh, b_ih, b_hh, h0, lengths)
    assert_close(y, ref_y, dtype, None, "y")
    assert_close(h_n, ref_h_n, dtype, None, "h_n")


@pytest.mark.parametrize("lengths", [None, [5, 2, 4, 1]], ids=str)
def test_engine_gradients_match_finite_differences(lengths):
    rng = np.random.default_rng(1)
    arrays = list(problem(rng))
    lengths = None if lengths is None else np.array(lengths)
    dy = rng.normal(size=(5, 4, 4))
    dh_n = rng.normal(size=(4, 4))

    def loss():
        y, h_n = ref_sequence(*arrays, lengths)
        return float(np.sum(y * dy) + np.sum(h_n * dh_n))

    _, _, saved = engine.gru_forward(*arrays, lengths=lengths)
    gradients = engine.gru_backward(dy, dh_n, saved)
    # dx, dh0, dw_ih, dw_hh, db_ih, db_hh against x, h0, w_ih, w_hh, b_ih, b_hh
    for name, gradient, position in zip(("dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh"),
                                        gradients, (0, 5, 1, 2, 3, 4), strict=True):  # fmt: skip
        array = arrays[position]
        numerical = [central_difference(loss, array, index) for index in range(array.size)]
        np.testing.assert_allclose(gradient.reshape(-1), numerical, rtol=1e-6, atol=1e-8,
                                   err_msg=name)  # fmt: skip


def test_engine_without_bias_or_state_is_zeros():
    x, w_ih, w_hh, b_ih, b_hh, h0 = problem(np.random.default_rng(2))
    y, h_n, _ = engine.gru_forward(x, w_ih, w_hh)
    zeros = np.zeros_like(b_ih)
    ref_y, ref_h_n = ref_sequence(x, w_ih, w_hh, zeros, zeros, np.zeros_like(h0))
    assert_close(y, ref_y, np.float64, None, "y")
    assert_close(h_n, ref_h_n, np.float64, None, "h_n")


@pytest.mark.parametrize("loop", ["plan", "graph"])
def test_engine_refuses_planned_gpu_loops(loop):
    x, w_ih, w_hh, *_ = problem(np.random.default_rng(0))
    with pytest.raises(ValueError, match=rf"gpu_loop must be 'cupy'.*GRU, got '{loop}'"):
        engine.gru_forward(x, w_ih, w_hh, gpu_loop=loop)


# ----------------------------------------------------------------------- the layer


def layer_loss(model, x, h0, lengths, dy, dh_n):
    def loss():
        from xplstm import no_grad

        with no_grad():
            y, h_n = model(x, h0, lengths=lengths)
        return float(np.sum(y * dy) + np.sum(h_n * dh_n))

    return loss


@pytest.mark.parametrize(
    "num_layers, bidirectional, batch_first, bias, lengths",
    [
        (1, False, False, True, None),
        (2, True, True, True, [4, 1, 3]),
        (2, True, False, False, [2, 4, 4]),
    ],
)
def test_layer_gradients_match_finite_differences(
    num_layers, bidirectional, batch_first, bias, lengths
):
    model = xplstm.GRU(2, 3, num_layers, bias=bias, batch_first=batch_first,
                       bidirectional=bidirectional, dtype="float64", seed=4)  # fmt: skip
    rng = np.random.default_rng(5)
    directions = 2 if bidirectional else 1
    x = rng.normal(size=(3, 4, 2) if batch_first else (4, 3, 2))
    h0 = rng.normal(size=(num_layers * directions, 3, 3))
    y, h_n = model(x, h0, lengths=lengths)
    dy, dh_n = rng.normal(size=y.shape), rng.normal(size=h_n.shape)
    dx, dh0 = model.backward(dy, dh_n)
    loss = layer_loss(model, x, h0, lengths, dy, dh_n)
    checks = [("dx", dx, x), ("dh0", dh0, h0)]
    checks += [(name, model.grads[name], array) for name, array in model.named_parameters()]
    for name, gradient, array in checks:
        numerical = [central_difference(loss, array, index) for index in range(array.size)]
        np.testing.assert_allclose(gradient.reshape(-1), numerical, rtol=1e-6, atol=1e-8,
                                   err_msg=name)  # fmt: skip


def test_layer_parameters_are_torch_shaped_and_initialized():
    model = xplstm.GRU(3, 4, num_layers=2, bidirectional=True, seed=0)
    shapes = {name: array.shape for name, array in model.named_parameters()}
    assert shapes == {
        "weight_ih_l0": (12, 3), "weight_hh_l0": (12, 4), "bias_ih_l0": (12,),
        "bias_hh_l0": (12,), "weight_ih_l0_reverse": (12, 3),
        "weight_hh_l0_reverse": (12, 4), "bias_ih_l0_reverse": (12,),
        "bias_hh_l0_reverse": (12,), "weight_ih_l1": (12, 8), "weight_hh_l1": (12, 4),
        "bias_ih_l1": (12,), "bias_hh_l1": (12,), "weight_ih_l1_reverse": (12, 8),
        "weight_hh_l1_reverse": (12, 4), "bias_ih_l1_reverse": (12,),
        "bias_hh_l1_reverse": (12,),
    }  # fmt: skip
    for name, array in model.named_parameters():
        assert array.dtype == np.float32, name
        assert np.all(np.abs(array) <= 0.5), name  # 1 / sqrt(H)
    assert list(model.grads) == list(shapes)
    again = xplstm.GRU(3, 4, num_layers=2, bidirectional=True, seed=0)
    for name, array in again.named_parameters():
        np.testing.assert_array_equal(array, getattr(model, name))
    assert repr(model) == "GRU(3, 4, num_layers=2, bidirectional=True)"


def test_layer_float32_matches_float64():
    model64 = xplstm.GRU(3, 5, num_layers=2, bidirectional=True, dtype="float64", seed=1)
    model32 = xplstm.GRU(3, 5, num_layers=2, bidirectional=True, dtype="float32")
    model32.load_state_dict(model64.state_dict())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 2, 3))
    lengths = [6, 3]
    y64, h64 = model64(x, lengths=lengths)
    y32, h32 = model32(x.astype(np.float32), lengths=lengths)
    assert y32.dtype == np.float32
    # float32 against float64 rounding of the same parameters: the float32 eps bound
    reference = xplstm.GRU(3, 5, num_layers=2, bidirectional=True, dtype="float64")
    reference.load_state_dict({k: v.astype(np.float64) for k, v in model32.state_dict().items()})
    y_ref, h_ref = reference(x.astype(np.float32).astype(np.float64), lengths=lengths)
    assert_close(y32, y_ref, np.float32, None, "y")
    assert_close(h32, h_ref, np.float32, None, "h_n")


def test_layer_checks_name_the_argument():
    model = xplstm.GRU(3, 4, num_layers=2, seed=0)
    x = np.zeros((5, 2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"h0 has shape \(1, 2, 4\) but \(2, 2, 4\)"):
        model(x, np.zeros((1, 2, 4), dtype=np.float32))
    with pytest.raises(TypeError, match=r"h0 must be one array .*no cell state.*tuple"):
        model(x, (np.zeros((2, 2, 4)), np.zeros((2, 2, 4))))
    with pytest.raises(ValueError, match=r"x has 2 features but the layer expects input_size=3"):
        model(np.zeros((5, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="lengths"):
        model(x, lengths=[6, 1])
    with pytest.raises(RuntimeError, match="pending forward"):
        model.backward(np.zeros((5, 2, 4)))
    y, _ = model(x)
    with pytest.raises(ValueError, match=r"dh_n has shape \(2, 3, 4\)"):
        model.backward(y, np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"dy has shape"):
        model.backward(y[:2])
    with pytest.raises(KeyError, match="missing 'bias_hh_l1'"):
        state = model.state_dict()
        del state["bias_hh_l1"]
        model.load_state_dict(state)
    lstm_state = xplstm.LSTM(3, 4, num_layers=2).state_dict()
    with pytest.raises(ValueError, match=r"state_dict\['weight_ih_l0'\] has shape \(16, 3\)"):
        model.load_state_dict(lstm_state)


def test_layer_save_load_and_cell_kind(tmp_path):
    model = xplstm.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True,
                       dtype="float64", seed=2)  # fmt: skip
    path = tmp_path / "gru.npz"
    model.save(path)
    loaded = xplstm.GRU.load(path)
    assert type(loaded) is xplstm.GRU and repr(loaded) == repr(model)
    for name, array in model.named_parameters():
        np.testing.assert_array_equal(getattr(loaded, name), array)
    with pytest.raises(ValueError, match=r"not an xplstm.LSTM checkpoint: it holds an "
                                         r"xplstm.GRU layer.*xplstm.GRU.load"):  # fmt: skip
        xplstm.LSTM.load(path)
    lstm_path = tmp_path / "lstm.npz"
    xplstm.LSTM(3, 4).save(lstm_path)
    with pytest.raises(ValueError, match=r"not an xplstm.GRU checkpoint: it holds an "
                                         r"xplstm.LSTM layer.*xplstm.LSTM.load"):  # fmt: skip
        xplstm.GRU.load(lstm_path)
    copy = model.to("cpu")
    assert type(copy) is xplstm.GRU and copy is not model
    x = np.random.default_rng(0).normal(size=(2, 5, 3))
    np.testing.assert_array_equal(copy(x)[0], model(x)[0])


def test_layer_no_grad_is_bitwise_the_same_and_keeps_nothing():
    model = xplstm.GRU(3, 4, num_layers=2, bidirectional=True, seed=3)
    x = np.random.default_rng(1).normal(size=(6, 3, 3)).astype(np.float32)
    y, h_n = model(x, lengths=[6, 2, 4])
    with xplstm.no_grad():
        y_free, h_free = model(x, lengths=[6, 2, 4])
    np.testing.assert_array_equal(y_free, y)
    np.testing.assert_array_equal(h_free, h_n)
    model.backward(np.ones_like(y))  # the recorded forward stayed pending
    with xplstm.no_grad():
        model(x)
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones_like(y))


def test_layer_threads_keep_their_own_forward():
    model = xplstm.GRU(3, 4, bidirectional=True, dtype="float64", seed=5)
    rng = np.random.default_rng(2)
    inputs = [rng.normal(size=(5, 2, 3)) for _ in range(4)]
    alone = []
    for x in inputs:
        y, _ = model(x)
        alone.append((y, model.backward(np.ones_like(y))[0]))
    results: dict[int, tuple] = {}
    barrier = threading.Barrier(len(inputs))

    def work(index):
        barrier.wait()
        for _ in range(3):
            y, _ = model(inputs[index])
            results[index] = (y, model.backward(np.ones_like(y))[0])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, (y, dx) in enumerate(alone):
        np.testing.assert_array_equal(results[index][0], y)
        np.testing.assert_array_equal(results[index][1], dx)


def test_lstm_and_gru_share_one_base():
    from xplstm.recurrent import RecurrentLayer

    assert issubclass(xplstm.GRU, RecurrentLayer) and issubclass(xplstm.LSTM, RecurrentLayer)


# ----------------------------------------------------------------------- the GPU path


@pytest.mark.gpu
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_gpu_cell_matches_the_formulas(fused):
    cupy = cupy_or_skip()
    for dtype in DTYPES:
        cell = make_cell("gru", cupy, dtype, 5, 7, fused=fused)
        assert cell.implementation == ("fused cuda" if fused else "unfused cupy")
        check_step(cell, cupy, dtype, 5, 7)


def test_layer_on_the_backend_matches_numpy(xp):
    device = "cpu" if xp is np else "cuda"
    reference = xplstm.GRU(3, 4, num_layers=2, bidirectional=True, dtype="float64", seed=6)
    model = reference.to(device)
    rng = np.random.default_rng(3)
    x, h0 = rng.normal(size=(6, 3, 3)), rng.normal(size=(4, 3, 4))
    lengths = [6, 1, 4]
    y, h_n = reference(x, h0, lengths=lengths)
    dx, dh0 = reference.backward(np.ones_like(y), np.ones_like(h_n))
    y_d, h_d = model(xp.asarray(x), xp.asarray(h0), lengths=lengths)
    assert type(y_d) is type(xp.asarray(x))
    dx_d, dh0_d = model.backward(xp.ones_like(y_d), xp.ones_like(h_d))
    for name, actual, expected in [("y", y_d, y), ("h_n", h_d, h_n), ("dx", dx_d, dx),
                                   ("dh0", dh0_d, dh0)]:  # fmt: skip
        assert_close(actual, expected, np.float64, None, name)
    for name, gradient in reference.grads.items():
        assert_close(model.grads[name], gradient, np.float64, None, name)


@pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler on PATH")
@pytest.mark.parametrize(
    "corruption", ["gru forward hidden_n h_next", "gru backward h_prev hidden_n"]
)
def test_corrupting_a_gru_operation_fails_the_stand_in_gpu_test(corruption):
    """The fused-cell gpu test above, on the stand-in, passes; with two arguments swapped in
    a GRU operation string (``kernel_harness.corrupt_operation``) it fails."""
    repo = Path(__file__).resolve().parent.parent
    command = [
        sys.executable, "-m", "pytest", "-p", "kernel_harness.stand_in_gpu", "-m", "gpu", "-q",
        "-p", "no:cacheprovider", "-k", "test_gpu_cell_matches_the_formulas and not unfused",
        str(repo / "tests" / "test_gru.py"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo / "tests"), str(repo)])}
    clean = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True,
                           timeout=300, check=False)  # fmt: skip
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert " passed" in clean.stdout and "failed" not in clean.stdout
    corrupted = subprocess.run(
        [*command, "-p", "kernel_harness.corrupt_operation"], cwd=repo,
        env={**env, "XPLSTM_CORRUPT_OPERATION": corruption},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert corrupted.returncode == 1, corrupted.stdout + corrupted.stderr
    assert " failed" in corrupted.stdout, corrupted.stdout
