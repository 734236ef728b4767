"""What an optimizer holds in memory beyond the model, measured from its actual state.

The figures are read from the tensors an optimizer really keeps after a step, not from a table:
a new optimizer, a torch release that changes what its optimizers keep, or an argument such as
``momentum`` or ``amsgrad`` is measured as it is. ``make bench`` tabulates ``method_memory`` for
every registered method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from lightsam.optim.base import SharpnessAwareOptimizer
from lightsam.optim.registry import create_optimizer, optimizer_entry


@dataclass(frozen=True)
class OptimizerMemory:
    """An optimizer's memory beyond the model's weights and gradients.

    ``statistics``, ``ascent_statistics`` and ``saved_weights`` are in floats per parameter
    (elements per element of the weights: 1.0 is one more tensor the size of the model), so
    they do not depend on the model; multiply by the number of parameters and the bytes of the
    state's dtype (float32, also for half-precision weights) for bytes.

    Attributes:
        parameters: the number of elements of the optimizer's parameters.
        statistics: per-coordinate statistics (state tensors the shape of their parameter:
            momentum, moments, accumulators), those of a sharpness-aware optimizer's ascent
            included. SGD with momentum: 1; Adam: 2; LightSAM-III: 4 (``r, u, m, v``).
        ascent_statistics: the part of ``statistics`` the ascent keeps (LightSAM-II: 1, -III:
            2, SAM: 0): also what a step that can be undone copies, the extra memory of training
            with a loss scaler (``TrainStep(scaler=...)``).
        saved_weights: the copy of the weights before the ascent that a sharpness-aware
            optimizer keeps to restore them exactly (1); 0 for any other optimizer.
        scalar_bytes: everything else, in bytes: step counts, LightSAM-I's and AdaGrad-Norm's
            global sums; independent of the model's size.
        total_bytes: all of it, in bytes.
    """

    parameters: int
    statistics: float
    ascent_statistics: float
    saved_weights: float
    scalar_bytes: int
    total_bytes: int

    @property
    def per_parameter(self) -> float:
        """Floats per parameter in all: ``statistics + saved_weights``."""
        return self.statistics + self.saved_weights


def _tensors(state: Any) -> list[tuple[Tensor, str, Tensor]]:
    """(parameter, key, tensor) for every tensor in a per-parameter state."""
    return [
        (p, key, value)
        for p, entries in state.items()
        for key, value in entries.items()
        if isinstance(value, Tensor)
    ]


def optimizer_memory(optimizer: Optimizer) -> OptimizerMemory:
    """Measure ``optimizer``'s memory now (after at least one step: optimizers create their
    statistics on first use). Tensors shared between states (a pairing's descent state is its
    base optimizer's) are counted once."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    parameters = sum(p.numel() for p in params)
    entries = _tensors(optimizer.state)
    saved: list[Tensor] = []
    ascent_keys: set[tuple[int, str]] = set()
    if isinstance(optimizer, SharpnessAwareOptimizer):
        ascent = _tensors(optimizer._ascent_statistics())
        ascent_keys = {(id(v), key) for _, key, v in ascent if key.startswith("ascent_")}
        entries += ascent
        saved = list(optimizer._origins.values())
    seen: set[int] = set()
    statistics = ascent_statistics = scalar_bytes = total_bytes = 0
    for p, key, value in entries:
        if id(value) in seen:
            continue
        seen.add(id(value))
        size = value.numel() * value.element_size()
        total_bytes += size
        if value.shape == p.shape:
            statistics += value.numel()
            if (id(value), key) in ascent_keys:
                ascent_statistics += value.numel()
        else:
            scalar_bytes += size
    total_bytes += sum(t.numel() * t.element_size() for t in saved)
    return OptimizerMemory(
        parameters=parameters,
        statistics=statistics / parameters,
        ascent_statistics=ascent_statistics / parameters,
        saved_weights=sum(t.numel() for t in saved) / parameters,
        scalar_bytes=scalar_bytes,
        total_bytes=total_bytes,
    )


def method_memory(name: str, **hyperparameters: Any) -> OptimizerMemory:
    """``optimizer_memory`` of the registered optimizer ``name`` after one step on a small
    model (two linear layers), with ``hyperparameters`` (``momentum=0.9``, ...) over a default
    ``lr`` and, for a sharpness-aware one, ``rho``."""
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))
    sharpness_aware = optimizer_entry(name).sharpness_aware
    defaults = {"lr": 1e-3, **({"rho": 0.05} if sharpness_aware else {})}
    optimizer = create_optimizer(name, model.parameters(), **(defaults | hyperparameters))
    x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return optimizer_memory(optimizer)
