"""Gradient clipping: element-wise by value (the course's ``clip``) and by global norm."""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

from ..backend import get_array_module

__all__ = ["clip", "clip_by_global_norm", "clip_by_value"]


def clip_by_value(gradients: MutableMapping[str, Any], max_value: float) -> MutableMapping:
    """Clip every gradient array to ``[-max_value, max_value]`` in place.

    Parameters
    ----------
    gradients : dict of str to ndarray
    max_value : float
        Positive bound.

    Returns
    -------
    dict
        ``gradients`` itself (its arrays were modified in place).
    """
    if not max_value > 0:
        raise ValueError(f"max_value must be positive, got {max_value}")
    for gradient in gradients.values():
        xp = get_array_module(gradient)
        xp.clip(gradient, -max_value, max_value, out=gradient)
    return gradients


def clip(gradients: MutableMapping[str, Any], maxValue: float) -> MutableMapping:
    """The course's ``clip(gradients, maxValue)``: :func:`clip_by_value` with its names."""
    return clip_by_value(gradients, maxValue)


def clip_by_global_norm(gradients: MutableMapping[str, Any], max_norm: float) -> float:
    """Scale all gradients in place so that their joint L2 norm is at most ``max_norm``.

    Parameters
    ----------
    gradients : dict of str to ndarray
    max_norm : float
        Positive bound on ``sqrt(sum of squares over every array)``.

    Returns
    -------
    float
        The global norm before clipping.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    squares = 0.0
    for gradient in gradients.values():
        xp = get_array_module(gradient)
        squares += float(xp.vdot(gradient.ravel(), gradient.ravel()))
    total_norm = math.sqrt(squares)
    if total_norm > max_norm:
        scale = max_norm / total_norm
        for gradient in gradients.values():
            gradient *= gradient.dtype.type(scale)
    return total_norm
