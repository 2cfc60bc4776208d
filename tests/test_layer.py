"""Tests of ``xplstm.LSTM`` without torch: an independent float64 loop reference, finite
differences, dtype tolerance, gradients, state dicts,
checkpoints (and the atomic ``.npz`` writer under them) and the error table.

The torch comparisons live in ``test_layer_oracle.py``.
"""

from __future__ import annotations

import os
import re
import zipfile

import numpy as np
import pytest
import reference as ref
from conftest import assert_close, central_difference, to_numpy

from xplstm.backend import require_cupy
from xplstm.layer import LSTM
from xplstm.npz_io import load_npz, save_npz_atomic

# ----------------------------------------------------------------------------- helpers


def device_of(xp) -> str:
    return "cpu" if xp is np else "cuda"


def host_params(model):
    return {name: to_numpy(array).astype(np.float64) for name, array in model.state_dict().items()}


def time_major(model, array):
    """``array`` in the model's layout to time-major, or back (the same transpose)."""
    return array.transpose(1, 0, 2) if model.batch_first else array


def host(array):
    return None if array is None else to_numpy(array)


def reference_run(model, x, h0=None, c0=None, lengths=None):
    """The float64 loops (``tests/reference.py``) on the model's parameters and layout."""
    y, h_n, c_n, tape = ref.layer_forward(
        host_params(model),
        time_major(model, to_numpy(x)),
        host(h0),
        host(c0),
        lengths,
        model.num_layers,
        model.bidirectional,
        model.hidden_size,
    )
    return time_major(model, y), h_n, c_n, tape


def reference_for(model, x, h0=None, c0=None, lengths=None):
    """The reference forward ``y, h_n, c_n`` in the model's layout."""
    return reference_run(model, x, h0, c0, lengths)[:3]


def reference_gradients_for(model, x, h0, c0, lengths, dy, dh_n, dc_n):
    """The reference ``dx, dh0, dc0, grads`` for upstream gradients in the model's layout."""
    _, _, _, tape = reference_run(model, x, h0, c0, lengths)
    dx, dh0, dc0, grads = ref.layer_backward(
        host_params(model),
        tape,
        time_major(model, to_numpy(dy)),
        host(dh_n),
        host(dc_n),
        model.hidden_size,
    )
    return time_major(model, dx), dh0, dc0, grads


def make_inputs(model, steps, batch, rng, with_state=True):
    shape = (batch, steps) if model.batch_first else (steps, batch)
    x = rng.standard_normal((*shape, model.input_size))
    rows = model.num_layers * model.num_directions
    h0 = rng.standard_normal((rows, batch, model.hidden_size)) if with_state else None
    c0 = rng.standard_normal((rows, batch, model.hidden_size)) if with_state else None
    return x, h0, c0


def valid_mask(model, steps, lengths, batch):
    """Boolean mask in the model's layout, ``(T, m, 1)`` or ``(m, T, 1)``."""
    lengths = [steps] * batch if lengths is None else lengths
    mask = np.arange(steps)[:, None] < np.asarray(lengths)[None, :]
    return (mask.T if model.batch_first else mask)[:, :, None]


CONFIGS = [
    pytest.param(dict(num_layers=1), False, None, id="plain"),
    pytest.param(dict(num_layers=2, bidirectional=True), True, [4, 6, 1, 3, 6], id="bidi-lengths"),
    pytest.param(dict(num_layers=2, batch_first=True, bias=False), True, None, id="bf-nobias"),
    pytest.param(
        dict(num_layers=1, bidirectional=True, batch_first=True), False, [2, 1, 6, 5, 3], id="all"
    ),
]


# ----------------------------------------------------------------------------- forward


@pytest.mark.parametrize(("config", "with_state", "lengths"), CONFIGS)
def test_forward_matches_loop_reference(xp, dtype, config, with_state, lengths):
    rng = np.random.default_rng(1)
    model = LSTM(3, 4, **config, dtype=dtype, device=device_of(xp), seed=2)
    x, h0, c0 = make_inputs(model, 6, 5, rng, with_state)
    state = None if h0 is None else (xp.asarray(h0, dtype=dtype), xp.asarray(c0, dtype=dtype))
    y, (h_n, c_n) = model(xp.asarray(x, dtype=dtype), state, lengths=lengths)
    assert y.dtype == dtype and h_n.dtype == dtype and c_n.dtype == dtype
    assert isinstance(y, xp.ndarray)
    expected_y, expected_h, expected_c = reference_for(model, x, h0, c0, lengths)
    assert_close(y, expected_y, dtype, name="y")
    assert_close(h_n, expected_h, dtype, name="h_n")
    assert_close(c_n, expected_c, dtype, name="c_n")


@pytest.mark.parametrize(("config", "with_state", "lengths"), CONFIGS)
def test_gradients_match_loop_reference(xp, dtype, config, with_state, lengths):
    """Every dtype and backend: dx, dh0, dc0 and every parameter gradient agree with the float64
    loops of ``tests/reference.py`` (run on the same, dtype-rounded, inputs and parameters) to
    the dtype's tolerance."""
    rng = np.random.default_rng(3)
    model = LSTM(3, 4, **config, dtype=dtype, device=device_of(xp), seed=4)
    x, h0, c0 = make_inputs(model, 6, 5, rng, with_state)
    rows = model.num_layers * model.num_directions
    y_shape = (*x.shape[:2], model.num_directions * model.hidden_size)
    dy = rng.standard_normal(y_shape)
    dh_n, dc_n = rng.standard_normal((2, rows, 5, model.hidden_size))
    x, h0, c0, dy, dh_n, dc_n = (
        None if a is None else a.astype(dtype) for a in (x, h0, c0, dy, dh_n, dc_n)
    )

    def on_device(array):
        return None if array is None else xp.asarray(array)

    model(on_device(x), None if h0 is None else (on_device(h0), on_device(c0)), lengths=lengths)
    dx, (dh0, dc0) = model.backward(on_device(dy), (on_device(dh_n), on_device(dc_n)))
    want_dx, want_dh0, want_dc0, want_grads = reference_gradients_for(
        model, x, h0, c0, lengths, dy, dh_n, dc_n
    )
    assert isinstance(dx, xp.ndarray)
    assert_close(dx, want_dx, dtype, name="dx")
    assert_close(dh0, want_dh0, dtype, name="dh0")
    assert_close(dc0, want_dc0, dtype, name="dc0")
    assert list(model.grads) == list(want_grads)
    for name, want in want_grads.items():
        assert_close(model.grads[name], want, dtype, name=name)


def test_float32_layer_is_within_float32_tolerance_of_float64():
    """Same seed, same inputs: the float32 layer tracks the float64 one."""
    rng = np.random.default_rng(5)
    double = LSTM(3, 5, 2, bidirectional=True, dtype="float64", seed=6)
    single = LSTM(3, 5, 2, bidirectional=True, dtype="float32", seed=6)
    for name, array in single.named_parameters():  # same seed: the same draws, rounded
        np.testing.assert_array_equal(array, double.state_dict()[name].astype(np.float32))
    x = rng.standard_normal((7, 3, 3))
    lengths = [7, 2, 5]
    y64, (h64, c64) = double(x, lengths=lengths)
    y32, (h32, c32) = single(x, lengths=lengths)  # float64 input converted to float32
    assert y32.dtype == np.float32
    assert_close(y32, y64, np.float32, name="y")
    assert_close(h32, h64, np.float32, name="h_n")
    assert_close(c32, c64, np.float32, name="c_n")
    dy = rng.standard_normal(y64.shape)
    dx64, _ = double.backward(dy)
    dx32, _ = single.backward(dy)
    assert_close(dx32, dx64, np.float32, name="dx")
    for name in double.grads:
        assert_close(single.grads[name], double.grads[name], np.float32, name=name)


def test_lengths_all_full_equal_no_lengths_and_any_int_type():
    rng = np.random.default_rng(7)
    model = LSTM(2, 3, bidirectional=True, dtype="float64", seed=8)
    x = rng.standard_normal((4, 3, 2))
    y, (h_n, c_n) = model(x)
    for lengths in ([4, 4, 4], np.array([4, 4, 4], dtype=np.int32), (4, 4, 4)):
        y2, (h2, c2) = model(x, lengths=lengths)
        np.testing.assert_array_equal(y2, y)
        np.testing.assert_array_equal(h2, h_n)
        np.testing.assert_array_equal(c2, c_n)


def test_inputs_are_converted_to_the_layer_dtype():
    model = LSTM(2, 3, dtype="float64", seed=0)
    x = np.arange(12, dtype=np.int64).reshape(3, 2, 2) % 3
    h0 = np.random.default_rng(0).standard_normal((1, 2, 3)).astype(np.float32)
    y, (h_n, c_n) = model(x, (h0, None))
    expected = reference_for(model, x.astype(np.float64), h0.astype(np.float64))
    for got, want, name in zip((y, h_n, c_n), expected, ("y", "h_n", "c_n"), strict=True):
        assert_close(got, want, np.float64, name=name)  # float64, from int64 and float32 inputs


def test_outputs_and_inputs_can_be_edited_without_corrupting_backward():
    """y is a fresh array and x and the states are copied: editing them after forward does
    not change the gradients."""
    rng = np.random.default_rng(9)
    cases = [(dict(), None), (dict(), [4, 2]), (dict(bidirectional=True, batch_first=True), None)]
    for config, lengths in cases:
        model = LSTM(2, 3, dtype="float64", seed=1, **config)
        x, h0, c0 = make_inputs(model, 4, 2, rng)
        y, _ = model(x.copy(), (h0.copy(), c0.copy()), lengths=lengths)
        dy = rng.standard_normal(y.shape)
        dx, (dh0, _) = model.backward(dy)
        grads = {name: g.copy() for name, g in model.grads.items()}
        model.zero_grad()

        x_edit, h_edit, c_edit = x.copy(), h0.copy(), c0.copy()
        y_edit, (h_n, c_n) = model(x_edit, (h_edit, c_edit), lengths=lengths)
        for array in (y_edit, h_n, c_n, x_edit, h_edit, c_edit):
            array[...] = 123.0
        dx2, (dh02, _) = model.backward(dy)
        np.testing.assert_array_equal(dx2, dx)
        np.testing.assert_array_equal(dh02, dh0)
        for name in grads:
            np.testing.assert_array_equal(model.grads[name], grads[name])


# ----------------------------------------------------------------------------- finite differences


def loss_of(model, x, h0, c0, lengths, weights):
    wy, wh, wc = weights
    y, (h_n, c_n) = model(x, (h0, c0), lengths=lengths)
    return float(np.sum(y * wy) + np.sum(h_n * wh) + np.sum(c_n * wc))


def assert_matches_difference(numeric, exact, where):
    assert abs(numeric - exact) <= 1e-7 * max(1.0, abs(exact)), (where, numeric, exact)


def test_gradients_match_central_finite_differences():
    """Stacked, bidirectional, batch_first, variable lengths, initial states, float64."""
    rng = np.random.default_rng(10)
    model = LSTM(2, 3, 2, bidirectional=True, batch_first=True, dtype="float64", seed=11)
    lengths = [3, 1, 4]
    x, h0, c0 = make_inputs(model, 4, 3, rng)
    y, (h_n, _) = model(x, (h0, c0), lengths=lengths)
    weights = (rng.standard_normal(y.shape), *rng.standard_normal((2, *h_n.shape)))
    dx, (dh0, dc0) = model.backward(weights[0], (weights[1], weights[2]))
    analytic = {"x": dx, "h0": dh0, "c0": dc0, **{k: g.copy() for k, g in model.grads.items()}}
    assert np.all(dx[~np.broadcast_to(valid_mask(model, 4, lengths, 3), dx.shape)] == 0)

    variables = {"x": x, "h0": h0, "c0": c0, **dict(model.named_parameters())}
    for name, array in variables.items():
        picks = rng.choice(array.size, size=min(array.size, 8), replace=False)
        for index in picks:
            numeric = central_difference(
                lambda: loss_of(model, x, h0, c0, lengths, weights), array, index
            )
            assert_matches_difference(numeric, analytic[name].reshape(-1)[index], (name, index))


# ----------------------------------------------------------------------------- gradients


def test_grads_accumulate_until_zero_grad(xp):
    rng = np.random.default_rng(12)
    model = LSTM(2, 3, 2, bidirectional=True, dtype="float64", device=device_of(xp), seed=13)
    assert list(model.grads) == list(model.state_dict())
    for name, gradient in model.grads.items():
        assert gradient.shape == model.state_dict()[name].shape
        assert not xp.any(gradient)
    x = xp.asarray(rng.standard_normal((4, 2, 2)))
    dy = xp.asarray(rng.standard_normal((4, 2, 6)))
    model(x, lengths=[4, 2])
    model.backward(dy)
    once = {name: g.copy() for name, g in model.grads.items()}
    assert all(bool(xp.any(g)) for g in once.values())
    model(x, lengths=[4, 2])
    model.backward(dy)
    for name, gradient in model.grads.items():
        np.testing.assert_array_equal(to_numpy(gradient), 2 * to_numpy(once[name]))
    held = model.grads["weight_ih_l0"]
    model.zero_grad()
    assert held is model.grads["weight_ih_l0"]
    assert not any(bool(xp.any(g)) for g in model.grads.values())


def test_bias_ih_and_hh_gradients_match_central_finite_differences():
    """Every entry of each of bias_ih and bias_hh, every layer and direction, float64, against
    central differences of a scalar loss perturbing that bias alone."""
    rng = np.random.default_rng(16)
    model = LSTM(2, 3, 2, bidirectional=True, dtype="float64", seed=17)
    lengths = [4, 2, 3]
    x, h0, c0 = make_inputs(model, 4, 3, rng)
    y, (h_n, _) = model(x, (h0, c0), lengths=lengths)
    weights = (rng.standard_normal(y.shape), *rng.standard_normal((2, *h_n.shape)))
    model.backward(weights[0], (weights[1], weights[2]))
    biases = {name: array for name, array in model.named_parameters() if "bias" in name}
    assert len(biases) == 2 * 2 * 2  # ih and hh, two layers, two directions
    for name, array in biases.items():
        analytic = model.grads[name].copy()
        for index in range(array.size):
            numeric = central_difference(
                lambda: loss_of(model, x, h0, c0, lengths, weights), array, index
            )
            assert_matches_difference(numeric, analytic[index], (name, index))


def test_backward_with_only_final_state_gradients():
    rng = np.random.default_rng(14)
    model = LSTM(2, 3, 2, dtype="float64", seed=15)
    x = rng.standard_normal((4, 2, 2))
    _, (h_n, _) = model(x, lengths=[4, 2])
    dh_n = rng.standard_normal(h_n.shape)
    dx, (dh0, dc0) = model.backward(None, (dh_n, None))
    grads = {name: g.copy() for name, g in model.grads.items()}
    model.zero_grad()
    model(x, lengths=[4, 2])
    dx_full, (dh0_full, dc0_full) = model.backward(np.zeros((4, 2, 3)), (dh_n, np.zeros_like(dh_n)))
    np.testing.assert_array_equal(dx, dx_full)
    np.testing.assert_array_equal(dh0, dh0_full)
    np.testing.assert_array_equal(dc0, dc0_full)
    for name, gradient in grads.items():
        np.testing.assert_array_equal(gradient, model.grads[name])


def test_backward_consumes_the_forward():
    model = LSTM(2, 3, seed=0)
    with pytest.raises(RuntimeError, match="forward"):
        model.backward(np.zeros((1, 1, 3), np.float32))
    y, _ = model(np.ones((2, 1, 2), np.float32))
    with pytest.raises(ValueError, match="dy"):  # a rejected dy does not consume the forward
        model.backward(np.zeros((3, 1, 3), np.float32))
    model.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="forward"):
        model.backward(np.ones_like(y))


# ----------------------------------------------------------------------------- parameters


def test_parameter_names_shapes_and_order_follow_torch():
    model = LSTM(3, 4, 2, bidirectional=True)
    expected = []
    for layer, width in ((0, 3), (1, 8)):
        for suffix in (f"l{layer}", f"l{layer}_reverse"):
            expected += [
                (f"weight_ih_{suffix}", (16, width)),
                (f"weight_hh_{suffix}", (16, 4)),
                (f"bias_ih_{suffix}", (16,)),
                (f"bias_hh_{suffix}", (16,)),
            ]
    assert [(k, v.shape) for k, v in model.state_dict().items()] == expected
    no_bias = LSTM(3, 4, bias=False)
    assert list(no_bias.state_dict()) == ["weight_ih_l0", "weight_hh_l0"]


def test_initialization_is_seeded_uniform_within_torch_bound():
    first = LSTM(3, 16, 2, dtype="float64", seed=3)
    bound = 1 / np.sqrt(16)
    for name, array in first.named_parameters():
        assert array.dtype == np.float64
        assert np.all(np.abs(array) <= bound), name
        assert np.std(array) > bound / 4, name
    # Uniform on [-bound, bound]: the pooled empirical CDF stays within the
    # Dvoretzky-Kiefer-Wolfowitz band that a uniform sample leaves with probability 1 - 1e-6.
    pooled = np.sort(np.concatenate([a.ravel() for _, a in first.named_parameters()]))
    uniform_cdf = (pooled + bound) / (2 * bound)
    above = np.arange(1, pooled.size + 1) / pooled.size - uniform_cdf
    below = uniform_cdf - np.arange(pooled.size) / pooled.size
    band = np.sqrt(np.log(2 / 1e-6) / (2 * pooled.size))
    assert max(above.max(), below.max()) <= band
    again = LSTM(3, 16, 2, dtype="float64", seed=3)
    other = LSTM(3, 16, 2, dtype="float64", seed=4)
    for name, array in first.named_parameters():
        np.testing.assert_array_equal(array, again.state_dict()[name])
        assert not np.array_equal(array, other.state_dict()[name])
    generator_seeded = LSTM(3, 16, 2, dtype="float64", seed=np.random.default_rng(3))
    np.testing.assert_array_equal(generator_seeded.weight_ih_l0, first.weight_ih_l0)


def test_state_dict_copies_out_and_load_state_dict_copies_in():
    model = LSTM(2, 3, dtype="float64", seed=0)
    live = model.weight_ih_l0
    assert live is dict(model.named_parameters())["weight_ih_l0"]
    state = model.state_dict()
    state["weight_ih_l0"][...] = 7.0
    assert not np.any(model.weight_ih_l0 == 7.0)
    model.load_state_dict(state)
    assert model.weight_ih_l0 is live  # in place: parameter references stay valid
    np.testing.assert_array_equal(live, 7.0)
    state["weight_ih_l0"][...] = 8.0
    np.testing.assert_array_equal(live, 7.0)
    # lists and float32 arrays are converted to the layer dtype
    state = {k: v.astype(np.float32) for k, v in model.state_dict().items()}
    state["bias_hh_l0"] = [0.5] * 12
    model.load_state_dict(state)
    assert model.bias_hh_l0.dtype == np.float64
    np.testing.assert_array_equal(model.bias_hh_l0, 0.5)


def test_failed_load_state_dict_leaves_the_layer_unchanged():
    model = LSTM(2, 3, seed=0)
    before = model.state_dict()
    bad = {k: np.full_like(v, 9.0) for k, v in before.items()}
    bad["bias_hh_l0"] = np.zeros(5)
    with pytest.raises(ValueError, match="bias_hh_l0"):
        model.load_state_dict(bad)
    for name, array in model.named_parameters():
        np.testing.assert_array_equal(array, before[name])


def test_load_state_dict_discards_a_pending_forward():
    model = LSTM(2, 3, seed=0)
    y, _ = model(np.ones((2, 1, 2), np.float32))
    model.load_state_dict(model.state_dict())
    with pytest.raises(RuntimeError, match="load_state_dict"):
        model.backward(np.ones_like(y))


def test_parameters_cannot_be_rebound():
    model = LSTM(2, 3)
    with pytest.raises(AttributeError, match="weight_ih_l0"):
        model.weight_ih_l0 = np.zeros((12, 2), np.float32)
    with pytest.raises(AttributeError, match="weight_ih_l5"):
        _ = model.weight_ih_l5


def test_repr_looks_like_torch():
    assert repr(LSTM(3, 4)) == "LSTM(3, 4)"
    text = repr(LSTM(3, 4, 2, bias=False, batch_first=True, bidirectional=True, dtype="float64"))
    assert text == (
        "LSTM(3, 4, num_layers=2, bias=False, batch_first=True, bidirectional=True, dtype=float64)"
    )


# ----------------------------------------------------------------------------- devices


def test_to_cpu_returns_an_independent_copy():
    model = LSTM(2, 3, 2, bidirectional=True, dtype="float64", seed=0)
    y, _ = model(np.ones((3, 2, 2)))
    model.backward(np.ones_like(y))
    copy = model.to("cpu")
    assert copy is not model and repr(copy) == repr(model) and copy.device == "cpu"
    for name, array in model.named_parameters():
        np.testing.assert_array_equal(copy.state_dict()[name], array)
        np.testing.assert_array_equal(copy.grads[name], model.grads[name])
    copy.weight_ih_l0[...] = 0.0
    assert np.any(model.weight_ih_l0 != 0.0)
    with pytest.raises(RuntimeError, match="forward"):
        copy.backward(np.ones_like(y))


def test_cuda_without_a_usable_gpu_is_a_clear_runtime_error():
    try:
        require_cupy()
    except RuntimeError:
        pass
    else:
        pytest.skip("a GPU is usable here")
    for call in (lambda: LSTM(2, 3, device="cuda"), lambda: LSTM(2, 3).to("cuda:0")):
        with pytest.raises(RuntimeError, match=r"CuPy|CUDA"):
            call()


@pytest.mark.gpu
def test_gpu_layer_rejects_host_arrays_and_round_trips():
    cupy = pytest.importorskip("cupy")
    try:
        require_cupy()
    except RuntimeError as error:
        pytest.skip(str(error))
    model = LSTM(2, 3, dtype="float64", seed=0)
    gpu = model.to("cuda")
    assert gpu.device.startswith("cuda:") and isinstance(gpu.weight_ih_l0, cupy.ndarray)
    with pytest.raises(TypeError, match="x is on the CPU"):
        gpu(np.ones((2, 1, 2)))
    with pytest.raises(TypeError, match="x is on the GPU"):
        model(cupy.ones((2, 1, 2)))
    back = gpu.to("cpu")
    for name, array in model.named_parameters():
        np.testing.assert_array_equal(back.state_dict()[name], array)


# ----------------------------------------------------------------------------- checkpoints


def test_save_load_round_trip_is_bitwise_at_the_exact_path(tmp_path):
    model = LSTM(3, 4, 2, bidirectional=True, batch_first=True, dtype="float64", seed=1)
    for name in ("model.ckpt", "model", "model.npz"):
        path = tmp_path / name
        model.save(path if name != "model" else str(path))
        assert path.exists()
        loaded = LSTM.load(path, device="cpu")
        assert repr(loaded) == repr(model)
        for key, array in model.named_parameters():
            restored = loaded.state_dict()[key]
            assert restored.dtype == array.dtype
            assert restored.tobytes() == array.tobytes()
    assert sorted(os.listdir(tmp_path)) == ["model", "model.ckpt", "model.npz"]
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    np.testing.assert_array_equal(loaded(x)[0], model(x)[0])


def test_save_overwrites_and_holds_no_pickles(tmp_path):
    path = tmp_path / "model.npz"
    LSTM(2, 3, seed=0).save(path)
    LSTM(2, 5, bias=False, seed=1).save(path)
    assert os.listdir(tmp_path) == ["model.npz"]
    assert repr(LSTM.load(path)) == "LSTM(2, 5, bias=False)"
    with np.load(path, allow_pickle=False) as archive:
        assert set(archive.files) == {"xplstm_config", "weight_ih_l0", "weight_hh_l0"}
        assert archive["xplstm_config"].dtype.kind == "U"


def _write_bytes(path, data: bytes):
    with open(path, "wb") as handle:
        handle.write(data)
    return path


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        pytest.param(
            lambda p: LSTM(2, 3).save(p) or _truncate(p), "not a readable", id="truncated"
        ),
        pytest.param(lambda p: _write_bytes(p, b""), "not a readable", id="empty"),
        pytest.param(lambda p: _write_bytes(p, b"hello\n" * 50), "not a readable", id="text"),
        pytest.param(lambda p: _savez(p, a=np.ones(3)), "not an xplstm.LSTM", id="foreign-npz"),
        pytest.param(lambda p: _savez(p, a=np.array([{}], dtype=object)), "pickle", id="pickled"),
        pytest.param(lambda p: _save_npy(p), "single .npy", id="npy"),
        pytest.param(
            lambda p: _savez(p, xplstm_config=np.array("{not json")), "not JSON", id="bad-json"
        ),
        pytest.param(lambda p: _without(p, "weight_hh_l0"), "weight_hh_l0", id="missing-param"),
        pytest.param(lambda p: _bad_config(p, hidden_size=-2), "hidden_size", id="bad-config"),
        pytest.param(lambda p: _bad_config(p, version=99), "version 99", id="future-version"),
    ],
)
def test_unreadable_checkpoints_are_value_errors_naming_the_path(tmp_path, make, fragment):
    path = tmp_path / "broken.npz"
    make(str(path))
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        LSTM.load(path)
    assert fragment in str(info.value)


def _truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)


def _savez(path, **arrays):
    with open(path, "wb") as handle:  # a file object: np.savez keeps the name as given
        np.savez(handle, **arrays)


def _save_npy(path):
    with open(path, "wb") as handle:
        np.save(handle, np.ones(3))


def _without(path, key):
    LSTM(2, 3).save(path)
    arrays = load_npz(path)
    del arrays[key]
    save_npz_atomic(path, arrays)


def _bad_config(path, **changes):
    import json

    LSTM(2, 3).save(path)
    arrays = load_npz(path)
    config = json.loads(str(arrays["xplstm_config"][()]))
    config.update(changes)
    arrays["xplstm_config"] = np.array(json.dumps(config))
    save_npz_atomic(path, arrays)


def test_load_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        LSTM.load(tmp_path / "absent.npz")


def test_npz_writer_round_trip_any_names_and_mode(tmp_path):
    path = tmp_path / "arrays.bin"
    arrays = {"file": np.arange(3), "b": np.array("text"), "a": np.ones((2, 2), np.float32)}
    save_npz_atomic(path, arrays)
    loaded = load_npz(path)
    assert list(loaded) == ["file", "b", "a"]
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded[name], array)
    assert zipfile.is_zipfile(path)
    if os.name == "posix":
        plain = tmp_path / "plain"
        plain.touch()
        assert os.stat(path).st_mode & 0o777 == os.stat(plain).st_mode & 0o777


def test_npz_writer_refuses_pickles_and_leaves_nothing_behind(tmp_path):
    with pytest.raises(TypeError, match="pickle"):
        save_npz_atomic(tmp_path / "x.npz", {"ok": np.ones(2), "bad": np.array([None])})
    assert os.listdir(tmp_path) == []


def test_npz_writer_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    path = tmp_path / "x.npz"
    save_npz_atomic(path, {"a": np.ones(2)})

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr("xplstm.npz_io.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_npz_atomic(path, {"a": np.zeros(2)})
    assert os.listdir(tmp_path) == ["x.npz"]
    np.testing.assert_array_equal(load_npz(path)["a"], np.ones(2))


# ----------------------------------------------------------------------------- error table


def _model(**config):
    return LSTM(3, 4, **config)


def _forward(x=None, state=None, lengths=None, **config):
    model = _model(**config)
    return model(np.zeros((5, 2, 3), np.float32) if x is None else x, state, lengths=lengths)


def _backward(dy=None, dstate=None, **config):
    model = _model(**config)
    y, _ = model(np.zeros((5, 2, 3), np.float32))
    return model.backward(np.zeros_like(y) if dy is None else dy, dstate)


def _state(rows=1, batch=2, hidden=4):
    return np.zeros((rows, batch, hidden), np.float32)


ERRORS = [
    # constructor
    ("input_size=0", lambda: LSTM(0, 4), ValueError, "input_size"),
    ("input_size=2.5", lambda: LSTM(2.5, 4), TypeError, "input_size"),
    ("input_size=True", lambda: LSTM(True, 4), TypeError, "input_size"),
    ("hidden_size=-1", lambda: LSTM(3, -1), ValueError, "hidden_size"),
    ("hidden_size=str", lambda: LSTM(3, "4"), TypeError, "hidden_size"),
    ("num_layers=0", lambda: LSTM(3, 4, 0), ValueError, "num_layers"),
    ("dtype=int32", lambda: LSTM(3, 4, dtype="int32"), TypeError, "dtype"),
    ("dtype=float16", lambda: LSTM(3, 4, dtype=np.float16), TypeError, "dtype"),
    ("dtype=junk", lambda: LSTM(3, 4, dtype="junk"), TypeError, "dtype"),
    ("dtype=None", lambda: LSTM(3, 4, dtype=None), TypeError, "dtype"),
    ("device=tpu", lambda: LSTM(3, 4, device="tpu"), ValueError, "device"),
    ("device=cuda:x", lambda: LSTM(3, 4, device="cuda:x"), ValueError, "device"),
    ("device=0", lambda: LSTM(3, 4, device=0), TypeError, "device"),
    ("bias=str", lambda: LSTM(3, 4, bias="yes"), TypeError, "bias"),
    ("batch_first=1", lambda: LSTM(3, 4, batch_first=1), TypeError, "batch_first"),
    ("bidirectional=None", lambda: LSTM(3, 4, bidirectional=None), TypeError, "bidirectional"),
    ("seed=str", lambda: LSTM(3, 4, seed="abc"), TypeError, "seed"),
    ("seed=-1", lambda: LSTM(3, 4, seed=-1), ValueError, "seed"),
    # forward
    ("x=list", lambda: _forward(x=[[[0.0] * 3]]), TypeError, "x must be a numpy array"),
    ("x=complex", lambda: _forward(x=np.zeros((5, 2, 3), complex)), TypeError, "x has dtype"),
    ("x=2-D", lambda: _forward(x=np.zeros((5, 3))), ValueError, "x must be 3-D"),
    ("x features", lambda: _forward(x=np.zeros((5, 2, 4))), ValueError, "input_size=3"),
    ("x no steps", lambda: _forward(x=np.zeros((0, 2, 3))), ValueError, "x must have"),
    ("state=array", lambda: _forward(state=_state()), TypeError, "state must be a pair"),
    ("state=triple", lambda: _forward(state=(None,) * 3), TypeError, "state must be a pair"),
    ("h0 shape", lambda: _forward(state=(_state(batch=3), None)), ValueError, "(h0)"),
    ("c0 shape", lambda: _forward(state=(None, _state(rows=2))), ValueError, "(c0)"),
    ("h0=list", lambda: _forward(state=([0.0], None)), TypeError, "(h0)"),
    ("lengths count", lambda: _forward(lengths=[5]), ValueError, "lengths"),
    ("lengths=0", lambda: _forward(lengths=[5, 0]), ValueError, "lengths[1] = 0"),
    ("lengths>T", lambda: _forward(lengths=[6, 1]), ValueError, "1..T=5"),
    ("lengths float", lambda: _forward(lengths=[5.0, 1.0]), TypeError, "lengths"),
    ("lengths 2-D", lambda: _forward(lengths=[[5, 1]]), ValueError, "lengths"),
    ("lengths str", lambda: _forward(lengths="ab"), TypeError, "lengths"),
    # backward
    ("backward first", lambda: _model().backward(np.zeros((5, 2, 4))), RuntimeError, "forward"),
    ("dy shape", lambda: _backward(dy=np.zeros((5, 2, 8))), ValueError, "dy has shape"),
    ("dy=list", lambda: _backward(dy=[0.0]), TypeError, "dy must be"),
    ("dstate shape", lambda: _backward(dstate=(_state(hidden=3), None)), ValueError, "(dh_n)"),
    ("dstate=array", lambda: _backward(dstate=_state()), TypeError, "dstate must be a pair"),
    # state dict, devices, files
    ("state_dict=list", lambda: _model().load_state_dict([]), TypeError, "state_dict"),
    (
        "state_dict missing",
        lambda: _model().load_state_dict({"weight_ih_l0": np.zeros((16, 3))}),
        KeyError,
        "'weight_hh_l0' (expected an array of shape (16, 4))",
    ),
    (
        "state_dict unexpected",
        lambda: _model().load_state_dict({**_model().state_dict(), "extra": np.zeros(1)}),
        KeyError,
        "extra",
    ),
    (
        "state_dict shape",
        lambda: _model().load_state_dict({**_model().state_dict(), "weight_ih_l0": np.zeros(3)}),
        ValueError,
        "state_dict['weight_ih_l0'] has shape (3,) but (16, 3)",
    ),
    (
        "state_dict dtype",
        lambda: _model().load_state_dict({**_model().state_dict(), "bias_ih_l0": ["a"] * 16}),
        TypeError,
        "bias_ih_l0",
    ),
    ("to(tpu)", lambda: _model().to("tpu"), ValueError, "device"),
    ("load(device=tpu)", lambda: LSTM.load("absent.npz", device="tpu"), ValueError, "device"),
]


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [pytest.param(call, error, fragment, id=name) for name, call, error, fragment in ERRORS],
)
def test_error_table(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    message = info.value.args[0] if error is KeyError else str(info.value)
    assert fragment in message


def test_reused_forward_buffers_do_not_leak_between_calls():
    # The layer reuses its forward buffers: a second forward (same shape) must give exactly
    # what a fresh layer gives, and backward must use the latest forward only.
    rng = np.random.default_rng(21)
    model = LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64", seed=21)
    fresh = LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64", seed=21)
    first, second = rng.standard_normal((2, 5, 6, 3))
    dy = rng.standard_normal((5, 6, 8))
    model(first, lengths=[5, 1, 3, 5, 2, 4])
    y, (h_n, c_n) = model(second)
    dx, (dh0, dc0) = model.backward(dy)
    want_y, (want_h, want_c) = fresh(second)
    want_dx, (want_dh0, want_dc0) = fresh.backward(dy)
    for got, want in ((y, want_y), (h_n, want_h), (c_n, want_c), (dx, want_dx),
                      (dh0, want_dh0), (dc0, want_dc0)):  # fmt: skip
        np.testing.assert_array_equal(got, want)
    for name, value in fresh.grads.items():
        np.testing.assert_array_equal(model.grads[name], value)


def test_nan_in_the_padding_is_never_read():
    # Like torch's packed sequences: what lies past a length does not matter, even NaN.
    rng = np.random.default_rng(22)
    model = LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64", seed=22)
    x = rng.standard_normal((5, 3, 3))
    dy = rng.standard_normal((5, 3, 8))
    lengths = [5, 2, 3]
    clean_y, _ = model(x * (np.arange(5)[:, None] < np.array(lengths))[:, :, None], lengths=lengths)
    clean_dx, _ = model.backward(dy)
    clean_grads = {name: value.copy() for name, value in model.grads.items()}
    model.zero_grad()
    x[2:, 1] = np.nan
    x[3:, 2] = np.inf
    y, _ = model(x, lengths=lengths)
    dx, _ = model.backward(dy)
    np.testing.assert_array_equal(y, clean_y)
    np.testing.assert_array_equal(dx, clean_dx)
    for name, value in clean_grads.items():
        np.testing.assert_array_equal(model.grads[name], value)


def test_damaged_checkpoints_are_value_errors_naming_the_path(tmp_path):
    path = tmp_path / "model.npz"
    LSTM(3, 4, seed=0).save(path)
    original = path.read_bytes()
    rng = np.random.default_rng(0)
    damaged = tmp_path / "damaged.npz"
    for trial in range(60):
        data = bytearray(original)
        if trial % 2:
            data = data[: int(rng.integers(0, len(data)))]  # truncated
        else:
            for position in rng.integers(0, len(data), size=4):  # bytes flipped
                data[position] ^= 0xFF
        damaged.write_bytes(bytes(data))
        # Every member is CRC-checked and a missing member is a ValueError too, so no damage
        # loads or escapes as another error.
        with pytest.raises(ValueError, match=re.escape(str(damaged))):
            LSTM.load(damaged)
