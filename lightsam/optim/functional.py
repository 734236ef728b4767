"""The optimizers' maths: pure functions on lists of tensors, updating them in place.

LightSAM's observation is that its ascent and its descent are the *same* adaptive rule with their
own statistics and opposite signs: ``x_t + rho * n / sqrt(u)`` then ``x_t - lr * n' / sqrt(v)``.
So the functions here come in two kinds: ones that update a rule's statistics (``accumulate_sq_``,
``ema_``, ``sq_norm``), and ones that apply a step (``add_scaled_`` for the norm-based rules,
``perturb_adaptive_`` for an elementwise ascent, ``descend_adaptive_`` for an elementwise
descent), each knowing nothing of which method it serves.

Every function has two paths, picked by ``foreach``:

* the multi-tensor path (``torch._foreach_*``), the default on CUDA, where one kernel launch
  serves many tensors and the caching allocator makes temporaries cheap;
* the per-tensor loop, the readable reference and the default on CPU for a group with a tensor
  larger than ``base.CPU_FOREACH_MAX_NUMEL`` elements. There torch's foreach
  kernels are loops over per-tensor kernels anyway, with no ``out=`` forms, and every fresh
  parameter-sized buffer costs page faults; so this path writes its intermediate roots into
  buffers a sharpness-aware optimizer has spare: the parameters during the ascent (their
  ``x_t`` is saved in the origin buffers), the origin buffers during the descent.

The tests run both paths in float64 and require the same trajectory.

Statistics of half-precision parameters are float32 (see ``base.state_dtype``); the in-place
updates promote, compute in float32 and round once into their output.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "accumulate_sq_",
    "add_scaled_",
    "asam_scaled",
    "descend_adaptive_",
    "ema_",
    "perturb_adaptive_",
    "sq_dist_",
    "sq_norm",
]


LOW_PRECISION = (torch.float16, torch.bfloat16)


def state_dtype(param: Tensor) -> torch.dtype:
    """Dtype of a parameter's optimizer statistics: float32 for half-precision parameters,
    whose accumulated squares would otherwise lose most of their bits."""
    return torch.float32 if param.dtype in LOW_PRECISION else param.dtype


def accumulation_dtype(tensors: list[Tensor]) -> torch.dtype:
    """Dtype of a statistic that spans several tensors (a global norm): float64 if any of them is
    float64, else float32."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _grouped(*lists: list[Tensor]) -> list[tuple[list[list[Tensor]], list[int]]]:
    """``(tensor lists, original indices)`` per device and dtype of the first list's tensors.

    Unlike torch's own grouping, the other lists may differ in dtype (float32 statistics of
    half-precision parameters are passed beside them).
    """
    keys = [(t.device, t.dtype) for t in lists[0]]
    if len(set(keys)) == 1:
        return [([list(tensors) for tensors in lists], list(range(len(keys))))]
    groups: dict[tuple[torch.device, torch.dtype], tuple[list[list[Tensor]], list[int]]] = {}
    for i, key in enumerate(keys):
        tensors, indices = groups.setdefault(key, ([[] for _ in lists], []))
        for group_list, full_list in zip(tensors, lists, strict=True):
            group_list.append(full_list[i])
        indices.append(i)
    return list(groups.values())


# -- statistics -----------------------------------------------------------------------------------


def _sum_of_squares(norms: list[Tensor], like: list[Tensor]) -> Tensor:
    device, dtype = like[0].device, accumulation_dtype(like)
    return torch.stack([n.to(device=device, dtype=dtype) for n in norms]).square().sum()


def sq_norm(tensors: list[Tensor], *, foreach: bool) -> Tensor:
    """Squared global L2 norm over all ``tensors``, a 0-dim tensor in float32 (float64 if any
    tensor is float64) on the device of the first tensor."""
    if foreach:
        norms: list[Tensor] = []
        for [group], _ in _grouped(tensors):
            norms.extend(torch._foreach_norm(group, 2, dtype=state_dtype(group[0])))
    else:
        norms = [torch.linalg.vector_norm(t, dtype=state_dtype(t)) for t in tensors]
    return _sum_of_squares(norms, tensors)


def sq_dist_(tensors: list[Tensor], others: list[Tensor], *, foreach: bool) -> Tensor:
    """Squared global L2 distance ``sum ||a - b||^2``, as :func:`sq_norm` returns it, computed
    by overwriting ``tensors`` with ``a - b``: for tensors about to be overwritten anyway (the
    perturbed weights before their restore), so that no temporary is allocated. ``a - b`` is
    exact where ``a`` and ``b`` are within a factor 2 of each other (Sterbenz)."""
    if foreach:
        for [group, other], _ in _grouped(tensors, others):
            torch._foreach_sub_(group, other)
    else:
        for a, b in zip(tensors, others, strict=True):
            a.sub_(b)
    return sq_norm(tensors, foreach=foreach)


def asam_scaled(weights: list[Tensor], grads: list[Tensor], asam_eta: float) -> list[Tensor]:
    """``T * g`` with ``T = |w| + asam_eta``, ASAM's scale-invariant gradient (new tensors)."""
    return [g * w.abs().add_(asam_eta) for w, g in zip(weights, grads, strict=True)]


def accumulate_sq_(sq_sums: list[Tensor], grads: list[Tensor], *, foreach: bool) -> None:
    """AdaGrad's statistic: ``v += g * g``."""
    if foreach:
        for [vs, gs], _ in _grouped(sq_sums, grads):
            torch._foreach_addcmul_(vs, gs, gs)
    else:
        for v, g in zip(sq_sums, grads, strict=True):
            v.addcmul_(g, g)


def ema_(
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    grads: list[Tensor],
    *,
    beta1: float,
    beta2: float,
    max_exp_avg_sqs: list[Tensor] | None = None,
    foreach: bool,
) -> None:
    """Adam's statistics: ``m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g*g``; with
    ``max_exp_avg_sqs`` (AMSGrad) also ``v_hat = max(v_hat, v)``. ``m`` is updated as
    ``m + (1-b1) (g - m)`` (one pass, ``lerp``) where ``g`` has its dtype."""
    amsgrad = max_exp_avg_sqs is not None
    if foreach:
        lists = [exp_avgs, exp_avg_sqs, grads] + ([max_exp_avg_sqs] if amsgrad else [])
        for tensors, _ in _grouped(*lists):
            ms, vs, gs = tensors[:3]
            if ms[0].dtype == gs[0].dtype:
                torch._foreach_lerp_(ms, gs, 1.0 - beta1)
            else:
                torch._foreach_mul_(ms, beta1)
                torch._foreach_add_(ms, gs, alpha=1.0 - beta1)
            torch._foreach_mul_(vs, beta2)
            torch._foreach_addcmul_(vs, gs, gs, 1.0 - beta2)
            if amsgrad:
                torch._foreach_maximum_(tensors[3], vs)
    else:
        maxes = max_exp_avg_sqs if amsgrad else [None] * len(grads)
        for m, v, g, vmax in zip(exp_avgs, exp_avg_sqs, grads, maxes, strict=True):
            if m.dtype == g.dtype:
                m.lerp_(g, 1.0 - beta1)
            else:
                m.mul_(beta1).add_(g, alpha=1.0 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
            if vmax is not None:
                torch.maximum(vmax, v, out=vmax)


# -- steps ----------------------------------------------------------------------------------------


def add_scaled_(
    params: list[Tensor], tensors: list[Tensor], scale: Tensor, *, foreach: bool
) -> None:
    """``p += scale * t`` for a 0-dim tensor ``scale`` (a norm-based step), without reading
    ``scale`` back to the host, which would stall a GPU."""
    if foreach:
        for [ps, ts], _ in _grouped(params, tensors):
            s = scale.to(ps[0].device)
            if s.is_cuda:
                # The caching allocator makes the temporaries cheap; keeps both ops multi-tensor.
                torch._foreach_add_(ps, torch._foreach_mul(ts, s))
            else:
                torch._foreach_addcmul_(ps, ts, [s] * len(ts))
    else:
        for p, t in zip(params, tensors, strict=True):
            p.addcmul_(t, scale.to(p.device))


def _root(stat: Tensor, scratch: Tensor) -> Tensor:
    """``sqrt(stat)``, written into ``scratch`` unless its dtype is narrower than the statistic's
    (a float32 statistic's root need not fit in float16)."""
    if scratch.dtype == stat.dtype:
        return torch.sqrt(stat, out=scratch)
    return stat.sqrt()


def descend_adaptive_(
    params: list[Tensor],
    numerators: list[Tensor],
    stats: list[Tensor],
    scratch: list[Tensor],
    step_sizes: list[float],
    *,
    foreach: bool,
) -> None:
    """The elementwise descent ``p += step_size * n / sqrt(stat)``, one (signed) step size per
    parameter; ``scratch`` (parameter-shaped and free) holds the roots on the per-tensor path."""
    if foreach:
        for [ps, ns, vs], indices in _grouped(params, numerators, stats):
            roots = torch._foreach_sqrt(vs)
            torch._foreach_addcdiv_(ps, ns, roots, [step_sizes[i] for i in indices])
    else:
        for p, n, v, buffer, step_size in zip(
            params, numerators, stats, scratch, step_sizes, strict=True
        ):
            p.addcdiv_(n, _root(v, buffer), value=step_size)


def perturb_adaptive_(
    params: list[Tensor],
    origins: list[Tensor],
    numerators: list[Tensor],
    stats: list[Tensor],
    step_sizes: list[float],
    *,
    foreach: bool,
) -> None:
    """The elementwise ascent ``p = origin + step_size * n / sqrt(stat)``, where on entry the
    parameters equal their ``origins``; the per-tensor path uses the parameters as scratch."""
    if foreach:
        for [ps, ns, us], indices in _grouped(params, numerators, stats):
            roots = torch._foreach_sqrt(us)
            torch._foreach_addcdiv_(ps, ns, roots, [step_sizes[i] for i in indices])
    else:
        for p, origin, n, u, step_size in zip(
            params, origins, numerators, stats, step_sizes, strict=True
        ):
            torch.addcdiv(origin, n, _root(u, p), value=step_size, out=p)
