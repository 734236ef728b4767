"""One training step: the only place that knows sharpness-aware optimizers need two passes.

For a ``SharpnessAwareOptimizer`` a step is::

    forward + backward at x_t           -> s_t      (BatchNorm running statistics updated)
    optimizer.first_step()              -> weights x_t + e_t
    forward + backward at x_t + e_t     -> g_t      (BatchNorm running statistics untouched)
    clip g_t                                        (the descent gradient, if asked)
    optimizer.second_step()             -> weights x_{t+1}

so BatchNorm's running statistics are updated by the first pass only, from the batch at the
weights the model is evaluated at: once per step (once per micro-batch with accumulation), as a
plain optimizer's step does. Clipping applies to the descent gradient: clipping the ascent
gradient would be undone by the normalisation of SAM's ascent. For any other optimizer it is the
usual single pass.

Gradient accumulation: with ``accumulation=k`` each pass runs over the batch in ``k``
micro-batches, each loss weighted by its share of the batch, so both gradients are the whole
batch's (up to rounding) and a step equals one large-batch step, whatever the split. Only the
activation memory shrinks; BatchNorm normalises each micro-batch on its own, as with any
accumulation.

DistributedDataParallel: with a DDP ``model`` each process passes its own shard of the global
batch and DDP averages the gradients over processes in the backward pass, which gives the
global batch's gradient when the shards are equal-sized (``distributed.shard``). SAM's ascent
gradient is either the global one or each process's own, as ``perturbation`` says:

* ``"global"`` (default): the first pass is synchronised too, so every process perturbs along
  the gradient of the global batch and training is that of one process on the global batch
  (BatchNorm aside, which normalises per process unless it is a SyncBatchNorm). Two all-reduces
  per step.
* ``"local"``: each process perturbs along its own gradient: SAM's m-sharpness, m the
  per-process batch (Foret et al. find smaller m generalises better). One all-reduce per step.
  The weights stay identical on all processes, as the descent gradient is still averaged, but
  the ascent's statistics (LightSAM's ``u``, ``r``) differ from process to process. A
  SyncBatchNorm still pools the batch statistics of all processes in the first pass.

The descent gradient is always averaged. The pitfall: DDP decides in the *forward* pass whether
the backward pass all-reduces (``no_sync`` keeps the forward from arming the reducer), so the
common recipe of wrapping only the first ``backward()`` in ``model.no_sync()`` still
all-reduces, and silently gives the global perturbation. Here a pass that must not synchronise
runs forward and backward inside ``no_sync``; with accumulation so do all micro-batches of a
synchronised pass but the last, whose backward all-reduces the accumulated gradient, once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from lightsam.optim import SharpnessAwareOptimizer

LossFn = Callable[[Tensor, Tensor], Tensor]
Perturbation = Literal["global", "local"]
PERTURBATIONS: tuple[Perturbation, ...] = ("global", "local")


@contextlib.contextmanager
def frozen_batchnorm_statistics(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers keep normalising with the batch's statistics but do not update their
    running statistics (nor ``num_batches_tracked``) inside this block. This covers
    ``SyncBatchNorm`` too: it subclasses ``_BatchNorm`` and gates the updates on
    ``track_running_stats`` the same way (it still gathers the batch statistics of all
    processes, which the normalisation needs)."""
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
    """``step(x, y) -> (loss, logits)``: one optimizer step on the batch ``(x, y)``.

    Returns the mean loss and the logits of the whole batch at the weights before the step,
    both detached; under DDP, those of this process's shard.

    Args:
        model: the model, or a ``DistributedDataParallel`` wrapping it.
        optimizer: any ``torch.optim`` optimizer; a ``SharpnessAwareOptimizer`` gets two passes.
        loss_fn: ``loss_fn(logits, y)``, the *mean* loss over its batch.
        autocast_dtype: run forward passes under autocast with this dtype (None: no autocast).
        grad_clip: clip the global norm of the descent gradient to this value.
        accumulation: split each batch into this many micro-batches (fewer if the batch is
            smaller), sizes differing by at most one. The result is that of the whole batch.
        perturbation: ``"global"`` or ``"local"``: under DDP, whether the ascent gradient is
            averaged over all processes or each process's own (see the module docstring).
            Without DDP there is one process and the two are the same.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        *,
        autocast_dtype: torch.dtype | None = None,
        grad_clip: float | None = None,
        accumulation: int = 1,
        perturbation: Perturbation = "global",
    ) -> None:
        if isinstance(accumulation, bool) or not isinstance(accumulation, int) or accumulation < 1:
            raise ValueError(f"accumulation must be an integer >= 1, got {accumulation!r}")
        if perturbation not in PERTURBATIONS:
            raise ValueError(
                f"perturbation must be one of {', '.join(PERTURBATIONS)}; got {perturbation!r}"
            )
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.autocast_dtype = autocast_dtype
        self.grad_clip = grad_clip
        self.accumulation = accumulation
        self.perturbation = perturbation
        self.sharpness_aware = isinstance(optimizer, SharpnessAwareOptimizer)

    def _no_sync(self) -> contextlib.AbstractContextManager[None]:
        if isinstance(self.model, DistributedDataParallel):
            return self.model.no_sync()
        return contextlib.nullcontext()

    def _forward_backward(
        self, micro_batches: list[tuple[Tensor, Tensor]], *, synchronise: bool
    ) -> tuple[Tensor, Tensor]:
        """Accumulate into ``.grad`` the gradient of the whole batch's mean loss, one
        micro-batch at a time. With ``synchronise`` DDP all-reduces once, in the backward of the
        last micro-batch; without, never. Returns the batch's mean loss and logits, detached."""
        size = sum(len(y) for _, y in micro_batches)
        enabled = self.autocast_dtype is not None
        losses, logits = [], []
        for i, (x, y) in enumerate(micro_batches):
            sync = synchronise and i == len(micro_batches) - 1
            # The forward pass inside ``no_sync`` too: it is what arms DDP's all-reduce.
            with contextlib.nullcontext() if sync else self._no_sync():
                with torch.autocast(x.device.type, dtype=self.autocast_dtype, enabled=enabled):
                    output = self.model(x)
                    loss = self.loss_fn(output, y) * (len(y) / size)
                loss.backward()
            losses.append(loss.detach())
            logits.append(output.detach())
        return torch.stack(losses).sum(), torch.cat(logits)

    def _clip(self) -> None:
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        chunks = min(self.accumulation, len(x))
        micro_batches = list(zip(x.tensor_split(chunks), y.tensor_split(chunks), strict=True))
        self.optimizer.zero_grad(set_to_none=True)
        if not self.sharpness_aware:
            loss, logits = self._forward_backward(micro_batches, synchronise=True)
            self._clip()
            self.optimizer.step()
            return loss, logits
        loss, logits = self._forward_backward(
            micro_batches, synchronise=self.perturbation == "global"
        )
        self.optimizer.first_step(zero_grad=True)
        with frozen_batchnorm_statistics(self.model):
            self._forward_backward(micro_batches, synchronise=True)
        self._clip()
        self.optimizer.second_step(zero_grad=True)
        return loss, logits
