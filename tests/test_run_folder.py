"""Issue 11, item 5: one training run per checkpoint folder, and no silent overwrite of a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from xplstm.cli import main
from xplstm.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"epochs": 1, "hidden_size": 4, "seed": 0}


def quiet(_line):
    pass


def _hold_folder(folder):
    """A second process that holds ``folder``'s run lock until it is killed."""
    script = (
        "import sys, time\n"
        "from xplstm.training.run_folder import RunFolder\n"
        "held = RunFolder(sys.argv[1]).__enter__()\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_is_refused_and_leaves_the_live_runs_files_alone(tmp_path):
    folder = tmp_path / "run"
    train(SETTINGS, checkpoint_dir=folder, progress=False, log=quiet)
    holder = _hold_folder(folder)
    try:
        half_written = folder / ".last.training.npz.live.tmp"  # the live run's next checkpoint
        half_written.write_bytes(b"half")
        for resume in (False, True):
            with pytest.raises(RuntimeError, match="in use by another xplstm training run"):
                train(SETTINGS, checkpoint_dir=folder, resume=resume, progress=False, log=quiet)
        assert half_written.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # kill -9 released the lock: the run resumes at once.
    result = train({}, checkpoint_dir=folder, resume=True, progress=False, log=quiet)
    assert result.final_checkpoint == folder / "final.npz"


def test_the_command_says_in_one_line_that_another_run_holds_the_folder(tmp_path, capsys):
    holder = _hold_folder(tmp_path)
    try:
        status = main(["train", "--epochs", "0", "--checkpoint-dir", str(tmp_path)])
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    error = capsys.readouterr().err
    assert status == 1 and error.count("\n") == 1
    assert "in use by another xplstm training run" in error


def test_a_new_run_into_a_folder_with_a_run_needs_resume_or_overwrite(tmp_path, capsys):
    common = ["train", "--epochs", "1", "--no-progress", "--no-plot"]
    folder = ["--checkpoint-dir", str(tmp_path)]
    assert main([*common, "--hidden", "4", *folder]) == 0
    before = (tmp_path / "final.npz").read_bytes()
    capsys.readouterr()
    assert main([*common, "--hidden", "6", *folder]) == 1
    error = capsys.readouterr().err
    assert "already holds a training run" in error and "--overwrite" in error
    assert (tmp_path / "final.npz").read_bytes() == before
    assert main([*common, "--hidden", "6", "--overwrite", *folder]) == 0
    assert "hidden_size=6" not in before.decode("latin-1")
    assert main([*common, "--resume", "--overwrite", *folder]) == 1


def test_a_checkpoint_dir_that_is_a_file_is_named_as_such(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["train", "--epochs", "0", "--checkpoint-dir", str(afile)]) == 1
    error = capsys.readouterr().err
    assert "is a file, not a folder" in error and str(afile) in error
