"""The training loop: shuffled mini-batches, Adam, clipping, progress bars, checkpoints, resume.

Determinism is the contract: the shuffling generator, the data order of the running epoch, the
optimizer's moments, the step counters and the running sums of the epoch's metrics are all in
every checkpoint, so a run resumed from ``last.npz`` takes exactly the steps the uninterrupted
run would have taken and ends with bitwise identical parameters (on the same device).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..serialization import (
    EPOCH_KEY,
    FINAL_CHECKPOINT,
    LAST_CHECKPOINT,
    TRAINER_PREFIX,
    Checkpoint,
    load_optimizer_state,
    optimizer_state,
    training_state_path,
    write_checkpoint,
)
from .clipping import clip_by_global_norm
from .config import RESUMABLE_CHANGES, TrainConfig
from .data import generator_from_array, generator_to_array
from .device import resolve_device
from .optim import Adam
from .run_folder import RunFolder, claim_for_a_new_run
from .tasks import DigitsTask, TextTask, make_task

__all__ = ["FINAL_CHECKPOINT", "LAST_CHECKPOINT", "Trainer", "TrainingResult", "train"]

HISTORY_NAMES = ("train_loss", "train_accuracy", "test_accuracy", "validation_loss")


@dataclass
class TrainingResult:
    """What a finished run reports.

    Attributes
    ----------
    history : dict of str to list of float
        Per epoch: ``train_loss``, ``train_accuracy``, ``test_accuracy`` (``nan`` without a
        test split).
    final_checkpoint : Path or None
    model : SequenceClassifier or CharModel
    steps : int
        Optimizer steps taken in the whole run (including before a resume).
    """

    history: dict[str, list[float]]
    final_checkpoint: Path | None
    model: Any
    steps: int

    @property
    def test_accuracy(self) -> float:
        values = self.history["test_accuracy"]
        return values[-1] if values else math.nan


@dataclass
class _Position:
    """Where the run is: counters, the running epoch's order and metric sums, the history."""

    epoch: int = 0
    batch_index: int = 0
    step: int = 0
    order: np.ndarray | None = None
    loss_sum: float = 0.0
    correct: int = 0
    count: int = 0
    history: dict[str, list[float]] = field(
        default_factory=lambda: {name: [] for name in HISTORY_NAMES}
    )

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            EPOCH_KEY: np.array(self.epoch, dtype=np.int64),
            TRAINER_PREFIX + "batch_index": np.array(self.batch_index, dtype=np.int64),
            TRAINER_PREFIX + "step": np.array(self.step, dtype=np.int64),
            TRAINER_PREFIX + "order": (
                np.zeros(0, dtype=np.int64) if self.order is None else self.order.astype(np.int64)
            ),
            TRAINER_PREFIX + "loss_sum": np.array(self.loss_sum, dtype=np.float64),
            TRAINER_PREFIX + "correct": np.array(self.correct, dtype=np.int64),
            TRAINER_PREFIX + "count": np.array(self.count, dtype=np.int64),
        }
        for name, values in self.history.items():
            arrays[f"{TRAINER_PREFIX}history.{name}"] = np.array(values, dtype=np.float64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> _Position:
        order = arrays[TRAINER_PREFIX + "order"]
        return cls(
            epoch=int(arrays[EPOCH_KEY]),
            batch_index=int(arrays[TRAINER_PREFIX + "batch_index"]),
            step=int(arrays[TRAINER_PREFIX + "step"]),
            order=order.copy() if order.size else None,
            loss_sum=float(arrays[TRAINER_PREFIX + "loss_sum"]),
            correct=int(arrays[TRAINER_PREFIX + "correct"]),
            count=int(arrays[TRAINER_PREFIX + "count"]),
            history={
                name: [float(v) for v in arrays[f"{TRAINER_PREFIX}history.{name}"]]
                if f"{TRAINER_PREFIX}history.{name}" in arrays
                else [math.nan] * int(arrays[EPOCH_KEY])  # a checkpoint from before the name
                for name in HISTORY_NAMES
            },
        )


def _progress_bar(total: int, initial: int, description: str, enabled: bool) -> Any:
    """A tqdm bar on stderr, or ``None`` when disabled or tqdm is missing."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(
        total=total,
        initial=initial,
        desc=description,
        unit="batch",
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
    )


class Trainer:
    """Runs the epochs of one training run and writes its checkpoints.

    Parameters
    ----------
    config : TrainConfig
    task : DigitsTask or TextTask
    model : SequenceClassifier or CharModel
        Built by ``task.build_model``.
    checkpoint_dir : path, optional
        Where ``last.npz`` (every epoch and every ``checkpoint_every`` steps) and ``final.npz``
        go; ``None`` writes nothing.
    checkpoint_every : int
        Steps between mid-epoch checkpoints (0: only at the end of each epoch).
    progress : bool
        Show a tqdm progress bar per epoch (on stderr).
    log : callable
        Receives one line per epoch and status messages.
    """

    def __init__(
        self,
        config: TrainConfig,
        task: DigitsTask | TextTask,
        model: Any,
        *,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 0,
        progress: bool = True,
        log: Callable[[str], None] = print,
    ) -> None:
        if checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}")
        self.config = config
        self.task = task
        self.model = model
        self.optimizer = Adam(model.parameters(), lr=config.lr)
        # Its own stream: the LSTM's initial weights come from the plain seed.
        self.shuffle_rng = np.random.Generator(np.random.PCG64([config.seed, 2]))
        self.position = _Position()
        self.last_saved_step: int | None = None  # the step of the state in last.npz
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.log = log

    # -------------------------------------------------------------------------- state

    def training_state(self) -> dict[str, np.ndarray]:
        """Everything but the LSTM, as host arrays with prefixed keys."""
        arrays = {TRAINER_PREFIX + "config": self.config.to_array()}
        arrays[TRAINER_PREFIX + "shuffle_rng"] = generator_to_array(self.shuffle_rng)
        # The LSTM's own generator draws its dropout and zoneout masks: part of the state.
        arrays[TRAINER_PREFIX + "lstm_rng"] = generator_to_array(self.model.lstm.generator)
        arrays.update(self.position.to_arrays())
        arrays.update(self.model.head_state())
        arrays.update(optimizer_state(self.optimizer))
        arrays.update(self.task.checkpoint_arrays())
        return arrays

    def load_training_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`training_state` saved (the LSTM is restored by the caller)."""
        self.model.load_head_state(dict(arrays))
        load_optimizer_state(self.optimizer, arrays)
        self.shuffle_rng = generator_from_array(arrays[TRAINER_PREFIX + "shuffle_rng"])
        if TRAINER_PREFIX + "lstm_rng" in arrays:  # absent in checkpoints of older versions
            self.model.lstm.generator = generator_from_array(arrays[TRAINER_PREFIX + "lstm_rng"])
        self.position = _Position.from_arrays(arrays)
        self.last_saved_step = self.position.step

    def save(self, name: str) -> Path | None:
        """Write checkpoint ``name`` (``last.npz`` or ``final.npz``) of the current state."""
        if self.checkpoint_dir is None:
            return None
        path = self.checkpoint_dir / name
        write_checkpoint(path, self.model.lstm, self.training_state())
        if name == LAST_CHECKPOINT:
            self.last_saved_step = self.position.step
        return path

    # -------------------------------------------------------------------------- loop

    def _batches(self, order: np.ndarray) -> list[np.ndarray]:
        size = self.config.batch_size
        return [order[start : start + size] for start in range(0, len(order), size)]

    def _step(self, indices: np.ndarray) -> None:
        model, position = self.model, self.position
        model.zero_grad()
        loss, correct, count = self.task.train_step(model, indices)
        gradients = model.gradients()
        if self.config.clip_norm > 0:
            clip_by_global_norm(gradients, self.config.clip_norm)
        self.optimizer.step(gradients)
        position.loss_sum += loss * len(indices)
        position.correct += correct
        position.count += count
        position.step += 1

    def _finish_epoch(self) -> None:
        position = self.position
        assert position.order is not None, "an epoch ends only after its order was drawn"
        examples = len(position.order)
        history = position.history
        history["train_loss"].append(position.loss_sum / examples)
        history["train_accuracy"].append(position.correct / position.count)
        self.model.lstm.eval()  # expectations instead of masks, and no draws
        try:
            history["test_accuracy"].append(self.task.evaluate(self.model))
            history["validation_loss"].append(self.task.validation_loss(self.model))
        finally:
            self.model.lstm.train()
        line = (
            f"epoch {position.epoch + 1}/{self.config.epochs}: "
            f"loss {history['train_loss'][-1]:.4f}, "
            f"train accuracy {history['train_accuracy'][-1]:.3f}"
        )
        if not math.isnan(history["test_accuracy"][-1]):
            line += f", test accuracy {history['test_accuracy'][-1]:.3f}"
        if not math.isnan(history["validation_loss"][-1]):
            line += f", validation loss {history['validation_loss'][-1]:.4f}"
        self.log(line)
        self.position = replace(
            position,
            epoch=position.epoch + 1,
            batch_index=0,
            order=None,
            loss_sum=0.0,
            correct=0,
            count=0,
        )

    def describe(self) -> str:
        """One line: the model, the optimizer and the schedule."""
        config, head = self.config, self.model.head
        batches = -(-self.task.num_examples // config.batch_size)
        return (
            f"model: {self.model.lstm!r} + Dense({head.in_features}, {head.out_features}); "
            f"Adam lr {config.lr:g} x {config.lr_decay:g}/epoch, {config.epochs} epoch(s) of "
            f"{batches} batches of {config.batch_size}"
        )

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files that a killed run left while writing a checkpoint."""
        if self.checkpoint_dir is None:
            return
        for name in (LAST_CHECKPOINT, FINAL_CHECKPOINT):
            for target in (name, training_state_path(name).name):
                for leftover in self.checkpoint_dir.glob(f".{target}.*.tmp"):
                    leftover.unlink(missing_ok=True)

    def run(self) -> TrainingResult:
        """Train until ``config.epochs`` epochs are done, then write ``final.npz``."""
        if self.checkpoint_dir is not None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            self._remove_stale_temporaries()
        while self.position.epoch < self.config.epochs:
            if self.position.order is None:
                self.position.order = self.shuffle_rng.permutation(self.task.num_examples)
            batches = self._batches(self.position.order)
            self.optimizer.lr = self.config.lr * self.config.lr_decay**self.position.epoch
            bar = _progress_bar(
                len(batches),
                self.position.batch_index,
                f"epoch {self.position.epoch + 1}/{self.config.epochs}",
                self.progress,
            )
            try:
                while self.position.batch_index < len(batches):
                    self._step(batches[self.position.batch_index])
                    self.position.batch_index += 1
                    if bar is not None:
                        bar.update(1)
                    mid_epoch = self.position.batch_index < len(batches)
                    if (
                        mid_epoch
                        and self.checkpoint_every
                        and self.position.step % self.checkpoint_every == 0
                    ):
                        self.save(LAST_CHECKPOINT)
            finally:
                if bar is not None:
                    bar.close()
            self._finish_epoch()
            self.save(LAST_CHECKPOINT)
        if self.last_saved_step != self.position.step:  # no epoch ran (epochs=0)
            self.save(LAST_CHECKPOINT)
        final = self.save(FINAL_CHECKPOINT)
        return TrainingResult(self.position.history, final, self.model, self.position.step)


def checkpoint_config(arrays: Mapping[str, np.ndarray]) -> TrainConfig:
    """The :class:`TrainConfig` stored in a checkpoint's training state."""
    if TRAINER_PREFIX + "config" not in arrays:
        raise ValueError("the checkpoint was not written by xplstm train (it has no config)")
    return TrainConfig.from_array(arrays[TRAINER_PREFIX + "config"])


def resolve_config(settings: Mapping[str, Any], stored: TrainConfig | None) -> TrainConfig:
    """The config of a run: ``settings`` over the defaults, or over a checkpoint's config.

    A resumed run may change only :data:`RESUMABLE_CHANGES` (and ``text_path``, whose content is
    checked separately); any other setting that differs from the checkpoint is a ``ValueError``.
    """
    if stored is None:
        return TrainConfig(**settings)
    config = replace(stored, **settings)
    changed = [
        name
        for name in config.differences(stored)
        if name not in RESUMABLE_CHANGES and name != "text_path"
    ]
    if changed:
        details = ", ".join(
            f"{name} {getattr(config, name)!r} (checkpoint: {getattr(stored, name)!r})"
            for name in changed
        )
        raise ValueError(f"cannot resume with different settings: {details}")
    return config


def train(
    settings: Mapping[str, Any] | TrainConfig,
    *,
    device: str = "cpu",
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainingResult:
    """Train a model from scratch, or continue the run saved in ``checkpoint_dir/last.npz``.

    Parameters
    ----------
    settings : TrainConfig or mapping
        A full config, or the :class:`TrainConfig` fields to set (the rest come from the
        defaults, or from the checkpoint when resuming).
    device : str
        ``"cpu"`` (default), ``"cuda"``, or ``"auto"``: the GPU when CuPy and a CUDA device are
        usable, else the CPU. The choice is logged.
    checkpoint_dir, checkpoint_every, progress, log
        See :class:`Trainer`.
    resume : bool
        Continue from ``checkpoint_dir/last.training.npz`` if it exists (else start from
        scratch).
    overwrite : bool
        Without ``resume``, start over in a ``checkpoint_dir`` that already holds a run
        (its checkpoints are deleted first); without either, such a folder is refused.

    Returns
    -------
    TrainingResult

    Raises
    ------
    RuntimeError
        If another run holds ``checkpoint_dir`` (see :class:`~xplstm.training.run_folder.RunFolder`:
        the lock goes with the process, so a killed run does not hold it).
    ValueError
        If ``checkpoint_dir`` holds a run and neither ``resume`` nor ``overwrite`` is set.
    NotADirectoryError
        If ``checkpoint_dir`` is a file.
    """
    if isinstance(settings, TrainConfig):
        settings = {name: getattr(settings, name) for name in settings.__dataclass_fields__}
    if resume and checkpoint_dir is None:
        raise ValueError("resume needs a checkpoint directory")
    folder = nullcontext() if checkpoint_dir is None else RunFolder(checkpoint_dir)
    with folder:  # held until the run ends: no other run can touch its files meanwhile
        if checkpoint_dir is not None and not resume:
            claim_for_a_new_run(Path(checkpoint_dir), overwrite)
        return _train(settings, device, checkpoint_dir, checkpoint_every, resume, progress, log)


def _train(
    settings: Mapping[str, Any],
    device: str,
    checkpoint_dir: str | Path | None,
    checkpoint_every: int,
    resume: bool,
    progress: bool,
    log: Callable[[str], None],
) -> TrainingResult:
    """:func:`train` once the run folder is held."""
    last = None if checkpoint_dir is None else Path(checkpoint_dir) / LAST_CHECKPOINT
    checkpoint = None
    if resume and last is not None and training_state_path(last).exists():
        checkpoint = Checkpoint(last)
        config = resolve_config(settings, checkpoint_config(checkpoint.arrays))
    else:
        if resume and last is not None:
            log(f"no checkpoint at {training_state_path(last)}: starting from scratch")
        config = resolve_config(settings, None)
    task = make_task(config)  # reads and checks the data before anything else
    if checkpoint is not None:
        task.check_checkpoint(checkpoint.arrays)
    device, description = resolve_device(device)
    log(f"data: {task.describe()}")
    log(f"device: {description}")
    lstm = None if checkpoint is None else checkpoint.lstm(device)
    trainer = Trainer(
        config,
        task,
        task.build_model(device, lstm=lstm),
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        progress=progress,
        log=log,
    )
    if checkpoint is not None:
        trainer.load_training_state(checkpoint.training_state)
        position = trainer.position
        log(
            f"resuming from {checkpoint.path}: {position.epoch} epochs and "
            f"{position.step} steps done"
        )
    log(trainer.describe())
    return trainer.run()
