"""xplstm.atomic: every file is written through a temporary file and a rename."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from xplstm.atomic import write_atomic, write_bytes_atomic, write_json_atomic, write_text_atomic
from xplstm.npz_io import load_npz, save_npz_atomic


def _linked(tmp_path):
    """``link -> folder/target.ext`` with old content; returns (link, target)."""
    folder = tmp_path / "real"
    folder.mkdir()
    target = folder / "target.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    return link, target


def test_writes_through_a_symlink_replace_its_target_and_keep_the_link(tmp_path):
    link, target = _linked(tmp_path)
    written = write_bytes_atomic(link, b"new")
    assert written == target.resolve()
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["target.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.bin", "real"]


def test_npz_saved_through_a_symlink_lands_in_the_target(tmp_path):
    link, target = _linked(tmp_path)
    save_npz_atomic(link, {"a": np.arange(3)})
    assert link.is_symlink()
    np.testing.assert_array_equal(load_npz(target)["a"], np.arange(3))


def test_text_and_json_round_trip_with_the_plain_file_mode(tmp_path):
    path = write_text_atomic(tmp_path / "a.txt", "héllo")
    assert path.read_bytes() == "héllo".encode()
    report = {"b": [1, 2.5], "a": None}
    json_path = write_json_atomic(tmp_path / "r.json", report, indent=2)
    assert json.loads(json_path.read_text()) == report
    assert json_path.read_text().endswith("}\n")
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert os.stat(path).st_mode & 0o777 == os.stat(plain).st_mode & 0o777


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"old")

    def half_then_fail(handle):
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_a_missing_folder_is_an_error_not_a_new_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_bytes_atomic(tmp_path / "absent" / "x.bin", b"data")
    assert list(tmp_path.iterdir()) == []


def test_plot_is_written_atomically_through_a_symlink(tmp_path):
    pytest.importorskip("matplotlib")
    from xplstm.training.plot import plot_history

    link, target = _linked(tmp_path)
    history = {"train_loss": [1.0, 0.5], "train_accuracy": [0.2, 0.6], "test_accuracy": [0.1, 0.5]}
    assert plot_history(history, link, "title") == link
    assert link.is_symlink() and target.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in target.parent.iterdir()) == ["target.bin"]
