"""``xplstm.GRU`` against ``torch.nn.GRU`` (skipped when torch is not installed).

Variable lengths are compared with torch's ``pack_padded_sequence(..., enforce_sorted=False)``,
the GRU, then ``pad_packed_sequence(..., total_length=T)``. Float64 results must agree within
:func:`conftest.assert_close`'s default bound (64 eps of the result's scale).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close

from xplstm import GRU

pytestmark = pytest.mark.oracle

INPUT, HIDDEN, STEPS, BATCH = 3, 4, 6, 5

# num_layers, bidirectional, batch_first, bias, initial state, lengths, final-state gradient
CONFIGS = {
    "plain": (1, False, False, True, False, None, True),
    "stacked-h0": (2, False, False, True, True, None, True),
    "bidi-lengths": (1, True, False, True, False, [4, 6, 1, 3, 6], True),
    "everything": (2, True, True, True, True, [2, 6, 5, 1, 3], True),
    "no-bias": (2, True, False, False, True, [6, 3, 3, 1, 5], True),
    "three-layers-bf": (3, False, True, True, False, [5, 1, 6, 2, 4], True),
    "no-final-gradient": (2, True, True, True, True, [3, 6, 1, 6, 2], False),
}


def run_torch(torch, module, x, h0, lengths, batch_first, weights, final):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    if lengths is None:
        y, h_n = module(x, h0)
    else:
        packed = pack_padded_sequence(
            x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False
        )
        output, h_n = module(packed, h0)
        y, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=STEPS)
    wy, wh = (torch.from_numpy(w) for w in weights)
    loss = (y * wy).sum()
    if final:
        loss = loss + (h_n * wh).sum()
    loss.backward()
    return y, h_n


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_torch_in_float64(name):
    torch = pytest.importorskip("torch")
    layers, bidirectional, batch_first, bias, state, lengths, final = CONFIGS[name]
    torch.manual_seed(0)
    module = torch.nn.GRU(
        INPUT, HIDDEN, layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional
    ).double()
    model = GRU(
        INPUT, HIDDEN, layers, bias=bias, batch_first=batch_first,
        bidirectional=bidirectional, dtype="float64",
    )  # fmt: skip
    # Torch state dicts load unchanged.
    model.load_state_dict({k: v.detach().numpy() for k, v in module.state_dict().items()})

    rng = np.random.default_rng(1)
    rows = layers * (2 if bidirectional else 1)
    x = rng.standard_normal((BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT))
    h0 = rng.standard_normal((rows, BATCH, HIDDEN)) if state else np.zeros((rows, BATCH, HIDDEN))
    weights = (
        rng.standard_normal((*x.shape[:2], rows // layers * HIDDEN)),
        rng.standard_normal(h0.shape),
    )
    tx, th0 = (torch.tensor(a, requires_grad=True) for a in (x, h0))
    y, h_n = run_torch(torch, module, tx, th0, lengths, batch_first, weights, final)

    our_y, our_h = model(x, h0 if state else None, lengths=lengths)
    dx, dh0 = model.backward(weights[0], weights[1] if final else None)

    for ours, theirs, label in (
        (our_y, y, "y"), (our_h, h_n, "h_n"), (dx, tx.grad, "dx"), (dh0, th0.grad, "dh0"),
    ):  # fmt: skip
        assert_close(ours, theirs.detach().numpy(), np.float64, name=label)
    parameters = dict(module.named_parameters())
    assert list(model.grads) == list(parameters)
    for key, parameter in parameters.items():
        assert_close(model.grads[key], parameter.grad.numpy(), np.float64, name=key)


def test_state_dict_loads_into_torch_and_float32_agrees():
    torch = pytest.importorskip("torch")
    model = GRU(INPUT, HIDDEN, 2, bidirectional=True, batch_first=True, seed=3)
    module = torch.nn.GRU(INPUT, HIDDEN, 2, bidirectional=True, batch_first=True)
    assert list(model.state_dict()) == list(module.state_dict())
    for key, value in module.state_dict().items():
        assert model.state_dict()[key].shape == tuple(value.shape), key
    module.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((BATCH, STEPS, INPUT)).astype(np.float32)
    y, h_n = model(x)
    with torch.no_grad():
        expected_y, expected_h = module(torch.from_numpy(x))
    # Both sides round in float32; each is within a few eps of the exact result.
    assert_close(y, expected_y.numpy(), np.float32, name="y")
    assert_close(h_n, expected_h.numpy(), np.float32, name="h_n")


def test_initialization_bounds_match_torch():
    torch = pytest.importorskip("torch")
    module = torch.nn.GRU(INPUT, 16)
    model = GRU(INPUT, 16, seed=0)
    bound = 1 / np.sqrt(16)
    for key, value in module.state_dict().items():
        ours = getattr(model, key)
        assert np.abs(ours).max() <= bound and np.abs(value.numpy()).max() <= bound, key
        assert np.abs(ours).max() > 0.8 * bound, key  # uniform over the whole range
