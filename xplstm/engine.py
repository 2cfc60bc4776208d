"""The sequence engine: whole-sequence LSTM, GRU and tanh-RNN forward and backward.

Layout: time-major ``(T, m, features)``; LSTM gates stacked in torch order ``(i, f, g, o)``;
weights applied as ``x @ W_ih.T`` and ``h @ W_hh.T`` so torch and cuDNN weights load unchanged.

Forward does the input projection for all steps as one GEMM, then per step one recurrent GEMM into
a preallocated buffer and one fused pointwise call. Backward does per step one fused pointwise
call and one GEMM for the carried ``dh``; the weight and input gradients are single large GEMMs
after the loop. Nothing is allocated or checked inside the loops. The pointwise step is a cell
from :func:`xplstm.cells.make_cell`, built once per call. The backend module ``xp`` comes from
the caller (``xp=None``: found once from the arrays at entry) and is kept in the saved record.

Variable lengths follow torch's packed sequences: sequence ``b`` runs steps ``0 .. L_b - 1``; its
final state is the one after step ``L_b - 1`` and its outputs past ``L_b`` are zero. Steps past a
sequence's length are computed on zeroed inputs and then ignored (their gradients are exactly
zero), which keeps the loop free of gathers.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import get_array_module
from .cells import fused_enabled, make_cell
from .workspace import Workspace, allocate

__all__ = [
    "GRUSaved",
    "LSTMSaved",
    "PreparedWeights",
    "RNNSaved",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "lstm_inference",
    "rnn_backward",
    "rnn_forward",
    "with_ones",
]


@dataclass(frozen=True)
class Packing:
    """Variable lengths as a packed batch: sequences sorted longest first, active rows a prefix.

    ``order`` ``(m,)`` sorts the batch by decreasing length (stable); ``inverse`` undoes it;
    ``lengths`` are the sorted lengths; ``active[t]`` is how many sequences run step ``t``
    (the first ``active[t]`` rows of the sorted batch). Steps past every length have 0.
    Each step's recurrent GEMM and pointwise work then cover only its active rows, as cuDNN's
    packed layout does, so a batch costs its real tokens rather than its padded size.
    """

    order: np.ndarray
    inverse: np.ndarray
    lengths: np.ndarray | None
    active: tuple[int, ...]
    identity: bool = False  # ``order`` keeps the caller's order: nothing to permute

    @classmethod
    def of(cls, lengths: np.ndarray, steps: int, order: np.ndarray | None = None) -> Packing:
        """The packing of ``lengths`` (each in ``0..steps``) in ``order`` (default: sorted).

        A given ``order`` must sort ``lengths`` decreasingly (e.g. the order of longer lengths
        that these were clipped from).
        """
        if order is None:
            order = np.argsort(-lengths, kind="stable")
        ordered = lengths[order]
        if np.any(np.diff(ordered) > 0):
            raise ValueError("order must sort lengths from longest to shortest")
        active = (ordered[None, :] > np.arange(steps)[:, None]).sum(axis=1)
        identity = bool(np.all(order == np.arange(order.size)))
        return cls(order, np.argsort(order), ordered, tuple(int(k) for k in active), identity)

    @classmethod
    def for_call(
        cls, lengths: np.ndarray | None, steps: int, batch: int, order: np.ndarray | None = None
    ) -> Packing:
        """:meth:`of` ``lengths``, or with none every row active at every step, unpermuted."""
        if lengths is not None:
            return cls.of(lengths, steps, order)
        everyone = np.arange(batch)
        return cls(everyone, everyone, None, (batch,) * steps, identity=True)

    @property
    def is_identity(self) -> bool:
        return self.identity

    def rows(self, array: Any, xp: Any, axis: int = 0) -> Any:
        """``array`` with its batch axis in packed order (``array`` itself when unchanged)."""
        if array is None or self.identity:
            return array
        return xp.take(array, xp.asarray(self.order), axis=axis)

    def unpack(self, array: Any, xp: Any, axis: int = 0) -> Any:
        """``array`` with its batch axis back in the caller's order."""
        if self.identity:
            return array
        return xp.take(array, xp.asarray(self.inverse), axis=axis)

    def ran(self) -> np.ndarray | None:
        """Flat indices ``t * m + row`` of the steps that ran, in step order (``(T * m, ...)``
        rows of a ``(T, m, ...)`` array), or ``None`` when every row ran every step. The
        weight-gradient GEMMs then take those rows alone: with lengths uniform in ``1..T``
        that halves them."""
        if self.lengths is None or all(count == self.order.size for count in self.active):
            return None
        return np.flatnonzero(_valid_steps(self.lengths, len(self.active)))

    def zero_past_lengths(self, xp: Any, *sequences: Any) -> None:
        """Set the steps past each (sorted) length of ``(T, m, ...)`` ``sequences`` to +0.0:
        rows that never ran hold forward values, or nothing."""
        if self.lengths is None:
            return
        invalid = xp.asarray(~_valid_steps(self.lengths, sequences[0].shape[0]))
        for sequence in sequences:
            sequence[invalid] = 0


class _Record:
    """Deep copies copy the arrays and share the backend module ``xp`` (modules do not copy);
    pickles store ``xp`` by name, so course caches can be saved with the notebook's state."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["xp"] = state["xp"].__name__
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["xp"] = importlib.import_module(state["xp"])
        self.__dict__.update(state)

    def __deepcopy__(self, memo: dict) -> Any:
        fields = {
            field.name: getattr(self, field.name)
            if field.name == "xp"
            else copy.deepcopy(getattr(self, field.name), memo)
            for field in dataclasses.fields(self)  # type: ignore[arg-type]
        }
        return type(self)(**fields)


@dataclass
class LSTMSaved(_Record):
    """What :func:`lstm_forward` keeps for :func:`lstm_backward`.

    ``x_ones`` ``(T, m, n_in + 1)`` is the input with a column of ones appended (see
    :func:`with_ones`); ``gates`` ``(T, m, 4H)`` holds the activated gates and is overwritten by
    the backward pass with the gate gradients; ``c`` is ``(T, m, H)``; ``h`` is ``(T, m, H)``,
    or ``(T, m, P)`` with a projection ``w_hr`` ``(P, H)`` (then ``unprojected`` holds the
    cell outputs ``o * tanh(c)`` ``(T, m, H)`` it maps to ``h``); ``h0`` ``(m, H)`` or
    ``(m, P)`` and ``c0`` ``(m, H)`` are C-contiguous; ``xp`` is the backend of every array here.
    """

    x_ones: Any
    w_ih: Any
    w_hh: Any
    h0: Any
    c0: Any
    gates: Any
    c: Any
    h: Any
    lengths: np.ndarray | None
    fused: bool | None
    xp: Any
    loop: str = "cupy"
    packing: Packing | None = None
    w_hr: Any = None  # (P, H) with a projection (LSTMP), else None
    unprojected: Any = None  # (T, m, H) with a projection: o * tanh(c) before W_hr
    peephole: Any = None  # (3, H) rows (w_ci, w_cf, w_co) with peepholes, else None
    zoneout_c: Any = None  # zoneout's keep of c, (T, m, H) or (m, H), packed; else None
    zoneout_h: Any = None  # the same for h, (T, m, out) or (m, out)
    recurrent_mask: Any = None  # (m, out) recurrent dropout, packed; else None
    c_tilde: Any = None  # (T, m, H) with zoneout of c: the candidates f * c_{t-1} + i * g
    layer_norm: Any = None  # LayerNormSaved of a LayerNorm LSTM, else None

    def window(self, start: int, stop: int) -> LSTMSaved:
        """The record of steps ``start .. stop - 1`` alone, as a forward from ``h[start - 1]``.

        Views of this record's arrays except ``gates`` (copied: a backward overwrites them).
        Only for records without ``lengths``.
        """
        if self.lengths is not None or self.layer_norm is not None:
            raise ValueError("a record with lengths or layer norms has no window view")
        first = start == 0
        return dataclasses.replace(
            self,
            x_ones=self.x_ones[start:stop],
            h0=self.h0 if first else self.h[start - 1],
            c0=self.c0 if first else self.c[start - 1],
            gates=self.gates[start:stop].copy(),
            c=self.c[start:stop],
            h=self.h[start:stop],
            unprojected=None if self.unprojected is None else self.unprojected[start:stop],
            zoneout_c=_steps_of(self.zoneout_c, start, stop),
            zoneout_h=_steps_of(self.zoneout_h, start, stop),
            c_tilde=None if self.c_tilde is None else self.c_tilde[start:stop],
        )


@dataclass
class RNNSaved(_Record):
    """What :func:`rnn_forward` keeps for :func:`rnn_backward`; ``h`` is ``(T, m, H)``.

    :func:`rnn_backward` leaves it intact.
    """

    x_ones: Any
    w_ih: Any
    w_hh: Any
    h0: Any
    h: Any
    lengths: np.ndarray | None
    fused: bool | None
    xp: Any
    nonlinearity: str = "tanh"

    def window(self, start: int, stop: int) -> RNNSaved:
        """The record of steps ``start .. stop - 1`` alone (views), as a forward from
        ``h[start - 1]``. Only for records without ``lengths``."""
        if self.lengths is not None:
            raise ValueError("a record with lengths has no window view")
        return dataclasses.replace(
            self,
            x_ones=self.x_ones[start:stop],
            h0=self.h0 if start == 0 else self.h[start - 1],
            h=self.h[start:stop],
        )


def _steps_of(keep: Any, start: int, stop: int) -> Any:
    """Steps ``start .. stop - 1`` of zoneout's ``keep`` (``(T, m, n)``; an ``(m, n)`` one, or
    ``None``, serves every step)."""
    return keep[start:stop] if keep is not None and keep.ndim == 3 else keep


def _valid_steps(lengths: np.ndarray, steps: int) -> np.ndarray:
    """Boolean ``(T, m)`` mask: step ``t`` of sequence ``b`` is inside its length."""
    return np.arange(steps)[:, None] < lengths[None, :]


def with_ones(
    x: Any, lengths: np.ndarray | None = None, workspace: Workspace | None = None, *, xp: Any = None
) -> Any:
    """A copy of ``x`` ``(T, m, n_in)`` with a column of ones appended: ``(T, m, n_in + 1)``.

    Against weights with the bias appended as a last column, the ones column adds the bias
    inside the input-projection GEMM, and the same GEMM in backward yields the bias gradient,
    so neither needs a pass of its own over ``(T, m, 4H)``. Steps past each length (when given)
    are zero, ones column included.
    """
    xp = get_array_module(x) if xp is None else xp
    steps, batch, n_in = x.shape
    x_ones = allocate(workspace, "x_ones", (steps, batch, n_in + 1), x.dtype, xp)
    x_ones[:, :, :n_in] = x
    x_ones[:, :, n_in] = 1
    if lengths is not None:
        # Assign, not multiply: padding may hold NaN or inf, and NaN * 0 is NaN.
        x_ones[xp.asarray(~_valid_steps(lengths, steps))] = 0
    return x_ones


def _zero_padding(array: Any, lengths: np.ndarray | None, xp: Any) -> Any:
    """``array`` ``(T, m, n)``, or a copy with the steps past each length set to zero."""
    if lengths is None:
        return array
    valid = xp.asarray(_valid_steps(lengths, array.shape[0]))
    return xp.where(valid[:, :, None], array, array.dtype.type(0))


def _at_last_step(sequence: Any, lengths: np.ndarray | None, xp: Any) -> Any:
    """``sequence[L_b - 1, b]`` for every ``b``: ``(T, m, H) -> (m, H)`` (a copy)."""
    if lengths is None:
        return sequence[-1].copy()
    batch = xp.arange(sequence.shape[1])
    return sequence[xp.asarray(lengths - 1), batch]


PROJECTION_CHUNK_BYTES = 3 * 2**19
"""About how many bytes of input and projected gates one input-projection GEMM covers (NumPy)."""
GPU_PROJECTION_CHUNK_BYTES = 16 * 2**20
"""The same on CuPy: larger, as each GEMM launch costs microseconds of host time."""


def projection_chunk(batch: int, width: int, rows: int, itemsize: int, xp: Any) -> int:
    """Steps per input-projection GEMM: ``PROJECTION_CHUNK_BYTES`` (``GPU_...`` on CuPy) of
    ``(m, width + rows)`` per step.

    The projection runs in chunks of this many steps (from step 0) in every forward, so that
    :func:`lstm_inference`, which projects one chunk at a time, issues exactly the same GEMMs as
    :func:`lstm_forward`: a BLAS may round a row differently in a GEMM of another row count.
    A few-MiB GEMM is still a large one, so this costs nothing measurable.
    """
    budget = PROJECTION_CHUNK_BYTES if xp is np else GPU_PROJECTION_CHUNK_BYTES
    return max(1, budget // (batch * (width + rows) * itemsize))


def _joined(w_ih: Any, bias: Any, xp: Any, workspace: Workspace | None = None) -> Any:
    """``[w_ih | bias]`` ``(G, n_in + 1)`` (zeros for no ``bias``): what the ones column of
    :func:`with_ones` meets in the input projection."""
    rows, n_in = w_ih.shape
    joined = allocate(workspace, "w_ih_and_bias", (rows, n_in + 1), w_ih.dtype, xp)
    joined[:, :-1] = w_ih
    joined[:, -1] = 0 if bias is None else bias
    return joined


def _input_projection(x_ones: Any, joined: Any, xp: Any, workspace: Workspace | None = None) -> Any:
    """``x @ w_ih.T + bias`` for all steps: ``(T, m, n_in + 1) -> (T, m, G)`` against
    ``joined`` (:func:`_joined` of ``w_ih`` and ``bias``), one GEMM per
    :func:`projection_chunk` steps."""
    steps, batch, width = x_ones.shape
    rows = joined.shape[0]
    projected = allocate(workspace, "projected", (steps, batch, rows), x_ones.dtype, xp)
    chunk = projection_chunk(batch, width, rows, x_ones.dtype.itemsize, xp)
    for start in range(0, steps, chunk):
        stop = min(start + chunk, steps)
        xp.matmul(
            x_ones[start:stop].reshape((stop - start) * batch, width),
            joined.T,
            out=projected[start:stop].reshape((stop - start) * batch, rows),
        )
    return projected


@dataclass(frozen=True)
class PreparedWeights:
    """The weight layouts a sequence call derives from its arguments: ``joined``
    (:func:`_joined` of ``w_ih`` and the input bias; no bias for the LayerNorm LSTM) and
    ``w_hh_t``, a C-contiguous ``w_hh.T`` (measured faster per step than the view).
    :func:`lstm_inference` makes them once for all its chunks: per chunk they cost more than its
    steps in float64."""

    joined: Any
    w_hh_t: Any

    @classmethod
    def of(
        cls, w_ih: Any, w_hh: Any, bias: Any, xp: Any, workspace: Workspace | None = None
    ) -> PreparedWeights:
        w_hh_t = allocate(workspace, "w_hh_t", w_hh.shape[::-1], w_hh.dtype, xp)
        w_hh_t[...] = w_hh.T
        return cls(_joined(w_ih, bias, xp, workspace), w_hh_t)


def _weight_gradients(
    dpre: Any, x_ones: Any, h: Any, h0: Any, w_ih: Any, xp: Any
) -> tuple[Any, Any, Any, Any]:
    """Input, weight and bias gradients from the per-step pre-activation gradients.

    ``dpre`` is ``(T, m, G)``; returns ``dx (T, m, n_in)``, ``dw_ih (G, n_in)``, ``dw_hh (G, H)``,
    ``db (G,)``.
    """
    dx, dw_ih, db = _input_gradients(dpre, x_ones, w_ih, xp)
    return dx, dw_ih, _recurrent_weight_gradient(dpre, h, h0, xp), db


def _input_gradients(
    dpre: Any, x_ones: Any, w_ih: Any, xp: Any, ran: np.ndarray | None = None
) -> tuple[Any, Any, Any]:
    """``dx (T, m, n_in)``, ``dw_ih (G, n_in)`` and the input bias's ``db (G,)`` from the
    input projection's gradients ``dpre`` ``(T, m, G)``, as two GEMMs (the ones column of
    ``x_ones`` yields ``db``); over the rows ``ran`` (see :meth:`Packing.ran`) alone when given,
    the others' ``dpre`` being zero."""
    steps, batch, width = dpre.shape
    n_in = x_ones.shape[2] - 1
    flat = dpre.reshape(steps * batch, width)
    inputs = x_ones.reshape(steps * batch, n_in + 1)
    if ran is None:
        dx = xp.matmul(flat, w_ih).reshape(steps, batch, n_in)
    else:
        rows = xp.asarray(ran)
        flat, inputs = xp.take(flat, rows, axis=0), xp.take(inputs, rows, axis=0)
        dx = xp.zeros((steps * batch, n_in), dtype=dpre.dtype)
        dx[rows] = xp.matmul(flat, w_ih)
        dx = dx.reshape(steps, batch, n_in)
    dw_ih_and_bias = xp.matmul(flat.T, inputs)
    dw_ih = xp.ascontiguousarray(dw_ih_and_bias[:, :n_in])
    db = dw_ih_and_bias[:, n_in].copy()
    return dx, dw_ih, db


def _recurrent_weight_gradient(
    dpre: Any, h: Any, h0: Any, xp: Any, ran: np.ndarray | None = None
) -> Any:
    """``dW_hh (G, H)``: the sum over steps of ``dpre[t].T @ h[t - 1]`` (``h0`` before step 0),
    as two GEMMs; ``dpre`` ``(T, m, G)`` are the gradients of the recurrent products. Over the
    rows ``ran`` (see :meth:`Packing.ran`) alone when given."""
    steps, batch, width = dpre.shape
    hidden = h.shape[2]
    if ran is not None:
        first = int(np.searchsorted(ran, batch))  # step 0 ran rows 0 .. first - 1
        grads = xp.take(dpre.reshape(steps * batch, width), xp.asarray(ran), axis=0)
        dw_hh = xp.matmul(grads[:first].T, h0[:first])
        if first < ran.size:  # the steps after the first read the h of the step before
            previous = xp.take(h.reshape(steps * batch, hidden), xp.asarray(ran[first:] - batch),
                               axis=0)  # fmt: skip
            dw_hh += xp.matmul(grads[first:].T, previous)
        return dw_hh
    dw_hh = xp.matmul(dpre[0].T, h0)
    if steps > 1:
        dw_hh += xp.matmul(
            dpre[1:].reshape((steps - 1) * batch, width).T,
            h[:-1].reshape((steps - 1) * batch, hidden),
        )
    return dw_hh


def _final_gradient_schedule(final: Any, lengths: np.ndarray | None, xp: Any) -> dict[int, Any]:
    """Where a gradient on the final state enters the backward loop: ``{step: row indices}``.

    Without lengths it all enters before step ``T - 1`` (handled by the caller); with lengths,
    sequence ``b`` receives it at step ``L_b - 1``.
    """
    if final is None or lengths is None:
        return {}
    return {
        int(step): xp.asarray(np.nonzero(lengths == step + 1)[0]) for step in np.unique(lengths - 1)
    }


def _resolve_loop(
    xp: Any, fused: bool | None, gpu_loop: str | None, variant: str | None = None
) -> str:
    """The step loop: ``"cupy"`` on NumPy (the plain loop), for the unfused path, which is
    separate ufunc launches by definition, and for a ``variant`` of the plain LSTM cell
    (``"proj_size"``, ``"peephole"``: the planned loops run the plain cell only); else the
    choice. Asking for a planned ``gpu_loop`` together with ``fused=False`` or a variant in one
    call is an error."""
    if xp is np:
        return "cupy"
    from .cuda.plan import gpu_loop as resolve

    loop = resolve(gpu_loop)
    if loop != "cupy" and variant is not None:
        if gpu_loop is not None:
            raise ValueError(
                f"gpu_loop={gpu_loop!r} runs the plain LSTM cell only; an LSTM with {variant} "
                "runs the 'cupy' loop"
            )
        return "cupy"
    if loop != "cupy" and not fused_enabled(fused):
        if gpu_loop is not None:
            raise ValueError(
                f"gpu_loop={gpu_loop!r} launches the fused kernels, but fused=False (or "
                "XPLSTM_FUSED=0) asks for the unfused path; use gpu_loop='cupy' for it"
            )
        return "cupy"
    return loop


def _plan(xp: Any, dtype: Any, batch: int, hidden: int, loop: str) -> Any:
    from .cuda.plan import LSTMPlan

    return LSTMPlan(xp, dtype, batch, hidden, graph=loop == "graph")


def _zeros_or(array: Any, shape: tuple[int, ...], dtype: Any, xp: Any) -> Any:
    """``array`` as a C-contiguous array (the cells index it), or zeros when ``None``."""
    return xp.zeros(shape, dtype=dtype) if array is None else xp.ascontiguousarray(array)


def lstm_forward(
    x: Any,
    w_ih: Any,
    w_hh: Any,
    bias: Any = None,
    h0: Any = None,
    c0: Any = None,
    *,
    lengths: np.ndarray | None = None,
    fused: bool | None = None,
    workspace: Workspace | None = None,
    xp: Any = None,
    gpu_loop: str | None = None,
    order: np.ndarray | None = None,
    w_hr: Any = None,
    peephole: Any = None,
    zoneout_c: Any = None,
    zoneout_h: Any = None,
    recurrent_mask: Any = None,
    layer_norm: dict[str, Any] | None = None,
    prepared: PreparedWeights | None = None,
) -> tuple[Any, Any, Any, LSTMSaved]:
    """Run an LSTM over a whole sequence.

    Parameters
    ----------
    x : ndarray, (T, m, n_in)
    w_ih : ndarray, (4H, n_in)
    w_hh : ndarray, (4H, H), or (4H, P) with a projection
    bias : ndarray, (4H,), optional
        ``b_ih + b_hh``.
    h0 : ndarray, (m, H), or (m, P) with a projection, optional
    c0 : ndarray, (m, H), optional
        Initial states (zeros when ``None``).
    lengths : ndarray of int, (m,), optional
        Steps per sequence, each in ``1..T`` (host NumPy array, already validated).
    fused : bool, optional
        CuPy only: fused CUDA kernels or separate ufuncs
        (see :func:`xplstm.cells.fused_enabled`).
    workspace : Workspace, optional
        Take the large buffers from here (the caller must not reuse it while ``saved`` is
        still needed); new arrays when ``None``.
    xp : module, optional
        ``numpy`` or ``cupy``, the backend of every array; found from them when ``None``.
    gpu_loop : {"cupy", "plan", "graph"}, optional
        CuPy only: how the steps are issued (see :func:`xplstm.cuda.plan.gpu_loop`; default
        ``XPLSTM_GPU_LOOP``, else ``"cupy"``). The backward pass uses the same loop.
    order : ndarray of int, (m,), optional
        With ``lengths``: the packed order to use (see :class:`Packing`); by default the
        batch sorted by decreasing length. :func:`lstm_inference` passes the order of the whole
        sequence to each chunk, so that every GEMM sees the same rows in the same order.
    w_hr : ndarray, (P, H), optional
        A projection (torch's ``proj_size``, LSTMP): ``h_t = (o * tanh(c_t)) @ w_hr.T`` is the
        output and the recurrent input, ``P < H``; CuPy runs it on the ``"cupy"`` loop.
    peephole : ndarray, (3, H), optional
        Peephole weights, rows ``(w_ci, w_cf, w_co)`` (Gers et al. 2002): ``i`` and ``f`` also
        see ``w_ci * c_{t-1}`` and ``w_cf * c_{t-1}``, ``o`` sees ``w_co * c_t``. CuPy runs them
        on the ``"cupy"`` loop.
    zoneout_c, zoneout_h : ndarray, (T, m, H) and (T, m, out), or (m, H) and (m, out), optional
        Zoneout (Krueger et al. 2016) of the cell and hidden states (``out`` = ``P`` with a
        projection, else ``H``): after each step ``c_t = k_c * c_{t-1} + (1 - k_c) * c~_t`` and
        ``h_t = k_h * h_{t-1} + (1 - k_h) * h~_t``, where ``c~_t``, ``h~_t`` are the step's
        results from the kept states and ``k`` is ``zoneout_*[t]`` (Bernoulli masks in
        training), or the same ``(m, ...)`` array every step (the probabilities, in
        evaluation). Step ``t`` is the ``t``-th step this call runs.
    recurrent_mask : ndarray, (m, out), optional
        Variational recurrent dropout (Gal and Ghahramani 2016): ``h_{t-1} * recurrent_mask``
        enters the recurrent GEMM at every step (the mask is already scaled).
    layer_norm : dict of str to ndarray, optional
        A LayerNorm LSTM (Ba, Kiros and Hinton 2016, section 3.1): the gains and shifts
        ``layer_norm_weight_ih``, ``layer_norm_bias_ih``, ``layer_norm_weight_hh``,
        ``layer_norm_bias_hh`` ``(4H,)`` and ``layer_norm_weight_c``, ``layer_norm_bias_c``
        ``(H,)``: the gates are ``LN(x_t @ w_ih.T) + LN(h_{t-1} @ w_hh.T) + bias`` and
        ``h_t = o * tanh(LN(c_t))``, each LN over a sequence's whole row. Not with ``w_hr`` or
        ``peephole``.
    prepared : PreparedWeights, optional
        :meth:`PreparedWeights.of` these weights (and ``bias``, or ``None`` with
        ``layer_norm``), when the caller runs many calls on them; made here when ``None``.
    The zoneout and recurrent-dropout arrays are in the caller's batch order; all these
    variants run on the ``"cupy"`` loop.

    Returns
    -------
    h : ndarray, (T, m, H), or (T, m, P) with a projection
        Outputs (zero past each length). Also kept in ``saved``: treat it as read-only until
        :func:`lstm_backward` has run.
    h_n : ndarray, (m, H), or (m, P) with a projection
    c_n : ndarray, (m, H)
        Final states (at each sequence's last valid step).
    saved : LSTMSaved
    """
    if xp is None:
        xp = get_array_module(x, w_ih, w_hh, bias, h0, c0, w_hr, peephole, zoneout_c, zoneout_h,
                              recurrent_mask)  # fmt: skip
    steps, batch, _ = x.shape
    hidden = w_ih.shape[0] // 4
    width = w_hh.shape[1]  # of h: H, or P with a projection
    dtype = x.dtype
    # Longest first, so each step's active sequences are the first rows.
    packing = Packing.for_call(lengths, steps, batch, order)
    x, h0, c0 = packing.rows(x, xp, axis=1), packing.rows(h0, xp), packing.rows(c0, xp)
    zoneout_c, zoneout_h = (_packed_keep(keep, packing, xp) for keep in (zoneout_c, zoneout_h))
    recurrent_mask = packing.rows(recurrent_mask, xp)
    lengths, active = packing.lengths, packing.active
    x_ones = with_ones(x, lengths, workspace, xp=xp)
    h0 = _zeros_or(h0, (batch, width), dtype, xp)
    c0 = _zeros_or(c0, (batch, hidden), dtype, xp)

    variant = _variant(w_hr, peephole, zoneout_c, zoneout_h, recurrent_mask, layer_norm)
    loop = _resolve_loop(xp, fused, gpu_loop, variant)
    normalized: LayerNormSaved | None = None
    if layer_norm is not None and (w_hr is not None or peephole is not None):
        other = "w_hr (proj_size)" if w_hr is not None else "peephole"
        raise ValueError(f"layer_norm does not combine with {other}")
    if prepared is None:  # with layer norms the bias comes after the input normalization
        shift = None if layer_norm is not None else bias
        prepared = PreparedWeights.of(w_ih, w_hh, shift, xp, workspace)
    gates = _input_projection(x_ones, prepared.joined, xp, workspace)
    if layer_norm is not None:
        normalized = _normalize_inputs(gates, layer_norm, bias, fused, workspace, xp)
    c = allocate(workspace, "c", (steps, batch, hidden), dtype, xp)
    h = allocate(workspace, "h", (steps, batch, width), dtype, xp)
    recurrent = allocate(workspace, "recurrent", (batch, 4 * hidden), dtype, xp)
    unprojected: Any = None
    c_tilde: Any = None
    if w_hr is not None:
        unprojected = allocate(workspace, "unprojected", (steps, batch, hidden), dtype, xp)
        w_hr_t = xp.ascontiguousarray(w_hr.T)
    if zoneout_c is not None:  # the candidates c~_t, which the backward step differentiates
        c_tilde = allocate(workspace, "c_tilde", (steps, batch, hidden), dtype, xp)
    if loop == "cupy":
        kind = _lstm_kind(peephole, layer_norm)
        cell = make_cell(kind, xp, dtype, batch, hidden, fused=fused)
        weights = _cell_weights(peephole, layer_norm, xp)
        w_hh_t = prepared.w_hh_t
        zoneout = {
            "c": _zoneout(zoneout_c, xp, dtype, batch, hidden, fused),
            "h": _zoneout(zoneout_h, xp, dtype, batch, width, fused),
        }
        dropped = None if recurrent_mask is None else xp.empty((batch, width), dtype=dtype)
        # With a projection the cell writes o * tanh(c_t) to unprojected[t] and one more GEMM
        # maps it to h[t].
        cell_output = h if unprojected is None else unprojected
        cell_state = c if c_tilde is None else c_tilde
        h_prev, c_prev = h0, c0
        for t, rows in enumerate(active):
            if not rows:
                break  # every sequence has ended
            recurrent_input = h_prev[:rows]
            if dropped is not None:
                recurrent_input = xp.multiply(recurrent_input, recurrent_mask[:rows],
                                              out=dropped[:rows])  # fmt: skip
            # The LayerNorm step normalizes the product where it lands, kept for backward.
            product = recurrent[:rows] if normalized is None else normalized.recurrent[t, :rows]
            xp.matmul(recurrent_input, w_hh_t, out=product)
            cell.forward(gates[t, :rows], product, c_prev[:rows], cell_state[t, :rows],
                         cell_output[t, :rows], *weights,
                         *_step_statistics(normalized, t, rows))  # fmt: skip
            if unprojected is not None:
                xp.matmul(unprojected[t, :rows], w_hr_t, out=h[t, :rows])
            if zoneout["c"] is not None:
                c[t, :rows] = c_tilde[t, :rows]
                zoneout["c"].forward(_keep_at(zoneout_c, t, rows), c_prev[:rows], c[t, :rows])
            if zoneout["h"] is not None:
                zoneout["h"].forward(_keep_at(zoneout_h, t, rows), h_prev[:rows], h[t, :rows])
            h_prev, c_prev = h[t], c[t]
    else:
        w_hh = xp.ascontiguousarray(w_hh)
        plan = _plan(xp, dtype, batch, hidden, loop)
        plan.forward(gates, recurrent, w_hh, h0, c0, c, h, active)

    h_n = _at_last_step(h, lengths, xp)
    c_n = _at_last_step(c, lengths, xp)
    # Steps past a length never ran: their h is set to +0.0 (the outputs' padding), and
    # backward reads nothing else there.
    packing.zero_past_lengths(xp, *(h,) if unprojected is None else (h, unprojected))
    output, h_n, c_n = (
        packing.unpack(h, xp, axis=1),
        packing.unpack(h_n, xp),
        packing.unpack(c_n, xp),
    )
    saved = LSTMSaved(
        x_ones, w_ih, w_hh, h0, c0, gates, c, h, lengths, fused, xp, loop, packing,
        w_hr, unprojected, peephole, zoneout_c, zoneout_h, recurrent_mask, c_tilde, normalized,
    )  # fmt: skip
    return output, h_n, c_n, saved


_LAYER_NORM_ROLES = (
    "layer_norm_weight_ih", "layer_norm_bias_ih", "layer_norm_weight_hh", "layer_norm_bias_hh",
    "layer_norm_weight_c", "layer_norm_bias_c",
)  # fmt: skip


@dataclass
class LayerNormSaved:
    """What a LayerNorm LSTM forward keeps besides :class:`LSTMSaved`'s arrays.

    ``weights`` are the gains and shifts by role (see :func:`lstm_forward`); ``x_hat``
    ``(T, m, 4H)`` and ``rstd_x`` ``(T, m)`` the normalized input projections and their
    reciprocal standard deviations; ``recurrent`` ``(T, m, 4H)`` and ``rstd_h`` the same for the
    recurrent products; ``c_hat`` ``(T, m, H)`` and ``rstd_c`` for the cell states.
    """

    weights: dict[str, Any]
    x_hat: Any
    rstd_x: Any
    recurrent: Any
    rstd_h: Any
    c_hat: Any
    rstd_c: Any


def _normalize_inputs(
    gates: Any,
    layer_norm: dict[str, Any],
    bias: Any,
    fused: bool | None,
    workspace: Workspace | None,
    xp: Any,
) -> LayerNormSaved:
    """Normalize the input projections ``gates`` ``(T, m, 4H)`` of every step in place to
    ``LN(.) + bias``, and allocate the per-step statistics the loop fills."""
    steps, batch, width = gates.shape
    hidden, dtype = width // 4, gates.dtype
    weights = {role: xp.ascontiguousarray(layer_norm[role]) for role in _LAYER_NORM_ROLES}
    shift = weights["layer_norm_bias_ih"]
    if bias is not None:
        shift = shift + bias
    normalized = LayerNormSaved(
        weights,
        allocate(workspace, "x_hat", (steps, batch, width), dtype, xp),
        allocate(workspace, "rstd_x", (steps, batch), dtype, xp),
        allocate(workspace, "recurrent_hat", (steps, batch, width), dtype, xp),
        allocate(workspace, "rstd_h", (steps, batch), dtype, xp),
        allocate(workspace, "c_hat", (steps, batch, hidden), dtype, xp),
        allocate(workspace, "rstd_c", (steps, batch), dtype, xp),
    )
    steps_cell = make_cell("lstm_layer_norm", xp, dtype, batch, hidden, fused=fused)
    steps_cell.normalize_inputs(
        gates.reshape(steps * batch, width), weights["layer_norm_weight_ih"], shift,
        normalized.x_hat.reshape(steps * batch, width), normalized.rstd_x.reshape(-1),
    )  # fmt: skip
    return normalized


def _lstm_kind(peephole: Any, layer_norm: Any) -> str:
    if layer_norm is not None:
        return "lstm_layer_norm"
    return "lstm" if peephole is None else "lstm_peephole"


def _cell_weights(peephole: Any, layer_norm: Any, xp: Any) -> tuple[Any, ...]:
    """The weights the cell's step takes after its buffers."""
    if layer_norm is not None:
        roles = ("layer_norm_weight_hh", "layer_norm_bias_hh", "layer_norm_weight_c",
                 "layer_norm_bias_c")  # fmt: skip
        return tuple(xp.ascontiguousarray(layer_norm[role]) for role in roles)
    return () if peephole is None else (xp.ascontiguousarray(peephole),)


def _step_statistics(normalized: LayerNormSaved | None, t: int, rows: int) -> tuple[Any, ...]:
    """The LayerNorm step's saved statistics at step ``t`` (nothing for the other cells)."""
    if normalized is None:
        return ()
    return normalized.rstd_h[t, :rows], normalized.c_hat[t, :rows], normalized.rstd_c[t, :rows]


def _variant(w_hr: Any, peephole: Any, *masks: Any) -> str | None:
    """The name of the first variant of the plain LSTM cell in use (for messages), or None.

    ``masks`` are ``zoneout_c``, ``zoneout_h``, ``recurrent_mask`` and ``layer_norm``."""
    names = ("proj_size", "peephole", "zoneout", "zoneout", "recurrent_dropout", "layer_norm")
    for name, value in zip(names, (w_hr, peephole, *masks), strict=True):
        if value is not None:
            return name
    return None


def _packed_keep(keep: Any, packing: Packing, xp: Any) -> Any:
    """Zoneout's ``keep`` (``(T, m, n)`` per step or ``(m, n)`` for all) in packed row order,
    C-contiguous (the kernels index it)."""
    if keep is None:
        return None
    return xp.ascontiguousarray(packing.rows(keep, xp, axis=keep.ndim - 2))


def _keep_at(keep: Any, step: int, rows: int) -> Any:
    """The first ``rows`` rows of zoneout's ``keep`` at ``step``."""
    return keep[step, :rows] if keep.ndim == 3 else keep[:rows]


def _zoneout(keep: Any, xp: Any, dtype: Any, batch: int, width: int, fused: bool | None) -> Any:
    """The zoneout blend for states of ``width`` features, or ``None`` without ``keep``."""
    return None if keep is None else make_cell("zoneout", xp, dtype, batch, width, fused=fused)


def lstm_inference(
    x: Any,
    w_ih: Any,
    w_hh: Any,
    bias: Any = None,
    h0: Any = None,
    c0: Any = None,
    *,
    lengths: np.ndarray | None = None,
    fused: bool | None = None,
    xp: Any = None,
    gpu_loop: str | None = None,
    w_hr: Any = None,
    peephole: Any = None,
    zoneout_c: Any = None,
    zoneout_h: Any = None,
    recurrent_mask: Any = None,
    layer_norm: dict[str, Any] | None = None,
) -> tuple[Any, Any, Any]:
    """:func:`lstm_forward` without a record, for inference: ``(h, h_n, c_n)``, bitwise the same.

    Runs :func:`lstm_forward` on one :func:`projection_chunk` of steps at a time (the chunks its
    own input projection uses) from the state the previous chunk ended in, copies each chunk's
    outputs into ``h`` and drops its record, so besides ``h`` only one chunk's buffers (input
    with ones, gates, cell states) are alive at a time. Arguments as for :func:`lstm_forward`;
    nothing can be backpropagated.
    """
    if xp is None:
        xp = get_array_module(x, w_ih, w_hh, bias, h0, c0, w_hr, peephole, zoneout_c, zoneout_h,
                              recurrent_mask)  # fmt: skip
    steps, batch, n_in = x.shape
    hidden, width = w_ih.shape[0] // 4, w_hh.shape[1]
    chunk = projection_chunk(batch, n_in + 1, w_ih.shape[0], x.dtype.itemsize, xp)
    h = xp.empty((steps, batch, width), dtype=x.dtype)
    h_n = xp.empty((batch, width), dtype=x.dtype)
    c_n = xp.empty((batch, hidden), dtype=x.dtype)
    workspace = Workspace()  # one chunk's buffers, reused by the next chunk
    prepared = PreparedWeights.of(w_ih, w_hh, None if layer_norm is not None else bias, xp)
    order = None if lengths is None else Packing.of(lengths, steps).order
    h_prev, c_prev = h0, c0
    for start in range(0, steps, chunk):
        stop = min(start + chunk, steps)
        # Steps each sequence has in this chunk: 0 once it has ended (its rows then never run),
        # the whole chunk while it goes on; packed in the whole sequence's order throughout.
        part = None if lengths is None else np.clip(lengths - start, 0, stop - start)
        h_part, h_prev, c_prev, _ = lstm_forward(
            x[start:stop], w_ih, w_hh, bias, h_prev, c_prev,
            lengths=part, fused=fused, workspace=workspace, xp=xp, gpu_loop=gpu_loop,
            order=order, w_hr=w_hr, peephole=peephole,
            zoneout_c=_steps_of(zoneout_c, start, stop),
            zoneout_h=_steps_of(zoneout_h, start, stop), recurrent_mask=recurrent_mask,
            layer_norm=layer_norm, prepared=prepared,
        )  # fmt: skip
        h[start:stop] = h_part
        if lengths is not None:
            ending = xp.asarray(np.nonzero((lengths > start) & (lengths <= stop))[0])
            h_n[ending] = h_prev[ending]
            c_n[ending] = c_prev[ending]
    if lengths is None:
        h_n[...] = h_prev
        c_n[...] = c_prev
    return h, h_n, c_n


def lstm_backward(dy: Any, dh_n: Any, dc_n: Any, saved: LSTMSaved) -> tuple[Any, ...]:
    """Backpropagate through :func:`lstm_forward`; consumes ``saved`` (its gates are overwritten).

    Parameters
    ----------
    dy : ndarray, (T, m, H), or (T, m, P) with a projection, optional
        Gradient with respect to the outputs ``h`` (``None`` for zeros). Steps past a length
        are ignored.
    dh_n : ndarray, (m, H), or (m, P) with a projection, optional
    dc_n : ndarray, (m, H), optional
        Gradients with respect to the final states (``None`` for zeros).
    saved : LSTMSaved

    Returns
    -------
    dx : ndarray, (T, m, n_in)
    dh0 : ndarray, (m, H), or (m, P) with a projection
    dc0 : ndarray, (m, H)
    dw_ih : ndarray, (4H, n_in)
    dw_hh : ndarray, (4H, H), or (4H, P) with a projection
    dbias : ndarray, (4H,)
        Gradient with respect to ``bias`` (and so to each of ``b_ih`` and ``b_hh``).
    variants : dict of str to ndarray
        Only with a projection or peepholes (a seventh entry): the gradients with respect to
        ``w_hr`` (key ``"w_hr"``, ``(P, H)``) and ``peephole`` (key ``"peephole"``, ``(3, H)``).
    """
    gates, c, lengths, xp = saved.gates, saved.c, saved.lengths, saved.xp
    steps, batch, hidden = c.shape
    width = saved.h.shape[2]  # H, or P with a projection
    dtype = c.dtype
    packing = saved.packing or Packing.for_call(None, steps, batch)
    dy, dh_n, dc_n = packing.rows(dy, xp, axis=1), packing.rows(dh_n, xp), packing.rows(dc_n, xp)
    active = packing.active
    dy = _zero_padding(_zeros_or(dy, (steps, batch, width), dtype, xp), lengths, xp)
    dh = xp.zeros((batch, width), dtype=dtype)
    dc = xp.zeros((batch, hidden), dtype=dtype)
    if lengths is None:
        if dh_n is not None:
            dh[...] = dh_n
        if dc_n is not None:
            dc[...] = dc_n
    entries_h = _final_gradient_schedule(dh_n, lengths, xp)
    entries_c = _final_gradient_schedule(dc_n, lengths, xp)

    w_hh = saved.w_hh
    w_hr, d_projected = saved.w_hr, None
    if w_hr is not None:  # the gradients at h[t], kept for dW_hr; zero where a step did not run
        d_projected = xp.zeros((steps, batch, width), dtype=dtype)
        d_unprojected = xp.empty((batch, hidden), dtype=dtype)
        nothing_carried = xp.zeros((batch, hidden), dtype=dtype)  # the cell adds it to its dy
    zoneout_c, zoneout_h, recurrent_mask = saved.zoneout_c, saved.zoneout_h, saved.recurrent_mask
    normalized = saved.layer_norm
    d_recurrent = gates  # the gradients at the recurrent products: the gates' but with LN
    if normalized is not None:
        d_recurrent = xp.empty((steps, batch, 4 * hidden), dtype=dtype)
        d_n = xp.empty((steps, batch, hidden), dtype=dtype)
    if saved.loop == "cupy":
        peephole = saved.peephole
        cell = make_cell(_lstm_kind(peephole, normalized), xp, dtype, batch, hidden,
                         fused=saved.fused)  # fmt: skip
        weights = _cell_weights(peephole, None if normalized is None else normalized.weights, xp)
        zoneout = {
            "c": _zoneout(zoneout_c, xp, dtype, batch, hidden, saved.fused),
            "h": _zoneout(zoneout_h, xp, dtype, batch, width, saved.fused),
        }
        # What zoneout carries straight to the previous states, added after the step.
        carried_c: Any = None if zoneout_c is None else xp.empty((batch, hidden), dtype=dtype)
        carried_h: Any = None if zoneout_h is None else xp.empty((batch, width), dtype=dtype)
        carried_nothing_h: Any = (
            None if zoneout_h is None else xp.zeros((batch, width), dtype=dtype)
        )
        cell_state = c if saved.c_tilde is None else saved.c_tilde
        for t in range(steps - 1, -1, -1):
            rows = active[t]
            if not rows:
                continue
            if t in entries_h:
                dh[entries_h[t]] += dh_n[entries_h[t]]
            if t in entries_c:
                dc[entries_c[t]] += dc_n[entries_c[t]]
            c_prev = c[t - 1] if t > 0 else saved.c0
            d_output, d_carried = dy[t, :rows], dh[:rows]
            if zoneout["h"] is not None:  # split the gradient at h_t: h~_t and h_{t-1}
                d_carried += d_output
                zoneout["h"].backward(_keep_at(zoneout_h, t, rows), d_carried, carried_h[:rows])
                d_output, d_carried = d_carried, carried_nothing_h[:rows]
            if zoneout["c"] is not None:  # and at c_t: c~_t and c_{t-1}
                zoneout["c"].backward(_keep_at(zoneout_c, t, rows), dc[:rows], carried_c[:rows])
            if d_projected is not None:  # back through h[t] = unprojected[t] @ w_hr.T first
                xp.add(d_output, d_carried, out=d_projected[t, :rows])
                xp.matmul(d_projected[t, :rows], w_hr, out=d_unprojected[:rows])
                d_output, d_carried = d_unprojected[:rows], nothing_carried[:rows]
            extras: tuple[Any, ...] = ()
            if normalized is not None:
                extras = (*_step_statistics(normalized, t, rows), normalized.recurrent[t, :rows],
                          d_recurrent[t, :rows], d_n[t, :rows])  # fmt: skip
            cell.backward(gates[t, :rows], d_output, d_carried, dc[:rows], c_prev[:rows],
                          cell_state[t, :rows], *weights, *extras)  # fmt: skip
            xp.matmul(d_recurrent[t, :rows], w_hh, out=dh[:rows])
            if recurrent_mask is not None:
                dh[:rows] *= recurrent_mask[:rows]
            if carried_h is not None:
                dh[:rows] += carried_h[:rows]
            if carried_c is not None:
                dc[:rows] += carried_c[:rows]
    else:
        entries: dict[int, list[tuple[Any, Any, Any]]] = {}
        for schedule, final, carried in ((entries_h, dh_n, dh), (entries_c, dc_n, dc)):
            for t, rows in schedule.items():
                entries.setdefault(t, []).append((rows, final, carried))
        plan = _plan(xp, dtype, batch, hidden, saved.loop)
        plan.backward(gates, dy, dh, dc, xp.ascontiguousarray(w_hh), saved.c0, c, entries, active)

    # The gradients of rows that did not run; with peepholes also their cell states, which the
    # peephole gradient multiplies (rows that never ran hold whatever the buffer held).
    cell_state = c if saved.c_tilde is None else saved.c_tilde
    peephole_states = () if saved.peephole is None else (c, cell_state)
    layer_norm_states: tuple[Any, ...] = ()
    if normalized is not None:
        layer_norm_states = (d_recurrent, d_n, normalized.recurrent, normalized.c_hat)
    packing.zero_past_lengths(xp, gates, *peephole_states, *layer_norm_states)
    h_seen, h0_seen = saved.h, saved.h0  # what the recurrent GEMMs multiplied
    if recurrent_mask is not None:
        h_seen, h0_seen = saved.h * recurrent_mask, saved.h0 * recurrent_mask
    variants = {}
    ran = packing.ran()
    if normalized is None:
        dx, dw_ih, dbias = _input_gradients(gates, saved.x_ones, saved.w_ih, xp, ran)
    else:
        variants = _layer_norm_gradients(gates, d_n, normalized, saved.fused, xp)
        dbias = variants["layer_norm_bias_ih"].copy()  # the bias enters where the shifts do
        dx, dw_ih, _ = _input_gradients(gates, saved.x_ones, saved.w_ih, xp, ran)
    dw_hh = _recurrent_weight_gradient(d_recurrent, h_seen, h0_seen, xp, ran)
    dx, dh, dc = packing.unpack(dx, xp, axis=1), packing.unpack(dh, xp), packing.unpack(dc, xp)
    if d_projected is not None:
        # dW_hr = sum over steps of dh_total[t].T @ unprojected[t]: one GEMM (padding is zero)
        variants["w_hr"] = xp.matmul(
            d_projected.reshape(steps * batch, width).T,
            saved.unprojected.reshape(steps * batch, hidden),
        )
    if saved.peephole is not None:
        variants["peephole"] = _peephole_gradient(gates, c, cell_state, saved.c0, xp)
    if not variants:
        return dx, dh, dc, dw_ih, dw_hh, dbias
    return dx, dh, dc, dw_ih, dw_hh, dbias, variants


def _layer_norm_gradients(
    dpre: Any, d_n: Any, normalized: LayerNormSaved, fused: bool | None, xp: Any
) -> dict[str, Any]:
    """The gains' and shifts' gradients by role; ``dpre`` ``(T, m, 4H)``, the gradients at
    the pre-activations, becomes the gradient at the input projections (before their
    normalization). ``d_n`` ``(T, m, H)`` holds the gradients at ``gain_c * c_hat + shift_c``;
    both are zero where no step ran."""
    steps, batch, width = dpre.shape
    summed = dpre.sum(axis=(0, 1))
    gradients = {
        "layer_norm_weight_ih": xp.einsum("tbk,tbk->k", dpre, normalized.x_hat),
        "layer_norm_bias_ih": summed,
        "layer_norm_weight_hh": xp.einsum("tbk,tbk->k", dpre, normalized.recurrent),
        "layer_norm_bias_hh": summed.copy(),
        "layer_norm_weight_c": xp.einsum("tbk,tbk->k", d_n, normalized.c_hat),
        "layer_norm_bias_c": d_n.sum(axis=(0, 1)),
    }
    dpre *= normalized.weights["layer_norm_weight_ih"]  # now at the normalized inputs
    steps_cell = make_cell("lstm_layer_norm", xp, dpre.dtype, batch, width // 4, fused=fused)
    steps_cell.normalize_inputs_backward(
        dpre.reshape(steps * batch, width),
        normalized.x_hat.reshape(steps * batch, width),
        normalized.rstd_x.reshape(-1),
    )
    return gradients


def _peephole_gradient(dpre: Any, c: Any, c_step: Any, c0: Any, xp: Any) -> Any:
    """``(3, H)``: sums over steps and rows of ``d_i * c_{t-1}``, ``d_f * c_{t-1}`` and
    ``d_o * c~_t`` from the gate gradients ``dpre`` ``(T, m, 4H)`` (zero where no step ran);
    ``c`` holds the states ``c_t``, ``c_step`` the step's own ``c~_t`` (the same array without
    zoneout)."""
    hidden = c.shape[2]
    c_before = xp.concatenate([c0[None], c[:-1]], axis=0)
    return xp.stack(
        [
            xp.einsum("tbh,tbh->h", dpre[:, :, :hidden], c_before),
            xp.einsum("tbh,tbh->h", dpre[:, :, hidden : 2 * hidden], c_before),
            xp.einsum("tbh,tbh->h", dpre[:, :, 3 * hidden :], c_step),
        ]
    )


_RNN_KINDS = {"tanh": "rnn", "relu": "rnn_relu"}  # nonlinearity -> cell kind


def rnn_forward(
    x: Any,
    w_ih: Any,
    w_hh: Any,
    bias: Any = None,
    h0: Any = None,
    *,
    lengths: np.ndarray | None = None,
    fused: bool | None = None,
    xp: Any = None,
    nonlinearity: str = "tanh",
) -> tuple[Any, Any, RNNSaved]:
    """Run an RNN over a whole sequence: ``h_t = act(x_t @ w_ih.T + h_{t-1} @ w_hh.T + bias)``.

    Parameters
    ----------
    x : ndarray, (T, m, n_in)
    w_ih : ndarray, (H, n_in)
    w_hh : ndarray, (H, H)
    bias : ndarray, (H,), optional
    h0 : ndarray, (m, H), optional
    lengths : ndarray of int, (m,), optional
    fused : bool, optional
        CuPy only: fused CUDA kernels or separate ufuncs.
    xp : module, optional
        ``numpy`` or ``cupy``; found from the arrays when ``None``.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        ``act``; kept in ``saved`` for the backward.

    Returns
    -------
    h : ndarray, (T, m, H)
    h_n : ndarray, (m, H)
    saved : RNNSaved
    """
    if xp is None:
        xp = get_array_module(x, w_ih, w_hh, bias, h0)
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    x_ones = with_ones(x, lengths, xp=xp)
    h0 = _zeros_or(h0, (batch, hidden), x.dtype, xp)
    prepared = PreparedWeights.of(w_ih, w_hh, bias, xp)
    h = _input_projection(x_ones, prepared.joined, xp)
    recurrent = xp.empty((batch, hidden), dtype=x.dtype)
    cell = make_cell(_RNN_KINDS[nonlinearity], xp, x.dtype, batch, hidden, fused=fused)
    w_hh_t = prepared.w_hh_t
    h_prev = h0
    for t in range(steps):
        xp.matmul(h_prev, w_hh_t, out=recurrent)
        cell.forward(h[t], recurrent)
        h_prev = h[t]
    h_n = _at_last_step(h, lengths, xp)
    if lengths is not None:
        h *= xp.asarray(_valid_steps(lengths, steps), dtype=x.dtype)[:, :, None]
    return h, h_n, RNNSaved(x_ones, w_ih, w_hh, h0, h, lengths, fused, xp, nonlinearity)


def rnn_backward(dy: Any, dh_n: Any, saved: RNNSaved) -> tuple[Any, Any, Any, Any, Any]:
    """Backpropagate through :func:`rnn_forward` (``saved`` is left intact).

    Parameters
    ----------
    dy : ndarray, (T, m, H), optional
    dh_n : ndarray, (m, H), optional
    saved : RNNSaved

    Returns
    -------
    dx : ndarray, (T, m, n_in)
    dh0 : ndarray, (m, H)
    dw_ih : ndarray, (H, n_in)
    dw_hh : ndarray, (H, H)
    dbias : ndarray, (H,)
    """
    h, lengths, xp = saved.h, saved.lengths, saved.xp
    steps, batch, hidden = h.shape
    dtype = h.dtype
    dy = _zero_padding(_zeros_or(dy, (steps, batch, hidden), dtype, xp), lengths, xp)
    dh = xp.zeros((batch, hidden), dtype=dtype)
    if lengths is None and dh_n is not None:
        dh[...] = dh_n
    entries = _final_gradient_schedule(dh_n, lengths, xp)
    dpre = xp.empty_like(h)
    cell = make_cell(_RNN_KINDS[saved.nonlinearity], xp, dtype, batch, hidden, fused=saved.fused)
    for t in range(steps - 1, -1, -1):
        if t in entries:
            dh[entries[t]] += dh_n[entries[t]]
        cell.backward(dpre[t], h[t], dy[t], dh)
        xp.matmul(dpre[t], saved.w_hh, out=dh)
    dx, dw_ih, dw_hh, dbias = _weight_gradients(dpre, saved.x_ones, h, saved.h0, saved.w_ih, xp)
    return dx, dh, dw_ih, dw_hh, dbias


# --------------------------------------------------------------------------- GRU


@dataclass
class GRUSaved(_Record):
    """What :func:`gru_forward` keeps for :func:`gru_backward`.

    ``x_ones`` ``(T, m, n_in + 1)`` is the input with a column of ones (see :func:`with_ones`);
    ``gates`` ``(T, m, 3H)`` holds the activated gates ``(r, z, n)`` and is overwritten by the
    backward pass with the input-side gate gradients; ``hidden_n`` ``(T, m, H)`` is
    ``W_hn h_{t-1} + b_hn``; ``h`` is ``(T, m, H)``; ``bias_hh`` ``(3H,)`` (zeros without bias) and
    ``h0`` ``(m, H)`` are C-contiguous; ``xp`` is the backend of every array here.
    """

    x_ones: Any
    w_ih: Any
    w_hh: Any
    bias_hh: Any
    h0: Any
    gates: Any
    hidden_n: Any
    h: Any
    lengths: np.ndarray | None
    fused: bool | None
    xp: Any
    packing: Packing | None = None


def _check_gru_loop(gpu_loop: str | None) -> None:
    if gpu_loop not in (None, "cupy"):
        raise ValueError(
            f"gpu_loop must be 'cupy' (or None) for the GRU, got {gpu_loop!r}: the planned "
            "'plan' and 'graph' loops exist for the LSTM only"
        )


def gru_forward(
    x: Any,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any = None,
    b_hh: Any = None,
    h0: Any = None,
    *,
    lengths: np.ndarray | None = None,
    fused: bool | None = None,
    workspace: Workspace | None = None,
    xp: Any = None,
    gpu_loop: str | None = None,
) -> tuple[Any, Any, GRUSaved]:
    """Run a GRU (``torch.nn.GRU``'s equations, gates ``(r, z, n)``) over a whole sequence.

    Per step ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` and ``h' = (1 - z) n + z h``.
    The input projection (with ``b_ih``) is one GEMM per :func:`projection_chunk` steps; each
    step is one recurrent GEMM ``h @ W_hh.T`` (its bias ``b_hh`` is added by the cell, inside
    ``r * (...)`` for the n gate) and one cell step.

    Parameters
    ----------
    x : ndarray, (T, m, n_in)
    w_ih : ndarray, (3H, n_in)
    w_hh : ndarray, (3H, H)
    b_ih, b_hh : ndarray, (3H,), optional
        Input and recurrent biases (zeros when ``None``); kept apart, unlike the LSTM's sum.
    h0 : ndarray, (m, H), optional
        Initial state (zeros when ``None``).
    lengths : ndarray of int, (m,), optional
        Steps per sequence, each in ``0..T`` (host NumPy array, already validated); packed as
        :class:`Packing` describes.
    fused : bool, optional
        CuPy only: fused CUDA kernels or separate ufuncs.
    workspace : Workspace, optional
        Take the large buffers from here; new arrays when ``None``.
    xp : module, optional
        ``numpy`` or ``cupy``; found from the arrays when ``None``.
    gpu_loop : {"cupy"}, optional
        Only the plain loop exists for the GRU; ``"plan"`` or ``"graph"`` is a ``ValueError``
        (the ``XPLSTM_GPU_LOOP`` setting applies to the LSTM only).

    Returns
    -------
    h : ndarray, (T, m, H)
        Outputs (zero past each length); kept in ``saved`` (read-only until the backward).
    h_n : ndarray, (m, H)
        Final state, at each sequence's last valid step.
    saved : GRUSaved
    """
    _check_gru_loop(gpu_loop)
    if xp is None:
        xp = get_array_module(x, w_ih, w_hh, b_ih, b_hh, h0)
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    dtype = x.dtype
    packing = Packing.for_call(lengths, steps, batch)
    x, h0 = packing.rows(x, xp, axis=1), packing.rows(h0, xp)
    lengths, active = packing.lengths, packing.active
    x_ones = with_ones(x, lengths, workspace, xp=xp)
    h0 = _zeros_or(h0, (batch, hidden), dtype, xp)
    bias_hh = _zeros_or(b_hh, (3 * hidden,), dtype, xp)

    prepared = PreparedWeights.of(w_ih, w_hh, b_ih, xp, workspace)
    gates = _input_projection(x_ones, prepared.joined, xp, workspace)
    hidden_n = allocate(workspace, "hidden_n", (steps, batch, hidden), dtype, xp)
    h = allocate(workspace, "h", (steps, batch, hidden), dtype, xp)
    recurrent = allocate(workspace, "recurrent", (batch, 3 * hidden), dtype, xp)
    cell = make_cell("gru", xp, dtype, batch, hidden, fused=fused)
    w_hh_t = prepared.w_hh_t
    h_prev = h0
    for t, rows in enumerate(active):
        if not rows:
            break  # every sequence has ended
        xp.matmul(h_prev[:rows], w_hh_t, out=recurrent[:rows])
        cell.forward(gates[t, :rows], recurrent[:rows], bias_hh, h_prev[:rows],
                     hidden_n[t, :rows], h[t, :rows])  # fmt: skip
        h_prev = h[t]

    h_n = _at_last_step(h, lengths, xp)
    packing.zero_past_lengths(xp, h)
    output, h_n = packing.unpack(h, xp, axis=1), packing.unpack(h_n, xp)
    saved = GRUSaved(
        x_ones, w_ih, w_hh, bias_hh, h0, gates, hidden_n, h, lengths, fused, xp, packing
    )
    return output, h_n, saved


def gru_backward(dy: Any, dh_n: Any, saved: GRUSaved) -> tuple[Any, Any, Any, Any, Any, Any]:
    """Backpropagate through :func:`gru_forward`; consumes ``saved`` (its gates are overwritten).

    Per step one cell step and one GEMM ``drecurrent @ W_hh`` for the carried ``dh``; the
    input-side gradients (``dx``, ``dW_ih``, ``db_ih``) come from the gates' gradients and the
    recurrent-side ones (``dW_hh``, ``db_hh``) from the recurrent products' gradients, which
    differ for the n gate (by the factor ``r``), each as large GEMMs after the loop.

    Parameters
    ----------
    dy : ndarray, (T, m, H), optional
        Gradient with respect to the outputs (``None`` for zeros); steps past a length are
        ignored.
    dh_n : ndarray, (m, H), optional
        Gradient with respect to the final state (``None`` for zeros).
    saved : GRUSaved

    Returns
    -------
    dx : ndarray, (T, m, n_in)
    dh0 : ndarray, (m, H)
    dw_ih : ndarray, (3H, n_in)
    dw_hh : ndarray, (3H, H)
    db_ih, db_hh : ndarray, (3H,)
    """
    gates, h, lengths, xp = saved.gates, saved.h, saved.lengths, saved.xp
    steps, batch, hidden = h.shape
    dtype = h.dtype
    packing = saved.packing or Packing.for_call(None, steps, batch)
    dy, dh_n, active = packing.rows(dy, xp, axis=1), packing.rows(dh_n, xp), packing.active
    dy = _zero_padding(_zeros_or(dy, (steps, batch, hidden), dtype, xp), lengths, xp)
    dh = xp.zeros((batch, hidden), dtype=dtype)
    if lengths is None and dh_n is not None:
        dh[...] = dh_n
    entries = _final_gradient_schedule(dh_n, lengths, xp)
    drecurrent = xp.empty((steps, batch, 3 * hidden), dtype=dtype)
    through_recurrent = xp.empty((batch, hidden), dtype=dtype)
    cell = make_cell("gru", xp, dtype, batch, hidden, fused=saved.fused)
    w_hh = saved.w_hh
    for t in range(steps - 1, -1, -1):
        rows = active[t]
        if not rows:
            continue
        if t in entries:
            dh[entries[t]] += dh_n[entries[t]]
        h_prev = h[t - 1] if t > 0 else saved.h0
        cell.backward(gates[t, :rows], drecurrent[t, :rows], dy[t, :rows], dh[:rows],
                      h_prev[:rows], saved.hidden_n[t, :rows])  # fmt: skip
        xp.matmul(drecurrent[t, :rows], w_hh, out=through_recurrent[:rows])
        dh[:rows] += through_recurrent[:rows]

    packing.zero_past_lengths(xp, gates, drecurrent)  # the gradients of rows that did not run
    ran = packing.ran()
    dx, dw_ih, db_ih = _input_gradients(gates, saved.x_ones, saved.w_ih, xp, ran)
    dw_hh = _recurrent_weight_gradient(drecurrent, h, saved.h0, xp, ran)
    db_hh = drecurrent.reshape(steps * batch, 3 * hidden).sum(axis=0)
    dx, dh = packing.unpack(dx, xp, axis=1), packing.unpack(dh, xp)
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh
