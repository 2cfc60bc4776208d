"""Optimizers that update named parameter arrays in place: SGD with momentum, and Adam.

Both follow ``torch.optim`` formulas. Their state (moments, step count) comes out of
:meth:`state_dict` as plain NumPy arrays keyed by ``"<slot>.<parameter name>"``, so it can sit in an
``.npz`` checkpoint next to the weights and be restored bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..backend import asnumpy, get_array_module

__all__ = ["SGD", "Adam", "Optimizer"]


class Optimizer:
    """Shared plumbing: the parameters, one zeroed state slot per parameter and name, a step count.

    Parameters
    ----------
    parameters : mapping of str to ndarray
        The arrays to update in place (NumPy or CuPy, all on one backend).
    slots : tuple of str
        Names of the per-parameter state arrays (e.g. ``("m", "v")``).
    """

    def __init__(self, parameters: Mapping[str, Any], slots: tuple[str, ...]) -> None:
        if not parameters:
            raise ValueError("parameters is empty: the optimizer needs at least one array")
        self.parameters = dict(parameters)
        self.xp = get_array_module(*self.parameters.values(), names=tuple(self.parameters))
        self.slots = slots
        self.state = {
            slot: {name: self.xp.zeros_like(value) for name, value in self.parameters.items()}
            for slot in slots
        }
        self.step_count = 0

    def step(self, gradients: Mapping[str, Any]) -> None:
        """Update every parameter from its gradient (same names, shapes and backend)."""
        missing = set(self.parameters) - set(gradients)
        if missing:
            raise KeyError(f"gradients is missing {sorted(missing)}")
        self.step_count += 1
        for name, parameter in self.parameters.items():
            self._update(name, parameter, gradients[name])

    def _update(self, name: str, parameter: Any, gradient: Any) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """NumPy copies of the state: ``"step"`` and ``"<slot>.<name>"`` for every slot and name."""
        state = {"step": np.array(self.step_count, dtype=np.int64)}
        for slot, arrays in self.state.items():
            for name, value in arrays.items():
                state[f"{slot}.{name}"] = asnumpy(value).copy()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (arrays from either backend)."""
        if "step" not in state:
            raise KeyError("optimizer state is missing 'step'")
        for slot, arrays in self.state.items():
            for name, target in arrays.items():
                key = f"{slot}.{name}"
                if key not in state:
                    raise KeyError(f"optimizer state is missing {key!r}")
                value = state[key]
                if tuple(value.shape) != target.shape:
                    raise ValueError(
                        f"optimizer state {key!r} has shape {tuple(value.shape)} but the "
                        f"parameter has shape {target.shape}"
                    )
                target[...] = self.xp.asarray(value, dtype=target.dtype)
        self.step_count = int(state["step"])


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum.

    ``velocity = momentum * velocity + gradient``; ``parameter -= lr * velocity`` (torch's
    formula without dampening; ``momentum=0`` is plain SGD).
    """

    def __init__(self, parameters: Mapping[str, Any], lr: float, momentum: float = 0.0) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        super().__init__(parameters, ("velocity",))
        self.lr = lr
        self.momentum = momentum

    def _update(self, name: str, parameter: Any, gradient: Any) -> None:
        velocity = self.state["velocity"][name]
        velocity *= self.momentum
        velocity += gradient
        parameter -= self.lr * velocity


class Adam(Optimizer):
    """Adam (Kingma and Ba) with bias correction, as ``torch.optim.Adam``.

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``, then
    ``parameter -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.
    """

    def __init__(
        self,
        parameters: Mapping[str, Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        super().__init__(parameters, ("m", "v"))
        self.lr = lr
        self.betas = betas
        self.eps = eps

    def _update(self, name: str, parameter: Any, gradient: Any) -> None:
        beta1, beta2 = self.betas
        first, second = self.state["m"][name], self.state["v"][name]
        first *= beta1
        first += (1 - beta1) * gradient
        second *= beta2
        second += (1 - beta2) * (gradient * gradient)
        first_correction = 1 - beta1**self.step_count
        second_correction = 1 - beta2**self.step_count
        denominator = self.xp.sqrt(second / second_correction)
        denominator += self.eps
        parameter -= (self.lr / first_correction) * (first / denominator)
