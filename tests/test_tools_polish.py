"""``xplstm bench --help`` and ``--plot``, the text task's validation split, the training plot's
epoch ticks, and sampling a text run from Python as the README shows."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from xplstm import bench
from xplstm.cli import main
from xplstm.training.loop import train


def test_bench_help_is_plain_text_with_every_default(capsys):
    assert main(["bench", "--help"]) == 0
    text = capsys.readouterr().out
    for markup in ("``", ":class:", ":func:"):
        assert markup not in text
    for default in (
        "default: 128,256,64,100",
        "default: both",
        "default: 15",
        "default: 0.25",
        "default: 2",
        "default: numpy, plus cupy",
    ):
        assert default in " ".join(text.split()), default
    assert "no_grad" in text  # the memory figures it prints are described


def test_bench_plot_without_matplotlib_stops_before_timing(monkeypatch, capsys, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "matplotlib" else real_find_spec(name, *args),
    )

    def no_timing(*args, **kwargs):
        raise AssertionError("benchmarks ran although --plot cannot be drawn")

    monkeypatch.setattr(bench, "run", no_timing)
    monkeypatch.setattr(bench, "measure_memory", no_timing)
    status = main(["bench", "--plot", str(tmp_path / "times.png")])
    assert status == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "times.png").exists()


def _text_file(path, characters=1500):
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "naïve", "café"]
    path.write_text(" ".join(rng.choice(words, size=characters // 4)), encoding="utf-8")
    return path


def _text_run(tmp_path, epochs=3):
    lines = []
    settings = dict(
        task="text",
        text_path=str(_text_file(tmp_path / "text.txt")),
        epochs=epochs,
        hidden_size=16,
        seq_length=12,
        batch_size=8,
        seed=3,
    )
    result = train(settings, checkpoint_dir=tmp_path / "run", progress=False, log=lines.append)
    return result, lines


def test_text_task_holds_out_the_end_of_the_text_and_logs_a_validation_loss(tmp_path):
    from xplstm.training.config import TrainConfig
    from xplstm.training.tasks import VALIDATION_FRACTION, TextTask

    task = TextTask(TrainConfig(task="text", text_path=str(_text_file(tmp_path / "t.txt"))))
    windows = len(task.windows)
    assert len(task.validation_windows) == max(1, int(windows * VALIDATION_FRACTION))
    assert task.num_examples + len(task.validation_windows) == windows
    assert task.validation_windows[0] == task.num_examples  # the held-out windows come last

    result, lines = _text_run(tmp_path)
    validation = result.history["validation_loss"]
    assert len(validation) == 3 and all(math.isfinite(value) for value in validation)
    assert validation[-1] < validation[0]  # it learns something that carries over
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == 3
    assert all("validation loss" in line for line in epoch_lines)
    assert "held-out validation windows" in " ".join(lines)


def test_digits_history_has_no_validation_loss_but_keeps_the_key():
    result = train({"epochs": 1, "hidden_size": 8, "seed": 1}, progress=False, log=lambda _: None)
    assert len(result.history["validation_loss"]) == 1
    assert math.isnan(result.history["validation_loss"][0])


def test_training_plot_draws_validation_loss_with_whole_epoch_ticks():
    pytest.importorskip("matplotlib")
    from xplstm.training.plot import history_figure

    history = {
        "train_loss": [2.0, 1.5, 1.2],
        "train_accuracy": [0.3, 0.4, 0.5],
        "test_accuracy": [math.nan] * 3,
        "validation_loss": [2.1, 1.7, 1.4],
    }
    figure = history_figure(history, "text run")
    figure.canvas.draw()
    loss_axes = figure.axes[0]
    labels = [line.get_label() for line in loss_axes.get_lines()]
    assert labels == ["training loss", "validation loss"]
    for axes in figure.axes:
        lower, upper = axes.get_xlim()
        ticks = [tick for tick in axes.get_xticks() if lower <= tick <= upper]
        assert ticks and all(float(tick).is_integer() for tick in ticks), ticks


def test_sampling_a_text_run_from_python_as_the_readme_shows(tmp_path):
    _text_run(tmp_path, epochs=1)
    run_dir = tmp_path / "run"
    # The README's snippet, with its folder replaced by this run's.
    from xplstm.training.sampling import load_char_model, sample_text

    model, vocabulary = load_char_model(run_dir / "final.npz", device="cpu")
    text = sample_text(model, vocabulary, 40, temperature=0.8, seed=0, prime="the ")
    assert text.startswith("the ") and len(text) == 44
    assert set(text) <= set(vocabulary.characters)
