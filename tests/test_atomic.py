"""xplstm.atomic: every file is written through a temporary file and a rename."""

from __future__ import annotations

import json
import os
import stat

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


def test_a_loop_of_symlinks_is_refused_and_the_link_kept(tmp_path):
    loop = tmp_path / "loop.npz"
    loop.symlink_to(loop.name)
    with pytest.raises(OSError, match="symbolic links") as caught:
        save_npz_atomic(loop, {"a": np.arange(3)})
    assert caught.value.filename == str(loop)
    assert loop.is_symlink()


def test_layer_saved_through_a_relative_symlink_chain_lands_in_the_target(tmp_path):
    import xplstm

    (tmp_path / "real").mkdir()
    (tmp_path / "middle.npz").symlink_to("real/model.npz")  # dangling until the first save
    (tmp_path / "link.npz").symlink_to("middle.npz")
    model = xplstm.LSTM(2, 3, seed=0)
    model.save(tmp_path / "link.npz")
    assert (tmp_path / "link.npz").is_symlink() and (tmp_path / "middle.npz").is_symlink()
    loaded = xplstm.LSTM.load(tmp_path / "real" / "model.npz")
    np.testing.assert_array_equal(loaded.weight_ih_l0, model.weight_ih_l0)


@pytest.mark.parametrize("case", ["missing folder", "read-only folder", "a folder", "disk full"])
def test_write_errors_name_the_target_not_the_temporary(tmp_path, monkeypatch, case):
    target = tmp_path / "out.npz"
    write = lambda handle: handle.write(b"data")  # noqa: E731
    if case == "missing folder":
        target = tmp_path / "absent" / "out.npz"
    elif case == "read-only folder":
        # What mkstemp raises there (root ignores folder modes, so raise it as the OS would).
        def refuse(*, dir, **_):
            raise PermissionError(13, "Permission denied", os.path.join(dir, ".out.npz.x.tmp"))

        monkeypatch.setattr("tempfile.mkstemp", refuse)
    elif case == "a folder":
        target.mkdir()
    else:

        def write(handle):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError) as caught:
        write_atomic(target, write)
    assert caught.value.filename == str(target)
    assert ".tmp" not in str(caught.value)
    assert caught.value.errno is not None


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_rewriting_a_file_keeps_its_permission_bits(tmp_path):
    """As a plain open() would: a private checkpoint stays private when it is saved again."""
    target = tmp_path / "private.json"
    target.write_text("{}")
    target.chmod(0o600)
    write_json_atomic(target, {"saved": True})
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert json.loads(target.read_text()) == {"saved": True}
