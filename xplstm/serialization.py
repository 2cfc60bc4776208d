"""Checkpoint formats: the layer file of :meth:`xplstm.LSTM.save` and the training state.

Every file is an ``.npz`` archive without pickles, written atomically
(:func:`xplstm.npz_io.save_npz_atomic`).

**Layer file** (``NAME.npz``): each parameter under its ``state_dict`` name, and the
configuration as JSON in a 0-d unicode array under :data:`CONFIG_KEY`, naming the format
(:data:`LAYER_FORMAT`) and its version (:data:`LAYER_VERSION`).

**Training state** (``NAME.training.npz``, :func:`training_state_path`), written before the
layer file and self-contained: the LSTM's configuration (:data:`LSTM_CONFIG_KEY`, JSON) and
parameters (``lstm.<name>``), and the rest of the run under :data:`TRAINING_PREFIXES`: the
head (``head.``), the optimizer (``optimizer.<slot>.<parameter>``, :func:`optimizer_state`),
the trainer's counters (``trainer.``, the epochs done under :data:`EPOCH_KEY`) and the text
task (``text.``). Resuming and sampling read only this file, so a run killed at any moment
resumes from one complete checkpoint; after a kill between the two writes ``NAME.npz`` may lag
one checkpoint behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import asnumpy
from .npz_io import ArrayHeader, NpzReader, save_npz_atomic

if TYPE_CHECKING:
    from .layer import LSTM

__all__ = [
    "CONFIG_KEY",
    "EPOCH_KEY",
    "FINAL_CHECKPOINT",
    "GRU_LAYER_FORMAT",
    "HEAD_PREFIX",
    "LAST_CHECKPOINT",
    "LAYER_ARGUMENTS",
    "LAYER_FORMATS",
    "LSTM_PREFIX",
    "OPTIMIZER_PREFIX",
    "RNN_LAYER_FORMAT",
    "TEXT_PREFIX",
    "TRAINER_PREFIX",
    "TRAINING_PREFIXES",
    "Checkpoint",
    "layer_config",
    "load_layer",
    "load_optimizer_state",
    "optimizer_state",
    "read_checkpoint",
    "save_layer",
    "strip_prefix",
    "training_state_path",
    "write_checkpoint",
]

LAYER_FORMAT = "xplstm.LSTM"
GRU_LAYER_FORMAT = "xplstm.GRU"
RNN_LAYER_FORMAT = "xplstm.RNN"
# Every layer file format: the cell kind a file holds, so one layer refuses another's file.
LAYER_FORMATS = (LAYER_FORMAT, GRU_LAYER_FORMAT, RNN_LAYER_FORMAT)
LAYER_VERSION = 1
CONFIG_KEY = "xplstm_config"
# The constructor arguments a checkpoint stores (with "dtype", by its name).
LAYER_ARGUMENTS = (
    "input_size",
    "hidden_size",
    "num_layers",
    "bias",
    "batch_first",
    "bidirectional",
)
# Arguments stored only where they differ from these defaults, so files of layers without them
# read the same in older versions, and older files (without them) read here.
OPTIONAL_LAYER_ARGUMENTS: dict[str, Any] = {
    "dropout": 0.0,
    "proj_size": 0,
    "peephole": False,
    "nonlinearity": "tanh",
    "zoneout_cell": 0.0,
    "zoneout_hidden": 0.0,
    "recurrent_dropout": 0.0,
    "layer_norm": False,
}

LSTM_PREFIX = "lstm."
LSTM_CONFIG_KEY = LSTM_PREFIX + "config"
HEAD_PREFIX = "head."
OPTIMIZER_PREFIX = "optimizer."
TRAINER_PREFIX = "trainer."
TEXT_PREFIX = "text."
TRAINING_PREFIXES = (HEAD_PREFIX, OPTIMIZER_PREFIX, TRAINER_PREFIX, TEXT_PREFIX)
EPOCH_KEY = TRAINER_PREFIX + "epoch"
TRAINING_SUFFIX = ".training.npz"
# A stored configuration is a short JSON text; more is not a checkpoint of ours.
MAX_CONFIG_BYTES = 1 << 16
# ``LSTM._shapes_in_file``: (config, parameter count in the file) -> {name: shape}.
ShapesInFile = Callable[[Mapping[str, Any], int], Mapping[str, tuple[int, ...]]]
LAST_CHECKPOINT = "last.npz"
FINAL_CHECKPOINT = "final.npz"


# --------------------------------------------------------------------------- the layer file


def layer_config(layer: Any) -> dict[str, Any]:
    """The constructor arguments of ``layer`` that a checkpoint stores (``dtype`` by name)."""
    config = {name: getattr(layer, name) for name in LAYER_ARGUMENTS}
    for name, default in OPTIONAL_LAYER_ARGUMENTS.items():
        if getattr(layer, name, default) != default:
            config[name] = getattr(layer, name)
    config["dtype"] = np.dtype(layer.dtype).name
    return config


def save_layer(
    path: str | os.PathLike,
    config: Mapping[str, Any],
    parameters: Mapping[str, Any],
    layer_format: str = LAYER_FORMAT,
) -> None:
    """Write a layer file: ``config`` (see :func:`layer_config`) and ``parameters`` by name.

    ``layer_format`` (one of :data:`LAYER_FORMATS`) names the layer class, i.e. the cell kind.
    """
    stored = {"format": layer_format, "version": LAYER_VERSION, **config}
    arrays: dict[str, Any] = {CONFIG_KEY: np.array(json.dumps(stored))}
    for name, array in parameters.items():
        arrays[name] = asnumpy(array)
    save_npz_atomic(path, arrays)


def load_layer(
    path: str | os.PathLike,
    shapes_in_file: ShapesInFile | None = None,
    layer_format: str = LAYER_FORMAT,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The configuration and the parameter arrays of a layer file.

    Parameters
    ----------
    path : str or path-like
    shapes_in_file : callable, optional
        ``LSTM._shapes_in_file``: with it, the configuration is checked against the members'
        declared shapes and dtypes before any parameter is read.
    layer_format : str, default LAYER_FORMAT
        The layer class the file must hold (one of :data:`LAYER_FORMATS`); a file of another
        layer class is a ``ValueError`` naming both.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is damaged or not an ``xplstm.LSTM`` checkpoint of this version, or its
        members disagree with its configuration (the message names ``path``).
    """
    path = os.fspath(path)
    with NpzReader(path) as reader:
        stored = _read_json(reader, CONFIG_KEY, path, layer_format)
        config = _read_config(path, stored, layer_format)
        names = [name for name in reader.headers if name != CONFIG_KEY]
        if shapes_in_file is not None:
            check_parameter_members(path, config, reader.headers, "", shapes_in_file)
        return config, {name: reader.read(name) for name in names}


MAX_CONFIG_NESTING = 32
"""A configuration is a flat object; deeper JSON is refused before it is parsed (how deep
json.loads can go before a RecursionError differs between Python versions)."""


def _nesting_depth(text: str) -> int:
    """The deepest bracket nesting in JSON ``text``, ignoring brackets inside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in "]}":
            depth -= 1
    return deepest


def _read_json(reader: NpzReader, key: str, path: str, kind: str) -> Any:
    """The JSON value stored as 0-d text under ``key``; ``ValueError`` naming ``path``."""
    foreign = f"{path} is not an {kind} checkpoint"
    header = reader.headers.get(key)
    if header is None or header.dtype.kind != "U" or header.shape != ():
        raise ValueError(f"{foreign} (no {key!r} entry of JSON text)")
    if header.nbytes > MAX_CONFIG_BYTES:
        raise ValueError(f"{foreign} (its {key!r} is {header.nbytes} bytes, not a configuration)")
    text = str(reader.read(key)[()])
    if _nesting_depth(text) > MAX_CONFIG_NESTING:
        raise ValueError(f"{foreign} (its {key!r} is nested too deeply for a configuration)")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else error
        raise ValueError(f"{foreign} (its {key!r} is not JSON: {reason})") from None


def check_parameter_members(
    path: str,
    config: Mapping[str, Any],
    headers: Mapping[str, ArrayHeader],
    prefix: str,
    shapes_in_file: ShapesInFile,
) -> None:
    """Refuse, before anything is read, parameter members that ``config`` does not describe.

    The parameters are the members under ``prefix`` (but the configuration); each must have
    the shape ``config`` gives it and a real-number dtype.
    """
    members = {
        name[len(prefix) :]: header
        for name, header in headers.items()
        if name.startswith(prefix) and name not in (CONFIG_KEY, LSTM_CONFIG_KEY)
    }
    try:
        shapes = shapes_in_file(config, len(members))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} holds an invalid LSTM configuration: {error}") from error
    unexpected = [prefix + name for name in members if name not in shapes]
    problem = f"unexpected member(s) {unexpected}" if unexpected else None
    for name, shape in shapes.items():
        header = members.get(name)
        if header is None:
            problem = f"{prefix}{name} is missing (expected shape {shape})"
        elif header.shape != shape:
            problem = f"{prefix}{name} has shape {header.shape} but {shape} was expected"
        elif header.dtype.kind not in "iuf":
            problem = f"{prefix}{name} has dtype {header.dtype}; expected real numbers"
        if problem:
            raise ValueError(
                f"{path} does not hold the parameters its configuration describes: {problem}"
            )


def _read_config(path: str, config: Any, layer_format: str = LAYER_FORMAT) -> dict[str, Any]:
    """The constructor arguments stored in a layer file, or ``ValueError`` naming ``path``."""
    foreign = f"{path} is not an {layer_format} checkpoint"
    if isinstance(config, dict) and config.get("format") != layer_format:
        other = config.get("format")
        if isinstance(other, str) and other in LAYER_FORMATS:
            raise ValueError(
                f"{foreign}: it holds an {other} layer (a different cell); "
                f"load it with {other}.load"
            )
    if not isinstance(config, dict) or config.get("format") != layer_format:
        raise ValueError(f"{foreign} (its {CONFIG_KEY!r} does not name the format)")
    if config.get("version") != LAYER_VERSION:
        raise ValueError(
            f"{path} is an {layer_format} checkpoint of version {config.get('version')!r}; "
            f"this xplstm reads version {LAYER_VERSION}"
        )
    missing = [key for key in (*LAYER_ARGUMENTS, "dtype") if key not in config]
    if missing:
        raise ValueError(f"{path} is an {layer_format} checkpoint without {missing}")
    optional = [key for key in OPTIONAL_LAYER_ARGUMENTS if key in config]
    return {key: config[key] for key in (*LAYER_ARGUMENTS, *optional, "dtype")}


# --------------------------------------------------------------------------- training-state codec


def strip_prefix(prefix: str, arrays: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``arrays`` under ``prefix``, with the prefix taken off their keys."""
    return {key[len(prefix) :]: value for key, value in arrays.items() if key.startswith(prefix)}


def optimizer_state(optimizer: Any) -> dict[str, np.ndarray]:
    """``optimizer.state_dict()`` with keys under :data:`OPTIMIZER_PREFIX`."""
    return {OPTIMIZER_PREFIX + key: value for key, value in optimizer.state_dict().items()}


def load_optimizer_state(optimizer: Any, arrays: Mapping[str, Any]) -> None:
    """Restore what :func:`optimizer_state` stored among ``arrays``."""
    optimizer.load_state_dict(strip_prefix(OPTIMIZER_PREFIX, arrays))


def training_state_path(path: str | os.PathLike) -> Path:
    """``DIR/NAME.npz`` -> ``DIR/NAME.training.npz`` (a training-state path maps to itself)."""
    path = Path(path)
    if path.name.endswith(TRAINING_SUFFIX):
        return path
    stem = path.name[: -len(".npz")] if path.name.endswith(".npz") else path.name
    return path.with_name(stem + TRAINING_SUFFIX)


def write_checkpoint(
    path: str | os.PathLike, lstm: LSTM, training_state: Mapping[str, Any]
) -> None:
    """Write ``NAME.training.npz`` and then ``NAME.npz`` (both atomically).

    Parameters
    ----------
    path : str or path-like
        ``NAME.npz``, the layer file.
    lstm : LSTM
    training_state : mapping of str to ndarray
        Every key starts with one of :data:`TRAINING_PREFIXES`.

    Raises
    ------
    KeyError
        If a key of ``training_state`` lacks those prefixes.
    """
    config = json.dumps(layer_config(lstm), sort_keys=True)
    arrays: dict[str, Any] = {LSTM_CONFIG_KEY: np.array(config)}
    arrays.update({LSTM_PREFIX + name: asnumpy(v) for name, v in lstm.named_parameters()})
    for name, value in training_state.items():
        if not name.startswith(TRAINING_PREFIXES):
            raise KeyError(f"training state key {name!r} lacks a prefix of {TRAINING_PREFIXES}")
        arrays[name] = value
    save_npz_atomic(training_state_path(path), arrays)
    lstm.save(path)


class Checkpoint:
    """A training state read from ``NAME.training.npz``, on the host until :meth:`lstm` is called.

    Parameters
    ----------
    path : str or path-like
        ``NAME.npz`` or ``NAME.training.npz``; the training state is read from the latter.

    Attributes
    ----------
    path : Path
        The training state file.
    arrays : dict of str to numpy.ndarray
        Everything in it.

    Raises
    ------
    FileNotFoundError
        If the training state file does not exist.
    ValueError
        If it is damaged, not a training checkpoint, or its LSTM members disagree with the
        LSTM's configuration (checked before anything is read, as for :meth:`LSTM.load`).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = training_state_path(path)
        if not self.path.exists():
            raise FileNotFoundError(
                f"{self.path} does not exist (the training state saved beside {Path(path).name})"
            )
        from .layer import LSTM

        path_text = str(self.path)
        with NpzReader(self.path) as reader:
            if LSTM_CONFIG_KEY not in reader.headers:
                raise ValueError(f"{self.path} is not an xplstm training checkpoint")
            self.lstm_config = _read_json(reader, LSTM_CONFIG_KEY, path_text, "xplstm training")
            check_parameter_members(
                path_text, self.lstm_config, reader.headers, LSTM_PREFIX, LSTM._shapes_in_file
            )
            self.arrays = reader.read_all()

    @property
    def training_state(self) -> dict[str, np.ndarray]:
        """The arrays under :data:`TRAINING_PREFIXES`."""
        return {k: v for k, v in self.arrays.items() if k.startswith(TRAINING_PREFIXES)}

    def lstm(self, device: str = "cpu") -> LSTM:
        """The saved LSTM, built on ``device`` (``"cpu"`` or ``"cuda"``)."""
        from .layer import LSTM

        lstm = LSTM._uninitialized(self.lstm_config, device)  # checked on opening
        try:
            parameters = strip_prefix(LSTM_PREFIX, self.arrays)
            del parameters[LSTM_CONFIG_KEY[len(LSTM_PREFIX) :]]
            lstm.load_state_dict(parameters)
        except (TypeError, ValueError, KeyError) as error:
            message = error.args[0] if error.args else error
            raise ValueError(f"{self.path} holds an unusable LSTM: {message}") from error
        return lstm


def read_checkpoint(path: str | os.PathLike, device: str = "cpu") -> tuple[LSTM, dict]:
    """The LSTM (on ``device``) and the training state of the checkpoint at ``path``.

    See :class:`Checkpoint` for ``path`` and the errors.
    """
    checkpoint = Checkpoint(path)
    return checkpoint.lstm(device), checkpoint.training_state
