"""Data-parallel LSTM inference and training on Dask (NumPy or CuPy chunks).

Sequences are dask arrays ``(T, m, n_x)`` chunked along the batch axis ``m`` only; every chunk
is a whole batch of whole sequences, so each worker runs the ordinary engine on its chunk. The
model's configuration and parameters are a single key of the graph, so they travel to each worker
once per call, never once per chunk.
Gradients come back through a tree reduction and equal the single-process result to rounding.

Needs the ``dask`` extra: ``pip install "xplstm[dask]"``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .backend import asnumpy, is_cupy_array
from .layer import LSTM
from .serialization import (
    EPOCH_KEY,
    FINAL_CHECKPOINT,
    LAST_CHECKPOINT,
    load_optimizer_state,
    optimizer_state,
    read_checkpoint,
    training_state_path,
    write_checkpoint,
)
from .training.run_folder import RunFolder, claim_for_a_new_run
from .validation import check_lengths

try:
    import dask
    import dask.array as da
    from dask import delayed
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError('xplstm.distributed needs Dask: pip install "xplstm[dask]"') from error

__all__ = ["fit", "forward", "grads", "value_and_grads"]

_CONFIG_FIELDS = (
    "input_size", "hidden_size", "num_layers", "bias", "bidirectional", "proj_size", "peephole",
    "zoneout_cell", "zoneout_hidden",
)  # fmt: skip
# What draws masks in training mode; one mask stream cannot be split over chunks reproducibly.
_STOCHASTIC = ("dropout", "zoneout_cell", "zoneout_hidden", "recurrent_dropout")


# ------------------------------------------------------------------------------ model transport


def _payload(model: LSTM) -> dict[str, Any]:
    """What a worker needs to rebuild ``model``: its configuration and NumPy parameters."""
    config = {name: getattr(model, name) for name in _CONFIG_FIELDS}
    config["dtype"] = model.dtype.name
    # Copies: the lazy graph must hold the parameters as they are now, not the live arrays.
    state = {name: np.array(asnumpy(value), copy=True) for name, value in model.named_parameters()}
    return {"config": config, "state": state}


def _rebuild(payload: Mapping[str, Any], like: Any) -> LSTM:
    """The model of ``payload``, time-major, on the device of the chunk ``like``."""
    device = "cuda" if is_cupy_array(like) else "cpu"
    model = LSTM(**payload["config"], device=device, seed=0).eval()  # zoneout: expectations
    model.load_state_dict(payload["state"])
    return model


def _ship(payload: dict[str, Any]) -> Any:
    """``payload`` as one key of the graph, shared by every chunk's task.

    Dask moves a key to each worker that needs it once, so the parameters cross the network
    once per worker per call, not once per chunk. Unlike a scattered future, a graph key can be
    recomputed, so a worker that dies holding it costs a retry, not the whole computation.
    """
    return delayed(payload, pure=True, traverse=False)


# ------------------------------------------------------------------------------ input checking


def _batch_chunked(name: str, array: Any, batch_axis: int) -> Any:
    """``array`` with one chunk along every axis but ``batch_axis`` (rechunked, with a warning)."""
    if not isinstance(array, da.Array):
        raise TypeError(f"{name} must be a dask array, got {type(array).__name__}")
    others = [axis for axis in range(array.ndim) if axis != batch_axis]
    if any(len(array.chunks[axis]) > 1 for axis in others):
        warnings.warn(
            f"{name} is chunked along axes {others} as well as the batch axis {batch_axis}; "
            f"rechunking it to whole sequences per chunk ({name}.rechunk({{...: -1}}))",
            stacklevel=3,
        )
        array = array.rechunk({axis: -1 for axis in others})
    return array


def _check_sequences(model: LSTM, x: Any) -> Any:
    if not isinstance(model, LSTM):
        raise TypeError(f"model must be an xplstm.LSTM, got {type(model).__name__}")
    for name in _STOCHASTIC:
        if model.training and getattr(model, name):
            raise ValueError(
                f"model has {name}={getattr(model, name)} in training mode; xplstm.distributed "
                "runs the layer in evaluation mode (one mask stream cannot be split over "
                f"chunks reproducibly): call model.eval(), or build it with {name}=0"
            )
    if not isinstance(x, da.Array):
        raise TypeError(f"x must be a dask array (T, m, n_x), got {type(x).__name__}")
    if x.ndim != 3 or x.shape[2] != model.input_size:
        raise ValueError(
            f"x must have shape (T, m, input_size={model.input_size}), got {tuple(x.shape)}"
        )
    if is_cupy_array(x._meta) and model.device == "cpu":
        raise TypeError("x has CuPy chunks but the model is on the CPU: use model.to('cuda')")
    if not is_cupy_array(x._meta) and model.device != "cpu":
        raise TypeError(
            f"x has NumPy chunks but the model is on {model.device}: pass CuPy chunks "
            "(x.map_blocks(cupy.asarray)) or use model.to('cpu')"
        )
    return _batch_chunked("x", x, batch_axis=1)


def _aligned(name: str, array: Any, x: Any, batch_axis: int) -> Any:
    """``array`` chunked along ``batch_axis`` exactly like ``x`` along its batch axis."""
    array = _batch_chunked(name, array, batch_axis)
    if array.shape[batch_axis] != x.shape[1]:
        raise ValueError(
            f"{name} has {array.shape[batch_axis]} sequences along axis {batch_axis} but x "
            f"has {x.shape[1]}"
        )
    return array.rechunk({batch_axis: x.chunks[1]})


def _chunk_lengths(lengths: Any, x: Any) -> list[np.ndarray | None]:
    lengths = check_lengths(lengths, x.shape[1], x.shape[0])  # before any chunk runs
    if lengths is None:
        return [None] * len(x.chunks[1])
    bounds = np.cumsum((0, *x.chunks[1]))
    return [lengths[start:stop] for start, stop in itertools.pairwise(bounds)]


def _blocks(array: Any, batch_axis: int) -> list[Any]:
    """The delayed chunks of ``array``, in batch order."""
    return list(np.moveaxis(array.to_delayed(), batch_axis, 0).reshape(-1))


# ------------------------------------------------------------------------------ worker tasks


def _batch_block(array: Any, batch_axis: int, index: int) -> Any:
    """Chunk ``index`` along ``batch_axis`` of a dask array chunked along that axis only."""
    position: list[Any] = [slice(None)] * array.ndim
    position[batch_axis] = index
    return array.blocks[tuple(position)]


def _forward_chunk(payload: Mapping, x: Any, lengths: np.ndarray | None) -> tuple[Any, Any, Any]:
    model = _rebuild(payload, x)
    y, (h_n, c_n) = model(x, lengths=lengths)
    return y, h_n, c_n


def _grads_chunk(
    payload: Mapping, x: Any, dy: Any, lengths: np.ndarray | None
) -> dict[str, np.ndarray]:
    model = _rebuild(payload, x)
    model(x, lengths=lengths)
    model.backward(dy)
    return {name: asnumpy(value) for name, value in model.grads.items()}


def _loss_chunk(
    payload: Mapping,
    x: Any,
    targets: Any,
    lengths: np.ndarray | None,
    loss: Callable,
    weight: float,
) -> tuple[float, dict[str, np.ndarray]]:
    """``weight * loss`` and its gradients for one chunk (``weight`` = the chunk's batch share)."""
    model = _rebuild(payload, x)
    y, _ = model(x, lengths=lengths)
    value, dy = loss(y, targets)
    model.backward(dy * dy.dtype.type(weight))
    return value * weight, {name: asnumpy(value) for name, value in model.grads.items()}


def _add(left: Any, right: Any) -> Any:
    """Sum two gradient dicts, or two ``(value, dict)`` pairs."""
    if isinstance(left, tuple):
        return left[0] + right[0], _add(left[1], right[1])
    return {name: left[name] + right[name] for name in left}


def _tree_sum(parts: list[Any]) -> Any:
    """Pairwise (tree) reduction of delayed values: depth log2(n), no single hot spot."""
    while len(parts) > 1:
        paired = [delayed(_add)(a, b) for a, b in zip(parts[::2], parts[1::2], strict=False)]
        if len(parts) % 2:
            paired.append(parts[-1])
        parts = paired
    return parts[0]


def _compute(value: Any, client: Any) -> Any:
    if client is not None:
        return client.compute(value).result()
    return dask.compute(value)[0]


# ------------------------------------------------------------------------------ public API


def forward(
    model: LSTM,
    x: Any,
    *,
    lengths: Any = None,
    return_state: bool = False,
) -> Any:
    """Run ``model`` over a batch-chunked dask array, chunk by chunk on the workers.

    Parameters
    ----------
    model : LSTM
        Used time-major whatever its ``batch_first``; CuPy chunks need a GPU model.
    x : dask.array.Array, (T, m, n_x)
        Chunked along ``m`` only (other axes are rechunked, with a warning).
    lengths : array of int, (m,), optional
        As for :meth:`xplstm.LSTM.forward`.
    return_state : bool
        Also return the final states.

    Returns
    -------
    y : dask.array.Array, (T, m, D * H)
        Lazy; chunked like ``x`` along ``m``.
    (h_n, c_n) : pair of dask.array.Array, each (num_layers * D, m, H)
        Only with ``return_state=True``.
    """
    x = _check_sequences(model, x)
    shipped = _ship(_payload(model))
    steps = x.shape[0]
    rows = model.num_layers * model.num_directions
    width = model.output_size * model.num_directions
    meta = x._meta.astype(model.dtype)
    ys, hs, cs = [], [], []
    for block, batch, chunk_lengths in zip(
        _blocks(x, 1), x.chunks[1], _chunk_lengths(lengths, x), strict=True
    ):
        y, h_n, c_n = delayed(_forward_chunk, nout=3)(shipped, block, chunk_lengths)
        ys.append(da.from_delayed(y, (steps, batch, width), dtype=model.dtype, meta=meta))
        h_shape, c_shape = (rows, batch, model.output_size), (rows, batch, model.hidden_size)
        hs.append(da.from_delayed(h_n, h_shape, dtype=model.dtype, meta=meta))
        cs.append(da.from_delayed(c_n, c_shape, dtype=model.dtype, meta=meta))
    y = da.concatenate(ys, axis=1)
    if return_state:
        return y, (da.concatenate(hs, axis=1), da.concatenate(cs, axis=1))
    return y


def grads(
    model: LSTM, x: Any, dy: Any, *, lengths: Any = None, client: Any = None
) -> dict[str, np.ndarray]:
    """Parameter gradients of ``sum(y * dy)`` over all chunks, like :attr:`LSTM.grads`.

    Each chunk runs forward and backward on a worker; the per-chunk gradients are combined by a
    tree reduction. ``model.grads`` is left untouched.

    Parameters
    ----------
    model : LSTM
    x : dask.array.Array, (T, m, n_x)
    dy : dask.array.Array, (T, m, D * H)
        Gradient with respect to the outputs; rechunked to match ``x``.
    lengths : array of int, (m,), optional
    client : distributed.Client, optional
        Compute on this client (default: Dask's current scheduler).

    Returns
    -------
    dict of str to numpy.ndarray
        Same keys and shapes as ``model.grads``.
    """
    x = _check_sequences(model, x)
    expected = (x.shape[0], x.shape[1], model.output_size * model.num_directions)
    if not isinstance(dy, da.Array) or tuple(dy.shape) != expected:
        raise ValueError(
            f"dy must be a dask array of shape {expected} (T, m, D * out) like y, got "
            f"{type(dy).__name__} of shape {tuple(getattr(dy, 'shape', ()))}"
        )
    dy = _aligned("dy", dy, x, batch_axis=1)
    shipped = _ship(_payload(model))
    parts = [
        delayed(_grads_chunk)(shipped, x_block, dy_block, chunk_lengths)
        for x_block, dy_block, chunk_lengths in zip(
            _blocks(x, 1), _blocks(dy, 1), _chunk_lengths(lengths, x), strict=True
        )
    ]
    return _compute(_tree_sum(parts), client)


def value_and_grads(
    model: LSTM,
    x: Any,
    targets: Any,
    loss: Callable[[Any, Any], tuple[float, Any]],
    *,
    batch_axis: int = 1,
    lengths: Any = None,
    client: Any = None,
) -> tuple[float, dict[str, np.ndarray]]:
    """A loss over all chunks and its parameter gradients.

    ``loss(y, targets) -> (value, dy)`` must be a mean over the batch (like the losses in
    :mod:`xplstm.training.losses`); chunk results are weighted by their share of the batch, so
    the result equals the loss of the whole batch in one process.

    Parameters
    ----------
    model : LSTM
    x : dask.array.Array, (T, m, n_x)
    targets : dask.array.Array
        Whatever ``loss`` takes, with the batch along ``batch_axis``.
    loss : callable
    batch_axis : int
        Batch axis of ``targets`` (1 for per-step targets ``(T, m, ...)``, 0 for ``(m, ...)``).
    lengths : array of int, (m,), optional
    client : distributed.Client, optional
        Compute on this client (default: Dask's current scheduler).

    Returns
    -------
    value : float
    grads : dict of str to numpy.ndarray
    """
    x = _check_sequences(model, x)
    targets = _aligned("targets", targets, x, batch_axis)
    shipped = _ship(_payload(model))
    total = x.shape[1]
    parts = [
        delayed(_loss_chunk)(shipped, x_block, t_block, chunk_lengths, loss, batch / total)
        for x_block, t_block, batch, chunk_lengths in zip(
            _blocks(x, 1),
            _blocks(targets, batch_axis),
            x.chunks[1],
            _chunk_lengths(lengths, x),
            strict=True,
        )
    ]
    value, gradients = _compute(_tree_sum(parts), client)
    return float(value), gradients


def fit(
    model: LSTM,
    x: Any,
    y: Any,
    *,
    loss: Callable[[Any, Any], tuple[float, Any]],
    optimizer: Any,
    epochs: int,
    client: Any = None,
    batch_axis: int = 1,
    chunks_per_step: int | None = None,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> list[float]:
    """Synchronous data-parallel training.

    Each step sends the parameters to the workers, computes per-chunk losses and gradients
    there, reduces them, and updates ``model`` in place on the client with ``optimizer``. An
    epoch visits the batch chunks of ``x`` in an order drawn from ``seed`` and the epoch number,
    ``chunks_per_step`` at a time (all of them by default: one full-batch step per epoch).

    Parameters
    ----------
    model : LSTM
    x : dask.array.Array, (T, m, n_x)
    y : dask.array.Array
        Targets for ``loss``, batch along ``batch_axis``.
    loss : callable
        ``loss(outputs, targets) -> (mean value, d value / d outputs)``.
    optimizer : xplstm.training.optim.Optimizer
        Built over ``dict(model.named_parameters())`` (SGD, Adam).
    epochs : int
        Total number of epochs (with ``resume``, counting the ones already done).
    client : distributed.Client, optional
        Compute on this client (default: Dask's current scheduler).
    batch_axis : int
    chunks_per_step : int, optional
        Batch chunks per step (a mini-batch is whole chunks); default all.
    seed : int
        Seeds the order of the chunks in each epoch.
    checkpoint_dir : path, optional
        As ``xplstm train``: ``DIR/last.npz`` after every epoch and ``DIR/final.npz`` at the
        end, written atomically and loadable with :meth:`xplstm.LSTM.load`.
    resume : bool
        Continue from ``DIR/last.npz``: parameters, optimizer state and epoch count.
    overwrite : bool
        Start over in a ``checkpoint_dir`` that already holds a run (its checkpoints are
        deleted first); without it (or ``resume``) such a folder is a ``ValueError``. The
        folder is locked for the whole call, as by ``xplstm train``: a second run using it is
        a ``RuntimeError``.

    Returns
    -------
    list of float
        The loss before each step taken in this call.
    """

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    x = _check_sequences(model, x)
    y = _aligned("y", y, x, batch_axis)
    chunk_count = len(x.chunks[1])
    per_step = chunk_count if chunks_per_step is None else chunks_per_step
    if isinstance(per_step, bool) or not isinstance(per_step, int) or per_step < 1:
        raise ValueError(f"chunks_per_step must be a positive int, got {chunks_per_step!r}")
    directory = None if checkpoint_dir is None else Path(checkpoint_dir)
    if resume and directory is None:
        raise ValueError("resume=True needs a checkpoint_dir")
    folder = contextlib.nullcontext() if directory is None else RunFolder(directory)
    with folder:  # held until the run ends, as by xplstm train
        if directory is not None and not resume:
            claim_for_a_new_run(directory, overwrite)
        return _fit(model, x, y, loss, optimizer, epochs, client, batch_axis, chunk_count,
                    per_step, seed, directory, resume)  # fmt: skip


def _fit(
    model: LSTM,
    x: Any,
    y: Any,
    loss: Any,
    optimizer: Any,
    epochs: int,
    client: Any,
    batch_axis: int,
    chunk_count: int,
    per_step: int,
    seed: int,
    directory: Path | None,
    resume: bool,
) -> list[float]:
    """:func:`fit` once the checkpoint folder is held."""
    done = 0
    last = None if directory is None else directory / LAST_CHECKPOINT
    if resume and last is not None and training_state_path(last).exists():
        saved, state = read_checkpoint(last)
        model.load_state_dict(saved.state_dict())
        load_optimizer_state(optimizer, state)
        done = int(state[EPOCH_KEY])

    def checkpoint(name: str, epoch: int) -> None:
        assert directory is not None
        state = optimizer_state(optimizer)
        state[EPOCH_KEY] = np.array(epoch, dtype=np.int64)
        write_checkpoint(directory / name, model, state)

    history = []
    for epoch in range(done, epochs):
        order = np.random.default_rng([seed, epoch]).permutation(chunk_count)
        for start in range(0, chunk_count, per_step):
            chosen = sorted(order[start : start + per_step])
            x_step = da.concatenate([_batch_block(x, 1, i) for i in chosen], axis=1)
            y_step = da.concatenate([_batch_block(y, batch_axis, i) for i in chosen], batch_axis)
            value, gradients = value_and_grads(
                model, x_step, y_step, loss, batch_axis=batch_axis, client=client
            )
            optimizer.step({name: model.xp.asarray(g) for name, g in gradients.items()})
            history.append(value)
        if directory is not None:
            checkpoint(LAST_CHECKPOINT, epoch + 1)
    if directory is not None:
        checkpoint(FINAL_CHECKPOINT, max(done, epochs))
    return history
