"""``xplstm.RNN`` (tanh and ReLU, torch.nn.RNN's semantics): an independent float64 loop,
central differences, torch parity (oracle), files and errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, central_difference, to_numpy

import xplstm

ACTIVATIONS = {
    "tanh": (np.tanh, lambda y: 1.0 - y**2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda y: (y > 0).astype(np.float64)),
}


def loop_reference(params, x, h0, lengths, layers, directions, nonlinearity, dy, dh_n):
    """Forward and backward one sequence and one step at a time, time-major, in float64."""
    act, grad_from_output = ACTIVATIONS[nonlinearity]
    steps, batch, _ = x.shape
    hidden = params["weight_hh_l0"].shape[0]
    y_layers, tapes, h_n = [np.asarray(x, np.float64)], [], np.zeros_like(h0)
    for layer in range(layers):
        output, tape = np.zeros((steps, batch, directions * hidden)), {}
        for d in range(directions):
            suffix = f"l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = params[f"weight_ih_{suffix}"], params[f"weight_hh_{suffix}"]
            b = params.get(f"bias_ih_{suffix}", 0.0) + params.get(f"bias_hh_{suffix}", 0.0)
            for s in range(batch):
                h = h0[layer * directions + d, s]
                order = range(lengths[s]) if d == 0 else range(lengths[s] - 1, -1, -1)
                tape[d, s] = []
                for t in order:
                    h_prev, h = h, act(w_ih @ y_layers[-1][t, s] + w_hh @ h + b)
                    tape[d, s].append((t, h_prev, h))
                    output[t, s, d * hidden : (d + 1) * hidden] = h
                h_n[layer * directions + d, s] = h
        y_layers.append(output)
        tapes.append(tape)
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    d_output, dh0 = np.asarray(dy, np.float64), np.zeros_like(h0)
    for layer in reversed(range(layers)):
        d_input = np.zeros_like(y_layers[layer])
        for (d, s), taken in tapes[layer].items():
            suffix = f"l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = params[f"weight_ih_{suffix}"], params[f"weight_hh_{suffix}"]
            dh = dh_n[layer * directions + d, s]
            for t, h_prev, h in reversed(taken):
                dz = (dh + d_output[t, s, d * hidden : (d + 1) * hidden]) * grad_from_output(h)
                grads[f"weight_ih_{suffix}"] += np.outer(dz, y_layers[layer][t, s])
                grads[f"weight_hh_{suffix}"] += np.outer(dz, h_prev)
                for name in (f"bias_ih_{suffix}", f"bias_hh_{suffix}"):
                    if name in grads:
                        grads[name] += dz
                d_input[t, s] += w_ih.T @ dz
                dh = w_hh.T @ dz
            dh0[layer * directions + d, s] = dh
        d_output = d_input
    return y_layers[-1], h_n, d_output, dh0, grads


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize(
    ("config", "lengths"),
    [
        pytest.param(dict(num_layers=1), None, id="plain"),
        pytest.param(dict(num_layers=2, bidirectional=True), [5, 2, 6], id="stacked-bidi-lengths"),
        pytest.param(dict(num_layers=2, bias=False, batch_first=True), [3, 6, 6], id="bf-nobias"),
    ],
)
def test_matches_the_loop_reference(xp, dtype, nonlinearity, config, lengths):
    device = "cpu" if xp is np else "cuda"
    model = xplstm.RNN(
        2, 4, **config, nonlinearity=nonlinearity, dtype=dtype, device=device, seed=3
    )
    rng = np.random.default_rng(1)
    rows, directions = model.num_layers * model.num_directions, model.num_directions
    x, h0 = rng.standard_normal((6, 3, 2)), rng.standard_normal((rows, 3, 4))
    dy, dh_n = rng.standard_normal((6, 3, directions * 4)), rng.standard_normal((rows, 3, 4))
    params = {k: to_numpy(v).astype(np.float64) for k, v in model.state_dict().items()}
    expected = loop_reference(
        params, x, h0, lengths or [6] * 3, model.num_layers, directions, nonlinearity, dy, dh_n
    )

    def layout(array):
        return array.transpose(1, 0, 2) if model.batch_first else array

    y, h_n = model(xp.asarray(layout(x), dtype=dtype), xp.asarray(h0, dtype=dtype), lengths=lengths)
    dx, dh0 = model.backward(xp.asarray(layout(dy), dtype=dtype), xp.asarray(dh_n, dtype=dtype))
    for actual, wanted, name in zip(
        (layout(y), h_n, layout(dx), dh0), expected[:4], ("y", "h_n", "dx", "dh0"), strict=True
    ):
        assert actual.dtype == dtype
        assert_close(actual, wanted, dtype, name=name)
    for name, wanted in expected[4].items():
        assert_close(model.grads[name], wanted, dtype, name=name)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_gradients_match_central_differences(nonlinearity):
    rng = np.random.default_rng(2)
    model = xplstm.RNN(2, 3, 2, nonlinearity=nonlinearity, dtype="float64", seed=4)
    x, weights = rng.standard_normal((5, 2, 2)), rng.standard_normal((5, 2, 3))

    def loss():
        with xplstm.no_grad():
            return float((model(x, lengths=[5, 3])[0] * weights).sum())

    model(x, lengths=[5, 3])
    dx, _ = model.backward(weights)
    for name in ("weight_ih_l0", "weight_hh_l1", "bias_hh_l0"):
        parameter = getattr(model, name)
        for index in (0, parameter.size - 1):
            numeric = central_difference(loss, parameter, index)
            assert abs(numeric - model.grads[name].reshape(-1)[index]) <= 1e-7 * (1 + abs(numeric))
    numeric = central_difference(loss, x, 3)
    assert abs(numeric - dx.reshape(-1)[3]) <= 1e-7 * (1 + abs(numeric))


def test_no_grad_is_bitwise_the_recorded_forward_and_keeps_nothing():
    model = xplstm.RNN(2, 3, 2, bidirectional=True, nonlinearity="relu", seed=5)
    x = np.random.default_rng(0).standard_normal((4, 3, 2)).astype(np.float32)
    y, h_n = model(x, lengths=[4, 1, 3])
    model.backward(np.ones_like(y))
    with xplstm.no_grad():
        y2, h2 = model(x, lengths=[4, 1, 3])
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(h_n, h2)
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones_like(y))


def test_files_keep_the_nonlinearity_and_name_the_cell(tmp_path):
    model = xplstm.RNN(2, 3, 2, nonlinearity="relu", dropout=0.2, seed=6)
    model.save(tmp_path / "rnn.npz")
    loaded = xplstm.RNN.load(tmp_path / "rnn.npz")
    assert (loaded.nonlinearity, loaded.dropout) == ("relu", 0.2)
    x = np.ones((3, 2, 2), dtype=np.float32)
    np.testing.assert_array_equal(loaded.eval()(x)[0], model.eval()(x)[0])
    for other in (xplstm.LSTM, xplstm.GRU):
        with pytest.raises(ValueError, match=r"holds an xplstm\.RNN layer"):
            other.load(tmp_path / "rnn.npz")
    xplstm.LSTM(2, 3).save(tmp_path / "lstm.npz")
    with pytest.raises(ValueError, match=r"holds an xplstm\.LSTM layer"):
        xplstm.RNN.load(tmp_path / "lstm.npz")


def test_bad_nonlinearity_is_refused_and_only_the_rnn_takes_one():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        xplstm.RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match=r"xplstm\.LSTM has no nonlinearity"):
        xplstm.LSTM(2, 3, nonlinearity="relu")
    with pytest.raises(TypeError, match="h0 must be one array"):
        xplstm.RNN(2, 3)(np.ones((2, 1, 2)), (np.zeros((1, 1, 3)), np.zeros((1, 1, 3))))


@pytest.mark.oracle
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
def test_matches_torch_rnn_with_packed_lengths(nonlinearity, batch_first):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(0)
    module = torch.nn.RNN(
        3, 5, 2, nonlinearity=nonlinearity, bidirectional=True, batch_first=batch_first
    ).double()
    model = xplstm.RNN(
        3, 5, 2, nonlinearity=nonlinearity, bidirectional=True, batch_first=batch_first,
        dtype="float64",
    )  # fmt: skip
    model.load_state_dict({k: v.detach().numpy() for k, v in module.state_dict().items()})
    rng, lengths = np.random.default_rng(0), [6, 2, 5, 1]
    x = rng.standard_normal((4, 6, 3) if batch_first else (6, 4, 3))
    h0 = rng.standard_normal((4, 4, 5))
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    packed = pack_padded_sequence(
        tx, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False
    )
    output, h_n = module(packed, th0)
    y, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=6)
    dy, dh_n = rng.standard_normal(tuple(y.shape)), rng.standard_normal(tuple(h_n.shape))
    ((y * torch.from_numpy(dy)).sum() + (h_n * torch.from_numpy(dh_n)).sum()).backward()

    our_y, our_h = model(x, h0, lengths=lengths)
    dx, dh0 = model.backward(dy, dh_n)
    for ours, theirs, name in (
        (our_y, y, "y"), (our_h, h_n, "h_n"), (dx, tx.grad, "dx"), (dh0, th0.grad, "dh0")
    ):  # fmt: skip
        assert_close(ours, theirs.detach().numpy(), np.float64, name=name)
    for key, parameter in module.named_parameters():
        assert_close(model.grads[key], parameter.grad.numpy(), np.float64, name=key)
