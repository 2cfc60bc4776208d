"""A fully connected output layer, ``y = x @ weight.T + bias``, with an explicit backward."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Dense"]


class Dense:
    """Affine map over the last axis, shaped like ``torch.nn.Linear``.

    Parameters
    ----------
    in_features, out_features : int
    rng : numpy.random.Generator
        Source of the initial weights: uniform in ``+-1/sqrt(in_features)`` (torch's default).
    dtype : str or dtype
        ``float32`` or ``float64``.
    xp : module
        ``numpy`` or ``cupy``: where the parameters live.

    Attributes
    ----------
    weight : ndarray, (out_features, in_features)
    bias : ndarray, (out_features,)
    grads : dict of str to ndarray
        ``{"weight", "bias"}``, accumulated by :meth:`backward` until :meth:`zero_grad`.
    """

    def __init__(
        self, in_features: int, out_features: int, *, rng: np.random.Generator, dtype: Any, xp: Any
    ) -> None:
        self.in_features = in_features
        self.out_features = out_features
        self.xp = xp
        bound = 1.0 / np.sqrt(in_features)
        weight = rng.uniform(-bound, bound, size=(out_features, in_features)).astype(dtype)
        bias = rng.uniform(-bound, bound, size=out_features).astype(dtype)
        self.params = {"weight": xp.asarray(weight), "bias": xp.asarray(bias)}
        self.grads = {name: xp.zeros_like(value) for name, value in self.params.items()}
        self._inputs: Any = None

    @property
    def weight(self) -> Any:
        return self.params["weight"]

    @property
    def bias(self) -> Any:
        return self.params["bias"]

    def forward(self, x: Any) -> Any:
        """Apply the layer.

        Parameters
        ----------
        x : ndarray, (..., in_features)

        Returns
        -------
        ndarray, (..., out_features)
        """
        self._inputs = x
        return x @ self.weight.T + self.bias

    def backward(self, dy: Any) -> Any:
        """Accumulate parameter gradients and return the input gradient.

        Parameters
        ----------
        dy : ndarray, (..., out_features)
            Gradient with respect to the output of the last :meth:`forward`.

        Returns
        -------
        dx : ndarray, (..., in_features)
        """
        if self._inputs is None:
            raise RuntimeError("Dense.backward called before forward")
        flat_dy = dy.reshape(-1, self.out_features)
        flat_x = self._inputs.reshape(-1, self.in_features)
        self.grads["weight"] += flat_dy.T @ flat_x
        self.grads["bias"] += flat_dy.sum(axis=0)
        return dy @ self.weight

    def zero_grad(self) -> None:
        for gradient in self.grads.values():
            gradient.fill(0)

    def state_dict(self) -> dict[str, Any]:
        """Copies of ``weight`` and ``bias``."""
        return {name: value.copy() for name, value in self.params.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy ``weight`` and ``bias`` from ``state`` (any backend) into the layer's arrays."""
        for name, target in self.params.items():
            if name not in state:
                raise KeyError(f"Dense state is missing {name!r}")
            value = state[name]
            if tuple(value.shape) != target.shape:
                raise ValueError(
                    f"Dense {name} has shape {tuple(value.shape)} in the state but the layer "
                    f"expects {target.shape}"
                )
            target[...] = self.xp.asarray(value, dtype=target.dtype)
