"""LightSAM (Cheng et al., arXiv:2505.24399): SAM whose ascent and descent are both adaptive."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from lightsam.optim import rules
from lightsam.optim.base import (
    SharpnessAwareOptimizer,
    check_betas,
    check_non_negative,
    check_positive,
)
from lightsam.optim.rules import VARIANTS

# Each variant's per-parameter statistics, as ``rules.adaptive`` names them for its two halves.
_STATISTICS = {"adagrad_norm": ("sq_norm",), "adagrad": ("sq",), "adam": ("sq", "avg", "step")}
STATE_KEYS = {
    variant: frozenset(f"{half}_{name}" for half in ("ascent", "descent") for name in names)
    for variant, names in _STATISTICS.items()
}


class LightSAM(SharpnessAwareOptimizer):
    r"""LightSAM: sharpness-aware minimization with an adaptive ascent and an adaptive descent.

    Each step uses one minibatch for both gradients, ``s_t`` at the current weights ``x_t`` and
    ``g_t`` at the perturbed weights ``x_t + e_t``. The ascent and the descent apply the *same*
    adaptive rule, each with its own statistics (``u, r`` fed only by ``s``; ``v, m`` only by
    ``g``), and the update is applied to ``x_t``, not to the perturbed weights.

    The rule is ``lightsam.optim.rules.adaptive``, which also serves other pairings as an ascent
    (``rules.ASCENTS``). ``variant="adagrad_norm"`` (LightSAM-I), scalar statistics global over
    all parameters:

    .. math::
        u_t = u_{t-1} + \lVert s_t\rVert^2,\quad e_t = \rho\, s_t/\sqrt{u_t};\qquad
        v_t = v_{t-1} + \lVert g_t\rVert^2,\quad x_{t+1} = x_t - \eta\, g_t/\sqrt{v_t}

    ``variant="adagrad"`` (LightSAM-II): the same with ``u, v`` elementwise (``s*s``, ``g*g``).

    ``variant="adam"`` (LightSAM-III), elementwise, ``betas = (b1, b2)``:

    .. math::
        r_t = b_1 r_{t-1} + (1-b_1) s_t,\ u_t = b_2 u_{t-1} + (1-b_2) s_t^2,\
        e_t = \rho\, r_t/\sqrt{u_t};\quad
        m_t, v_t \text{ likewise from } g_t,\ x_{t+1} = x_t - \eta\, m_t/\sqrt{v_t}

    with ``u_0 = v_0 = eps^2`` and ``r_0 = m_0 = 0``. Nothing is added to the square roots.

    Args:
        params: parameters or param groups; groups may set their own ``lr``, ``rho``, ``betas``,
            ``bias_correction``, ``weight_decay``, ``decoupled_weight_decay`` and ``foreach``.
        variant: ``"adagrad_norm"`` (I), ``"adagrad"`` (II) or ``"adam"`` (III).
        lr: learning rate ``eta > 0``, in weight units per step: the descent moves the weights by
            at most ``lr`` in L2 norm (I) or per coordinate (II). For III the bound per
            coordinate is ``lr * (1 - b1) / sqrt(1 - b2)`` in the first steps without bias
            correction (3.16 ``lr`` for the default betas), and about ``lr`` with it.
        rho: perturbation radius ``>= 0``, in the same units. For LightSAM-I ``||e_t|| <= rho``
            and the first ascent is exactly SAM's ``rho * s / ||s||``. For LightSAM-II *each
            coordinate* moves by up to ``rho`` (for III, by the factor above), so ``||e_t||``
            can reach ``rho * sqrt(d)`` for ``d`` parameters: useful values are far smaller than
            SAM's (``1e-4`` to ``1e-2`` rather than ``0.05``). ``rho = 0`` gives the base
            optimizer (AdaGrad-Norm, AdaGrad, Adam without bias correction) exactly.
        eps: sets ``u_0 = v_0 = eps^2 > 0``. For LightSAM-I the statistics are global, so ``eps``
            is one value for the whole optimizer.
        betas: LightSAM-III's ``(b1, b2)``, each in ``[0, 1)``.
        bias_correction: LightSAM-III: use ``r, m`` divided by ``1 - b1^t`` and ``u, v`` divided
            by ``1 - b2^t``, ``t`` counting each parameter's own ascent or descent steps.
        weight_decay: ``>= 0``, L2 added to the descent gradient (``g + wd * x``, fed to ``v``).
        decoupled_weight_decay: instead shrink ``x <- x - lr * wd * x`` before the descent.
        foreach: use the multi-tensor ``torch._foreach_*`` path (default: on CUDA, and on CPU
            for small tensors, see ``resolve_foreach``).

    The effective radius and step of LightSAM-I and -II shrink like ``1/sqrt(t)``: that is the
    method, and why it converges for any ``lr`` and ``rho`` (the paper's parameter-agnostic
    claim), at the ``O(log T / sqrt T)`` rate.

    Watch for:
        * BatchNorm: the second forward pass must not update the running statistics
          (``lightsam.frozen_batchnorm_statistics``; ``lightsam.TrainStep`` does it).
        * DDP: the ascent gradient must be averaged across processes before ``first_step`` (the
          global perturbation), and LightSAM-I's norms are then the same on every rank.
        * Half precision: statistics and norms are kept in float32 for fp16/bf16 parameters.

    Reference: Cheng, Shen, Sun, Yin, Cao, Chen, "LightSAM: Parameter-Agnostic Sharpness-Aware
    Minimization", arXiv:2505.24399 (2025).
    """

    def __init__(
        self,
        params: Iterable[Any],
        variant: str,
        lr: float,
        rho: float,
        eps: float = 1e-8,
        betas: tuple[float, float] = (0.9, 0.999),
        bias_correction: bool = False,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        foreach: bool | None = None,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
        self.variant = variant
        defaults = dict(
            lr=lr,
            rho=rho,
            eps=eps,
            betas=tuple(betas),
            bias_correction=bias_correction,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        merged = {**self.defaults, **param_group}
        check_positive("lr", merged["lr"])
        check_non_negative("rho", merged["rho"])
        check_positive("eps", merged["eps"])
        check_betas(merged["betas"])
        check_non_negative("weight_decay", merged["weight_decay"])
        if self.variant == "adagrad_norm" and merged["eps"] != self.defaults["eps"]:
            raise ValueError(
                "eps cannot differ between param groups for variant 'adagrad_norm': its "
                "statistics are global scalars; set eps on the optimizer"
            )
        super().add_param_group(param_group)

    @property
    def identity(self) -> str:
        return f"lightsam.LightSAM(variant={self.variant!r})"

    def _state_keys(self) -> frozenset[str]:
        return STATE_KEYS[self.variant]

    def _ascend(self) -> Tensor | None:
        return rules.adaptive(
            self, rules.shares(self), rules.Half(self.state, "ascent"), variant=self.variant
        )

    def _descend(self) -> None:
        rules.adaptive(
            self,
            rules.shares(self, decay=True),
            rules.Half(self.state, "descent"),
            variant=self.variant,
        )
