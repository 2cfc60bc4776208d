"""The recurrent-layer base shared by :class:`xplstm.LSTM` and :class:`xplstm.GRU`.

:class:`RecurrentLayer` is the adapter over :mod:`xplstm.engine` that both layers are: it checks
and converts the inputs, moves ``batch_first`` data to the engine's time-major layout, runs the
engine once per layer and direction, and gathers the results into torch's shapes. Parameters
carry torch's names and shapes (``G`` gates stacked: 4 for the LSTM, 3 for the GRU). It owns the
configuration, initialization, ``state_dict``/``load_state_dict``, ``save``/``load`` (the file
names its layer class, so one class refuses the other's file), ``to``, the per-thread forward
record and ``no_grad``. A subclass says what its cell is: the gate count, its states and the
engine calls for one direction (:meth:`RecurrentLayer._forward_direction` and
:meth:`RecurrentLayer._backward_direction`).

The reverse direction reverses each sequence within its length with one gather (step ``t`` of
sequence ``b`` comes from step ``L_b - 1 - t`` while ``t < L_b`` and stays in place otherwise; the
map is its own inverse), runs the engine forward with the same lengths, and reverses the outputs
back. Stacked layers take the concatenated outputs of both directions.
"""

from __future__ import annotations

import copy
import math
import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .backend import asnumpy
from .devices import device_scope, select_device
from .grad_mode import is_grad_enabled
from .numerics import silent_non_finite
from .reversal import Reversal
from .serialization import LAYER_FORMAT, layer_config, load_layer, save_layer
from .validation import (
    check_device_array,
    check_dtype,
    check_flag,
    check_lengths,
    check_probability,
    check_projection,
    check_seed,
    check_size,
    import_array,
)
from .workspace import Workspace

__all__ = ["RecurrentLayer", "SingleStateLayer"]

_SINGLE_STATE_LAYOUT = "(num_layers * num_directions, m, hidden_size)"

# --------------------------------------------------------------------------- forward record


@dataclass
class _ForwardRecord:
    """What :meth:`RecurrentLayer.forward` keeps for :meth:`RecurrentLayer.backward`."""

    saved: list[Any]  # the engine's record per (layer, direction), row order of h_n; None once used
    masks: list[Any]  # the dropout masks applied to each layer's outputs but the last's, or []
    reversal: Reversal  # used by the reverse direction only
    output_shape: tuple[int, ...]
    batch: int
    generation: int  # the layer's _generation when it ran: a load_state_dict since makes it stale


class _PerThread(threading.local):
    """What one thread's calls of one layer keep between calls (``threading.local``).

    Each thread has its own forward buffers and its own pending forward, so concurrent calls
    never share a buffer and a backward never picks up another thread's forward.
    """

    def __init__(self) -> None:
        # One per (layer, direction): the engine's large forward buffers, reused every forward.
        self.workspaces: dict[int, Workspace] = {}
        self.record: _ForwardRecord | None = None
        self.broken_backward = False  # the last backward failed after consuming the record
        self.no_grad_forward = False  # the last forward ran under xplstm.no_grad()


# --------------------------------------------------------------------------- the layer


class RecurrentLayer:
    """A multi-layer recurrent layer over NumPy or CuPy arrays, shaped like torch's.

    The shared body of :class:`xplstm.LSTM` and :class:`xplstm.GRU` (see their docstrings for
    the parameters); not meant to be built itself. Subclasses set :attr:`_GATES` (gates stacked
    in the weights), :attr:`_FORMAT` (the layer file format, naming the class) and
    :attr:`_STATE_MEMBERS` (the names of the state arrays, ``("h",)`` or ``("h", "c")``), and
    implement :meth:`_forward_direction`, :meth:`_backward_direction`, :meth:`_check_state`
    and :meth:`_state_result`.
    """

    _GATES = 4
    _FORMAT = LAYER_FORMAT
    _STATE_MEMBERS: tuple[str, ...] = ("h", "c")
    _VARIANTS: tuple[str, ...] = ()  # the LSTM's: "proj_size", "peephole"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        peephole: bool = False,
        zoneout_cell: float = 0.0,
        zoneout_hidden: float = 0.0,
        recurrent_dropout: float = 0.0,
        layer_norm: bool = False,
        dtype: Any = "float32",
        device: str = "cpu",
        seed: Any = None,
        nonlinearity: Any = None,
    ) -> None:
        self._configure(
            input_size, hidden_size, num_layers, bias, batch_first, bidirectional, dtype, device,
            dropout=dropout, proj_size=proj_size, peephole=peephole, nonlinearity=nonlinearity,
            zoneout_cell=zoneout_cell, zoneout_hidden=zoneout_hidden,
            recurrent_dropout=recurrent_dropout, layer_norm=layer_norm,
        )  # fmt: skip
        if self.dropout and self.num_layers == 1:
            warnings.warn(
                f"dropout={self.dropout} acts between stacked layers (on the outputs of all "
                "but the last), so with num_layers=1 it does nothing (as in torch)",
                UserWarning,
                stacklevel=3,
            )
        rng = check_seed(seed)
        bound = 1.0 / math.sqrt(self.hidden_size)
        with self._device_scope():
            for name, shape in self._parameter_shapes().items():
                if name.startswith("weight_peephole_"):  # start as the plain LSTM (and draw
                    values = np.zeros(shape)  # nothing: the other weights are its weights)
                elif name.startswith("layer_norm_"):  # gains 1, shifts 0 (Ba et al.); no draw
                    values = np.full(shape, 1.0 if name.startswith("layer_norm_weight") else 0.0)
                else:
                    values = rng.uniform(-bound, bound, size=shape)
                self._parameters[name] = self._placement.xp.asarray(values, dtype=self.dtype)
        # The masks' own stream (dropout, zoneout, recurrent dropout), seeded from the same seed
        # after the parameters: a layer built again with that seed draws the same masks.
        self.generator = np.random.default_rng(int(rng.integers(2**63)))
        self.zero_grad()

    def _configure(
        self,
        input_size: Any,
        hidden_size: Any,
        num_layers: Any,
        bias: Any,
        batch_first: Any,
        bidirectional: Any,
        dtype: Any,
        device: Any,
        *,
        dropout: Any = 0.0,
        proj_size: Any = 0,
        peephole: Any = False,
        nonlinearity: Any = None,
        zoneout_cell: Any = 0.0,
        zoneout_hidden: Any = 0.0,
        recurrent_dropout: Any = 0.0,
        layer_norm: Any = False,
    ) -> None:
        """Check and store the configuration; parameters and grads are left empty."""
        self._check_nonlinearity(nonlinearity)
        variants = {
            "proj_size": (proj_size, 0),
            "peephole": (peephole, False),
            "zoneout_cell": (zoneout_cell, 0.0),
            "zoneout_hidden": (zoneout_hidden, 0.0),
            "recurrent_dropout": (recurrent_dropout, 0.0),
            "layer_norm": (layer_norm, False),
        }
        for name, (value, default) in variants.items():
            if name not in self._VARIANTS and value != default:
                raise TypeError(
                    f"xplstm.{type(self).__name__} has no {name} (xplstm.LSTM has), got "
                    f"{name}={value!r}"
                )
        self.peephole = check_flag("peephole", peephole)
        self.zoneout_cell = check_probability("zoneout_cell", zoneout_cell)
        self.zoneout_hidden = check_probability("zoneout_hidden", zoneout_hidden)
        self.recurrent_dropout = check_probability("recurrent_dropout", recurrent_dropout)
        self.layer_norm = check_flag("layer_norm", layer_norm)
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.num_layers = check_size("num_layers", num_layers)
        self.bias = check_flag("bias", bias)
        self.batch_first = check_flag("batch_first", batch_first)
        self.bidirectional = check_flag("bidirectional", bidirectional)
        self.dropout = check_probability("dropout", dropout)
        self.proj_size = check_projection(proj_size, self.hidden_size)
        if self.layer_norm and (self.proj_size or self.peephole):
            other = f"proj_size={self.proj_size}" if self.proj_size else "peephole=True"
            raise ValueError(
                f"layer_norm=True does not combine with {other}: the LayerNorm LSTM (Ba et al. "
                "2016) normalizes the plain cell's gates and state"
            )
        self.dtype = check_dtype(dtype)
        self._placement = select_device(device)
        self.device = self._placement.name
        self.training = True  # train() / eval(), as torch's modules
        self.generator = np.random.default_rng()
        self._parameters: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self._per_thread = _PerThread()
        self._generation = 0  # load_state_dict counts up: pending forwards of older ones are stale
        self._grads_lock = threading.Lock()  # backward adds to grads under it

    @classmethod
    def _uninitialized(cls, config: Mapping[str, Any], device: str) -> Any:
        """A layer with ``config`` whose parameters are allocated but not initialized."""
        model = cls.__new__(cls)
        model._configure(**config, device=device)
        with model._device_scope():
            for name, shape in model._parameter_shapes().items():
                model._parameters[name] = model._placement.xp.zeros(shape, dtype=model.dtype)
        model.zero_grad()
        return model

    @classmethod
    def _shapes_in_file(cls, config: Mapping[str, Any], members: int) -> dict[str, tuple[int, ...]]:
        """The parameter shapes a checkpoint's ``config`` describes, allocating nothing.

        Raises ``TypeError``/``ValueError`` if ``config`` is invalid or describes far more
        parameters than the file's ``members`` (checked before the shapes are listed, so a
        huge ``num_layers`` costs nothing; the caller names any smaller disagreement).
        """
        model = cls.__new__(cls)
        model._configure(**config, device="cpu")
        per_direction = (4 if model.bias else 2) + bool(model.proj_size) + model.peephole
        per_direction += 6 * model.layer_norm
        count = model.num_layers * model.num_directions * per_direction
        if count > 2 * members + 8:
            raise ValueError(
                f"its configuration describes {count} parameters, the file holds {members}"
            )
        return model._parameter_shapes()

    def _config(self) -> dict[str, Any]:
        return layer_config(self)

    def _check_nonlinearity(self, nonlinearity: Any) -> None:
        """Only :class:`xplstm.RNN` has a ``nonlinearity`` (it overrides this)."""
        if nonlinearity is not None:
            raise TypeError(
                f"xplstm.{type(self).__name__} has no nonlinearity argument (xplstm.RNN has), "
                f"got nonlinearity={nonlinearity!r}"
            )

    # ----------------------------------------------------------------------- parameters

    @property
    def num_directions(self) -> int:
        """``D``: 2 when bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Features of ``h`` per direction: ``proj_size`` when set, else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    def train(self, mode: bool = True) -> Any:
        """Set training mode (``mode=True``, the default of a new layer) or evaluation mode.

        Dropout (``dropout > 0``) acts only in training mode, as in torch. Returns the layer.
        """
        self.training = check_flag("mode", mode)
        return self

    def eval(self) -> Any:
        """Evaluation mode: ``train(False)``. Returns the layer."""
        return self.train(False)

    @property
    def xp(self) -> ModuleType:
        """The array module of the layer's device: ``numpy`` or ``cupy``."""
        return self._placement.xp

    def _names(self, layer: int, direction: int) -> dict[str, str]:
        """The parameter names of one layer and direction by role, in torch's order: ``w_ih``,
        ``w_hh``, then with ``bias`` ``b_ih`` and ``b_hh``, with ``proj_size`` ``w_hr``, with
        ``peephole`` ``peephole``, with ``layer_norm`` the six ``layer_norm_*`` (gains
        ``weight``, shifts ``bias`` of the ``ih``, ``hh`` and ``c`` norms)."""
        suffix = f"l{layer}" + ("_reverse" if direction == 1 else "")
        names = {"w_ih": f"weight_ih_{suffix}", "w_hh": f"weight_hh_{suffix}"}
        if self.bias:
            names.update(b_ih=f"bias_ih_{suffix}", b_hh=f"bias_hh_{suffix}")
        if self.proj_size:
            names["w_hr"] = f"weight_hr_{suffix}"
        if self.peephole:
            names["peephole"] = f"weight_peephole_{suffix}"
        if self.layer_norm:
            for part in ("weight_ih", "bias_ih", "weight_hh", "bias_hh", "weight_c", "bias_c"):
                names[f"layer_norm_{part}"] = f"layer_norm_{part}_{suffix}"
        return names

    def _parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter names and shapes in torch's order."""
        gates, hidden, out = self._GATES * self.hidden_size, self.hidden_size, self.output_size
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else out * self.num_directions
            role_shapes = {
                "w_ih": (gates, width),
                "w_hh": (gates, out),
                "b_ih": (gates,),
                "b_hh": (gates,),
                "w_hr": (out, hidden),
                "peephole": (3, hidden),
                "layer_norm_weight_ih": (gates,),
                "layer_norm_bias_ih": (gates,),
                "layer_norm_weight_hh": (gates,),
                "layer_norm_bias_hh": (gates,),
                "layer_norm_weight_c": (hidden,),
                "layer_norm_bias_c": (hidden,),
            }
            for direction in range(self.num_directions):
                for role, name in self._names(layer, direction).items():
                    shapes[name] = role_shapes[role]
        return shapes

    def __getattr__(self, name: str) -> Any:
        parameters = self.__dict__.get("_parameters")
        if parameters is not None and name in parameters:
            return parameters[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__.get("_parameters", ()):
            raise AttributeError(
                f"cannot assign parameter {name!r}: update it in place "
                f"(model.{name}[...] = value) or use load_state_dict"
            )
        super().__setattr__(name, value)

    def named_parameters(self) -> list[tuple[str, Any]]:
        """``(name, array)`` for every parameter, in torch's order; the live arrays."""
        return list(self._parameters.items())

    def parameters(self) -> list[Any]:
        """Every parameter array, in torch's order; the live arrays."""
        return list(self._parameters.values())

    def state_dict(self) -> dict[str, Any]:
        """Copies of the parameters, keyed and ordered as torch's ``state_dict()``.

        Returns
        -------
        dict of str to ndarray
            ``weight_ih_l{k}[_reverse]`` ``(G*H, in_k)``, ``weight_hh_l{k}[_reverse]``
            ``(G*H, out)``, with ``bias`` ``bias_ih_l{k}[_reverse]`` and
            ``bias_hh_l{k}[_reverse]`` ``(G*H,)``, and with ``proj_size`` ``P > 0``
            ``weight_hr_l{k}[_reverse]`` ``(P, H)`` (``G`` = 4 for the LSTM, 3 for the GRU;
            ``out`` = ``P`` or ``H``); ``in_0 = input_size``, ``in_k = D * out`` for ``k > 0``.
            On the layer's device.
        """
        with self._device_scope():
            return {name: array.copy() for name, array in self._parameters.items()}

    def _import_array(self, name: str, value: Any) -> Any:
        """Any array (NumPy, CuPy on any device, array-like) as a layer array; may not copy."""
        return import_array(name, value, self._placement, self.dtype)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Copy parameters in from ``state_dict``, converting them to the layer's dtype and device.

        Parameters
        ----------
        state_dict : mapping of str to array
            Exactly the keys of :meth:`state_dict`, with the same shapes; values may be NumPy or
            CuPy arrays (any device) or array-likes such as CPU torch tensors.

        Raises
        ------
        TypeError
            If ``state_dict`` is not a mapping or a value is not a real-number array.
        KeyError
            If a key is missing or unexpected (the message names it and the expected shape).
        ValueError
            If a value has the wrong shape (the message names the key and the expected shape).

        Notes
        -----
        The parameters are updated in place (arrays from :meth:`parameters` stay valid) and only
        once every entry has been checked: a failed load leaves the layer unchanged. A pending
        :meth:`forward` is discarded (its :meth:`backward` would mix old and new weights).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"state_dict must be a mapping of parameter names to arrays, "
                f"got {type(state_dict).__name__}"
            )
        shapes = self._parameter_shapes()
        unexpected = [key for key in state_dict if key not in shapes]
        projections = [key for key in unexpected if str(key).startswith("weight_hr_l")]
        if projections:
            hint = (
                "build the layer with proj_size equal to their first dimension"
                if self._GATES == 4
                else f"xplstm.{type(self).__name__} has no projections"
            )
            raise KeyError(
                f"state_dict holds projection weights {projections} (torch's LSTM with "
                f"proj_size > 0) but this layer has proj_size={self.proj_size}: {hint}"
            )
        if unexpected:
            raise KeyError(
                f"state_dict has unexpected key(s) {unexpected}; this layer's parameters are "
                f"{list(shapes)}"
            )
        for key, shape in shapes.items():
            if key not in state_dict:
                raise KeyError(
                    f"state_dict is missing {key!r} (expected an array of shape {shape})"
                )
        incoming = {}
        for key, shape in shapes.items():
            with np.errstate(over="ignore"):  # refused below, naming the key
                value = self._import_array(f"state_dict[{key!r}]", state_dict[key])
            self._refuse_overflow(key, state_dict[key], value)
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"state_dict[{key!r}] has shape {tuple(value.shape)} but {shape} was expected"
                )
            incoming[key] = value
        with self._device_scope():
            for key, value in incoming.items():
                self._parameters[key][...] = value
        self._generation += 1  # discards every thread's pending forward

    def _refuse_overflow(self, key: str, source: Any, value: Any) -> None:
        """``ValueError`` if converting ``source`` to the layer's dtype made finite values inf."""
        xp = self._placement.xp
        if not bool(xp.isinf(value).any()):
            return
        if int(xp.isinf(value).sum()) != int(np.isinf(asnumpy(source)).sum()):
            raise ValueError(
                f"state_dict[{key!r}] holds values beyond the range of {self.dtype} (largest "
                f"finite {np.finfo(self.dtype).max:g}); converted they would be inf"
            )

    def zero_grad(self) -> None:
        """Set every entry of :attr:`grads` to zero (allocating them the first time)."""
        with self._device_scope(), self._grads_lock:
            for name, array in self._parameters.items():
                if name in self.grads:
                    self.grads[name].fill(0)
                else:
                    self.grads[name] = self._placement.xp.zeros_like(array)

    # ----------------------------------------------------------------------- devices and files

    def _device_scope(self) -> Any:
        return device_scope(self._placement.index, self._placement.xp)

    def to(self, device: str) -> Any:
        """A copy of the layer (parameters and grads) on ``device``.

        Parameters
        ----------
        device : str
            ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

        Returns
        -------
        same class as the layer
            Always a new layer, even on the same device; it has no pending forward.
        """
        model = type(self)._uninitialized(self._config(), device)
        model.training = self.training
        model.generator = copy.deepcopy(self.generator)  # draws the masks this one would
        model.load_state_dict(self._parameters)
        with model._device_scope():
            for name, gradient in self.grads.items():
                model.grads[name][...] = model._import_array(name, gradient)
        return model

    def save(self, path: str | os.PathLike) -> None:
        """Write the configuration and parameters to an ``.npz`` file at exactly ``path``.

        The file is written atomically (temporary file in the same directory, fsync, rename)
        and holds no pickles: the configuration is a JSON string in a 0-d unicode array under
        ``"xplstm_config"``, each parameter an array under its :meth:`state_dict` name. The
        device and the gradients are not saved.
        """
        save_layer(path, self._config(), self._parameters, self._FORMAT)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu") -> Any:
        """Read a layer written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
        device : str, default "cpu"
            Where to put the parameters (``"cpu"``, ``"cuda"`` or ``"cuda:N"``).

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is truncated, not an ``.npz`` archive, or not a checkpoint of this
            class (an ``xplstm.LSTM`` file for ``xplstm.GRU.load`` or the reverse included;
            the message names ``path``). The configuration is checked against the
            members' declared shapes before any parameter is read or allocated, so a damaged
            or hostile file costs about its own size in memory and time.
        """
        select_device(device)  # device errors are not file errors: raise them first
        # shapes checked before reading
        config, arrays = load_layer(path, cls._shapes_in_file, cls._FORMAT)
        path = os.fspath(path)
        model = cls._uninitialized(config, device)
        try:
            model.load_state_dict(arrays)
        except (KeyError, TypeError, ValueError) as error:
            message = error.args[0] if error.args else error
            raise ValueError(
                f"{path} does not hold the parameters its configuration describes: {message}"
            ) from error
        return model

    # ----------------------------------------------------------------------- input checks

    def _as_layer_array(self, name: str, value: Any, layout: str) -> Any:
        """An input array on the layer's device, converted to the layer's dtype (may not copy)."""
        return check_device_array(name, value, layout, self._placement, self.dtype)

    def _state_shapes(self, batch: int) -> list[tuple[int, int, int]]:
        """The shape of each state array, one per :attr:`_STATE_MEMBERS`: ``(num_layers * D, m,
        out)`` for ``h`` (``out`` = ``proj_size`` or ``H``), ``(num_layers * D, m, H)`` for
        ``c``."""
        rows = self.num_layers * self.num_directions
        widths = {"h": self.output_size, "c": self.hidden_size}
        return [(rows, batch, widths[member]) for member in self._STATE_MEMBERS]

    # ----------------------------------------------------------------------- what a cell adds

    def _check_state(self, name: str, value: Any, batch: int) -> list[Any]:
        """The states ``name`` (``"state"`` or ``"dstate"``) as a list, one entry per
        :attr:`_STATE_MEMBERS`, each checked ``(num_layers * D, m, H)`` or ``None``."""
        raise NotImplementedError

    def _state_result(self, states: list[Any]) -> Any:
        """What :meth:`forward` and :meth:`backward` return for the list of states."""
        raise NotImplementedError

    def _forward_direction(
        self,
        sequence: Any,
        weights: dict[str, Any],
        initial: list[Any],
        lengths: np.ndarray | None,
        workspace: Workspace | None,
        noise: dict[str, Any],
    ) -> tuple[Any, list[Any], Any]:
        """One layer and direction forward: ``(h, final states, engine record)``.

        ``weights`` are the direction's parameters by role (the keys of :meth:`_names`);
        ``initial`` one ``(m, H)`` array or ``None`` per state. ``workspace`` is ``None``
        under :class:`xplstm.no_grad`: then nothing is recorded (the record is ``None``).
        """
        raise NotImplementedError

    def _backward_direction(
        self, d_output: Any, d_final: list[Any], saved: Any
    ) -> tuple[Any, list[Any], dict[str, Any]]:
        """One layer and direction backward: ``(dx, initial-state gradients, parameter
        gradients by role)`` (every role of the forward's ``weights``); ``d_output`` and the
        ``d_final`` entries may be ``None``."""
        raise NotImplementedError

    # ----------------------------------------------------------------------- forward and backward

    def __call__(self, x: Any, state: Any = None, *, lengths: Any = None) -> tuple[Any, Any]:
        """Same as :meth:`forward`."""
        return self.forward(x, state, lengths=lengths)

    def forward(self, x: Any, state: Any = None, *, lengths: Any = None) -> tuple[Any, Any]:
        """Run the layer over a batch of sequences and keep what :meth:`backward` needs.

        Under :class:`xplstm.no_grad` it keeps nothing (a :meth:`backward` is then a
        ``RuntimeError``) and needs about the memory of ``y`` plus a few MiB; ``y`` and the
        states are bitwise the same.

        Parameters
        ----------
        x : ndarray, (T, m, input_size), or (m, T, input_size) when ``batch_first``
        state : pair (h0, c0) for the LSTM, array h0 for the GRU, optional
            Each ``(num_layers * D, m, H)`` or ``None`` (zeros); row ``k * D + d`` is layer
            ``k``, direction ``d``.
        lengths : list or 1-D array of int, (m,), optional
            Valid steps per sequence, each in ``1..T``, in any order (host data). Same results
            as torch's ``pack_padded_sequence(..., enforce_sorted=False)``, the layer, then
            ``pad_packed_sequence(..., total_length=T)``.

        Returns
        -------
        y : ndarray, (T, m, D * H), or (m, T, D * H) when ``batch_first``
            Last layer's outputs, both directions concatenated (forward first); zero past each
            length. A new array: editing it does not affect :meth:`backward`.
        (h_n, c_n) : pair of ndarray, each (num_layers * D, m, H); h_n alone for the GRU
            Final states, taken at each sequence's last valid step (for the reverse direction:
            after it has run back to step 0).

        Raises
        ------
        TypeError
            An input that is not an array of the layer's device, or of non-real dtype.
        ValueError
            Misshapen inputs or lengths outside ``1..T``.
        """
        with self._device_scope(), silent_non_finite():
            return self._forward(x, state, lengths)

    def _forward(self, x: Any, state: Any, lengths: Any) -> tuple[Any, Any]:
        xp, directions = self._placement.xp, self.num_directions
        layout = "(m, T, input_size)" if self.batch_first else "(T, m, input_size)"
        x = self._as_layer_array("x", x, layout)
        if x.ndim != 3:
            raise ValueError(f"x must be 3-D with shape {layout}, got shape {tuple(x.shape)}")
        if x.shape[2] != self.input_size:
            raise ValueError(
                f"x has {x.shape[2]} features but the layer expects input_size="
                f"{self.input_size} (got x of shape {tuple(x.shape)}, layout {layout})"
            )
        batch, steps = x.shape[:2] if self.batch_first else x.shape[1::-1]
        if steps == 0 or batch == 0:
            raise ValueError(f"x must have at least one step and one sequence, got {x.shape}")
        initial = self._check_state("state", state, batch)
        lengths = check_lengths(lengths, batch, steps)

        time_major = x.transpose(1, 0, 2) if self.batch_first else x
        layer_input = time_major  # the engine keeps its own copy (with_ones) for backward
        reversal = Reversal(lengths, steps, batch, xp)

        finals = [xp.empty(shape, dtype=self.dtype) for shape in self._state_shapes(batch)]
        local, generation = self._per_thread, self._generation
        # Under xplstm.no_grad() the engine keeps no record and runs a chunk of steps at a time
        # in buffers of its own, so a pending recorded forward stays pending (as in torch).
        recording = is_grad_enabled()
        if recording:
            local.record = None  # its buffers are about to be reused
            local.broken_backward = False
        local.no_grad_forward = not recording
        saved, masks = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                row = layer * directions + direction
                sequence = layer_input if direction == 0 else reversal(layer_input)
                weights = {
                    role: self._parameters[name]
                    for role, name in self._names(layer, direction).items()
                }
                first = [None if state is None else state[row].copy() for state in initial]
                workspace = local.workspaces.setdefault(row, Workspace()) if recording else None
                noise = self._direction_noise(steps, batch)
                h, last, kept = self._forward_direction(
                    sequence, weights, first, lengths, workspace, noise
                )
                if recording:
                    saved.append(kept)
                for final, value in zip(finals, last, strict=True):
                    final[row] = value
                outputs.append(h if direction == 0 else reversal(h))
            layer_input = outputs[0] if directions == 1 else xp.concatenate(outputs, axis=2)
            if self.training and self.dropout and layer < self.num_layers - 1:
                masks.append(self._dropout_mask(layer_input.shape))
                layer_input = layer_input * masks[-1]  # a new array: the engine keeps its own

        y = layer_input.transpose(1, 0, 2) if self.batch_first else layer_input
        if not recording:  # the engine's h is a new array: no copy (and no second output)
            return xp.ascontiguousarray(y), self._state_result(finals)
        # With one direction y is the engine's own output buffer: hand out a copy.
        y = xp.array(y, order="C", copy=True) if directions == 1 else xp.ascontiguousarray(y)
        local.record = _ForwardRecord(saved, masks, reversal, tuple(y.shape), batch, generation)
        return y, self._state_result(finals)

    def _direction_noise(self, steps: int, batch: int) -> dict[str, Any]:
        """The masks of one layer and direction's step loop, by engine argument name; the
        LSTM's zoneout and recurrent dropout (see :attr:`xplstm.LSTM.generator`)."""
        return {}

    def _dropout_mask(self, shape: tuple[int, ...]) -> Any:
        """Inverted dropout: ``0`` with probability ``dropout``, else ``1 / (1 - dropout)``,
        drawn on the host from the layer's own generator (the same masks on every device)."""
        keep = self.generator.random(shape, dtype=np.float32) >= self.dropout
        scale = np.asarray(1.0 / (1.0 - self.dropout), dtype=self.dtype)
        return self._placement.xp.asarray(keep * scale)

    def backward(self, dy: Any, dstate: Any = None) -> tuple[Any, Any]:
        """Backpropagate through the last :meth:`forward`; add parameter gradients to :attr:`grads`.

        Parameters
        ----------
        dy : ndarray or None
            Gradient with respect to ``y``, same shape as ``y``; ``None`` for zeros. Entries
            past a sequence's length are ignored.
        dstate : pair (dh_n, dc_n) for the LSTM, array dh_n for the GRU, optional
            Gradients with respect to the final states, each ``(num_layers * D, m, H)`` or
            ``None`` (zeros).

        Returns
        -------
        dx : ndarray, same shape and layout as ``x``
            Zero past each length.
        (dh0, dc0) : pair of ndarray, each (num_layers * D, m, H); dh0 alone for the GRU
            Gradients with respect to the initial states (zero states included).

        Raises
        ------
        RuntimeError
            If no forward is pending: backward before any forward, a second backward for one
            forward, or after :meth:`load_state_dict`.
        TypeError, ValueError
            As for :meth:`forward`; a misshapen ``dy`` is a ``ValueError``.

        Notes
        -----
        Backward consumes the forward's saved activations (their buffers are reused in place),
        so a call that fails while running (not while checking its arguments: then the forward
        stays pending) cannot be repeated; the next one says so. It adds to :attr:`grads` only
        once it has succeeded. Infinite or NaN inputs give NaN gradients where torch gives
        them, without NumPy warnings.
        """
        with self._device_scope():
            return self._backward(dy, dstate)

    def _backward(self, dy: Any, dstate: Any) -> tuple[Any, Any]:
        local = self._per_thread
        record = local.record
        if record is not None and record.generation != self._generation:
            record = local.record = None  # load_state_dict ran since: its weights are gone
        if record is None:
            if local.no_grad_forward:
                raise RuntimeError(
                    "backward() after a forward() run under xplstm.no_grad(), with no recorded "
                    "forward pending: inference mode keeps nothing for a backward; run the "
                    "forward outside no_grad() to backpropagate through it"
                )
            if local.broken_backward:
                raise RuntimeError(
                    "backward() needs a pending forward(): the last backward() failed part-way "
                    "after it had overwritten the forward's saved activations with gradients, "
                    "so that forward cannot be used again; run forward() again"
                )
            raise RuntimeError(
                "backward() needs a pending forward() in this thread: none has run since the "
                "last backward() (each forward supports one backward) or load_state_dict(), "
                "or none has run yet (a forward run in another thread is that thread's)"
            )
        xp = self._placement.xp
        if dy is not None:
            layout = "(m, T, D * out)" if self.batch_first else "(T, m, D * out)"
            dy = self._as_layer_array("dy", dy, layout)
            if tuple(dy.shape) != record.output_shape:
                raise ValueError(
                    f"dy has shape {tuple(dy.shape)} but {record.output_shape} {layout} "
                    "(the shape of y) was expected"
                )
            if self.batch_first:
                dy = xp.ascontiguousarray(dy.transpose(1, 0, 2))
        d_final = self._check_state("dstate", dstate, record.batch)
        # Consumed from here on: the engine overwrites the saved gates with their gradients.
        local.record = None
        local.broken_backward = True
        with silent_non_finite():
            dx, d_initial, gradients = self._backward_layers(dy, d_final, record)
        with self._grads_lock:  # all of a backward's gradients, or none if it failed
            for name, gradient in gradients:
                self.grads[name] += gradient
        local.broken_backward = False
        return dx, self._state_result(d_initial)

    def _backward_layers(
        self, dy: Any, d_final: list[Any], record: _ForwardRecord
    ) -> tuple[Any, list[Any], list[tuple[str, Any]]]:
        """``dx``, the initial-state gradients and the parameter gradients as
        ``(name, gradient)`` pairs."""
        xp, out, directions = self._placement.xp, self.output_size, self.num_directions
        gradients: list[tuple[str, Any]] = []
        shapes = self._state_shapes(record.batch)
        d_initial = [xp.empty(shape, dtype=self.dtype) for shape in shapes]
        d_output = dy
        for layer in range(self.num_layers - 1, -1, -1):
            if record.masks and layer < self.num_layers - 1 and d_output is not None:
                d_output = d_output * record.masks[layer]  # back through this layer's dropout
            d_input = None
            for direction in range(directions):
                row = layer * directions + direction
                d_part = d_output
                if d_output is not None and directions == 2:
                    d_part = d_output[:, :, direction * out : (direction + 1) * out]
                    if direction == 1:
                        d_part = record.reversal(d_part)
                    else:
                        d_part = xp.ascontiguousarray(d_part)
                dx, d_first, by_role = self._backward_direction(
                    d_part,
                    [None if final is None else final[row] for final in d_final],
                    record.saved[row],
                )
                record.saved[row] = None  # release the consumed activations early
                if direction == 1:
                    dx = record.reversal(dx)
                if d_input is None:
                    d_input = dx
                else:
                    d_input += dx
                for gradient, value in zip(d_initial, d_first, strict=True):
                    gradient[row] = value
                names = self._names(layer, direction)
                gradients += [(names[role], by_role[role]) for role in names]
            d_output = d_input

        dx = d_output.transpose(1, 0, 2) if self.batch_first else d_output
        return xp.ascontiguousarray(dx), d_initial, gradients

    # ----------------------------------------------------------------------- display

    def extra_repr(self) -> str:
        """The arguments shown by ``repr``: sizes, then the settings that differ from defaults."""
        parts = [f"{self.input_size}, {self.hidden_size}"]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        if not self.bias:
            parts.append("bias=False")
        if self.batch_first:
            parts.append("batch_first=True")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.bidirectional:
            parts.append("bidirectional=True")
        if self.proj_size:
            parts.append(f"proj_size={self.proj_size}")
        if self.peephole:
            parts.append("peephole=True")
        if self.layer_norm:
            parts.append("layer_norm=True")
        for name in ("zoneout_cell", "zoneout_hidden", "recurrent_dropout"):
            if getattr(self, name):
                parts.append(f"{name}={getattr(self, name)}")
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype.name}")
        if self.device != "cpu":
            parts.append(f"device={self.device!r}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class SingleStateLayer(RecurrentLayer):
    """A :class:`RecurrentLayer` whose cell has the one state ``h``: :class:`xplstm.GRU` and
    :class:`xplstm.RNN` (``forward(x, h0) -> (y, h_n)``, ``backward(dy, dh_n) -> (dx, dh0)``)."""

    _STATE_MEMBERS = ("h",)

    def _check_state(self, name: str, value: Any, batch: int) -> list[Any]:
        label = "h0" if name == "state" else "dh_n"
        if value is None:
            return [None]
        if isinstance(value, (tuple, list)):
            raise TypeError(
                f"{label} must be one array {_SINGLE_STATE_LAYOUT} or None (the "
                f"{type(self).__name__} has no cell state), got a {type(value).__name__}"
            )
        array = check_device_array(label, value, _SINGLE_STATE_LAYOUT, self._placement, self.dtype)
        (expected,) = self._state_shapes(batch)
        if tuple(array.shape) != expected:
            raise ValueError(
                f"{label} has shape {tuple(array.shape)} but {expected} {_SINGLE_STATE_LAYOUT} "
                "was expected"
            )
        return [array]

    def _state_result(self, states: list[Any]) -> Any:
        return states[0]

    def forward(self, x: Any, h0: Any = None, *, lengths: Any = None) -> tuple[Any, Any]:
        """Run the layer over a batch of sequences: ``(y, h_n)``.

        Parameters
        ----------
        x : ndarray, (T, m, input_size), or (m, T, input_size) when ``batch_first``
        h0 : ndarray, (num_layers * D, m, H), optional
            Initial state (zeros when ``None``); row ``k * D + d`` is layer ``k``, direction
            ``d``.
        lengths : list or 1-D array of int, (m,), optional
            Valid steps per sequence, each in ``1..T``: torch's packed-sequence semantics.

        Returns
        -------
        y : ndarray, (T, m, D * H), or (m, T, D * H) when ``batch_first``
            Zero past each length.
        h_n : ndarray, (num_layers * D, m, H)
            Final state at each sequence's last valid step.
        """
        return super().forward(x, h0, lengths=lengths)

    def __call__(self, x: Any, h0: Any = None, *, lengths: Any = None) -> tuple[Any, Any]:
        """Same as :meth:`forward`."""
        return self.forward(x, h0, lengths=lengths)

    def backward(self, dy: Any, dh_n: Any = None) -> tuple[Any, Any]:
        """Backpropagate through the last :meth:`forward` of this thread: ``(dx, dh0)``.

        Parameters
        ----------
        dy : ndarray or None
            Gradient with respect to ``y`` (``None`` for zeros).
        dh_n : ndarray, (num_layers * D, m, H), optional
            Gradient with respect to ``h_n`` (``None`` for zeros).

        Returns
        -------
        dx : ndarray, same shape and layout as ``x``
        dh0 : ndarray, (num_layers * D, m, H)

        Adds the parameter gradients to :attr:`grads` (see :meth:`xplstm.LSTM.backward`).
        """
        return super().backward(dy, dh_n)
