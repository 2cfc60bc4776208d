"""Issue 11: hostile use of the sampler, the backward pass, state dicts and the command line."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from xplstm.backend import asnumpy
from xplstm.training.data import CharVocabulary
from xplstm.training.model import CharModel
from xplstm.training.sampling import sample_text


def test_a_tiny_temperature_samples_the_most_likely_character():
    vocabulary = CharVocabulary("abcde")
    model = CharModel(len(vocabulary), 6, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = sample_text(model, vocabulary, 12, temperature=1e-310, seed=0, prime="ab")
    expected = [int(index) for index in vocabulary.encode("ab")]
    logits, state = model.forward(model.one_hot(np.asarray(expected)[:, None]))
    for _ in range(12):
        expected.append(int(np.argmax(asnumpy(logits[-1, 0]))))
        logits, state = model.forward(model.one_hot(np.array([[expected[-1]]])), state)
    assert text == vocabulary.decode(np.array(expected))


def test_inf_in_the_input_backpropagates_without_warnings_like_torch():
    import xplstm

    model = xplstm.LSTM(3, 4, num_layers=2, bidirectional=True, seed=0)
    x = np.ones((5, 2, 3), dtype=np.float32)
    x[2, 0, 1] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, _ = model(x)
        dx, _ = model.backward(np.ones_like(y))
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    assert np.isnan(model.grads["weight_ih_l0"]).any()  # inf * 0, as torch has it


def test_a_backward_that_fails_part_way_adds_no_gradients_and_says_why_it_cannot_rerun(
    monkeypatch,
):
    import xplstm
    from xplstm import engine

    model = xplstm.LSTM(3, 4, num_layers=2, seed=0)
    y, _ = model(np.ones((5, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="dy has shape"):
        model.backward(np.ones((1, 1, 1), dtype=np.float32))  # checked first: still pending
    calls = []
    real_backward = engine.lstm_backward

    def fail_on_the_second_layer(*args):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("simulated")
        return real_backward(*args)

    monkeypatch.setattr(engine, "lstm_backward", fail_on_the_second_layer)
    with pytest.raises(MemoryError):
        model.backward(np.ones_like(y))
    assert all(not gradient.any() for gradient in model.grads.values())
    monkeypatch.setattr(engine, "lstm_backward", real_backward)
    with pytest.raises(RuntimeError, match="failed part-way"):
        model.backward(np.ones_like(y))
    y, _ = model(np.ones((5, 2, 3), dtype=np.float32))
    model.backward(np.ones_like(y))


# --------------------------------------------------------------------------- messages (item 8)


def test_projection_weights_into_a_layer_without_proj_size_name_the_setting():
    torch = pytest.importorskip("torch")
    import xplstm

    source = torch.nn.LSTM(3, 4, proj_size=2)
    model = xplstm.LSTM(3, 4)
    state = {key: value.detach().numpy() for key, value in source.state_dict().items()}
    expected = r"weight_hr_l0.*proj_size=0.*build the layer with proj_size"
    with pytest.raises(KeyError, match=expected):
        model.load_state_dict(state)
    xplstm.LSTM(3, 4, proj_size=2).load_state_dict(state)  # the layer that has them loads them


def test_values_that_overflow_the_layers_dtype_are_refused_naming_the_key(tmp_path):
    import xplstm

    model = xplstm.LSTM(2, 3, seed=0)
    state = {key: value.astype(np.float64) for key, value in model.state_dict().items()}
    state["weight_hh_l0"][1, 2] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"state_dict\['weight_hh_l0'\].*beyond the range"):
            model.load_state_dict(state)
    state["weight_hh_l0"][1, 2] = np.inf  # an inf that is there already is kept
    model.load_state_dict(state)
    assert np.isinf(model.weight_hh_l0[1, 2])


def _one_line_error(capsys, argv):
    from xplstm.cli import main

    status = main(argv)
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    return status, error


@pytest.mark.parametrize("flag", ["--lr", "--lr-decay", "--clip-norm"])
def test_an_infinite_rate_is_an_argument_error(capsys, flag):
    status, error = _one_line_error(capsys, ["train", flag, "inf"])
    assert status == 2 and "finite" in error


def test_bench_argument_errors_are_one_line(capsys):
    status, error = _one_line_error(capsys, ["bench", "--bogus"])
    assert status == 2 and "--bogus" in error


def test_sample_from_a_folder_says_to_name_a_file_in_it(tmp_path, capsys):
    status, error = _one_line_error(capsys, ["sample", "--checkpoint", str(tmp_path)])
    assert status == 1 and "is a folder" in error and ".training.npz" not in error


def test_out_of_memory_in_sample_does_not_suggest_train_options(tmp_path, capsys, monkeypatch):
    from xplstm.training import sampling

    def exhausted(*_args, **_kwargs):
        raise MemoryError

    monkeypatch.setattr(sampling, "load_char_model", exhausted)
    (tmp_path / "final.npz").write_bytes(b"")
    status, error = _one_line_error(capsys, ["sample", "--checkpoint", str(tmp_path / "final.npz")])
    assert status == 1 and "out of memory" in error and "--hidden" not in error
