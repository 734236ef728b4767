"""AdaGrad-Norm (Ward, Wu and Bottou, 2019): one global adaptive step size."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from lightsam.optim import functional as F
from lightsam.optim.base import (
    check_loadable,
    check_non_negative,
    check_positive,
    decayed_grads,
    keep_saved_state_dtypes,
    resolve_foreach,
    tag_state_dict,
)
from lightsam.optim.rules import accumulate_sq_norm


class AdaGradNorm(Optimizer):
    r"""AdaGrad-Norm, the base optimizer of LightSAM-I (torch has none).

    .. math::
        v_t = v_{t-1} + \lVert g_t \rVert^2,\qquad x_{t+1} = x_t - \eta\, g_t / \sqrt{v_t}

    with ``v_0 = eps^2`` and the norm global over every parameter of every group: one scalar
    step size for the whole model, so each step moves the weights by at most ``lr`` in L2 norm.
    It converges for any ``lr > 0`` on smooth problems (Ward et al., "AdaGrad stepsizes: sharp
    convergence over nonconvex landscapes", ICML 2019). ``LightSAM(variant="adagrad_norm",
    rho=0)`` follows the same trajectory.

    Args:
        lr: learning rate ``> 0``; groups may set their own.
        eps: ``v_0 = eps^2 > 0``, one value for the optimizer (the statistic is global).
        weight_decay: ``>= 0``, L2 added to the gradient (``g + wd * x``) before it is used.
        decoupled_weight_decay: instead shrink ``x <- x - lr * wd * x`` (AdamW style).
        foreach: use the multi-tensor path (default: on CUDA, and on CPU for small tensors,
            see ``resolve_foreach``).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        foreach: bool | None = None,
    ) -> None:
        check_positive("eps", eps)
        defaults = dict(
            lr=lr,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        merged = {**self.defaults, **param_group}
        check_positive("lr", merged["lr"])
        check_non_negative("weight_decay", merged["weight_decay"])
        if merged["eps"] != self.defaults["eps"]:
            raise ValueError("eps cannot differ between param groups: the statistic is global")
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                foreach = resolve_foreach(group["foreach"], params)
                grads = decayed_grads(group, params, [p.grad for p in params], foreach)
                work.append((group, params, grads, foreach))
        if not work:
            return loss
        all_grads = [g for _, _, grads, _ in work for g in grads]
        sq_norm_sum, _ = accumulate_sq_norm(
            self.state, self.param_groups, "sq_norm", self.defaults["eps"], all_grads,
            foreach=work[0][3],
        )  # fmt: skip
        inv_root = sq_norm_sum.rsqrt()
        for group, params, grads, foreach in work:
            F.add_scaled_(params, grads, inv_root * -group["lr"], foreach=foreach)
        return loss

    @property
    def identity(self) -> str:
        """What its state dicts are a state of (``SharpnessAwareOptimizer.identity``)."""
        return "lightsam.AdaGradNorm"

    def state_dict(self) -> dict[str, Any]:
        return tag_state_dict(super().state_dict(), self.identity)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        check_loadable(self, self.identity, state_dict, frozenset({"sq_norm"}))
        super().load_state_dict(state_dict)
        keep_saved_state_dtypes(self, state_dict)
