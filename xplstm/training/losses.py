"""Losses with their gradients: softmax cross-entropy (last step or every step) and MSE.

Each function returns ``(loss, gradient)``: the mean loss as a Python float and the gradient of
that mean with respect to the predictions, on the predictions' backend and in their dtype.
"""

from __future__ import annotations

from typing import Any

from ..backend import get_array_module

__all__ = ["mean_squared_error", "sequence_cross_entropy", "softmax_cross_entropy"]


def _check_targets(logits: Any, targets: Any, layout: str) -> None:
    if tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"targets has shape {tuple(targets.shape)} but logits of shape "
            f"{tuple(logits.shape)} need targets of shape {tuple(logits.shape[:-1])} {layout}"
        )


def softmax_cross_entropy(logits: Any, targets: Any) -> tuple[float, Any]:
    """Mean cross-entropy of a softmax over the class axis (the last one).

    Parameters
    ----------
    logits : ndarray, (m, C)
        Unnormalised scores, e.g. a classifier's output at the last step.
    targets : ndarray of int, (m,)
        Class index of each example, in ``0 .. C - 1``.

    Returns
    -------
    loss : float
        ``mean_b( logsumexp(logits[b]) - logits[b, targets[b]] )``.
    dlogits : ndarray, (m, C)
        ``(softmax(logits) - onehot(targets)) / m``.
    """
    xp = get_array_module(logits)
    targets = xp.asarray(targets)
    _check_targets(logits, targets, "(m,)")
    batch = logits.shape[0]
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = xp.exp(shifted)
    total = exp.sum(axis=-1, keepdims=True)
    rows = xp.arange(batch)
    picked = shifted[rows, targets]
    loss = float((xp.log(total[:, 0]) - picked).mean())
    dlogits = exp / total
    dlogits[rows, targets] -= 1
    dlogits /= batch
    return loss, dlogits


def sequence_cross_entropy(logits: Any, targets: Any) -> tuple[float, Any]:
    """Mean softmax cross-entropy over every step and example (character models).

    Parameters
    ----------
    logits : ndarray, (T, m, C)
    targets : ndarray of int, (T, m)

    Returns
    -------
    loss : float
        Mean over the ``T * m`` predictions.
    dlogits : ndarray, (T, m, C)
    """
    xp = get_array_module(logits)
    targets = xp.asarray(targets)
    _check_targets(logits, targets, "(T, m)")
    classes = logits.shape[-1]
    loss, dflat = softmax_cross_entropy(logits.reshape(-1, classes), targets.reshape(-1))
    return loss, dflat.reshape(logits.shape)


def mean_squared_error(predictions: Any, targets: Any) -> tuple[float, Any]:
    """Mean of ``(predictions - targets) ** 2`` over all elements.

    Parameters
    ----------
    predictions : ndarray, any shape
    targets : ndarray, same shape

    Returns
    -------
    loss : float
    dpredictions : ndarray, same shape
        ``2 * (predictions - targets) / predictions.size``.
    """
    xp = get_array_module(predictions)
    targets = xp.asarray(targets, dtype=predictions.dtype)
    if tuple(targets.shape) != tuple(predictions.shape):
        raise ValueError(
            f"targets has shape {tuple(targets.shape)} but predictions has shape "
            f"{tuple(predictions.shape)}"
        )
    difference = predictions - targets
    loss = float((difference * difference).mean())
    return loss, difference * predictions.dtype.type(2.0 / difference.size)
