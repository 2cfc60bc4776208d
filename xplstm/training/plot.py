"""A PNG of the training curves (matplotlib with the headless Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..atomic import write_atomic

__all__ = ["history_figure", "plot_history"]


def plot_history(history: dict[str, list[float]], path: str | Path, title: str) -> Path:
    """Draw the loss (left) and the accuracies (right) per epoch and save them as a PNG.

    Parameters
    ----------
    history : dict of str to list of float
        ``train_loss``, ``train_accuracy``, ``test_accuracy`` and (optionally)
        ``validation_loss`` per epoch; curves of ``nan`` alone are not drawn. Epoch ticks are
        whole numbers.
    path : path
        Where the PNG goes (written atomically: temporary file, fsync, rename).
    title : str

    Returns
    -------
    Path
        ``path`` (a symbolic link stays and its target is replaced).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    """
    figure = history_figure(history, title)
    write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=110))
    return Path(path)


def history_figure(history: dict[str, list[float]], title: str) -> Any:
    """The matplotlib ``Figure`` :func:`plot_history` saves (raises ``ImportError`` likewise)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = range(1, len(history["train_loss"]) + 1)
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    loss_axes.plot(epochs, history["train_loss"], marker="o", label="training loss")
    validation = history.get("validation_loss", [])
    if validation and not all(math.isnan(value) for value in validation):
        loss_axes.plot(epochs, validation, marker="s", label="validation loss")
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    loss_axes.legend()
    accuracy_axes.plot(epochs, history["train_accuracy"], marker="o", label="training")
    if not all(math.isnan(value) for value in history["test_accuracy"]):
        accuracy_axes.plot(epochs, history["test_accuracy"], marker="s", label="test")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    accuracy_axes.legend(loc="lower right")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title)
    return figure
