"""The optimizers' maths: pure functions on lists of tensors, updating them in place.

Every rule has a plain per-tensor loop (``_single_tensor_*``), the readable reference, and a
multi-tensor version (``_multi_tensor_*``) built on ``torch._foreach_*`` and grouped by device and
dtype; the public function picks one with ``foreach``. The tests run both in float64 and require
the same trajectory.

LightSAM's observation is that its ascent and its descent are the *same* adaptive rule with their
own statistics and opposite signs: ``x += rho * dir(s; u)`` then ``x -= lr * dir(g; v)``. So each
rule here takes a signed ``step_size`` and knows nothing of which half it serves.

Statistics of half-precision parameters are float32 (see ``base.state_dtype``); the in-place
updates below promote, compute in float32 and round once into the parameter.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils._foreach_utils import _group_tensors_by_device_and_dtype

from lightsam.optim.base import accumulation_dtype, state_dtype

__all__ = ["adagrad_", "adagrad_norm_", "adam_", "sam_perturb_", "sq_norm"]


def sq_norm(tensors: list[Tensor], *, foreach: bool) -> Tensor:
    """Squared global L2 norm over all ``tensors``, a 0-dim tensor in float32 (float64 if any
    tensor is float64) on the device of the first tensor."""
    device, dtype = tensors[0].device, accumulation_dtype(tensors)
    if foreach:
        norms: list[Tensor] = []
        for (_, group_dtype), ([group], _) in _group_tensors_by_device_and_dtype([tensors]).items():
            probe = torch.empty((), dtype=group_dtype)
            norms.extend(torch._foreach_norm(group, 2, dtype=state_dtype(probe)))
    else:
        norms = [torch.linalg.vector_norm(t, dtype=state_dtype(t)) for t in tensors]
    return torch.stack([n.to(device=device, dtype=dtype) for n in norms]).square().sum()


# -- SAM / ASAM ascent ---------------------------------------------------------------------------


def sam_perturb_(
    params: list[Tensor],
    grads: list[Tensor],
    scale: Tensor,
    *,
    adaptive: bool,
    asam_eta: float,
    foreach: bool,
) -> None:
    """``p += scale * T^2 * g`` with ``T = |p| + asam_eta`` if ``adaptive`` else ``T = 1``.

    ``scale`` is ``rho / (||T s|| + 1e-12)``, computed by the caller over every parameter.
    """
    if foreach:
        for (device, _), ([ps, gs], _) in _group_tensors_by_device_and_dtype(
            [params, grads]
        ).items():
            s = scale.to(device)
            if adaptive:
                t = torch._foreach_abs(ps)
                torch._foreach_add_(t, asam_eta)
                torch._foreach_mul_(t, t)
                torch._foreach_mul_(t, gs)
                torch._foreach_mul_(t, s)
            else:
                t = torch._foreach_mul(gs, s)
            torch._foreach_add_(ps, t)
    else:
        for p, g in zip(params, grads, strict=True):
            s = scale.to(p.device)
            if adaptive:
                t = p.abs().add_(asam_eta)
                p.add_(t * t * g * s)
            else:
                p.add_(g * s)


def asam_scaled(params: list[Tensor], grads: list[Tensor], asam_eta: float) -> list[Tensor]:
    """``T * g`` with ``T = |p| + asam_eta``: the gradient whose norm normalises ASAM's ascent."""
    return [g * p.abs().add_(asam_eta) for p, g in zip(params, grads, strict=True)]


# -- AdaGrad-Norm (LightSAM-I) ------------------------------------------------------------------


def adagrad_norm_(
    params: list[Tensor],
    grads: list[Tensor],
    sq_norm_sum: Tensor,
    *,
    step_size: float,
    foreach: bool,
) -> None:
    """``p += step_size * g / sqrt(sq_norm_sum)``.

    ``sq_norm_sum`` is the global scalar accumulator, already including this step's ``||g||^2``
    summed over every parameter of the optimizer (the caller owns it, as it spans param groups).
    """
    coefficient = sq_norm_sum.rsqrt() * step_size
    if foreach:
        for (device, _), ([ps, gs], _) in _group_tensors_by_device_and_dtype(
            [params, grads]
        ).items():
            torch._foreach_add_(ps, torch._foreach_mul(gs, coefficient.to(device)))
    else:
        for p, g in zip(params, grads, strict=True):
            p.add_(g * coefficient.to(p.device))


# -- AdaGrad (LightSAM-II) ----------------------------------------------------------------------


def adagrad_(
    params: list[Tensor],
    grads: list[Tensor],
    sq_sums: list[Tensor],
    *,
    step_size: float,
    foreach: bool,
) -> None:
    """``v += g * g;  p += step_size * g / sqrt(v)`` elementwise (nothing added to the root)."""
    if foreach:
        for [ps, gs, vs], _ in _group_tensors_by_device_and_dtype(
            [params, grads, sq_sums]
        ).values():
            torch._foreach_addcmul_(vs, gs, gs)
            torch._foreach_addcdiv_(ps, gs, torch._foreach_sqrt(vs), step_size)
    else:
        for p, g, v in zip(params, grads, sq_sums, strict=True):
            v.addcmul_(g, g)
            p.addcdiv_(g, v.sqrt(), value=step_size)


# -- Adam (LightSAM-III) and AMSGrad (AdaSAM) ----------------------------------------------------


def adam_(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    max_exp_avg_sqs: list[Tensor] | None,
    *,
    step_sizes: list[float],
    beta1: float,
    beta2: float,
    foreach: bool,
) -> None:
    """``m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g*g;  p += step_size * m / sqrt(v)``.

    With ``max_exp_avg_sqs`` (AMSGrad), ``v_hat = max(v_hat, v)`` replaces ``v`` in the root.
    ``step_sizes`` has one signed entry per parameter, so that callers can fold in bias
    corrections that depend on each parameter's own step count.
    """
    amsgrad = max_exp_avg_sqs is not None
    lists = [params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs if amsgrad else []]
    if foreach:
        grouped = _group_tensors_by_device_and_dtype(lists, with_indices=True)
        for [ps, gs, ms, vs, vmaxs], indices in grouped.values():
            torch._foreach_mul_(ms, beta1)
            torch._foreach_add_(ms, gs, alpha=1.0 - beta1)
            torch._foreach_mul_(vs, beta2)
            torch._foreach_addcmul_(vs, gs, gs, 1.0 - beta2)
            if amsgrad:
                torch._foreach_maximum_(vmaxs, vs)
            denom = torch._foreach_sqrt(vmaxs if amsgrad else vs)
            torch._foreach_addcdiv_(ps, ms, denom, [step_sizes[i] for i in indices])
    else:
        maxes = max_exp_avg_sqs if amsgrad else [None] * len(params)
        for p, g, m, v, vmax, step_size in zip(
            params, grads, exp_avgs, exp_avg_sqs, maxes, step_sizes, strict=True
        ):
            m.mul_(beta1).add_(g, alpha=1.0 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
            if vmax is not None:
                torch.maximum(vmax, v, out=vmax)
            p.addcdiv_(m, (v if vmax is None else vmax).sqrt(), value=step_size)
