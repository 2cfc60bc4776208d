"""The course API: step-by-step RNN and LSTM functions with the course's shapes, dicts and caches.

Arrays are in the course layout: features first, then the batch, then time, e.g. ``x`` is
``(n_x, m, T_x)`` and ``a_prev`` is ``(n_a, m)``. Each function is a thin adapter over
:mod:`xplstm.engine` (time-major, stacked gates): it validates, transposes at the edges and
builds the course's caches and gradient dicts. The caches keep the course's tuple shapes and
indexing, and also carry the engine's saved record, which the backward functions use directly.
Results come back on the inputs' backend (NumPy or CuPy) and in their dtype.

Output layer: ``yt_pred = softmax(Wy @ a_next + by)`` (LSTM) and ``softmax(Wya @ a_next + by)``
(RNN), softmax over the class axis 0. The backward functions return the gradients of the cell
only, as the course does; the output layer's loss reaches them through ``da``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np

from . import engine
from .backend import is_cupy_array
from .numerics import silent_non_finite, softmax
from .validation import (
    check_array,
    check_parameters,
    check_same_backend_and_dtype,
    check_shape,
    get_parameter,
)

__all__ = [
    "Caches",
    "StepCache",
    "lstm_backward",
    "lstm_cell_backward",
    "lstm_cell_forward",
    "lstm_forward",
    "rnn_backward",
    "rnn_cell_backward",
    "rnn_cell_forward",
    "rnn_forward",
]

LSTM_GATES = ("i", "f", "c", "o")  # torch's stacking order (i, f, g, o); the course calls g "c"


class StepCache(tuple):
    """One step's course cache (a plain tuple to read) that also carries the engine's record.

    ``record`` is the :class:`xplstm.engine.LSTMSaved` or :class:`xplstm.engine.RNNSaved` of the
    forward call and ``step`` the index of this step in it.
    """

    record: Any
    step: int

    def __new__(cls, items: Any, record: Any = None, step: int = 0) -> StepCache:
        cache = super().__new__(cls, items)
        cache.record, cache.step = record, step
        return cache


class Caches(tuple):
    """The course's ``(list_of_step_caches, x)`` pair that also carries the engine's record."""

    record: Any

    def __new__(cls, items: Any, record: Any = None) -> Caches:
        caches = super().__new__(cls, items)
        caches.record = record
        return caches


# ------------------------------------------------------------------------------ calling convention

Function = TypeVar("Function", bound=Callable[..., Any])


def _arrays(values: Any) -> Iterator[Any]:
    """Every array among ``values``, searching dicts, tuples and lists."""
    for value in values:
        if isinstance(value, Mapping):
            yield from _arrays(value.values())
        elif isinstance(value, (tuple, list)):
            yield from _arrays(value)
        elif is_cupy_array(value) or isinstance(value, np.ndarray):
            yield value


def _gpu_of(values: Any) -> Any:
    """The device of the first CuPy array among ``values`` when every array there is a CuPy
    array, else ``None`` (NumPy, or a mix, which the function's own checks then name)."""
    arrays = list(_arrays(values))
    if not arrays or not all(is_cupy_array(array) for array in arrays):
        return None
    return arrays[0].device


def _course_function(function: Function) -> Function:
    """Run ``function`` on the GPU its CuPy arguments live on, with inf and NaN propagating
    silently (as in torch) instead of NumPy's floating-point warnings."""

    @functools.wraps(function)
    def call(*args: Any) -> Any:
        device = _gpu_of(args)
        with silent_non_finite():
            if device is None:
                return function(*args)
            with device:
                return function(*args)

    return call  # type: ignore[return-value]


# ----------------------------------------------------------------------------- validation helpers


def _check_not_empty(name: str, array: Any, layout: str) -> None:
    if 0 in array.shape:
        raise ValueError(
            f"{name} has shape {tuple(array.shape)}: every dimension of {layout} must be at least 1"
        )


def _check_features(name: str, array: Any, expected: int, symbol: str) -> None:
    if array.shape[0] != expected:
        raise ValueError(
            f"{name} has {array.shape[0]} features but the weights expect {symbol}={expected} "
            f"(got {name} of shape {tuple(array.shape)})"
        )


def _check_batch(name: str, array: Any, batch: int, reference: str) -> None:
    if array.shape[1] != batch:
        raise ValueError(
            f"{name} has batch size m={array.shape[1]} but {reference} has m={batch} "
            f"(got {name} of shape {tuple(array.shape)})"
        )


def _rnn_parameters(parameters: Any) -> dict[str, Any]:
    parameters = check_parameters(parameters)
    wax = get_parameter(parameters, "Wax", 2, "(n_a, n_x)")
    n_a, _ = wax.shape
    waa = get_parameter(parameters, "Waa", 2, "(n_a, n_a)")
    check_shape("parameters['Waa']", waa, (n_a, n_a), f"(n_a, n_a) with n_a={n_a} from Wax")
    wya = get_parameter(parameters, "Wya", 2, "(n_y, n_a)")
    n_y = wya.shape[0]
    check_shape("parameters['Wya']", wya, (n_y, n_a), f"(n_y, n_a) with n_a={n_a} from Wax")
    ba = get_parameter(parameters, "ba", 2, "(n_a, 1)")
    check_shape("parameters['ba']", ba, (n_a, 1), f"(n_a, 1) with n_a={n_a}")
    by = get_parameter(parameters, "by", 2, "(n_y, 1)")
    check_shape("parameters['by']", by, (n_y, 1), f"(n_y, 1) with n_y={n_y} from Wya")
    return {"Wax": wax, "Waa": waa, "Wya": wya, "ba": ba, "by": by}


def _lstm_parameters(parameters: Any, *, need_output: bool = True) -> dict[str, Any]:
    parameters = check_parameters(parameters)
    wf = get_parameter(parameters, "Wf", 2, "(n_a, n_a + n_x)")
    n_a, width = wf.shape
    if width <= n_a:
        raise ValueError(
            f"parameters['Wf'] has shape {tuple(wf.shape)}: expected (n_a, n_a + n_x) with "
            "n_x >= 1, i.e. more columns than rows"
        )
    checked = {}
    for gate in LSTM_GATES:
        weight = get_parameter(parameters, f"W{gate}", 2, "(n_a, n_a + n_x)")
        check_shape(f"parameters['W{gate}']", weight, (n_a, width), "(n_a, n_a + n_x) like Wf")
        bias = get_parameter(parameters, f"b{gate}", 2, "(n_a, 1)")
        check_shape(f"parameters['b{gate}']", bias, (n_a, 1), f"(n_a, 1) with n_a={n_a}")
        checked[f"W{gate}"], checked[f"b{gate}"] = weight, bias
    if need_output:
        wy = get_parameter(parameters, "Wy", 2, "(n_y, n_a)")
        n_y = wy.shape[0]
        check_shape("parameters['Wy']", wy, (n_y, n_a), f"(n_y, n_a) with n_a={n_a} from Wf")
        by = get_parameter(parameters, "by", 2, "(n_y, 1)")
        check_shape("parameters['by']", by, (n_y, 1), f"(n_y, 1) with n_y={n_y} from Wy")
        checked["Wy"], checked["by"] = wy, by
    return checked


def _lstm_engine_weights(params: Mapping, n_a: int, xp: Any) -> tuple[Any, Any, Any]:
    """Course weights -> engine weights ``w_ih (4H, n_x)``, ``w_hh (4H, H)``, ``bias (4H,)``."""
    w_ih = xp.concatenate([params[f"W{gate}"][:, n_a:] for gate in LSTM_GATES])
    w_hh = xp.concatenate([params[f"W{gate}"][:, :n_a] for gate in LSTM_GATES])
    bias = xp.concatenate([params[f"b{gate}"][:, 0] for gate in LSTM_GATES])
    return w_ih, w_hh, bias


def _lstm_course_gradients(dw_ih: Any, dw_hh: Any, dbias: Any, n_a: int, xp: Any) -> dict:
    grads = {}
    for k, gate in enumerate(LSTM_GATES):
        rows = slice(k * n_a, (k + 1) * n_a)
        grads[f"dW{gate}"] = xp.concatenate([dw_hh[rows], dw_ih[rows]], axis=1)
        grads[f"db{gate}"] = dbias[rows].reshape(n_a, 1)
    return grads


def _output_layer(h: Any, weight: Any, bias: Any, xp: Any) -> Any:
    """``softmax(weight @ h_t + bias)`` for all steps: ``h (T, m, H) -> (n_y, m, T)``."""
    steps, batch, hidden = h.shape
    scores = xp.matmul(h.reshape(steps * batch, hidden), weight.T)
    scores += bias[:, 0]
    probabilities = softmax(scores, xp, axis=1)
    return xp.ascontiguousarray(probabilities.reshape(steps, batch, -1).transpose(2, 1, 0))


def _course_layout(sequence: Any, xp: Any) -> Any:
    """Engine ``(T, m, n) -> `` course ``(n, m, T)``, C-contiguous like the course's arrays."""
    return xp.ascontiguousarray(sequence.transpose(2, 1, 0))


def _time_major(sequence: Any, xp: Any) -> Any:
    """Course ``(n, m, T) -> `` engine ``(T, m, n)``, C-contiguous.

    Not needed for ``x``: the engine copies its input once anyway (:func:`engine.with_ones`)
    and takes a transposed view.
    """
    return xp.ascontiguousarray(sequence.transpose(2, 1, 0))


def _rows(array: Any, xp: Any) -> Any:
    """Course ``(n, m) ->`` engine ``(m, n)``, C-contiguous."""
    return xp.ascontiguousarray(array.T)


# ----------------------------------------------------------------------------------------- RNN


def _check_rnn_inputs(x: Any, x_name: str, a_prev: Any, a_name: str, parameters: Any, ndim: int):
    layout = "(n_x, m)" if ndim == 2 else "(n_x, m, T_x)"
    check_array(x_name, x, ndim, layout)
    _check_not_empty(x_name, x, layout)
    check_array(a_name, a_prev, 2, "(n_a, m)")
    params = _rnn_parameters(parameters)
    xp = check_same_backend_and_dtype({x_name: x, a_name: a_prev, **_named(params)})
    n_a, n_x = params["Wax"].shape
    _check_features(x_name, x, n_x, "n_x")
    _check_features(a_name, a_prev, n_a, "n_a")
    _check_batch(a_name, a_prev, x.shape[1], x_name)
    return params, xp


def _named(params: Mapping) -> dict[str, Any]:
    return {f"parameters[{key!r}]": value for key, value in params.items()}


@_course_function
def rnn_cell_forward(xt: Any, a_prev: Any, parameters: Mapping) -> tuple[Any, Any, tuple]:
    """One step of a tanh RNN: ``a_next = tanh(Wax @ xt + Waa @ a_prev + ba)``.

    Parameters
    ----------
    xt : ndarray, (n_x, m)
    a_prev : ndarray, (n_a, m)
    parameters : dict
        ``Wax (n_a, n_x)``, ``Waa (n_a, n_a)``, ``Wya (n_y, n_a)``, ``ba (n_a, 1)``,
        ``by (n_y, 1)``.

    Returns
    -------
    a_next : ndarray, (n_a, m)
    yt_pred : ndarray, (n_y, m)
        ``softmax(Wya @ a_next + by)``.
    cache : tuple
        ``(a_next, a_prev, xt, parameters)``.
    """
    params, xp = _check_rnn_inputs(xt, "xt", a_prev, "a_prev", parameters, 2)
    h, _, saved = engine.rnn_forward(
        _rows(xt, xp)[None],
        params["Wax"],
        params["Waa"],
        params["ba"][:, 0],
        _rows(a_prev, xp),
        xp=xp,
    )
    a_next = _rows(h[0], xp)
    yt_pred = _output_layer(h, params["Wya"], params["by"], xp)[:, :, 0]
    return a_next, yt_pred, StepCache((a_next, a_prev, xt, parameters), saved)


@_course_function
def rnn_forward(x: Any, a0: Any, parameters: Mapping) -> tuple[Any, Any, tuple]:
    """A tanh RNN over a whole sequence.

    Parameters
    ----------
    x : ndarray, (n_x, m, T_x)
    a0 : ndarray, (n_a, m)
    parameters : dict
        As for :func:`rnn_cell_forward`.

    Returns
    -------
    a : ndarray, (n_a, m, T_x)
    y_pred : ndarray, (n_y, m, T_x)
    caches : tuple
        ``(list of the T_x step caches, x)``.
    """
    params, xp = _check_rnn_inputs(x, "x", a0, "a0", parameters, 3)
    h, _, saved = engine.rnn_forward(
        x.transpose(2, 1, 0),
        params["Wax"],
        params["Waa"],
        params["ba"][:, 0],
        _rows(a0, xp),
        xp=xp,
    )
    a = _course_layout(h, xp)
    y_pred = _output_layer(h, params["Wya"], params["by"], xp)
    # The caches view the engine's own buffers, so editing the returned a cannot change them.
    step_caches = [
        StepCache((h[t].T, a0 if t == 0 else h[t - 1].T, x[:, :, t], parameters), saved, t)
        for t in range(x.shape[2])
    ]
    return a, y_pred, Caches((step_caches, x), saved)


def _check_cache(cache: Any, size: int, forward: str, name: str = "cache") -> StepCache:
    if not isinstance(cache, StepCache) or len(cache) != size:
        described = type(cache).__name__
        if isinstance(cache, (tuple, list)):
            described += f" of length {len(cache)}"
        raise TypeError(
            f"{name} must be the {size}-tuple cache returned by xplstm.{forward} (it carries "
            f"the saved forward state), got {described}"
        )
    return cache


@_course_function
def rnn_cell_backward(da_next: Any, cache: tuple) -> dict[str, Any]:
    """Gradients of one RNN step.

    Parameters
    ----------
    da_next : ndarray, (n_a, m)
        Gradient of the loss with respect to ``a_next``.
    cache : tuple
        From :func:`rnn_cell_forward`.

    Returns
    -------
    dict
        ``dxt (n_x, m)``, ``da_prev (n_a, m)``, ``dWax (n_a, n_x)``, ``dWaa (n_a, n_a)``,
        ``dba (n_a, 1)``.
    """
    cache = _check_cache(cache, 4, "rnn_cell_forward (or a step of rnn_forward)")
    a_next = cache[0]
    check_array("da_next", da_next, 2, "(n_a, m)")
    check_shape("da_next", da_next, a_next.shape, "(n_a, m) like a_next")
    xp = check_same_backend_and_dtype({"da_next": da_next, "a_next": a_next})
    saved = cache.record.window(cache.step, cache.step + 1)
    dx, dh0, dw_ih, dw_hh, dbias = engine.rnn_backward(_rows(da_next, xp)[None], None, saved)
    return {
        "dxt": _rows(dx[0], xp),
        "da_prev": _rows(dh0, xp),
        "dWax": dw_ih,
        "dWaa": dw_hh,
        "dba": dbias.reshape(-1, 1),
    }


def _check_sequence_gradient(da: Any, step_caches: list, a_first: Any) -> int:
    """The number of steps to backpropagate through: ``da``'s, at most the caches'.

    A shorter ``da`` is what the course's own loop accepts (``for t in reversed(range(T_x))``
    with ``T_x`` from ``da``): it backpropagates through the first ``T_x`` steps, as if the
    sequence ended there. That is allowed with a warning; a longer ``da`` is an error.
    """
    check_array("da", da, 3, "(n_a, m, T_x)")
    held = len(step_caches)
    expected = (*a_first.shape, held)
    if da.shape[2] > held or da.shape[2] == 0:
        raise ValueError(
            f"da covers {da.shape[2]} time steps but the caches hold {held} "
            f"(da has shape {tuple(da.shape)}, expected {expected})"
        )
    check_shape("da", da, (*a_first.shape, da.shape[2]), "(n_a, m, T_x)")
    if da.shape[2] < held:
        warnings.warn(
            f"da covers {da.shape[2]} time steps but the caches hold {held}: backpropagating "
            f"through the first {da.shape[2]} steps only, as the course's loop does",
            UserWarning,
            stacklevel=3,
        )
    return da.shape[2]


def _unpack_caches(caches: Any, step_size: int, forward: str) -> tuple[list, Any, Any]:
    if not isinstance(caches, Caches) or len(caches) != 2:
        raise TypeError(
            f"caches must be the (list_of_step_caches, x) pair returned by xplstm.{forward}, "
            f"got {type(caches).__name__}"
        )
    step_caches, x = caches
    if not isinstance(step_caches, list) or not step_caches:
        raise TypeError("caches[0] must be the non-empty list of step caches from the forward pass")
    for t, cache in enumerate(step_caches):
        _check_cache(cache, step_size, forward, f"caches[0][{t}]")
    return step_caches, x, caches.record


@_course_function
def rnn_backward(da: Any, caches: tuple) -> dict[str, Any]:
    """Gradients of a tanh RNN over a whole sequence.

    Each step receives ``da[:, :, t]`` plus the gradient carried back from step ``t + 1``.

    Parameters
    ----------
    da : ndarray, (n_a, m, T_x)
        Gradient of the loss with respect to every hidden state.
    caches : tuple
        From :func:`rnn_forward`.

    Returns
    -------
    dict
        ``dx (n_x, m, T_x)``, ``da0 (n_a, m)``, ``dWax (n_a, n_x)``, ``dWaa (n_a, n_a)``,
        ``dba (n_a, 1)``.
    """
    step_caches, x, record = _unpack_caches(caches, 4, "rnn_forward")
    steps = _check_sequence_gradient(da, step_caches, step_caches[0][0])
    xp = check_same_backend_and_dtype({"da": da, "x": x})
    saved = record.window(0, steps)
    dx, dh0, dw_ih, dw_hh, dbias = engine.rnn_backward(_time_major(da, xp), None, saved)
    return {
        "dx": _course_layout(dx, xp),
        "da0": _rows(dh0, xp),
        "dWax": dw_ih,
        "dWaa": dw_hh,
        "dba": dbias.reshape(-1, 1),
    }


# ---------------------------------------------------------------------------------------- LSTM


def _check_lstm_inputs(
    x: Any, x_name: str, a_prev: Any, a_name: str, c_prev: Any, parameters: Any, ndim: int
):
    layout = "(n_x, m)" if ndim == 2 else "(n_x, m, T_x)"
    check_array(x_name, x, ndim, layout)
    _check_not_empty(x_name, x, layout)
    check_array(a_name, a_prev, 2, "(n_a, m)")
    if c_prev is not None:
        check_array("c_prev", c_prev, 2, "(n_a, m)")
    params = _lstm_parameters(parameters)
    xp = check_same_backend_and_dtype(
        {x_name: x, a_name: a_prev, "c_prev": c_prev, **_named(params)}
    )
    n_a = params["Wf"].shape[0]
    n_x = params["Wf"].shape[1] - n_a
    _check_features(x_name, x, n_x, "n_x")
    _check_features(a_name, a_prev, n_a, "n_a")
    _check_batch(a_name, a_prev, x.shape[1], x_name)
    if c_prev is not None:
        check_shape("c_prev", c_prev, a_prev.shape, f"(n_a, m) like {a_name}")
    return params, xp, n_a


def _gate_views(gates: Any, n_a: int) -> tuple[Any, Any, Any, Any]:
    """Engine gates ``(m, 4H)`` -> course ``(ft, it, cct, ot)``, each ``(n_a, m)``."""
    i, f, g, o = (gates[:, k * n_a : (k + 1) * n_a].T for k in range(4))
    return f, i, g, o


@_course_function
def lstm_cell_forward(
    xt: Any, a_prev: Any, c_prev: Any, parameters: Mapping
) -> tuple[Any, Any, Any, tuple]:
    """One LSTM step.

    ``concat = [a_prev; xt]``; ``ft, it, ot = sigmoid(W @ concat + b)`` for ``f, i, o``;
    ``cct = tanh(Wc @ concat + bc)``; ``c_next = ft * c_prev + it * cct``;
    ``a_next = ot * tanh(c_next)``; ``yt_pred = softmax(Wy @ a_next + by)``.

    Parameters
    ----------
    xt : ndarray, (n_x, m)
    a_prev, c_prev : ndarray, (n_a, m)
    parameters : dict
        ``Wf, Wi, Wc, Wo (n_a, n_a + n_x)``, ``bf, bi, bc, bo (n_a, 1)``, ``Wy (n_y, n_a)``,
        ``by (n_y, 1)``.

    Returns
    -------
    a_next, c_next : ndarray, (n_a, m)
    yt_pred : ndarray, (n_y, m)
    cache : tuple
        ``(a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)``.
    """
    check_array("c_prev", c_prev, 2, "(n_a, m)")
    params, xp, n_a = _check_lstm_inputs(xt, "xt", a_prev, "a_prev", c_prev, parameters, 2)
    w_ih, w_hh, bias = _lstm_engine_weights(params, n_a, xp)
    h, _, _, saved = engine.lstm_forward(
        _rows(xt, xp)[None], w_ih, w_hh, bias, _rows(a_prev, xp), _rows(c_prev, xp), xp=xp
    )
    a_next, c_next = _rows(h[0], xp), _rows(saved.c[0], xp)
    ft, it, cct, ot = (_rows(gate.T, xp) for gate in _gate_views(saved.gates[0], n_a))
    yt_pred = _output_layer(h, params["Wy"], params["by"], xp)[:, :, 0]
    cache = (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)
    return a_next, c_next, yt_pred, StepCache(cache, saved)


@_course_function
def lstm_forward(x: Any, a0: Any, parameters: Mapping) -> tuple[Any, Any, Any, tuple]:
    """An LSTM over a whole sequence, with the cell state starting at zeros.

    Parameters
    ----------
    x : ndarray, (n_x, m, T_x)
    a0 : ndarray, (n_a, m)
    parameters : dict
        As for :func:`lstm_cell_forward`.

    Returns
    -------
    a : ndarray, (n_a, m, T_x)
    y : ndarray, (n_y, m, T_x)
    c : ndarray, (n_a, m, T_x)
    caches : tuple
        ``(list of the T_x step caches, x)``.
    """
    params, xp, n_a = _check_lstm_inputs(x, "x", a0, "a0", None, parameters, 3)
    w_ih, w_hh, bias = _lstm_engine_weights(params, n_a, xp)
    h, _, _, saved = engine.lstm_forward(
        x.transpose(2, 1, 0), w_ih, w_hh, bias, _rows(a0, xp), xp=xp
    )
    a, c = _course_layout(h, xp), _course_layout(saved.c, xp)
    y = _output_layer(h, params["Wy"], params["by"], xp)
    c0 = xp.zeros_like(a0)
    # The caches view the engine's own buffers, so editing the returned a or c cannot change them.
    step_caches = []
    for t in range(x.shape[2]):
        a_prev, c_prev = (a0, c0) if t == 0 else (h[t - 1].T, saved.c[t - 1].T)
        gates = _gate_views(saved.gates[t], n_a)
        cache = (h[t].T, saved.c[t].T, a_prev, c_prev, *gates, x[:, :, t], parameters)
        step_caches.append(StepCache(cache, saved, t))
    return a, y, c, Caches((step_caches, x), saved)


@_course_function
def lstm_cell_backward(da_next: Any, dc_next: Any, cache: tuple) -> dict[str, Any]:
    """Gradients of one LSTM step.

    Parameters
    ----------
    da_next, dc_next : ndarray, (n_a, m)
        Gradients of the loss with respect to ``a_next`` and ``c_next``.
    cache : tuple
        From :func:`lstm_cell_forward`.

    Returns
    -------
    dict
        ``dxt (n_x, m)``, ``da_prev (n_a, m)``, ``dc_prev (n_a, m)``, and for each gate
        ``dW{f,i,c,o} (n_a, n_a + n_x)`` and ``db{f,i,c,o} (n_a, 1)``.
    """
    cache = _check_cache(cache, 10, "lstm_cell_forward (or a step of lstm_forward)")
    a_next = cache[0]
    check_array("da_next", da_next, 2, "(n_a, m)")
    check_array("dc_next", dc_next, 2, "(n_a, m)")
    check_shape("da_next", da_next, a_next.shape, "(n_a, m) like a_next")
    check_shape("dc_next", dc_next, a_next.shape, "(n_a, m) like a_next")
    xp = check_same_backend_and_dtype({"da_next": da_next, "dc_next": dc_next, "a_next": a_next})
    saved = cache.record.window(cache.step, cache.step + 1)  # its own copy of the gates
    n_a = saved.c.shape[2]
    dx, dh0, dc0, dw_ih, dw_hh, dbias = engine.lstm_backward(
        _rows(da_next, xp)[None], None, _rows(dc_next, xp), saved
    )
    return {
        "dxt": _rows(dx[0], xp),
        "da_prev": _rows(dh0, xp),
        "dc_prev": _rows(dc0, xp),
        **_lstm_course_gradients(dw_ih, dw_hh, dbias, n_a, xp),
    }


@_course_function
def lstm_backward(da: Any, caches: tuple) -> dict[str, Any]:
    """Gradients of an LSTM over a whole sequence.

    Each step receives ``da[:, :, t]`` plus the carried ``da_prev``, and the carried ``dc_prev``.

    Parameters
    ----------
    da : ndarray, (n_a, m, T_x)
        Gradient of the loss with respect to every hidden state.
    caches : tuple
        From :func:`lstm_forward`.

    Returns
    -------
    dict
        ``dx (n_x, m, T_x)``, ``da0 (n_a, m)``, and for each gate ``dW{f,i,c,o}
        (n_a, n_a + n_x)`` and ``db{f,i,c,o} (n_a, 1)``.
    """
    step_caches, x, record = _unpack_caches(caches, 10, "lstm_forward")
    steps = _check_sequence_gradient(da, step_caches, step_caches[0][0])
    xp = check_same_backend_and_dtype({"da": da, "x": x})
    # The window has its own copy of the gates (the engine's backward consumes them), so the
    # caches can be used again, as the course's can.
    saved = record.window(0, steps)
    n_a = saved.c.shape[2]
    dx, dh0, _, dw_ih, dw_hh, dbias = engine.lstm_backward(_time_major(da, xp), None, None, saved)
    return {
        "dx": _course_layout(dx, xp),
        "da0": _rows(dh0, xp),
        **_lstm_course_gradients(dw_ih, dw_hh, dbias, n_a, xp),
    }
