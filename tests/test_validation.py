"""Bad input gets a clear error that names the argument."""

from __future__ import annotations

import re
import sys
import types

import numpy as np
import pytest
import reference as ref

import xplstm

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 6))
A0 = RNG.standard_normal((5, 4))
LSTM_P = ref.random_lstm_parameters(RNG, 3, 5, 2)
RNN_P = ref.random_rnn_parameters(RNG, 3, 5, 2)


def without(parameters, key):
    return {k: v for k, v in parameters.items() if k != key}


def replaced(parameters, key, value):
    return {**parameters, key: value}


CASES = [
    # (call, exception, pattern that must appear in the message)
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0], A0, A0, LSTM_P), None, None),
    (lambda: xplstm.lstm_cell_forward(RNG.standard_normal((4, 4)), A0, A0, LSTM_P),
     ValueError, "xt has 4 features but the weights expect n_x=3"),
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0], A0[:4], A0, LSTM_P),
     ValueError, "a_prev has 4 features but the weights expect n_a=5"),
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0], A0[:, :3], A0, LSTM_P),
     ValueError, "a_prev has batch size m=3 but xt has m=4"),
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0], A0, A0[:, :2], LSTM_P),
     ValueError, r"c_prev has shape \(5, 2\)"),
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0].tolist(), A0, A0, LSTM_P),
     TypeError, "xt must be a numpy or cupy array"),
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0].astype(int), A0, A0, LSTM_P),
     TypeError, "xt has dtype int64"),
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0].astype(np.float32), A0, A0, LSTM_P),
     TypeError, "has dtype float64 but xt has dtype float32"),
    (lambda: xplstm.lstm_cell_forward(X, A0, A0, LSTM_P),
     ValueError, r"xt must be 2-D with shape \(n_x, m\), got shape \(3, 4, 6\)"),
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0], A0, A0, [1, 2]),
     TypeError, "parameters must be a dict"),
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0], A0, A0, without(LSTM_P, "Wo")),
     KeyError, "parameters is missing 'Wo'"),
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0], A0, A0, without(LSTM_P, "by")),
     KeyError, "parameters is missing 'by'"),
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0], A0, A0, replaced(LSTM_P, "Wi", np.ones((5, 7)))),
     ValueError, r"parameters\['Wi'\] has shape \(5, 7\) but \(5, 8\)"),
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0], A0, A0, replaced(LSTM_P, "bf", np.ones(5))),
     ValueError, r"parameters\['bf'\] must be 2-D"),
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0], A0, A0, replaced(LSTM_P, "Wy", np.ones((2, 4)))),
     ValueError, r"parameters\['Wy'\] has shape \(2, 4\)"),
    (lambda: xplstm.lstm_cell_forward(X[:, :, 0], A0, None, LSTM_P),
     TypeError, "c_prev must be a numpy or cupy array"),
    (lambda: xplstm.lstm_forward(X[:, :, :0], A0, LSTM_P),
     ValueError, r"x has shape \(3, 4, 0\): every dimension of \(n_x, m, T_x\) must be at least 1"),
    (lambda: xplstm.rnn_cell_forward(X[:, :0, 0], A0, RNN_P),
     ValueError, r"xt has shape \(3, 0\)"),
    (lambda: xplstm.lstm_forward(X[:2], A0, LSTM_P),
     ValueError, "x has 2 features but the weights expect n_x=3"),
    (lambda: xplstm.lstm_forward(X, A0[:, :1], LSTM_P),
     ValueError, "a0 has batch size m=1 but x has m=4"),
    (lambda: xplstm.lstm_backward(np.ones((5, 4, 7)), xplstm.lstm_forward(X, A0, LSTM_P)[3]),
     ValueError, "da covers 7 time steps but the caches hold 6"),
    (lambda: xplstm.lstm_backward(np.ones((5, 3, 6)), xplstm.lstm_forward(X, A0, LSTM_P)[3]),
     ValueError, r"da has shape \(5, 3, 6\)"),
    (lambda: xplstm.lstm_backward(np.ones((5, 4, 6)), "not caches"),
     TypeError, "caches must be"),
    (lambda: xplstm.lstm_cell_backward(np.ones((5, 3)), np.ones((5, 4)),
                                       xplstm.lstm_cell_forward(X[:, :, 0], A0, A0, LSTM_P)[3]),
     ValueError, r"da_next has shape \(5, 3\)"),
    (lambda: xplstm.lstm_cell_backward(np.ones((5, 4)), None,
                                       xplstm.lstm_cell_forward(X[:, :, 0], A0, A0, LSTM_P)[3]),
     TypeError, "dc_next must be a numpy or cupy array"),
    (lambda: xplstm.rnn_cell_forward(X[:2, :, 0], A0, RNN_P),
     ValueError, "xt has 2 features but the weights expect n_x=3"),
    (lambda: xplstm.rnn_forward(X, A0, without(RNN_P, "Waa")),
     KeyError, "parameters is missing 'Waa'"),
    (lambda: xplstm.rnn_forward(X, A0, replaced(RNN_P, "ba", np.ones((4, 1)))),
     ValueError, r"parameters\['ba'\] has shape \(4, 1\)"),
    (lambda: xplstm.rnn_backward(np.ones((5, 4, 9)), xplstm.rnn_forward(X, A0, RNN_P)[2]),
     ValueError, "da covers 9 time steps but the caches hold 6"),
    (lambda: xplstm.rnn_cell_backward(np.ones((5, 4), dtype=np.float32),
                                      xplstm.rnn_cell_forward(X[:, :, 0], A0, RNN_P)[2]),
     TypeError, "a_next has dtype float64 but da_next has dtype float32"),
]  # fmt: skip


@pytest.mark.parametrize("call, exception, pattern", CASES)
def test_validation_error_names_the_argument(call, exception, pattern):
    if exception is None:
        call()
        return
    with pytest.raises(exception) as info:
        call()
    message = info.value.args[0]
    assert re.search(pattern, message), message


@pytest.fixture
def fake_cupy(monkeypatch):
    """A stand-in ``cupy`` module in ``sys.modules`` whose ``ndarray`` is not a NumPy array."""
    module = types.ModuleType("cupy")

    class FakeDevice:
        id = 0

    class ndarray:
        device = FakeDevice()
        dtype = np.dtype(np.float64)
        shape = (5, 4)
        ndim = 2

    module.ndarray = ndarray
    monkeypatch.setitem(sys.modules, "cupy", module)
    return module


def test_get_array_module_picks_numpy_without_importing_cupy(monkeypatch):
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    assert xplstm.get_array_module(np.ones(2), None, 3.0) is np
    assert "cupy" not in sys.modules


def test_get_array_module_picks_cupy_for_cupy_arrays(fake_cupy):
    assert xplstm.get_array_module(fake_cupy.ndarray(), None) is fake_cupy


def test_mixing_numpy_and_cupy_is_a_type_error_naming_both(fake_cupy):
    with pytest.raises(TypeError, match=r"argument 1 is on the GPU .*argument 0 is on the CPU"):
        xplstm.get_array_module(np.ones(2), fake_cupy.ndarray())
    with pytest.raises(TypeError, match=r"a_prev is on the GPU .*xt is on the CPU"):
        xplstm.lstm_cell_forward(X[:, :, 0], fake_cupy.ndarray(), A0, LSTM_P)


def test_asnumpy_returns_numpy_arrays():
    assert isinstance(xplstm.asnumpy([1.0, 2.0]), np.ndarray)
    array = np.ones(3)
    assert xplstm.asnumpy(array) is array


def test_import_does_not_import_cupy():
    import subprocess

    code = "import sys, xplstm; print('cupy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# ----------------------------------------------------------------------------- sequence lengths


def test_check_lengths_returns_int64_host_lengths_or_none_when_nothing_is_masked():
    from xplstm.validation import check_lengths

    checked = check_lengths([3, 1, 2], batch=3, steps=3)
    assert checked.dtype == np.int64 and checked.tolist() == [3, 1, 2]
    assert check_lengths(np.array([4, 4], dtype=np.uint8), batch=2, steps=4) is None
    assert check_lengths(None, batch=2, steps=4) is None


@pytest.mark.parametrize(
    ("lengths", "error", "pattern"),
    [
        ([1.5, 2.0], TypeError, "lengths must hold integers, got dtype float64"),
        ([[1, 2]], ValueError, r"one entry per sequence \(m=2,\), got shape \(1, 2\)"),
        ([1, 2, 3], ValueError, r"one entry per sequence \(m=2,\), got shape \(3,\)"),
        ([2, 0], ValueError, r"lengths must be in 1..T=4, got lengths\[1\] = 0"),
        ([5, 1], ValueError, r"lengths must be in 1..T=4, got lengths\[0\] = 5"),
        (object(), TypeError, "lengths must hold integers, got dtype object"),
    ],
)
def test_check_lengths_names_what_is_wrong(lengths, error, pattern):
    from xplstm.validation import check_lengths

    with pytest.raises(error, match=pattern):
        check_lengths(lengths, batch=2, steps=4)


def test_check_lengths_refuses_device_arrays(fake_cupy):
    from xplstm.validation import check_lengths

    with pytest.raises(TypeError, match=r"lengths must be on the host .*lengths.get\(\)"):
        check_lengths(fake_cupy.ndarray(), batch=2, steps=4)


def test_reversal_within_lengths_is_its_own_inverse():
    from xplstm.reversal import Reversal

    steps, batch = 4, 3
    lengths = np.array([4, 2, 1])
    array = np.arange(steps * batch * 2, dtype=np.float64).reshape(steps, batch, 2)
    reversal = Reversal(lengths, steps, batch, np)
    reversed_ = reversal(array)
    for b, length in enumerate(lengths):
        np.testing.assert_array_equal(reversed_[:length, b], array[:length, b][::-1])
        np.testing.assert_array_equal(reversed_[length:, b], array[length:, b])
    np.testing.assert_array_equal(reversal(reversed_), array)
    np.testing.assert_array_equal(Reversal(None, steps, batch, np)(array), array[::-1])
