"""What a training step keeps in memory, measured the same way for a method and its base.

Two measures. ``held_bytes`` (any device) counts the tensors a step keeps from one step to the
next: the model's parameters and buffers, one gradient per parameter (every backward pass
allocates them, whether or not the step frees them after), and every tensor the optimizer holds
(its statistics, a sharpness-aware optimizer's saved weights). It is exact, and but for a step's
temporaries it is all that differs between a method and its base: activations are one pass's
in both, since the two passes of a sharpness-aware step run one after the other.
``peak_bytes`` (CUDA only, as torch keeps no allocation statistics on CPU) is
``torch.cuda.max_memory_allocated`` over one step: the above plus activations and temporaries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from lightsam import optimizer_memory
from lightsam.step import TrainStep


def _nbytes(tensors: Iterable[Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def held_bytes(step: TrainStep) -> int:
    """Bytes ``step`` holds between steps: parameters, buffers, a gradient per parameter and
    the optimizer's tensors, as ``lightsam.optimizer_memory`` reads them (call it after a step,
    once the optimizer's state exists)."""
    params = list(step.model.parameters())
    return (
        2 * _nbytes(params)
        + _nbytes(step.model.buffers())
        + optimizer_memory(step.optimizer).total_bytes
    )


def peak_bytes(make_step: Callable[[], Callable[[], object]], device: torch.device) -> int:
    """CUDA bytes allocated at the peak of one step of a step built by ``make_step``, above
    what was allocated before it was built, after one step to create the optimizer's state."""
    if device.type != "cuda":
        raise ValueError("peak memory is measured on CUDA only: torch keeps no CPU statistics")
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    step = make_step()
    step()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before
