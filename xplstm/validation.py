"""Argument checks shared by the public functions: every message names the argument.

Array checks for the course API, the layer's constructor arguments (sizes, flags, dtype, seed),
sequence lengths, and the conversion of the layer's inputs to its device and dtype.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import numpy as np

from .backend import device_name, get_array_module, is_cupy_array
from .devices import SelectedDevice, device_scope

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
        if xp is not np and value.device.id != first.device.id:
            raise TypeError(
                f"{name} is on GPU {value.device.id} but {first_name} is on GPU "
                f"{first.device.id}; move every array to one device (cupy.asarray inside "
                "cupy.cuda.Device(n))"
            )
    return xp


# --------------------------------------------------------------------------- constructor arguments


def check_size(name: str, value: Any) -> int:
    """``value`` as a positive int; Python and NumPy integers pass, bools do not."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be a positive int, got {type(value).__name__} {value!r}"
        ) from None
    if size < 1:
        raise ValueError(f"{name} must be a positive int, got {size}")
    return size


def check_probability(name: str, value: Any) -> float:
    """``value`` as a float in ``[0, 1)`` (a dropout rate); bools and non-numbers are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number in [0, 1), got {type(value).__name__} {value!r}")
    probability = float(value)
    if not 0.0 <= probability < 1.0:  # also refuses NaN
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return probability


def check_projection(proj_size: Any, hidden_size: int) -> int:
    """``proj_size`` as an int in ``0 .. hidden_size - 1`` (0: no projection), as torch checks."""
    if isinstance(proj_size, (bool, np.bool_)):
        raise TypeError(f"proj_size must be a non-negative int, got {proj_size!r}")
    try:
        size = operator.index(proj_size)
    except TypeError:
        raise TypeError(
            f"proj_size must be a non-negative int, got {type(proj_size).__name__} {proj_size!r}"
        ) from None
    if size < 0:
        raise ValueError(f"proj_size must be a non-negative int, got {size}")
    if size >= hidden_size:
        raise ValueError(
            f"proj_size must be smaller than hidden_size (got proj_size={size}, "
            f"hidden_size={hidden_size})"
        )
    return size


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool; only ``True``, ``False`` and NumPy bools pass."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as ``float32`` or ``float64`` (``None`` is refused, not read as float64)."""
    if dtype is None:  # np.dtype(None) would silently mean float64
        raise TypeError("dtype must be float32 or float64, got None")
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {resolved}")
    return resolved


def check_seed(seed: Any) -> np.random.Generator:
    """A generator from ``seed``: ``None``, a non-negative int, or a Generator (used as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(
            f"seed must be None, an int or a numpy.random.Generator, got {type(seed).__name__}"
        )
    if seed is not None and seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- sequence lengths


def check_lengths(lengths: Any, batch: int, steps: int) -> np.ndarray | None:
    """Validated host lengths of a batch of sequences.

    Parameters
    ----------
    lengths : list or 1-D array of int, (m,), or None
        Valid steps per sequence; host data (a CuPy array is a ``TypeError``).
    batch : int
        ``m``, the number of sequences.
    steps : int
        ``T``, the padded length; each entry must be in ``1..T``.

    Returns
    -------
    numpy.ndarray of int64, (m,), or None
        ``None`` when ``lengths`` is ``None`` or every entry equals ``T`` (nothing to mask).

    Raises
    ------
    TypeError
        Not a list or array of integers, or a CuPy array.
    ValueError
        Wrong shape, or an entry outside ``1..T`` (the message names the first one).
    """
    if lengths is None:
        return None
    if is_cupy_array(lengths):
        raise TypeError(
            "lengths must be on the host (a list or a NumPy array of ints), got a CuPy array; "
            "pass lengths.get()"
        )
    try:
        array = np.asarray(lengths)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"lengths must be a list or 1-D array of ints, got {type(lengths).__name__}"
        ) from error
    if array.size and array.dtype.kind not in "iu":
        raise TypeError(f"lengths must hold integers, got dtype {array.dtype}")
    if array.shape != (batch,):
        raise ValueError(
            f"lengths must be 1-D with one entry per sequence (m={batch},), got shape {array.shape}"
        )
    outside = np.nonzero((array < 1) | (array > steps))[0]
    if outside.size:
        first = int(outside[0])
        raise ValueError(
            f"lengths must be in 1..T={steps}, got lengths[{first}] = {int(array[first])}"
        )
    if np.all(array == steps):
        return None
    return array.astype(np.int64)


# --------------------------------------------------------------------------- layer inputs


def check_device_array(
    name: str, value: Any, layout: str, device: SelectedDevice, dtype: np.dtype
) -> Any:
    """An input array on the layer's ``device``, converted to ``dtype`` (may not copy).

    Parameters
    ----------
    name : str
        The argument, for messages.
    value : ndarray
        A NumPy array for a CPU layer, a CuPy array on the layer's GPU for a CUDA layer.
    layout : str
        The expected shape in words, e.g. ``"(T, m, input_size)"``.
    device : SelectedDevice
        Where the layer lives.
    dtype : numpy.dtype
        The layer's dtype.

    Raises
    ------
    TypeError
        Not an array, an array on another device, or not of real numbers.
    """
    on_gpu = is_cupy_array(value)
    if not (on_gpu or isinstance(value, np.ndarray)):
        kind = "numpy" if device.index is None else "cupy"
        raise TypeError(
            f"{name} must be a {kind} array of shape {layout} (the layer is on "
            f"{device.name}), got {type(value).__name__}"
        )
    if on_gpu != (device.index is not None) or (on_gpu and value.device.id != device.index):
        raise TypeError(
            f"{name} is on the {device_name(value)} but the layer is on {device.name}; "
            f"move the data (xplstm.asnumpy / cupy.asarray) or the layer (.to(device))"
        )
    if value.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} has dtype {value.dtype}; expected real numbers "
            f"(converted to the layer's {dtype})"
        )
    return device.xp.asarray(value, dtype=dtype)


def import_array(name: str, value: Any, device: SelectedDevice, dtype: np.dtype) -> Any:
    """Any array (NumPy, CuPy on any device, array-like) on ``device`` in ``dtype``; may not copy.

    Raises
    ------
    TypeError
        If ``value`` is not an array of real numbers.
    """
    if is_cupy_array(value):
        if device.index is None or value.device.id != device.index:
            value = value.get()
    elif not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(
                f"{name} must be an array, got {type(value).__name__}: {error}"
            ) from error
    if value.dtype.kind not in "iuf":
        raise TypeError(f"{name} has dtype {value.dtype}; expected real numbers")
    with device_scope(device.index, device.xp):
        return device.xp.asarray(value, dtype=dtype)


def check_state_pair(
    name: str,
    pair: Any,
    members: tuple[str, str],
    expected: tuple[tuple[int, int, int], tuple[int, int, int]],
    device: SelectedDevice,
    dtype: np.dtype,
) -> list[Any]:
    """``[h, c]`` from a pair of states, each checked like :func:`check_device_array`.

    Parameters
    ----------
    name : str
        The argument (``"state"``, ``"dstate"``).
    pair : tuple or list of two arrays or None, or None
        Each member ``(num_layers * num_directions, m, features)`` or ``None`` (zeros).
    members : pair of str
        The members' names, e.g. ``("h0", "c0")``.
    expected : pair of tuple of int
        The members' shapes (``h`` has ``proj_size`` features with a projection).
    device, dtype
        As for :func:`check_device_array`.

    Returns
    -------
    list of two arrays or None
    """
    if pair is None:
        return [None, None]
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(
            f"{name} must be a pair ({members[0]}, {members[1]}) or None, got {type(pair).__name__}"
        )
    layout = "(num_layers * num_directions, m, features)"
    checked: list[Any] = []
    for position, (member, value, shape) in enumerate(zip(members, pair, expected, strict=True)):
        label = f"{name}[{position}] ({member})"
        if value is None:
            checked.append(None)
            continue
        array = check_device_array(label, value, layout, device, dtype)
        if tuple(array.shape) != shape:
            raise ValueError(
                f"{label} has shape {tuple(array.shape)} but {shape} {layout} was expected"
            )
        checked.append(array)
    return checked
