"""One training step: the only place that knows sharpness-aware optimizers need two passes.

For a ``SharpnessAwareOptimizer`` a step is::

    forward + backward at x_t           -> s_t      (BatchNorm running statistics updated)
    optimizer.first_step()              -> weights x_t + e_t
    forward + backward at x_t + e_t     -> g_t      (BatchNorm running statistics untouched)
    clip g_t                                        (the descent gradient, if asked)
    optimizer.second_step()             -> weights x_{t+1}

At ``rho = 0`` (every group's; ``optimizer.perturbs`` is False) ``e_t = 0`` and ``g_t = s_t``:
the step keeps ``first_step`` and ``second_step``, so the optimizer's state is as with two
passes, but takes the descent on the first pass's gradient, synchronised under DDP, and costs
one pass. Without dropout the step is bit for bit the two-pass one; with dropout it draws one
mask per step, as the base optimizer's step does, where two passes would descend along a second.

BatchNorm's running statistics are updated by the first pass only, from the batch at the
weights the model is evaluated at: once per step (once per micro-batch with accumulation), as a
plain optimizer's step does. Clipping applies to the descent gradient: clipping the ascent
gradient would be undone by the normalisation of SAM's ascent. For any other optimizer it is the
usual single pass.

Gradient accumulation: with ``accumulation=k`` each pass runs over the batch in ``k``
micro-batches, each loss weighted by its share of the batch, so both gradients are the whole
batch's (up to rounding) and a step equals one large-batch step, whatever the split. Only the
activation memory shrinks; BatchNorm normalises each micro-batch on its own, as with any
accumulation.

Loss scaling (fp16): with a ``torch.amp.GradScaler`` both passes run on the scaled loss, and
each pass's gradient is unscaled and checked for inf/nan before it is used: the ascent follows the
unscaled ``s_t``, clipping and the descent see the unscaled ``g_t``. An overflow in either pass
skips the whole step, as a GradScaler skips a plain optimizer's step: an overflow in ``s_t`` is
found before ``first_step``, so nothing moves; one in ``g_t`` is found after the ascent, which is
then abandoned (``first_step(revertible=True)`` and ``undo_first_step``): the weights are put
back bit for bit and the ascent's statistics (LightSAM's ``u``, ``r``) are as before, so no
optimizer statistic is touched by a skipped step. The scale is updated once per step, lowered
once if either pass overflowed. Each check reads one flag back from the device (two per step
where a plain GradScaler step reads one). As with any AMP step, the first pass's forward has
updated BatchNorm's running statistics even when the step is skipped.

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
synchronised pass but the last, whose backward all-reduces the accumulated gradient, once. With a
loss scaler, an overflow in an unsynchronised first pass is agreed on by all processes (one more
all-reduce of a flag), so that they all skip the step or none does.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from lightsam.optim import SharpnessAwareOptimizer

LossFn = Callable[[Tensor, Tensor], Tensor]
Perturbation = Literal["global", "local"]
PERTURBATIONS: tuple[Perturbation, ...] = ("global", "local")
AUTOCAST_DTYPES = (None, torch.float16, torch.bfloat16)


@contextlib.contextmanager
def frozen_batchnorm_statistics(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers keep normalising with the batch's statistics but do not update their
    running statistics (nor ``num_batches_tracked``) inside this block: wrap the second forward
    pass of a sharpness-aware step in it, so that the running statistics are updated once per
    step, by the first pass, from the weights the model is evaluated at.

    It is not ``model.eval()``, which would normalise with the running statistics and change
    the second gradient. It covers ``SyncBatchNorm`` too: it subclasses ``_BatchNorm`` and gates
    the updates on ``track_running_stats`` the same way (it still gathers the batch statistics
    of all processes, which the normalisation needs). Under ``torch.compile`` the flag is part of
    the compiled graph's guards: a compiled model gets one graph with the updates and one
    without, each compiled once, not a recompilation at every step."""
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


class _FirstPass:
    """The optimizer's parameters, as a GradScaler sees them for the first pass.

    A GradScaler keeps one inf check per optimizer until ``update()`` and refuses to unscale an
    optimizer's gradients twice; the first pass is unscaled as if by another optimizer over the
    same parameters, so that ``update()`` sees both passes' checks and moves the scale once."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups


class _AgreedOverflow:
    """The processes' agreed overflow flag as the one-element gradient of a parameter group, for
    a GradScaler: unscaling it records the overflow of any process in each process's scaler, so
    that all lower their scale together and keep one scale."""

    def __init__(self, overflow: Tensor) -> None:
        flag = torch.zeros((), device=overflow.device)
        flag.grad = torch.where(overflow.bool(), math.inf, 0.0).to(flag)
        self.param_groups = [{"params": [flag]}]


class TrainStep:
    """``step(x, y) -> (loss, logits)``: one optimizer step on the batch ``(x, y)``.

    For a ``SharpnessAwareOptimizer`` (LightSAM, SAM, AdaSAM, any pairing) the step is the
    two-pass step of the module docstring: forward and backward at ``x_t`` (BatchNorm's running
    statistics updated), ``first_step``, forward and backward at ``x_t + e_t`` on the same batch
    (running statistics frozen), clipping of the descent gradient, ``second_step``; at
    ``rho = 0`` the second pass is left out, its gradient being the first's. For any other
    ``torch.optim`` optimizer it is the usual single pass. The caller zeroes nothing: the
    step clears the gradients first. Step an LR scheduler after it as after
    ``optimizer.step()``.

    Returns the mean loss and the logits of the whole batch at the weights before the step,
    both detached and left on the device; under DDP, those of this process's shard.

    Args:
        model: the model, a ``torch.compile``-d model, or a ``DistributedDataParallel``
            wrapping either. Put it in ``train()`` mode yourself.
        optimizer: any ``torch.optim`` optimizer over ``model``'s parameters.
        loss_fn: ``loss_fn(logits, y)``, the *mean* loss over its batch.
        autocast_dtype: run forward passes under ``torch.autocast`` with this dtype:
            ``torch.bfloat16``, ``torch.float16`` (needs ``scaler``) or None (no autocast).
        scaler: a ``torch.amp.GradScaler`` (``GradScaler("cuda")``) to scale the loss of both
            passes; an overflow skips the whole step (module docstring, "Loss scaling"). Keep
            its ``state_dict()`` in your checkpoints to resume exactly.
        grad_clip: clip the global L2 norm of the descent gradient to this value (unscaled).
        accumulation: split each batch into this many micro-batches (fewer if the batch is
            smaller), sizes differing by at most one. The result is that of the whole batch.
        perturbation: ``"global"`` or ``"local"``: under DDP, whether the ascent gradient is
            averaged over all processes or each process's own (see the module docstring).
            Without DDP there is one process and the two are the same.

    After each call ``skipped`` says whether the scaler found an overflow and skipped the step
    (always False without a scaler).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        *,
        autocast_dtype: torch.dtype | None = None,
        scaler: torch.amp.GradScaler | None = None,
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
        if autocast_dtype not in AUTOCAST_DTYPES:
            raise ValueError(
                "autocast_dtype must be one of None, torch.float16, torch.bfloat16; got "
                f"{autocast_dtype!r}"
            )
        if autocast_dtype == torch.float16 and scaler is None:
            raise ValueError(
                "autocast_dtype torch.float16 needs a loss scaler, or small gradients underflow "
                "to zero: pass scaler=torch.amp.GradScaler('cuda') (or use torch.bfloat16, "
                "which needs none)"
            )
        if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
            raise ValueError(f"scaler must be a torch.amp.GradScaler or None, got {scaler!r}")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip!r}")
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.autocast_dtype = autocast_dtype
        self.scaler = scaler
        self.grad_clip = grad_clip
        self.accumulation = accumulation
        self.perturbation = perturbation
        self.sharpness_aware = isinstance(optimizer, SharpnessAwareOptimizer)
        self.skipped = False
        self._first_pass = _FirstPass(optimizer)
        self._agreed_overflow: _AgreedOverflow | None = None

    def _no_sync(self) -> contextlib.AbstractContextManager[None]:
        if isinstance(self.model, DistributedDataParallel):
            return self.model.no_sync()
        return contextlib.nullcontext()

    def _forward_backward(
        self, micro_batches: list[tuple[Tensor, Tensor]], *, synchronise: bool
    ) -> tuple[Tensor, Tensor]:
        """Accumulate into ``.grad`` the gradient of the whole batch's mean loss (scaled, with a
        scaler), one micro-batch at a time. With ``synchronise`` DDP all-reduces once, in the
        backward of the last micro-batch; without, never. Returns the batch's mean loss and
        logits, detached."""
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
                (loss if self.scaler is None else self.scaler.scale(loss)).backward()
            losses.append(loss.detach())
            logits.append(output.detach())
        return torch.stack(losses).sum(), torch.cat(logits)

    def _unscaled_and_finite(self, owner: Any, *, synchronised: bool) -> bool:
        """Unscale the gradients in ``.grad`` (the scaler records its inf check under
        ``owner``) and say whether all are finite; the same answer on every process."""
        self.scaler.unscale_(owner)
        grads = [
            p.grad for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None
        ]
        # The max-abs norm is inf or nan exactly when a gradient is, and cannot overflow.
        largest = torch.stack(torch._foreach_norm(grads, math.inf)) if grads else torch.zeros(1)
        overflow = (~largest.isfinite().all()).to(torch.int32)
        if not synchronised and isinstance(self.model, DistributedDataParallel):
            dist.all_reduce(overflow, op=dist.ReduceOp.MAX, group=self.model.process_group)
            # Held until the scaler's update(): the scaler keys its inf checks by the owner's id.
            self._agreed_overflow = _AgreedOverflow(overflow)
            self.scaler.unscale_(self._agreed_overflow)
        return not overflow.item()

    def _clip(self) -> None:
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)

    def _skip(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.update()  # lowers the scale: an inf check it recorded found the overflow
        self.skipped = True

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.sharpness_aware and self.optimizer.is_perturbed:
            raise RuntimeError(
                "the optimizer is between first_step() and second_step(): a TrainStep takes "
                "whole steps; finish the step you began with second_step() (or "
                "undo_first_step()) before calling it"
            )
        self.skipped = False
        chunks = min(self.accumulation, len(x))
        micro_batches = list(zip(x.tensor_split(chunks), y.tensor_split(chunks), strict=True))
        self.optimizer.zero_grad(set_to_none=True)
        scaled = self.scaler is not None
        if not self.sharpness_aware:
            loss, logits = self._forward_backward(micro_batches, synchronise=True)
            if scaled and not self._unscaled_and_finite(self.optimizer, synchronised=True):
                self._skip()
                return loss, logits
            self._clip()
            self.optimizer.step()
            if scaled:
                self.scaler.update()
            return loss, logits
        one_pass = not self.optimizer.perturbs
        synchronise = one_pass or self.perturbation == "global"
        loss, logits = self._forward_backward(micro_batches, synchronise=synchronise)
        # The first pass is checked before first_step: the ascent updates statistics of its own.
        if scaled and not self._unscaled_and_finite(self._first_pass, synchronised=synchronise):
            self._skip()
            return loss, logits
        self.optimizer.first_step(zero_grad=not one_pass, revertible=scaled and not one_pass)
        if not one_pass:
            with frozen_batchnorm_statistics(self.model):
                self._forward_backward(micro_batches, synchronise=True)
            if scaled and not self._unscaled_and_finite(self.optimizer, synchronised=True):
                self.optimizer.undo_first_step()
                self._skip()
                return loss, logits
        self._clip()
        self.optimizer.second_step(zero_grad=True)
        if scaled:
            self.scaler.update()
        return loss, logits
