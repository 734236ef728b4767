"""One training step: the only place that knows sharpness-aware optimizers need two passes.

For a ``SharpnessAwareOptimizer`` a step is::

    forward + backward at x_t           -> s_t      (BatchNorm running statistics updated)
    optimizer.first_step()              -> weights x_t + e_t
    forward + backward at x_t + e_t     -> g_t      (BatchNorm running statistics untouched)
    clip g_t                                        (the descent gradient, if asked)
    optimizer.second_step()             -> weights x_{t+1}

so a step updates BatchNorm's running statistics exactly once, from the batch at the weights
the model is evaluated at, as a plain optimizer's step does. Clipping applies to the descent
gradient: clipping the ascent gradient would be undone by the normalisation of SAM's ascent.
For any other optimizer it is the usual single pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from lightsam.optim import SharpnessAwareOptimizer

LossFn = Callable[[Tensor, Tensor], Tensor]


@contextlib.contextmanager
def frozen_batchnorm_statistics(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers keep normalising with the batch's statistics but do not update their
    running statistics (nor ``num_batches_tracked``) inside this block."""
    layers = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    for layer in layers:
        layer.track_running_stats = False
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True


class TrainStep:
    """``step(x, y) -> (loss, logits)`` at the current weights, both detached."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        *,
        autocast_dtype: torch.dtype | None = None,
        grad_clip: float | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.autocast_dtype = autocast_dtype
        self.grad_clip = grad_clip
        self.sharpness_aware = isinstance(optimizer, SharpnessAwareOptimizer)

    def _forward_backward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        with torch.autocast(
            x.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            logits = self.model(x)
            loss = self.loss_fn(logits, y)
        loss.backward()
        return loss.detach(), logits.detach()

    def _clip(self) -> None:
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits = self._forward_backward(x, y)
        if self.sharpness_aware:
            self.optimizer.first_step(zero_grad=True)
            with frozen_batchnorm_statistics(self.model):
                self._forward_backward(x, y)
            self._clip()
            self.optimizer.second_step(zero_grad=True)
        else:
            self._clip()
            self.optimizer.step()
        return loss, logits
