"""The ``xplstm`` command: help, one-line errors, every command, and kill-and-resume."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from xplstm.cli import main
from xplstm.layer import LSTM
from xplstm.npz_io import load_npz


def run_cli(capsys, *argv):
    """Run ``xplstm argv...`` in this process: ``(exit status, stdout, stderr)``."""
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status, err, expected_status, pattern):
    assert status == expected_status
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]


def write_text(path, words):
    rng = np.random.default_rng(0)
    vocabulary = ["the", "cat", "sat", "on", "a", "mat", "naïve", "café"]
    path.write_text(" ".join(rng.choice(vocabulary, size=words)), encoding="utf-8")
    return path


@pytest.fixture
def text_file(tmp_path):
    return write_text(tmp_path / "text.txt", words=120)


# ----------------------------------------------------------------------------- help and errors


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ([], "demo"),
        (["demo"], "--out"),
        (["train"], "--checkpoint-every"),
        (["sample"], "--temperature"),
        (["info"], "kernel sources"),
    ],
)
def test_help_for_each_command(capsys, command, expected):
    status, out, _ = run_cli(capsys, *command, "--help")
    assert status == 0
    assert expected in out


def test_train_help_shows_the_train_config_defaults(capsys, monkeypatch):
    import dataclasses

    from xplstm.training.config import TrainConfig

    status, out, _ = run_cli(capsys, "train", "--help")
    assert status == 0
    text = " ".join(out.split())
    for flag, shown in [("--epochs N", "25"), ("--lr RATE", "0.01"), ("--clip-norm NORM", "5")]:
        assert re.search(rf"{flag} .*?\(default: {re.escape(shown)}\)", text)

    @dataclasses.dataclass(frozen=True)
    class Wider(TrainConfig):
        hidden_size: int = 96

    monkeypatch.setattr("xplstm.training.config.TrainConfig", Wider)
    _, out, _ = run_cli(capsys, "train", "--help")
    assert "hidden size (default: 96)" in " ".join(out.split())


def test_python_dash_m_runs_the_command():
    completed = subprocess.run(
        [sys.executable, "-m", "xplstm", "--help"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0
    assert "train" in completed.stdout and "bench" in completed.stdout


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        ([], "choose a command"),
        (["fly"], "invalid choice: 'fly'"),
        (["train", "--epochs", "-1"], r"argument --epochs: must be >= 0, got -1"),
        (["train", "--epochs", "ten"], "expected an integer, got 'ten'"),
        (["train", "--lr", "0"], r"argument --lr: must be > 0"),
        (["train", "--lr", "nan"], r"argument --lr: must be > 0"),
        (["train", "--batch-size", "0"], r"must be >= 1"),
        (["train", "--device", "tpu"], "invalid choice: 'tpu'"),
        (["train", "--zoneout", "1"], r"argument --zoneout: must be < 1 \(a probability\)"),
        (["train", "--recurrent-dropout", "-0.1"], r"--recurrent-dropout: must be >= 0"),
        (["train", "--zoneout-cell", "x"], "expected a number, got 'x'"),
        (["sample"], "required: --checkpoint"),
        (["sample", "--checkpoint", "x.npz", "--temperature", "-1"], "must be > 0"),
        (["demo", "--epochs", "-3"], "must be >= 1"),
        (["demo", "--epochs", "0"], "must be >= 1"),
    ],
)
def test_argument_errors_are_one_line(capsys, argv, pattern):
    status, _, err = run_cli(capsys, *argv)
    assert_one_line_error(status, err, 2, pattern)


def test_input_errors_are_one_line(capsys, tmp_path):
    missing = tmp_path / "missing.txt"
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"caf\xe9 latin-1")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    cases = [
        (["train", "--task", "text", "--text", str(missing)], "does not exist"),
        (["train", "--task", "text", "--text", str(binary)], r"not valid UTF-8 \(byte 0xe9"),
        (["train", "--task", "text", "--text", str(empty)], "is empty"),
        (["train", "--task", "text", "--text", str(tmp_path)], "not a regular file"),
        (["train", "--task", "text"], "--task text needs --text FILE"),
        (["train", "--task", "digits", "--text", str(binary)], "only used with --task text"),
        (["sample", "--checkpoint", str(tmp_path / "none.npz")], "does not exist"),
        (["sample", "--checkpoint", str(binary)], "does not exist|not a readable"),
    ]
    for argv, pattern in cases:
        if argv[0] == "train":
            argv = [*argv, "--checkpoint-dir", str(tmp_path / "run")]
        status, _, err = run_cli(capsys, *argv)
        assert_one_line_error(status, err, 1, pattern)


def test_resume_with_other_settings_is_one_line(capsys, tmp_path, text_file):
    common = ["--text", str(text_file), "--checkpoint-dir", str(tmp_path), "--no-progress"]
    status, _, _ = run_cli(capsys, "train", *common, "--epochs", "0", "--hidden", "4")
    assert status == 0
    status, _, err = run_cli(capsys, "train", *common, "--resume", "--hidden", "5")
    assert_one_line_error(status, err, 1, r"cannot resume with different settings: hidden_size 5")


def test_dropout_without_stacked_layers_is_one_line(capsys, tmp_path):
    argv = ["train", "--dropout", "0.2", "--checkpoint-dir", str(tmp_path)]
    status, _, err = run_cli(capsys, *argv)
    assert_one_line_error(status, err, 1, "dropout acts between stacked layers: needs layers")


def test_sample_refuses_a_digits_checkpoint(capsys, tmp_path):
    status, _, _ = run_cli(
        capsys, "train", "--epochs", "0", "--hidden", "4", "--checkpoint-dir", str(tmp_path)
    )
    assert status == 0
    status, _, err = run_cli(capsys, "sample", "--checkpoint", str(tmp_path / "final.npz"))
    assert_one_line_error(status, err, 1, "holds a digits model; sample needs a text model")


# ----------------------------------------------------------------------------- commands


def test_demo_reaches_the_promised_accuracy(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    status, out, _ = run_cli(capsys, "demo", "--out", str(out_dir), "--no-progress")
    assert status == 0
    assert re.search(r"^device: (CPU|GPU)", out, re.MULTILINE)
    accuracy = float(re.search(r"^test accuracy: (0\.\d{3}|1\.000)$", out, re.MULTILINE)[1])
    assert accuracy >= 0.95
    assert (out_dir / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot: {out_dir / 'training.png'}" in out
    assert f"checkpoint: {out_dir / 'final.npz'}" in out
    assert LSTM.load(out_dir / "final.npz").hidden_size == 64


def test_train_then_sample(capsys, tmp_path, text_file):
    run_dir = tmp_path / "run"
    status, out, _ = run_cli(
        capsys,
        "train",
        *("--task", "text", "--text", str(text_file), "--epochs", "2", "--hidden", "8"),
        *("--seq-length", "10", "--checkpoint-dir", str(run_dir), "--no-progress"),
    )
    assert status == 0
    assert "epoch 2/2" in out and f"plot: {run_dir / 'training.png'}" in out
    sample = ["sample", "--checkpoint", str(run_dir / "final.npz"), "--length", "25"]
    status, first, _ = run_cli(capsys, *sample, "--seed", "3", "--temperature", "0.5")
    status_again, again, _ = run_cli(capsys, *sample, "--seed", "3", "--temperature", "0.5")
    assert status == status_again == 0
    assert first == again and len(first) == 27  # one start character, 25 more, a newline
    status, primed, _ = run_cli(capsys, *sample, "--prime", "the c")
    assert status == 0 and primed.startswith("the c")
    # A kill between the two checkpoint writes leaves the training state without NAME.npz.
    (run_dir / "final.npz").unlink()
    status, from_state, _ = run_cli(capsys, *sample, "--seed", "3", "--temperature", "0.5")
    assert status == 0 and from_state == first


def test_train_flags_reach_the_lstm_and_its_checkpoint(capsys, tmp_path, text_file):
    run_dir = tmp_path / "run"
    status, out, _ = run_cli(
        capsys,
        "train",
        *("--text", str(text_file), "--epochs", "1", "--hidden", "6", "--layers", "2"),
        *("--layer-norm", "--zoneout", "0.3", "--zoneout-hidden", "0.05"),
        *("--recurrent-dropout", "0.2", "--dropout", "0.1", "--seq-length", "8"),
        *("--checkpoint-dir", str(run_dir), "--no-progress", "--no-plot"),
    )
    assert status == 0
    expected = dict(
        layer_norm=True, zoneout_cell=0.3, zoneout_hidden=0.05, recurrent_dropout=0.2, dropout=0.1
    )
    loaded = LSTM.load(run_dir / "final.npz")
    assert {name: getattr(loaded, name) for name in expected} == expected
    assert "layer_norm=True" in out and "zoneout_cell=0.3" in out  # the model line


def test_info_lists_versions_and_backends(capsys):
    status, out, _ = run_cli(capsys, "info")
    assert status == 0
    for label in ("xplstm:", "CPU:", "NumPy:", "BLAS:", "CuPy:", "CUDA kernel sources:"):
        assert label in out
    assert "CPU kernels: " in out  # which ones: tests/test_cpu_kernels.py


def test_info_names_the_gpu_loop_and_fused_switch(capsys, monkeypatch):
    monkeypatch.setenv("XPLSTM_GPU_LOOP", "graph")
    monkeypatch.setenv("XPLSTM_FUSED", "0")
    _, out, _ = run_cli(capsys, "info")
    assert "unfused CuPy ufuncs on CuPy (XPLSTM_GPU_LOOP: graph)" in out


def test_bench_is_dispatched_with_its_arguments(capsys, monkeypatch):
    received = []
    fake = types.ModuleType("xplstm.bench")
    fake.main = lambda argv=None: received.append(argv) or 0
    monkeypatch.setitem(sys.modules, "xplstm.bench", fake)
    status, _, _ = run_cli(capsys, "bench", "--quick", "--help")
    assert status == 0
    assert received == [["--quick", "--help"]]


# ----------------------------------------------------------------------------- kill and resume


def train_command(text_file, directory, *extra):
    return [
        sys.executable,
        "-m",
        "xplstm",
        "train",
        *("--task", "text", "--text", str(text_file), "--epochs", "4", "--hidden", "16"),
        *("--seq-length", "8", "--batch-size", "4", "--seed", "5", "--device", "cpu"),
        *("--no-progress", "--no-plot", "--checkpoint-dir", str(directory), *extra),
    ]


def modification_time(path):
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def wait_for_checkpoints(path, count, process, deadline=60.0):
    """Return once ``path`` has been (re)written ``count`` times or ``process`` has ended."""
    seen, last, start = 0, modification_time(path), time.monotonic()
    while seen < count and process.poll() is None and time.monotonic() - start < deadline:
        current = modification_time(path)
        if current != last:
            seen, last = seen + 1, current
        time.sleep(0.001)


def test_sigkill_at_any_moment_then_resume_is_bitwise_identical(tmp_path):
    """SIGKILL a training run several times (before, between and during checkpoint writes),
    resume it each time, and compare with a run that was never interrupted."""
    text_file = write_text(tmp_path / "text.txt", words=400)  # 4 epochs of 52 steps
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    subprocess.run(
        train_command(text_file, whole), env=environment, check=True, capture_output=True
    )
    state = parts / "last.training.npz"
    kill_points = [
        lambda process: time.sleep(0.05),  # most likely still importing
        lambda process: wait_for_checkpoints(state, 1, process),
        lambda process: wait_for_checkpoints(state, 7, process),
        lambda process: wait_for_checkpoints(state, 40, process),
        lambda process: time.sleep(0.4),
    ]
    killed_after_a_checkpoint = 0
    for wait in kill_points:
        process = subprocess.Popen(
            # checkpoints every step: more moments to be killed in, and it must not matter
            train_command(text_file, parts, "--resume", "--checkpoint-every", "1"),
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait(process)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed_after_a_checkpoint += state.exists()
        assert process.wait(timeout=60) in (0, -signal.SIGKILL)
    completed = subprocess.run(
        train_command(text_file, parts, "--resume"),
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert killed_after_a_checkpoint >= 2, "training finished before the kills: make it longer"
    assert "resuming from" in completed.stdout
    reference = load_npz(whole / "final.training.npz")
    resumed = load_npz(parts / "final.training.npz")
    assert reference.keys() == resumed.keys()
    for name in reference:
        assert reference[name].tobytes() == resumed[name].tobytes(), name
    model_reference, model_resumed = LSTM.load(whole / "final.npz"), LSTM.load(parts / "final.npz")
    for name, value in model_reference.state_dict().items():
        assert value.tobytes() == model_resumed.state_dict()[name].tobytes(), name
    assert not list(parts.glob(".*.tmp")), "stale temporary files were not cleaned up"
