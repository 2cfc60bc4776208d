"""``xplstm.LSTM`` against ``torch.nn.LSTM`` (skipped when torch is not installed).

Variable lengths are compared with torch's ``pack_padded_sequence(..., enforce_sorted=False)``,
the LSTM, then ``pad_packed_sequence(..., total_length=T)``.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close

from xplstm.layer import LSTM

pytestmark = pytest.mark.oracle

INPUT, HIDDEN, STEPS, BATCH = 3, 4, 6, 5

# num_layers, bidirectional, batch_first, bias, initial state, lengths, final-state gradients
CONFIGS = {
    "plain": (1, False, False, True, "none", None, "both"),
    "stacked-state": (2, False, False, True, "both", None, "both"),
    "bidi-lengths": (1, True, False, True, "none", [4, 6, 1, 3, 6], "both"),
    "everything": (2, True, True, True, "both", [2, 6, 5, 1, 3], "both"),
    "no-bias": (2, True, False, False, "both", [6, 3, 3, 1, 5], "both"),
    "three-layers-bf": (3, False, True, True, "none", [5, 1, 6, 2, 4], "both"),
    "h0-only-dh-only": (2, True, True, True, "h0", [3, 6, 1, 6, 2], "dh"),
}


def run_torch(torch, module, x, h0, c0, lengths, batch_first, weights, final):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    if lengths is None:
        y, (h_n, c_n) = module(x, (h0, c0))
    else:
        packed = pack_padded_sequence(
            x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False
        )
        output, (h_n, c_n) = module(packed, (h0, c0))
        y, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=STEPS)
    wy, wh, wc = (torch.from_numpy(w) for w in weights)
    loss = (y * wy).sum() + (h_n * wh).sum()
    if final == "both":
        loss = loss + (c_n * wc).sum()
    loss.backward()
    return y, h_n, c_n


@pytest.mark.parametrize("proj_size", [0, 2], ids=["no-projection", "proj_size=2"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_torch_in_float64(name, proj_size):
    torch = pytest.importorskip("torch")
    layers, bidirectional, batch_first, bias, state, lengths, final = CONFIGS[name]
    torch.manual_seed(0)
    module = torch.nn.LSTM(
        INPUT, HIDDEN, layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional,
        proj_size=proj_size,
    ).double()  # fmt: skip
    model = LSTM(
        INPUT,
        HIDDEN,
        layers,
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidirectional,
        proj_size=proj_size,
        dtype="float64",
    )
    model.load_state_dict({k: v.detach().numpy() for k, v in module.state_dict().items()})

    rng = np.random.default_rng(1)
    rows, out = layers * (2 if bidirectional else 1), proj_size or HIDDEN
    x = rng.standard_normal((BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT))
    h0 = rng.standard_normal((rows, BATCH, out))
    c0 = rng.standard_normal((rows, BATCH, HIDDEN))
    if state != "both":
        c0 = np.zeros_like(c0)
    if state == "none":
        h0 = np.zeros_like(h0)
    weights = (
        rng.standard_normal((*x.shape[:2], rows // layers * out)),
        rng.standard_normal(h0.shape),
        rng.standard_normal(c0.shape),
    )
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    y, h_n, c_n = run_torch(torch, module, tx, th0, tc0, lengths, batch_first, weights, final)

    our_state = {"none": None, "both": (h0, c0), "h0": (h0, None)}[state]
    our_y, (our_h, our_c) = model(x, our_state, lengths=lengths)
    dstate = (weights[1], weights[2]) if final == "both" else (weights[1], None)
    dx, (dh0, dc0) = model.backward(weights[0], dstate)

    for ours, theirs, name in (
        (our_y, y, "y"), (our_h, h_n, "h_n"), (our_c, c_n, "c_n"),
        (dx, tx.grad, "dx"), (dh0, th0.grad, "dh0"), (dc0, tc0.grad, "dc0"),
    ):  # fmt: skip
        assert_close(ours, theirs.detach().numpy(), np.float64, name=name)
    parameters = dict(module.named_parameters())
    assert list(model.grads) == list(parameters)
    for key, parameter in parameters.items():
        assert_close(model.grads[key], parameter.grad.numpy(), np.float64, name=key)


def test_state_dict_loads_into_torch_and_float32_agrees():
    torch = pytest.importorskip("torch")
    model = LSTM(INPUT, HIDDEN, 2, bidirectional=True, batch_first=True, seed=3)
    module = torch.nn.LSTM(INPUT, HIDDEN, 2, bidirectional=True, batch_first=True)
    assert list(model.state_dict()) == list(module.state_dict())
    module.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((BATCH, STEPS, INPUT)).astype(np.float32)
    y, (h_n, c_n) = model(x)
    with torch.no_grad():
        expected_y, (expected_h, expected_c) = module(torch.from_numpy(x))
    # Both sides round in float32; each is within a few eps of the exact result.
    assert_close(y, expected_y.numpy(), np.float32, name="y")
    assert_close(h_n, expected_h.numpy(), np.float32, name="h_n")
    assert_close(c_n, expected_c.numpy(), np.float32, name="c_n")
