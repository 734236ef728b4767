"""The rules a sharpness-aware step is made of: ascent rules, and LightSAM's adaptive rules.

A sharpness-aware optimizer is an **ascent rule** paired with a **descent**. The ascent moves
every parameter that has a gradient ``s_t`` (its ``.grad`` at the current weights ``x_t``) to
``w_t = x_t + e_t``; the descent updates ``x_t`` with the gradient ``g_t`` taken at ``w_t``. The
descent is any ``torch.optim`` optimizer (``pairing.SharpnessAware``) or the optimizer's own
(LightSAM, AdaSAM). The ascent rules, by the names ``ASCENTS`` gives them:

- ``normalized`` (SAM): ``e = rho T^2 s / (||T s|| + 1e-12)``, ``T = |x| + asam_eta`` in groups
  with ``adaptive`` (ASAM), else 1; the norm global over all groups;
- ``asam``: the same with ``adaptive`` on by default;
- ``normalized_decay``: SAM's with the radius ``rho_t = rho / sqrt(t)``, ``t = 1, 2, ...``;
- ``adagrad_norm`` (LightSAM-I's): ``u += ||s||^2``, global, ``e = rho s / sqrt(u)``,
  ``u_0 = eps^2``;
- ``adagrad`` (LightSAM-II's): ``u += s * s`` elementwise, ``e = rho s / sqrt(u)``;
- ``adam`` (LightSAM-III's): ``r, u`` EMAs of ``s`` and ``s * s``, ``e = rho r / sqrt(u)``,
  optionally bias-corrected.

LightSAM's observation is that its descent is the same adaptive rule as its ascent, with
statistics of its own and ``-lr`` for ``rho``; :func:`adaptive` serves both halves. Where a
rule's statistics live is a :class:`Half`: LightSAM keeps both halves' in its state (``ascent_*``
and ``descent_*`` keys) and names the hyperparameters ``eps``, ``betas``, ``bias_correction``;
a pairing keeps the ascent's apart from its descent optimizer's state (torch's Adam initialises
a parameter's state only while it is empty) and names them ``ascent_eps``, ``ascent_betas``,
``ascent_bias_correction``, so they never collide with the descent's own.

A rule returns ``||e_t||`` as a 0-dim tensor when the norms it computed anyway give it (the
normalised and norm-accumulating rules, one ``rho`` for all groups), else None, and the
optimizer measures ``||w_t - x_t||`` itself before it restores the weights
(``SharpnessAwareOptimizer.second_step``), one more pass over weights and origins. The closed
form is the ``e_t`` the rule added; in float32 the weights hold ``x_t + e_t`` rounded, which differs
from it by the rounding of the addition (relative ``ulp(x) / |e|`` per coordinate: negligible
unless ``e_t`` nears the weights' precision).
A new ascent rule is one function here and one line in ``ASCENTS``.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor

from lightsam.optim import functional as F
from lightsam.optim.base import (
    check_betas,
    check_non_negative,
    check_positive,
    decayed_grads,
    global_statistic,
    resolve_foreach,
    statistic,
)

if TYPE_CHECKING:
    from lightsam.optim.base import SharpnessAwareOptimizer

NORM_EPS = 1e-12
VARIANTS = ("adagrad_norm", "adagrad", "adam")


@dataclass(frozen=True)
class Share:
    """One param group's part of a half step: its parameters that have a gradient, those
    gradients (weight decay applied, for a descent), and the path (foreach or per-tensor)."""

    group: dict[str, Any]
    params: list[Tensor]
    grads: list[Tensor]
    foreach: bool


@dataclass(frozen=True)
class Half:
    """Where a half step's statistics live (``state``, per parameter), the prefix of their keys
    (``name``: ``ascent`` or ``descent``), and the prefix of the rule's hyperparameters in a
    param group (``keys``)."""

    state: Any
    name: str
    keys: str = ""

    @property
    def ascent(self) -> bool:
        return self.name == "ascent"


def shares(optimizer: SharpnessAwareOptimizer, *, decay: bool = False) -> list[Share]:
    """The groups' parameters that have a gradient, with ``decay`` their weight decay applied
    (``base.decayed_grads``: a descent's gradient)."""
    found = []
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        foreach = resolve_foreach(group.get("foreach"), params)
        grads = [p.grad for p in params]
        if decay:
            grads = decayed_grads(group, params, grads, foreach)
        found.append(Share(group, params, grads, foreach))
    return found


def _one_rho(work: list[Share]) -> float | None:
    radii = {share.group["rho"] for share in work}
    return radii.pop() if len(radii) == 1 else None


# -- the normalised ascent (SAM, ASAM) ------------------------------------------------------------


def normalized(
    optimizer: SharpnessAwareOptimizer, work: list[Share], half: Half, *, decay: bool = False
) -> Tensor | None:
    """SAM's ascent, ASAM's in groups with ``adaptive``; with ``decay`` the radius is
    ``rho / sqrt(t)``, ``t`` counting the optimizer's ascents."""
    if not work:
        return None
    directions, all_scaled, adaptive = [], [], False
    for share in work:
        if share.group.get("adaptive"):
            eta = share.group["asam_eta"]
            scaled = F.asam_scaled(share.params, share.grads, eta)  # T s
            directions.append(F.asam_scaled(share.params, scaled, eta))  # T^2 s
            adaptive = True
        else:
            scaled = share.grads
            directions.append(scaled)
        all_scaled += scaled
    foreach = resolve_foreach(optimizer.defaults.get("foreach"), all_scaled)
    norm = F.sq_norm(all_scaled, foreach=foreach).sqrt()
    inv_norm = 1.0 / (norm + NORM_EPS)
    if decay:
        groups = optimizer.param_groups
        step = global_statistic(half.state, groups, f"{half.name}_step", 0.0, [norm])
        inv_norm = inv_norm * step.add_(1.0).rsqrt()
    for share, direction in zip(work, directions, strict=True):
        F.add_scaled_(share.params, direction, inv_norm * share.group["rho"], foreach=share.foreach)
    rho = _one_rho(work)
    return None if adaptive or rho is None else norm * inv_norm * rho


# -- the adaptive rules (LightSAM's, both halves) -------------------------------------------------


def accumulate_sq_norm(
    states: Any,
    param_groups: list[dict[str, Any]],
    name: str,
    eps: float,
    grads: list[Tensor],
    *,
    foreach: bool,
) -> tuple[Tensor, Tensor]:
    """AdaGrad-Norm's statistic ``name`` (``eps^2`` at first) grown by the squared norm of
    ``grads``, the gradients of *every* param group: (the statistic, the squared norm)."""
    sq_norm_sum = global_statistic(states, param_groups, name, eps * eps, grads)
    increment = F.sq_norm(grads, foreach=foreach)
    return sq_norm_sum.add_(increment), increment


def adaptive(
    optimizer: SharpnessAwareOptimizer, work: list[Share], half: Half, *, variant: str
) -> Tensor | None:
    """``variant``'s rule with ``half``'s statistics: ``w = x + rho * d(s)`` for an ascent,
    ``x <- x - lr * d(g)`` for a descent, ``d`` the variant's adaptive direction."""
    if not work:
        return None
    k = half.keys
    if variant == "adagrad_norm":
        all_grads = [g for share in work for g in share.grads]
        sq_norm_sum, increment = accumulate_sq_norm(
            half.state,
            optimizer.param_groups,
            f"{half.name}_sq_norm",
            optimizer.defaults[f"{k}eps"],
            all_grads,
            foreach=work[0].foreach,
        )
        inv_root = sq_norm_sum.rsqrt()
    for share in work:
        group, params, grads, foreach = share.group, share.params, share.grads, share.foreach
        step_size = group["rho"] if half.ascent else -group["lr"]
        if variant == "adagrad_norm":
            F.add_scaled_(params, grads, inv_root * step_size, foreach=foreach)
            continue
        states = [half.state[p] for p in params]
        pairs = list(zip(states, params, strict=True))
        eps2 = group[f"{k}eps"] ** 2
        sqs = [statistic(s, f"{half.name}_sq", p, eps2) for s, p in pairs]
        if variant == "adagrad":
            F.accumulate_sq_(sqs, grads, foreach=foreach)
            numerators, step_sizes = grads, [step_size] * len(params)
        else:
            beta1, beta2 = group[f"{k}betas"]
            numerators = [statistic(s, f"{half.name}_avg", p, 0.0) for s, p in pairs]
            F.ema_(numerators, sqs, grads, beta1=beta1, beta2=beta2, foreach=foreach)
            step_sizes = _bias_corrected(half, group, states, step_size)
        # The ascent's scratch is the parameters (their x_t is in the origins); the descent's is
        # the origins (the parameters are restored).
        if half.ascent:
            F.perturb_adaptive_(
                params, optimizer.origins(params), numerators, sqs, step_sizes, foreach=foreach
            )
        else:
            F.descend_adaptive_(
                params, numerators, sqs, optimizer.origins(params), step_sizes, foreach=foreach
            )
    rho = _one_rho(work) if half.ascent else None
    if variant == "adagrad_norm" and rho is not None:
        return increment.sqrt() * inv_root * rho
    return None


def _bias_corrected(
    half: Half, group: dict[str, Any], states: list[dict[str, Any]], step_size: float
) -> list[float]:
    """The adam rule's step sizes, counting each parameter's own steps of ``half``, with the
    bias correction folded in: ``(m / c1) / sqrt(v / c2) = (sqrt(c2) / c1) * m / sqrt(v)``."""
    beta1, beta2 = group[f"{half.keys}betas"]
    step_sizes = []
    for state in states:
        t = state[f"{half.name}_step"] = state.get(f"{half.name}_step", 0) + 1
        if group[f"{half.keys}bias_correction"]:
            step_sizes.append(step_size * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t))
        else:
            step_sizes.append(step_size)
    return step_sizes


# -- the registry of ascent rules -----------------------------------------------------------------

CHECKS: dict[str, Callable[[str, Any], None]] = {
    "asam_eta": check_non_negative,
    "ascent_eps": check_positive,
    "ascent_betas": lambda _, betas: check_betas(betas),
}


@dataclass(frozen=True)
class AscentRule:
    """An ascent rule as a pairing uses it: the function, and its hyperparameters as a param
    group names them, with their defaults."""

    apply: Callable[[SharpnessAwareOptimizer, list[Share], Half], Tensor | None]
    hyperparameters: Mapping[str, Any]

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The hyperparameters as keyword-only constructor arguments (for the registry)."""
        kind = inspect.Parameter.KEYWORD_ONLY
        return {n: inspect.Parameter(n, kind, default=d) for n, d in self.hyperparameters.items()}

    def check(self, group: Mapping[str, Any]) -> None:
        for name in self.hyperparameters:
            if name in CHECKS:
                CHECKS[name](name, group[name])


ADAPTIVE_EPS = {"ascent_eps": 1e-8}
ASCENTS: dict[str, AscentRule] = {
    "normalized": AscentRule(normalized, {"adaptive": False, "asam_eta": 0.01}),
    "asam": AscentRule(normalized, {"adaptive": True, "asam_eta": 0.01}),
    "normalized_decay": AscentRule(functools.partial(normalized, decay=True), {}),
    "adagrad_norm": AscentRule(functools.partial(adaptive, variant="adagrad_norm"), ADAPTIVE_EPS),
    "adagrad": AscentRule(functools.partial(adaptive, variant="adagrad"), ADAPTIVE_EPS),
    "adam": AscentRule(
        functools.partial(adaptive, variant="adam"),
        {**ADAPTIVE_EPS, "ascent_betas": (0.9, 0.999), "ascent_bias_correction": False},
    ),
}


def ascent_rule(name: str) -> AscentRule:
    """The ascent rule called ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in ASCENTS:
        raise ValueError(f"ascent must be one of {', '.join(ASCENTS)}; got {name!r}")
    return ASCENTS[name]
