"""AdaSAM (Sun et al., 2023): SAM's normalised ascent with an AMSGrad descent."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from lightsam.optim import functional as F
from lightsam.optim import rules
from lightsam.optim.base import (
    SharpnessAwareOptimizer,
    check_betas,
    check_non_negative,
    check_positive,
    statistic,
)


class AdaSAM(SharpnessAwareOptimizer):
    r"""AdaSAM: the ascent of SGD-SAM, the descent of AMSGrad.

    .. math::
        e_t = \rho\, s_t / (\lVert s_t\rVert + 10^{-12});\quad
        m_t = b_1 m_{t-1} + (1-b_1) g_t,\ v_t = b_2 v_{t-1} + (1-b_2) g_t^2,\
        \hat v_t = \max(\hat v_{t-1}, v_t),\ x_{t+1} = x_t - \eta\, m_t/\sqrt{\hat v_t}

    with ``m_0 = v_0 = 0``, ``v_hat_0 = eps^2`` and no bias correction; the norm is global over
    all parameters. It is the baseline LightSAM-III is compared with: an adaptive descent whose
    ascent, unlike LightSAM's, is normalised by the current gradient norm.

    Args:
        lr: learning rate ``> 0`` (each coordinate moves by about ``lr`` at most).
        rho: perturbation radius ``>= 0`` in L2 weight units, as SGD-SAM's (``||e_t|| = rho``).
        betas: ``(b1, b2)`` in ``[0, 1)``.
        eps: ``v_hat_0 = eps^2 > 0``.
        weight_decay: ``>= 0``, L2 added to the descent gradient.
        foreach: use the multi-tensor path (default: on CUDA, and on CPU for small tensors,
            see ``resolve_foreach``).

    Reference: Sun, Shen, Chen, Ding, Tao, "AdaSAM: Boosting sharpness-aware minimization with
    adaptive learning rate and momentum for training deep neural networks", Neural Networks 2024
    (arXiv:2303.00565). Watch for BatchNorm and DDP as with ``SAM``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        rho: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr, rho=rho, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        merged = {**self.defaults, **param_group}
        check_positive("lr", merged["lr"])
        check_non_negative("rho", merged["rho"])
        check_positive("eps", merged["eps"])
        check_betas(merged["betas"])
        check_non_negative("weight_decay", merged["weight_decay"])
        super().add_param_group(param_group)

    def _ascend(self) -> Tensor | None:
        return rules.normalized(self, rules.shares(self), rules.Half(self.state, "ascent"))

    def _descend(self) -> None:
        for share in rules.shares(self, decay=True):
            group, params = share.group, share.params
            pairs = [(self.state[p], p) for p in params]
            beta1, beta2 = group["betas"]
            exp_avgs = [statistic(s, "exp_avg", p, 0.0) for s, p in pairs]
            max_exp_avg_sqs = [
                statistic(s, "max_exp_avg_sq", p, group["eps"] ** 2) for s, p in pairs
            ]
            F.ema_(
                exp_avgs,
                [statistic(s, "exp_avg_sq", p, 0.0) for s, p in pairs],
                share.grads,
                beta1=beta1,
                beta2=beta2,
                max_exp_avg_sqs=max_exp_avg_sqs,
                foreach=share.foreach,
            )
            F.descend_adaptive_(
                params,
                exp_avgs,
                max_exp_avg_sqs,
                self.origins(params),
                [-group["lr"]] * len(params),
                foreach=share.foreach,
            )
