"""SAM (Foret et al., ICLR 2021) and ASAM (Kwon et al., ICML 2021) around any base optimizer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from lightsam.optim import functional as F
from lightsam.optim.base import SharpnessAwareOptimizer, check_non_negative, resolve_foreach

NORM_EPS = 1e-12


def normalized_ascent(optimizer: SharpnessAwareOptimizer) -> None:
    """SAM's ascent, shared with AdaSAM: ``x += rho_group * T^2 s / (||T s|| + 1e-12)``, the norm
    global over every group, ``T = |x| + asam_eta`` in groups with ``adaptive`` set, else 1."""
    groups = []
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        grads = [p.grad for p in params]
        if group.get("adaptive"):
            scaled = F.asam_scaled(params, grads, group["asam_eta"])  # T s
            direction = F.asam_scaled(params, scaled, group["asam_eta"])  # T^2 s
        else:
            scaled = direction = grads
        groups.append((group, params, scaled, direction))
    if not groups:
        return
    all_scaled = [t for _, _, scaled, _ in groups for t in scaled]
    foreach = resolve_foreach(optimizer.defaults.get("foreach"), all_scaled)
    inv_norm = 1.0 / (F.sq_norm(all_scaled, foreach=foreach).sqrt() + NORM_EPS)
    for group, params, _, direction in groups:
        foreach = resolve_foreach(group.get("foreach"), params)
        F.add_scaled_(params, direction, inv_norm * group["rho"], foreach=foreach)


class SAM(SharpnessAwareOptimizer):
    r"""Sharpness-aware minimization around a base optimizer (SGD-SAM by default), and ASAM.

    With ``s_t`` the gradient at the current weights ``x_t`` and ``g_t`` the gradient at the
    perturbed weights, on the same minibatch:

    .. math::
        e_t = \rho \, \frac{T^2 s_t}{\lVert T s_t \rVert + 10^{-12}}, \qquad
        x_{t+1} = \mathrm{BaseStep}(x_t;\, g_t)

    where the norm is the global L2 norm over every parameter of every group, and ``T`` is the
    identity for SAM (``adaptive=False``) or ``T = |x_t| + asam_eta`` elementwise for ASAM
    (``adaptive=True``). ``BaseStep`` is the base optimizer's own update (for SGD: momentum,
    dampening, weight decay ``g + wd * x`` and Nesterov, exactly as ``torch.optim.SGD``).

    Args:
        params: parameters or param groups; each group may set its own ``rho``, ``adaptive``,
            ``asam_eta`` and any base-optimizer hyperparameter (``lr``, ``momentum``, ...).
        base_optimizer: the ``torch.optim.Optimizer`` subclass that takes the descent step.
        rho: perturbation radius in weight-space L2 units, ``rho >= 0``: ``||e_t|| = rho`` for
            SAM. Typical values: 0.01 to 0.2 for SGD-SAM on CIFAR; ASAM uses larger ones (0.5 to
            2), since ``T`` shrinks the step for small weights. ``rho = 0`` is the base optimizer.
        adaptive: ASAM's scale-invariant perturbation. It applies to every parameter of the
            groups where it is true; Kwon et al. apply ``T`` to weights only, so to match them put
            biases and normalisation parameters in a group with ``adaptive=False``.
        asam_eta: ASAM's ``eta`` in ``T = |x| + eta``, ``>= 0``; 0.01 in Kwon et al.
        **base_kwargs: passed to ``base_optimizer`` (e.g. ``lr=0.1, momentum=0.9``).

    ``param_groups`` and ``state`` are the base optimizer's own objects: LR schedulers attached
    to this object drive the base optimizer, and ``state_dict()`` carries its momentum buffers,
    so a resumed run continues the exact trajectory.

    Watch for:
        * BatchNorm: the second forward pass must not update running statistics (put BatchNorm
          layers in eval mode, or restore their buffers, for the second pass).
        * DDP: average ``s_t`` across processes before ``first_step`` for the "global" SAM of the
          paper, or deliberately not (m-sharpness); ``no_sync`` must wrap the forward pass too.

    Example::

        opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
        def closure():
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            return loss
        loss = opt.step(closure)
    """

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type[Optimizer] = torch.optim.SGD,
        rho: float = 0.05,
        adaptive: bool = False,
        asam_eta: float = 0.01,
        **base_kwargs: Any,
    ) -> None:
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, Optimizer)):
            raise ValueError(
                f"base_optimizer must be a torch.optim.Optimizer subclass, got {base_optimizer!r}"
            )
        if issubclass(base_optimizer, SharpnessAwareOptimizer):
            raise ValueError("base_optimizer must be a plain optimizer, not a sharpness-aware one")
        defaults = dict(rho=rho, adaptive=adaptive, asam_eta=asam_eta, **base_kwargs)
        super().__init__(params, defaults)
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        # One set of groups and one state for both: schedulers reach the base optimizer, and
        # checkpoints hold its momentum buffers.
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        self.defaults = {**self.base_optimizer.defaults, **self.defaults}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        merged = {**self.defaults, **param_group}
        check_non_negative("rho", merged["rho"])
        check_non_negative("asam_eta", merged["asam_eta"])
        super().add_param_group(param_group)

    def _ascend(self) -> None:
        normalized_ascent(self)

    def _descend(self) -> None:
        self.base_optimizer.step()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.base_optimizer.param_groups = self.param_groups
        self.base_optimizer.state = self.state
