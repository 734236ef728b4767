"""Any ascent rule around any descent optimizer; SAM (Foret et al., ICLR 2021) and ASAM (Kwon et
al., ICML 2021) around any base optimizer are the normalised ascent's pairings."""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from lightsam.optim import rules
from lightsam.optim.base import SharpnessAwareOptimizer, check_non_negative, class_name


def check_descent(name: str, descent: Any) -> None:
    if not (isinstance(descent, type) and issubclass(descent, Optimizer)):
        raise ValueError(f"{name} must be a torch.optim.Optimizer subclass, got {descent!r}")
    if issubclass(descent, SharpnessAwareOptimizer):
        raise ValueError(f"{name} must be a plain optimizer, not a sharpness-aware one")


class SharpnessAware(SharpnessAwareOptimizer):
    r"""Any ascent rule paired with any descent optimizer: a sharpness-aware optimizer made of
    parts, as ``optax.contrib.sam`` pairs an optimizer with an adversarial one.

    With ``s_t`` the gradient at the current weights ``x_t`` and ``g_t`` the gradient at the
    perturbed weights ``w_t = x_t + e_t``, on the same minibatch:

    .. math::
        e_t = \mathrm{Ascent}(s_t;\ \rho), \qquad x_{t+1} = \mathrm{Descent}(x_t;\ g_t)

    ``Ascent`` is a rule of ``lightsam.optim.rules.ASCENTS`` (``normalized`` is SAM's; the
    accumulating ``adagrad_norm`` is LightSAM-I's) and ``Descent`` is the ``descent`` class's own
    update, exactly as that optimizer computes it from ``g_t``.

    Args:
        params: parameters or param groups; each group may set its own ``rho``, ascent
            hyperparameters and descent hyperparameters (``lr``, ``momentum``, ...).
        descent: the ``torch.optim.Optimizer`` subclass that takes the descent step
            (``torch.optim.SGD``, ``torch.optim.Adam``, ``lightsam.AdaGradNorm``, ...).
        ascent: the name of the ascent rule.
        rho: the ascent's radius ``>= 0``, in the rule's units (an L2 norm for ``normalized``,
            a bound for the accumulating rules, see ``rules``). ``rho = 0`` is the descent
            optimizer alone.
        **kwargs: the ascent rule's hyperparameters (``rules.ASCENTS[ascent].hyperparameters``:
            ``adaptive`` and ``asam_eta`` for ``normalized``, ``ascent_eps`` for the
            accumulating rules, ...), the rest passed to ``descent``.

    ``param_groups`` and ``state`` are the descent optimizer's own objects: LR schedulers
    attached to this object drive it, and ``state_dict()`` carries its statistics (momentum
    buffers, Adam's moments), beside the ascent's (``"ascent_state"``), so a resumed run
    continues the exact trajectory.

    Watch for:
        * BatchNorm: the second forward pass must not update running statistics, yet must
          normalise with the batch's (not eval mode): run it inside
          ``lightsam.frozen_batchnorm_statistics(model)``, or use ``lightsam.TrainStep``.
        * DDP: average ``s_t`` across processes before ``first_step`` for the "global" SAM of the
          paper, or deliberately not (m-sharpness); ``no_sync`` must wrap the forward pass too
          (``lightsam.TrainStep`` does either).
    """

    def __init__(
        self,
        params: Iterable[Any],
        descent: type[Optimizer] = torch.optim.SGD,
        ascent: str = "normalized",
        rho: float = 0.05,
        **kwargs: Any,
    ) -> None:
        check_descent("descent", descent)
        self.ascent = rules.ascent_rule(ascent)
        self.ascent_name = ascent
        own = {k: kwargs.pop(k, default) for k, default in self.ascent.hyperparameters.items()}
        super().__init__(params, dict(rho=rho, **own, **kwargs))
        self.base_optimizer = descent(self.param_groups, **kwargs)
        # One set of groups and one state for both: schedulers reach the descent optimizer, and
        # checkpoints hold its statistics. The ascent's statistics are kept apart.
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        self.defaults = {**self.base_optimizer.defaults, **self.defaults}
        self.ascent_state: collections.defaultdict[Tensor, dict[str, Any]] = (
            collections.defaultdict(dict)
        )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        merged = {**self.defaults, **param_group}
        check_non_negative("rho", merged["rho"])
        self.ascent.check(merged)
        super().add_param_group(param_group)

    def _ascend(self) -> Tensor | None:
        half = rules.Half(self.ascent_state, "ascent", keys="ascent_")
        return self.ascent.apply(self, rules.shares(self), half)

    def _descend(self) -> None:
        self.base_optimizer.step()

    def _ascent_statistics(self) -> Any:
        return self.ascent_state

    @property
    def identity(self) -> str:
        descent = class_name(type(self.base_optimizer))
        return f"lightsam.SharpnessAware(descent={descent}, ascent={self.ascent_name!r})"

    def _indexed(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict[str, Any]:
        saved = super().state_dict()
        if self.ascent_state:
            index = {p: i for i, p in enumerate(self._indexed())}
            saved["ascent_state"] = {index[p]: dict(s) for p, s in self.ascent_state.items()}
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("ascent_state", {})
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "ascent_state"})
        self.base_optimizer.param_groups = self.param_groups
        self.base_optimizer.state = self.state
        params = self._indexed()
        self.ascent_state = collections.defaultdict(dict)
        for i, state in saved.items():
            p = params[int(i)]
            self.ascent_state[p] = {
                k: v.to(p.device, copy=True) if isinstance(v, Tensor) else v
                for k, v in state.items()
            }


class SAM(SharpnessAware):
    r"""Sharpness-aware minimization around a base optimizer (SGD-SAM by default), and ASAM: the
    ``normalized`` ascent's pairing (``SharpnessAware``).

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
        * BatchNorm: the second forward pass must not update running statistics, yet must
          normalise with the batch's (not eval mode): run it inside
          ``lightsam.frozen_batchnorm_statistics(model)``, or use ``lightsam.TrainStep``.
        * DDP: average ``s_t`` across processes before ``first_step`` for the "global" SAM of the
          paper, or deliberately not (m-sharpness); ``no_sync`` must wrap the forward pass too
          (``lightsam.TrainStep`` does either).

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
        check_descent("base_optimizer", base_optimizer)
        super().__init__(
            params,
            descent=base_optimizer,
            ascent="normalized",
            rho=rho,
            adaptive=adaptive,
            asam_eta=asam_eta,
            **base_kwargs,
        )

    @property
    def identity(self) -> str:
        # SGD-SAM and ASAM differ only in ``adaptive``, which a loaded state dict would overwrite.
        descent = class_name(type(self.base_optimizer))
        return f"lightsam.SAM(base_optimizer={descent}, adaptive={self.defaults['adaptive']!r})"
