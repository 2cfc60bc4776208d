"""Training pieces: dense layer, losses, optimizers, clipping, data, models, loop and resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_close, numerical_gradient, to_numpy

from xplstm.layer import LSTM
from xplstm.training import (
    SGD,
    Adam,
    Dense,
    clip,
    clip_by_global_norm,
    clip_by_value,
    mean_squared_error,
    sequence_cross_entropy,
    softmax_cross_entropy,
)
from xplstm.training.checkpoint import read_checkpoint, training_state_path
from xplstm.training.config import TrainConfig
from xplstm.training.data import (
    CharVocabulary,
    DataError,
    TextWindows,
    generator_from_array,
    generator_to_array,
    load_digits_split,
    read_text,
)
from xplstm.training.loop import Trainer, train
from xplstm.training.model import CharModel, SequenceClassifier, init_forget_bias
from xplstm.training.sampling import load_char_model, sample_text
from xplstm.training.tasks import TextTask


def assert_gradient_close(analytic, numeric):
    np.testing.assert_allclose(to_numpy(analytic), numeric, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- dense


@pytest.mark.parametrize("shape", [(5, 4), (3, 5, 4)], ids=["2d", "3d"])
def test_dense_gradients_match_finite_differences(xp, shape):
    rng = np.random.default_rng(0)
    layer = Dense(4, 3, rng=rng, dtype="float64", xp=xp)
    x = xp.asarray(rng.standard_normal(shape))
    upstream = xp.asarray(rng.standard_normal((*shape[:-1], 3)))

    def loss():
        return float((layer.forward(x) * upstream).sum())

    layer.forward(x)
    dx = layer.backward(upstream)
    assert_gradient_close(dx, numerical_gradient(loss, x))
    for name in ("weight", "bias"):
        assert_gradient_close(layer.grads[name], numerical_gradient(loss, layer.params[name]))


def test_dense_accumulates_until_zero_grad():
    rng = np.random.default_rng(1)
    layer = Dense(2, 2, rng=rng, dtype="float64", xp=np)
    x, upstream = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    layer.forward(x)
    layer.backward(upstream)
    once = layer.grads["weight"].copy()
    layer.forward(x)
    layer.backward(upstream)
    np.testing.assert_array_equal(layer.grads["weight"], 2 * once)
    layer.zero_grad()
    assert not layer.grads["weight"].any()


def test_dense_keeps_float32():
    layer = Dense(3, 2, rng=np.random.default_rng(0), dtype="float32", xp=np)
    y = layer.forward(np.ones((4, 3), dtype=np.float32))
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32


# ----------------------------------------------------------------------------- losses


def reference_cross_entropy(logits, targets):
    """Plain loops in float64: mean of log(sum exp) - logit of the target."""
    total = 0.0
    for row, target in zip(np.asarray(logits, dtype=np.float64), targets, strict=True):
        peak = max(row)
        total += peak + math.log(sum(math.exp(v - peak) for v in row)) - row[target]
    return total / len(targets)


def test_softmax_cross_entropy_value_and_gradient(xp):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 4))
    targets = np.array([0, 3, 1, 1, 2, 3])
    loss, dlogits = softmax_cross_entropy(xp.asarray(logits), xp.asarray(targets))
    assert_close(loss, reference_cross_entropy(logits, targets), np.float64, name="loss")
    variable = xp.asarray(logits)
    numeric = numerical_gradient(lambda: softmax_cross_entropy(variable, targets)[0], variable)
    assert_gradient_close(dlogits, numeric)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-5e3, 5e3, 5e3]], dtype=np.float32)
    targets = np.array([0, 2])
    loss, dlogits = softmax_cross_entropy(logits, targets)
    # The loss comes back as a Python float computed in float32: exact in float32.
    assert_close(
        np.float32(loss), reference_cross_entropy(logits, targets), np.float32, name="loss"
    )
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True).astype(np.float64))
    want = shifted / shifted.sum(axis=1, keepdims=True) - np.eye(3)[targets]
    assert_close(dlogits, want / len(targets), np.float32, name="dlogits")


def test_sequence_cross_entropy_is_the_mean_over_steps(xp):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((3, 2, 5))
    targets = rng.integers(0, 5, size=(3, 2))
    loss, dlogits = sequence_cross_entropy(xp.asarray(logits), xp.asarray(targets))
    expected = reference_cross_entropy(logits.reshape(6, 5), targets.reshape(6))
    assert_close(loss, expected, np.float64, name="loss")
    variable = xp.asarray(logits)
    numeric = numerical_gradient(lambda: sequence_cross_entropy(variable, targets)[0], variable)
    assert_gradient_close(dlogits, numeric)


def test_mean_squared_error_value_and_gradient(xp):
    rng = np.random.default_rng(4)
    predictions, targets = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss, dpredictions = mean_squared_error(xp.asarray(predictions), xp.asarray(targets))
    assert_close(loss, ((predictions - targets) ** 2).mean(), np.float64, name="loss")
    variable = xp.asarray(predictions)
    numeric = numerical_gradient(lambda: mean_squared_error(variable, targets)[0], variable)
    assert_gradient_close(dpredictions, numeric)


def test_loss_target_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"targets has shape \(3,\).*\(2,\)"):
        softmax_cross_entropy(np.zeros((2, 4)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="targets has shape"):
        mean_squared_error(np.zeros((2, 4)), np.zeros((4, 2)))


# ----------------------------------------------------------------------------- optimizers

HAND_ULPS = 4  # a few float64 operations on short decimals, each rounded once, against the decimal


def test_sgd_with_momentum_matches_hand_computation(xp):
    parameter = xp.asarray([1.0, -2.0])
    optimizer = SGD({"p": parameter}, lr=0.1, momentum=0.9)
    optimizer.step({"p": xp.asarray([0.5, 0.25])})
    # velocity = g1 = [0.5, 0.25]; p = [1 - 0.05, -2 - 0.025]
    assert_close(parameter, [0.95, -2.025], np.float64, 0, ulps=HAND_ULPS)
    optimizer.step({"p": xp.asarray([1.0, -1.0])})
    # velocity = 0.9 * [0.5, 0.25] + [1, -1] = [1.45, -0.775]; p -= 0.1 * velocity
    assert_close(parameter, [0.805, -1.9475], np.float64, 0, ulps=HAND_ULPS)


def test_adam_matches_hand_computation(xp):
    parameter = xp.asarray([1.0])
    optimizer = Adam({"p": parameter}, lr=0.1)
    optimizer.step({"p": xp.asarray([0.5])})
    # m = 0.05, v = 0.00025; m_hat = 0.5, v_hat = 0.25: p = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    expected = 1.0 - 0.1 * 0.5 / (0.5 + 1e-8)
    assert_close(parameter, [expected], np.float64, 0, ulps=HAND_ULPS)
    optimizer.step({"p": xp.asarray([-1.0])})
    # m = 0.9 * 0.05 - 0.1 = -0.055, v = 0.999 * 0.00025 + 0.001 = 0.00124975
    m_hat = -0.055 / (1 - 0.9**2)
    v_hat = 0.00124975 / (1 - 0.999**2)
    expected -= 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8)
    assert_close(parameter, [expected], np.float64, name="p")


@pytest.mark.oracle
def test_adam_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    start = rng.standard_normal((3, 2))
    gradients = [rng.standard_normal((3, 2)) for _ in range(5)]
    ours = start.copy()
    optimizer = Adam({"w": ours}, lr=0.03, betas=(0.8, 0.99), eps=1e-6)
    theirs = torch.tensor(start, requires_grad=True)
    reference = torch.optim.Adam([theirs], lr=0.03, betas=(0.8, 0.99), eps=1e-6)
    for gradient in gradients:
        optimizer.step({"w": gradient})
        theirs.grad = torch.tensor(gradient)
        reference.step()
    assert_close(ours, theirs.detach().numpy(), np.float64, name="w")


@pytest.mark.parametrize("make", [lambda p: SGD(p, 0.1, 0.9), lambda p: Adam(p, 0.1)])
def test_optimizer_state_round_trip_continues_bitwise(make):
    rng = np.random.default_rng(6)
    gradients = [{"a": rng.standard_normal(4), "b": rng.standard_normal((2, 2))} for _ in range(6)]
    first = {"a": np.zeros(4), "b": np.ones((2, 2))}
    uninterrupted = make(first)
    for gradient in gradients:
        uninterrupted.step(gradient)

    second = {"a": np.zeros(4), "b": np.ones((2, 2))}
    before = make(second)
    for gradient in gradients[:3]:
        before.step(gradient)
    state = before.state_dict()
    assert all(isinstance(value, np.ndarray) for value in state.values())
    restored_parameters = {name: value.copy() for name, value in second.items()}
    after = make(restored_parameters)
    after.load_state_dict(state)
    for gradient in gradients[3:]:
        after.step(gradient)
    for name in first:
        assert first[name].tobytes() == restored_parameters[name].tobytes()


def test_optimizer_errors():
    with pytest.raises(ValueError, match="lr must be positive"):
        Adam({"p": np.zeros(1)}, lr=0)
    with pytest.raises(KeyError, match="missing"):
        SGD({"p": np.zeros(1)}, lr=0.1).step({})
    with pytest.raises(KeyError, match=r"'m\.p'"):
        Adam({"p": np.zeros(1)}).load_state_dict({"step": np.array(1)})


# ----------------------------------------------------------------------------- clipping


def test_clip_has_the_course_semantics(xp):
    gradients = {
        "dWaa": xp.asarray([[10.0, -10.0], [0.5, -0.5]]),
        "dby": xp.asarray([[3.0], [-7.0]]),
    }
    arrays = dict(gradients)
    result = clip(gradients, maxValue=5)
    assert result is gradients
    assert all(result[name] is arrays[name] for name in arrays)  # clipped in place
    np.testing.assert_array_equal(to_numpy(result["dWaa"]), [[5, -5], [0.5, -0.5]])
    np.testing.assert_array_equal(to_numpy(result["dby"]), [[3], [-5]])


def test_clip_by_value_rejects_non_positive_bounds():
    with pytest.raises(ValueError, match="max_value must be positive"):
        clip_by_value({"g": np.zeros(2)}, 0)


def test_clip_by_global_norm(xp):
    gradients = {"a": xp.asarray([3.0, 0.0]), "b": xp.asarray([[0.0, 4.0]])}
    norm = clip_by_global_norm(gradients, 1.0)
    assert norm == pytest.approx(5.0)
    assert_close(gradients["a"], [0.6, 0.0], np.float64, 0, ulps=HAND_ULPS)
    assert_close(gradients["b"], [[0.0, 0.8]], np.float64, 0, ulps=HAND_ULPS)
    small = {"a": xp.asarray([0.3, 0.4])}
    assert clip_by_global_norm(small, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(to_numpy(small["a"]), [0.3, 0.4])  # untouched


# ----------------------------------------------------------------------------- data


def test_generator_state_round_trips_exactly():
    rng = np.random.default_rng(7)
    rng.integers(0, 10, size=3, dtype=np.uint32)  # leaves a buffered 32-bit half
    saved = generator_to_array(rng)
    assert saved.dtype == np.uint64
    restored = generator_from_array(saved)
    np.testing.assert_array_equal(
        rng.integers(0, 2**32, size=5, dtype=np.uint32),
        restored.integers(0, 2**32, size=5, dtype=np.uint32),
    )
    np.testing.assert_array_equal(rng.permutation(50), restored.permutation(50))


def test_digits_split_is_scaled_stratified_and_fixed():
    split = load_digits_split()
    assert split.train_images.shape[1:] == (8, 8)
    assert len(split.train_labels) + len(split.test_labels) == 1797
    assert 0 <= split.train_images.min() and split.train_images.max() == 1.0
    assert set(np.unique(split.test_labels)) == set(range(10))
    shares = np.bincount(split.test_labels) / np.bincount(
        np.concatenate([split.train_labels, split.test_labels])
    )
    np.testing.assert_allclose(shares, 0.2, atol=0.01)
    again = load_digits_split()
    np.testing.assert_array_equal(split.test_labels, again.test_labels)


def test_text_windows_shift_targets_by_one():
    windows = TextWindows("abcdefghij", seq_length=3)
    assert len(windows) == 3  # (10 - 1) // 3
    inputs, targets = windows.batch(np.array([2, 0]))
    decode = windows.vocabulary.decode
    assert decode(inputs[:, 0]) == "ghi" and decode(targets[:, 0]) == "hij"
    assert decode(inputs[:, 1]) == "abc" and decode(targets[:, 1]) == "bcd"
    assert TextWindows("xy", seq_length=50).seq_length == 1


def test_vocabulary_round_trips_through_a_unicode_array():
    vocabulary = CharVocabulary.from_text("naïve café 漢字\n\t")
    array = vocabulary.to_array()
    assert array.dtype.kind == "U" and array.ndim == 0
    restored = CharVocabulary.from_array(array, len(vocabulary))
    assert restored.characters == vocabulary.characters
    text = "café 漢"
    assert restored.decode(restored.encode(text)) == text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"abc\xff\xfe", r"not valid UTF-8 \(byte 0xff at offset 3\)"),
        (b"a", "has 1 character"),
    ],
)
def test_read_text_errors(tmp_path, content, message):
    path = tmp_path / "text.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_text(path)


def test_read_text_refuses_a_directory(tmp_path):
    with pytest.raises(DataError, match="not a regular file"):
        read_text(tmp_path)


# ----------------------------------------------------------------------------- models


def test_forget_bias_init_sets_the_f_rows():
    lstm = LSTM(3, 4, num_layers=2, seed=0)
    init_forget_bias(lstm, 1.5)
    for layer in range(2):
        state = lstm.state_dict()
        bias_ih, bias_hh = state[f"bias_ih_l{layer}"], state[f"bias_hh_l{layer}"]
        np.testing.assert_array_equal(bias_ih[4:8], 1.5)
        np.testing.assert_array_equal(bias_hh[4:8], 0.0)
        assert np.abs(bias_ih[:4]).max() > 0  # other gates keep their random init
    with pytest.raises(ValueError, match="no biases"):
        init_forget_bias(LSTM(3, 4, bias=False), 1.0)


def model_gradient_check(model, loss_of_model):
    """Compare every parameter's gradient with central differences (float64 models)."""
    model.zero_grad()
    loss_of_model(backward=True)
    analytic = {name: to_numpy(g).copy() for name, g in model.gradients().items()}
    for name, parameter in model.parameters().items():
        numeric = numerical_gradient(lambda: loss_of_model(backward=False), parameter)
        np.testing.assert_allclose(analytic[name], numeric, rtol=1e-5, atol=1e-8, err_msg=name)


def test_sequence_classifier_gradients(xp):
    device = "cpu" if xp is np else "cuda"
    model = SequenceClassifier(2, 3, 4, num_layers=2, dtype="float64", device=device, seed=0)
    rng = np.random.default_rng(8)
    inputs = xp.asarray(rng.standard_normal((3, 2, 2)))
    labels = xp.asarray([1, 3])

    def loss_of_model(backward):
        loss, dlogits = softmax_cross_entropy(model.forward(inputs), labels)
        if backward:
            model.backward(dlogits)
        return loss

    model_gradient_check(model, loss_of_model)


def test_char_model_gradients(xp):
    device = "cpu" if xp is np else "cuda"
    model = CharModel(4, 3, dtype="float64", device=device, seed=1)
    inputs = model.one_hot(np.array([[0, 1], [2, 3], [1, 1]]))
    targets = xp.asarray([[1, 2], [3, 0], [0, 2]])

    def loss_of_model(backward):
        logits, _ = model.forward(inputs)
        loss, dlogits = sequence_cross_entropy(logits, targets)
        if backward:
            model.backward(dlogits)
        return loss

    model_gradient_check(model, loss_of_model)


# ----------------------------------------------------------------------------- loop


def quiet(line):
    pass


def write_text(path, characters=1500):
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "naïve", "café"]
    text = " ".join(rng.choice(words, size=characters // 4))
    path.write_text(text, encoding="utf-8")
    return path


def text_settings(path, **overrides):
    settings = dict(
        task="text",
        text_path=str(path),
        epochs=3,
        hidden_size=16,
        seq_length=12,
        batch_size=8,
        seed=3,
    )
    settings.update(overrides)
    return settings


def test_short_digits_run_lowers_the_loss():
    result = train({"epochs": 3, "hidden_size": 16, "seed": 1}, progress=False, log=quiet)
    losses = result.history["train_loss"]
    assert losses[0] > losses[1] > losses[2]
    assert result.test_accuracy > 0.5


def test_text_run_lowers_the_loss_and_samples(tmp_path):
    text = write_text(tmp_path / "text.txt")
    result = train(
        text_settings(text, epochs=4),
        checkpoint_dir=tmp_path / "run",
        progress=False,
        log=quiet,
    )
    losses = result.history["train_loss"]
    assert losses[-1] < losses[0]
    final = result.final_checkpoint
    assert final == tmp_path / "run" / "final.npz"
    assert LSTM.load(final).input_size == len(set(text.read_text(encoding="utf-8")))
    model, vocabulary = load_char_model(final)
    first = sample_text(model, vocabulary, 30, temperature=0.7, seed=4, prime="the ")
    again = sample_text(model, vocabulary, 30, temperature=0.7, seed=4, prime="the ")
    assert first == again and first.startswith("the ") and len(first) == 34
    assert set(first) <= set(vocabulary.characters)
    with pytest.raises(KeyError, match="not in the vocabulary"):
        sample_text(model, vocabulary, 3, prime="Z")


def test_checkpoints_hold_the_lstm_and_the_training_state(tmp_path):
    result = train(
        {"epochs": 1, "hidden_size": 8}, checkpoint_dir=tmp_path, progress=False, log=quiet
    )
    loaded = LSTM.load(tmp_path / "final.npz")
    for name, value in result.model.lstm.state_dict().items():
        assert loaded.state_dict()[name].tobytes() == value.tobytes()
    lstm, state = read_checkpoint(tmp_path / "final.npz")
    assert TrainConfig.from_array(state["trainer.config"]).hidden_size == 8
    assert {"head.weight", "optimizer.step", "optimizer.m.lstm.weight_ih_l0"} <= set(state)
    assert training_state_path(tmp_path / "last.npz") == tmp_path / "last.training.npz"
    with pytest.raises(DataError, match="holds a digits model"):
        load_char_model(tmp_path / "final.npz")


class Interrupted(Exception):
    pass


def interrupt_after(monkeypatch, steps):
    """Make the training loop raise after ``steps`` optimizer steps (a crash mid-epoch)."""
    original = Trainer._step

    def step(self, indices):
        if self.position.step == steps:
            raise Interrupted
        original(self, indices)

    monkeypatch.setattr(Trainer, "_step", step)


def final_state(directory):
    from xplstm.npz_io import load_npz

    return load_npz(directory / "final.training.npz")


def assert_bitwise_equal(first, second):
    assert first.keys() == second.keys()
    for name in first:
        assert first[name].dtype == second[name].dtype, name
        assert first[name].tobytes() == second[name].tobytes(), name


@pytest.mark.parametrize(
    "interrupt_at",
    [5, "epoch_end", "after_epoch_end", "last_epoch"],
    ids=["mid_epoch", "epoch_end", "after_epoch_end", "last_epoch"],
)
def test_resume_after_a_crash_is_bitwise_identical(tmp_path, monkeypatch, interrupt_at):
    text = write_text(tmp_path / "text.txt", characters=220)
    settings = text_settings(text, seq_length=6, batch_size=4)
    steps_per_epoch = -(-len(TextWindows(text.read_text("utf-8"), 6)) // 4)
    interrupt_at = {
        "epoch_end": steps_per_epoch,
        "after_epoch_end": steps_per_epoch + 1,
        "last_epoch": 2 * steps_per_epoch + 3,
    }.get(interrupt_at, interrupt_at)
    train(settings, checkpoint_dir=tmp_path / "whole", progress=False, log=quiet)

    with monkeypatch.context() as patch:
        interrupt_after(patch, interrupt_at)
        with pytest.raises(Interrupted):
            train(
                settings,
                checkpoint_dir=tmp_path / "parts",
                checkpoint_every=4,
                progress=False,
                log=quiet,
            )
    messages = []
    train({}, checkpoint_dir=tmp_path / "parts", resume=True, progress=False, log=messages.append)
    assert any(message.startswith("resuming from") for message in messages)
    assert_bitwise_equal(final_state(tmp_path / "whole"), final_state(tmp_path / "parts"))


REGULARIZED = dict(
    num_layers=2,
    layer_norm=True,
    zoneout_cell=0.4,
    zoneout_hidden=0.1,
    recurrent_dropout=0.25,
    dropout=0.3,
)


def test_regularized_runs_resume_bitwise_with_their_masks(tmp_path, monkeypatch):
    """The LSTM's mask generator is part of the training state: a run interrupted mid-epoch
    draws, after its resume, the masks the whole run drew."""
    text = write_text(tmp_path / "text.txt", characters=220)
    settings = text_settings(text, seq_length=6, batch_size=4, epochs=2, **REGULARIZED)
    whole = train(settings, checkpoint_dir=tmp_path / "whole", progress=False, log=quiet)
    loaded = LSTM.load(whole.final_checkpoint)
    assert {name: getattr(loaded, name) for name in REGULARIZED} == REGULARIZED
    with monkeypatch.context() as patch:
        interrupt_after(patch, 7)
        with pytest.raises(Interrupted):
            train(settings, checkpoint_dir=tmp_path / "parts", checkpoint_every=3,
                  progress=False, log=quiet)  # fmt: skip
    train({}, checkpoint_dir=tmp_path / "parts", resume=True, progress=False, log=quiet)
    assert_bitwise_equal(final_state(tmp_path / "whole"), final_state(tmp_path / "parts"))
    # The masks were drawn: without them (the same weights, shuffling and seed) the run differs.
    noiseless = dict(zoneout_cell=0.0, zoneout_hidden=0.0, recurrent_dropout=0.0, dropout=0.0)
    plain = train({**settings, **noiseless}, progress=False, log=quiet)
    assert plain.history["train_loss"] != whole.history["train_loss"]


def test_validation_and_sampling_run_in_eval_mode(tmp_path):
    text = write_text(tmp_path / "text.txt", characters=400)
    settings = text_settings(text, epochs=1, **REGULARIZED)
    result = train(settings, checkpoint_dir=tmp_path, progress=False, log=quiet)
    assert result.model.lstm.training  # back in training mode after the validation
    model, _ = load_char_model(result.final_checkpoint)
    assert not model.lstm.training
    task = TextTask(TrainConfig(**settings))
    generator = generator_to_array(model.lstm.generator)
    eval_loss = task.validation_loss(model)
    assert eval_loss == result.history["validation_loss"][-1]  # the same sums, bitwise
    assert generator_to_array(model.lstm.generator).tobytes() == generator.tobytes()
    model.lstm.train()
    assert task.validation_loss(model) != eval_loss  # in training mode the masks would matter


def test_more_epochs_on_resume_equal_one_longer_run(tmp_path):
    settings = {"epochs": 3, "hidden_size": 8, "seed": 2}
    train(settings, checkpoint_dir=tmp_path / "whole", progress=False, log=quiet)
    train({**settings, "epochs": 1}, checkpoint_dir=tmp_path / "parts", progress=False, log=quiet)
    train(
        {"epochs": 3},
        checkpoint_dir=tmp_path / "parts",
        resume=True,
        progress=False,
        log=quiet,
    )
    assert_bitwise_equal(final_state(tmp_path / "whole"), final_state(tmp_path / "parts"))


def test_resume_refuses_other_settings_and_other_text(tmp_path):
    text = write_text(tmp_path / "text.txt")
    train(text_settings(text, epochs=1), checkpoint_dir=tmp_path, progress=False, log=quiet)
    with pytest.raises(ValueError, match=r"hidden_size 32 \(checkpoint: 16\)"):
        train({"hidden_size": 32}, checkpoint_dir=tmp_path, resume=True, log=quiet)
    text.write_text("something else entirely", encoding="utf-8")
    with pytest.raises(DataError, match="differs from the text the checkpoint"):
        train({}, checkpoint_dir=tmp_path, resume=True, log=quiet)


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path):
    messages = []
    train(
        {"epochs": 0, "hidden_size": 4},
        checkpoint_dir=tmp_path / "new",
        resume=True,
        log=messages.append,
    )
    assert messages[0].startswith("no checkpoint at")
    assert (tmp_path / "new" / "final.npz").exists()


def test_config_validation_names_the_setting():
    with pytest.raises(ValueError, match="epochs must be >= 0, got -1"):
        TrainConfig(epochs=-1)
    with pytest.raises(ValueError, match="task must be digits or text"):
        TrainConfig(task="images")
    for name in ("zoneout_cell", "zoneout_hidden", "recurrent_dropout"):
        words = name.replace("_", " ")
        for value in (-0.1, 1.0, math.nan):
            with pytest.raises(ValueError, match=rf"{words} must be in \[0, 1\), got {value}"):
                TrainConfig(**{name: value})
    with pytest.raises(ValueError, match="dropout acts between stacked layers"):
        TrainConfig(dropout=0.2)
    with pytest.raises(ValueError, match="layer norm must be true or false, got 1"):
        TrainConfig(layer_norm=1)
    config = TrainConfig(hidden_size=7, num_layers=2, dropout=0.5, layer_norm=True)
    assert TrainConfig.from_array(config.to_array()) == config
