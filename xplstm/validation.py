"""Argument checks shared by the public functions: every message names the argument."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .backend import get_array_module, is_cupy_array

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_array(name: str, value: Any, ndim: int, layout: str) -> Any:
    """Check that ``value`` is a float32/float64 NumPy or CuPy array with ``ndim`` dimensions.

    ``layout`` describes the expected shape in words, e.g. ``"(n_x, m)"``.
    """
    if not (isinstance(value, np.ndarray) or is_cupy_array(value)):
        raise TypeError(
            f"{name} must be a numpy or cupy array of shape {layout}, got {type(value).__name__}"
        )
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} has dtype {value.dtype}; expected float32 or float64")
    if value.ndim != ndim:
        raise ValueError(
            f"{name} must be {ndim}-D with shape {layout}, got shape {tuple(value.shape)}"
        )
    return value


def check_shape(name: str, value: Any, expected: tuple[int, ...], meaning: str) -> None:
    """Raise ``ValueError`` unless ``value.shape == expected``; ``meaning`` names the dimensions."""
    if tuple(value.shape) != tuple(expected):
        raise ValueError(
            f"{name} has shape {tuple(value.shape)} but {tuple(expected)} {meaning} was expected"
        )


def check_parameters(parameters: Any, name: str = "parameters") -> Mapping:
    if not isinstance(parameters, Mapping):
        raise TypeError(f"{name} must be a dict of weight arrays, got {type(parameters).__name__}")
    return parameters


def get_parameter(parameters: Mapping, key: str, ndim: int, layout: str) -> Any:
    """Fetch ``parameters[key]`` as a checked array, or raise ``KeyError`` naming the key."""
    if key not in parameters:
        raise KeyError(f"parameters is missing {key!r} (expected an array of shape {layout})")
    return check_array(f"parameters[{key!r}]", parameters[key], ndim, layout)


def check_same_backend_and_dtype(named: dict[str, Any]) -> Any:
    """Return ``xp`` for the arrays in ``named``; mixed devices or dtypes are a ``TypeError``."""
    present = {name: value for name, value in named.items() if value is not None}
    xp = get_array_module(*present.values(), names=tuple(present))
    first_name, first = next(iter(present.items()))
    for name, value in present.items():
        if value.dtype != first.dtype:
            raise TypeError(
                f"{name} has dtype {value.dtype} but {first_name} has dtype {first.dtype}; "
                "pass every array in one dtype (float32 or float64)"
            )
    return xp
