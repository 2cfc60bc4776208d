"""Issue 11, items 2, 3 and 8: crafted and damaged checkpoint files cost little and say so.

Every file here is refused with a ``ValueError`` (or an ``OSError`` for what the OS refuses)
that names it, before anything the size of a declared array is allocated or inflated.
"""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xplstm import LSTM
from xplstm.cli import main
from xplstm.serialization import CONFIG_KEY, write_checkpoint

# Loading a refused file may allocate about the file's own size; these files are a few KiB.
MEMORY_BOUND = 16 << 20


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _zip(members, compress=False):
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _npy(array=None, *, descr=None, shape=None, data=None):
    """``.npy`` bytes: ``array``'s, or a header declaring ``descr``/``shape`` over ``data``."""
    buffer = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
        return buffer.getvalue()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


def _config_member(**changes):
    config = {"format": "xplstm.LSTM", "version": 1, "input_size": 3, "hidden_size": 4}
    config.update({"num_layers": 1, "bias": True, "batch_first": False})
    config.update({"bidirectional": False, "dtype": "float32", **changes})
    return _npy(np.array(json.dumps(config)))


@pytest.fixture
def valid(tmp_path):
    """The members of a valid 1-layer checkpoint of LSTM(3, 4)."""
    path = tmp_path / "valid.npz"
    LSTM(3, 4, seed=0).save(path)
    return _members(path)


def _refused(path, load=LSTM.load):
    """The ValueError of loading ``path``, checking the cost in memory."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as caught:
            load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(caught.value)
    assert peak < MEMORY_BOUND, f"{peak} bytes traced"
    return str(caught.value)


@pytest.mark.parametrize("num_layers", [100_000, 10**9])
def test_a_huge_num_layers_is_refused_from_the_member_count(tmp_path, valid, num_layers):
    path = tmp_path / "crafted.npz"
    path.write_bytes(_zip({**valid, f"{CONFIG_KEY}.npy": _config_member(num_layers=num_layers)}))
    assert "parameters" in _refused(path)


def test_a_huge_hidden_size_is_refused_from_the_declared_shapes(tmp_path, valid):
    path = tmp_path / "crafted.npz"
    path.write_bytes(_zip({**valid, f"{CONFIG_KEY}.npy": _config_member(hidden_size=10**12)}))
    assert "shape" in _refused(path)


def test_a_deflate_bomb_is_refused_before_it_is_inflated(tmp_path, valid):
    bomb = _npy(np.zeros(4 << 20, dtype=np.float32))  # 16 MiB of zeros, ~16 KiB deflated
    path = tmp_path / "bomb.npz"
    path.write_bytes(_zip({**valid, "weight_ih_l0.npy": bomb}, compress=True))
    assert path.stat().st_size < 100_000
    assert "weight_ih_l0" in _refused(path)


def test_a_member_declaring_more_than_it_holds_is_refused_unread(tmp_path, valid):
    huge = _npy(descr="<f4", shape=(10**12,), data=b"\0" * 64)
    path = tmp_path / "crafted.npz"
    path.write_bytes(_zip({**valid, "weight_ih_l0.npy": huge}))
    assert "declares shape (1000000000000,)" in _refused(path)


def test_deeply_nested_configuration_json_is_a_value_error(tmp_path, valid):
    nested = _npy(np.array("[" * 5000 + "]" * 5000))  # within the size limit, too deep
    path = tmp_path / "nested.npz"
    path.write_bytes(_zip({**valid, f"{CONFIG_KEY}.npy": nested}))
    assert "nested too deeply" in _refused(path)


def test_junk_is_a_value_error_without_numpys_pickle_hint(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"junk")
    assert "allow_pickle" not in _refused(path)


@pytest.mark.parametrize("command", ["sample", "resume"])
def test_the_commands_refuse_crafted_training_states_in_one_line(tmp_path, capsys, command):
    folder = tmp_path / "run"
    folder.mkdir()
    write_checkpoint(folder / "last.npz", LSTM(3, 4, seed=0), {"trainer.epoch": np.array(1)})
    state = folder / "last.training.npz"
    members = _members(state)
    config = json.loads(str(np.load(io.BytesIO(members["lstm.config.npy"]))))
    members["lstm.config.npy"] = _npy(np.array(json.dumps({**config, "num_layers": 10**9})))
    state.write_bytes(_zip(members))
    if command == "sample":
        argv = ["sample", "--checkpoint", str(folder / "last.npz")]
    else:
        argv = ["train", "--resume", "--checkpoint-dir", str(folder), "--no-progress"]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "describes 4000000000 parameters" in error
    assert "out of memory" not in error


# --------------------------------------------------------------------------- fuzzing


def _valid_members():
    buffer = io.BytesIO()
    model = LSTM(3, 4, num_layers=2, bidirectional=True, seed=0)
    arrays = {CONFIG_KEY: np.array(json.dumps({"format": "xplstm.LSTM", "version": 1,
                                               **model._config()}))}  # fmt: skip
    arrays.update(model.state_dict())
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            archive.writestr(f"{name}.npy", _npy(array))
    buffer.seek(0)
    return _members(buffer)


VALID = _valid_members()
NAMES = sorted(VALID)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
SHAPES = st.lists(st.sampled_from([0, 1, 3, 4, 16, 2**31, 10**12, 2**62]), max_size=3).map(tuple)
DESCRS = st.sampled_from(["<f4", "<f8", ">f4", "<i8", "|b1", "<U4", "|O", "<c8", "|V8", "<f2"])


@st.composite
def member_edits(draw):
    members = dict(VALID)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["header", "config", "swap", "drop", "rename", "data"]))
        name = draw(st.sampled_from(NAMES))
        if kind == "header":
            data = draw(st.binary(max_size=64))
            members[name] = _npy(descr=draw(DESCRS), shape=draw(SHAPES), data=data)
        elif kind == "config":
            config = json.loads(str(np.load(io.BytesIO(VALID[f"{CONFIG_KEY}.npy"]))))
            config[draw(st.sampled_from(sorted(config)))] = draw(JSON_VALUES)
            members[f"{CONFIG_KEY}.npy"] = _npy(np.array(json.dumps(config)))
        elif kind == "swap":
            other = draw(st.sampled_from(NAMES))
            members[name], members[other] = members.get(other, b""), members.get(name, b"")
        elif kind == "drop":
            members.pop(name, None)
        elif kind == "rename":
            members[draw(st.sampled_from(["x.npy", "x", "weight_hr_l0.npy"]))] = members.pop(
                name, b""
            )
        else:
            members[name] = members.get(name, b"")[: draw(st.integers(0, 200))]
    return _zip(members, compress=draw(st.booleans()))


@st.composite
def byte_edits(draw):
    data = bytearray(_zip(VALID, compress=draw(st.booleans())))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    for _ in range(draw(st.integers(0, 6))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(
    max_examples=300,
    deadline=timedelta(seconds=10),  # generous: a refused file takes milliseconds
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=member_edits() | byte_edits())
def test_mutated_checkpoints_load_or_raise_value_or_os_errors_cheaply(tmp_path, data):
    path = tmp_path / "mutated.npz"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        LSTM.load(path)
    except (ValueError, OSError) as error:
        assert str(path) in str(error)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{peak} bytes traced"
