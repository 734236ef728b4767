"""The two-step protocol every sharpness-aware optimizer in lightsam shares.

A sharpness-aware step evaluates two gradients on the same minibatch::

    s_t = grad f(x_t)            # first pass, at the current weights
    w_t = x_t + e_t              # first_step(): perturb (e_t is method-specific)
    g_t = grad f(w_t)            # second pass, at the perturbed weights
    x_{t+1} = x_t - update(g_t)  # second_step(): restore x_t, then descend

This module owns the bookkeeping around that: remembering which parameters were perturbed and
their exact weights before the perturbation, refusing out-of-order calls, and the closure-based
``step``. Subclasses supply only the maths, in ``_ascend`` and ``_descend``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from lightsam.optim import functional as F
from lightsam.optim.functional import accumulation_dtype, state_dtype


def check_positive(name: str, value: float) -> None:
    if not value > 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def check_non_negative(name: str, value: float) -> None:
    if not value >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def check_betas(betas: tuple[float, float]) -> None:
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")


def global_statistic(
    states: Any, param_groups: list[dict[str, Any]], name: str, init: float, like: list[Tensor]
) -> Tensor:
    """A scalar statistic shared by all parameters (AdaGrad-Norm's accumulators), created on
    first use. Like ``torch.optim.LBFGS``, it lives in ``states`` (an optimizer's ``state``) at
    the first parameter of the first non-empty group, so ``state_dict()`` carries it and loading
    moves it to the right device."""
    first = next(p for group in param_groups for p in group["params"])
    state = states[first]
    if name not in state:
        state[name] = torch.full((), init, dtype=accumulation_dtype(like), device=like[0].device)
    return state[name]


def keep_saved_state_dtypes(optimizer: Optimizer, state_dict: dict[str, Any]) -> None:
    """Undo the dtype cast of ``Optimizer.load_state_dict``: torch casts floating-point state to
    its parameter's dtype, but statistics of half-precision parameters are float32
    (``state_dtype``) and must stay so. Puts the saved tensors back with their own dtype."""
    saved_state = state_dict["state"]
    for group, saved_group in zip(optimizer.param_groups, state_dict["param_groups"], strict=True):
        for p, saved_id in zip(group["params"], saved_group["params"], strict=True):
            for key, value in saved_state.get(saved_id, {}).items():
                if isinstance(value, Tensor) and value.dtype != optimizer.state[p][key].dtype:
                    optimizer.state[p][key] = value.to(device=p.device, copy=True)


IDENTITY_KEY = "lightsam_optimizer"
# Keys the group dicts gain outside the optimizer's constructor (an LR scheduler's initial_lr).
ADDED_GROUP_KEYS = frozenset({"params", "initial_lr"})


def class_name(cls: type) -> str:
    """``torch.optim.Adam`` rather than ``torch.optim.adam.Adam`` where torch exports the class."""
    for package in ("torch.optim", "lightsam"):
        if cls.__module__.startswith(package + "."):
            module = __import__(package, fromlist=[cls.__name__])
            if getattr(module, cls.__name__, None) is cls:
                return f"{package}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def tag_state_dict(saved: dict[str, Any], identity: str) -> dict[str, Any]:
    """Name the optimizer that wrote ``saved``, so that loading it into another is refused."""
    saved[IDENTITY_KEY] = identity
    return saved


def check_loadable(
    optimizer: Optimizer,
    identity: str,
    state_dict: dict[str, Any],
    state_keys: frozenset[str] | None = None,
) -> None:
    """Refuse a state dict written by another optimizer or variant, naming both: torch's
    ``load_state_dict`` accepts any dict with the same number of groups and parameters, so
    LightSAM-III's moments would silently become LightSAM-II's accumulators.

    A tagged dict (``tag_state_dict``) must name ``identity``. An untagged one (written before
    lightsam tagged its checkpoints, or by another library) must have this optimizer's group
    hyperparameters exactly, and, where ``state_keys`` is given, no per-parameter statistic
    outside it (the variants of one class share their hyperparameters, not their statistics).
    """
    saved_identity = state_dict.get(IDENTITY_KEY)
    if saved_identity is not None:
        if saved_identity != identity:
            raise ValueError(
                f"this state dict was saved by {saved_identity} and cannot be loaded into "
                f"{identity}: their statistics mean different things; build the optimizer that "
                "saved it, or start this one afresh"
            )
        return
    own = {key for group in optimizer.param_groups for key in group} - ADDED_GROUP_KEYS
    saved = {key for group in state_dict["param_groups"] for key in group} - ADDED_GROUP_KEYS
    if saved != own:
        raise ValueError(
            f"this state dict was saved by {_guess_writer(saved)} and cannot be loaded into "
            f"{identity}: its param groups have the hyperparameters {sorted(saved)}, "
            f"not {sorted(own)}"
        )
    if state_keys is not None:
        found = {key for state in state_dict["state"].values() for key in state}
        if not found <= state_keys:
            raise ValueError(
                f"this state dict holds the statistics {sorted(found)}, which {identity} does "
                f"not keep ({sorted(state_keys)}): it was saved by another variant"
            )


def _guess_writer(hyperparameters: set[str]) -> str:
    """The ``torch.optim`` optimizer whose groups have exactly these hyperparameters, if one has;
    this only words the error message."""
    probe = [torch.zeros(1, requires_grad=True)]
    matches = []
    for name in sorted(torch.optim.__all__):
        cls = getattr(torch.optim, name)
        if not (isinstance(cls, type) and issubclass(cls, Optimizer)) or cls is Optimizer:
            continue
        try:
            defaults = set(cls(probe).defaults)
        except (TypeError, ValueError, RuntimeError):
            continue
        if defaults == hyperparameters:
            matches.append(f"torch.optim.{name}")
    return " or ".join(matches) or "another optimizer"


# On CPU, the largest tensor (elements) for which the multi-tensor path is the default. Below it
# the Python overhead a per-tensor loop adds outweighs the multi-tensor path's temporaries; above
# it the per-tensor path, writing into spare buffers, is as fast or faster: `make bench`'s
# crossover table times both paths of LightSAM-III and SGD-SAM over tensors of 2^10 to 2^18
# elements on one core (benchmarks/results/cpu.md).
CPU_FOREACH_MAX_NUMEL = 2**14


def resolve_foreach(foreach: bool | None, params: list[Tensor]) -> bool:
    """``foreach=None`` picks the multi-tensor path when every tensor is on CUDA, as torch's own
    optimizers do, or on CPU when no tensor has more than ``CPU_FOREACH_MAX_NUMEL`` elements;
    otherwise the per-tensor path, which on CPU writes into spare buffers instead of
    temporaries and is the faster one on large tensors (see ``functional`` and ``make bench``).
    On CPU both paths run the same per-tensor kernels, so they give the same floats."""
    if foreach is not None:
        return foreach
    if not params:
        return False
    if all(p.is_cuda for p in params):
        return True
    return (
        all(p.device.type == "cpu" for p in params)
        and max(p.numel() for p in params) <= CPU_FOREACH_MAX_NUMEL
    )


def decayed_grads(
    group: dict[str, Any], params: list[Tensor], grads: list[Tensor], foreach: bool
) -> list[Tensor]:
    """Apply a group's weight decay to a descent step: L2 (``g + wd * x``, as torch's Adagrad
    and Adam) returns new gradients; decoupled (``x <- x - lr * wd * x``, as AdamW) shrinks the
    weights in place and returns the gradients unchanged."""
    wd = group["weight_decay"]
    if wd == 0.0:
        return grads
    if group.get("decoupled_weight_decay", False):
        shrink = 1.0 - group["lr"] * wd
        if foreach:
            torch._foreach_mul_(params, shrink)
        else:
            for p in params:
                p.mul_(shrink)
        return grads
    if foreach:
        return list(torch._foreach_add(grads, params, alpha=wd))
    return [g.add(p, alpha=wd) for p, g in zip(params, grads, strict=True)]


def _copy(value: Any) -> Any:
    return value.clone() if isinstance(value, Tensor) else value


def statistic(state: dict[str, Any], name: str, param: Tensor, fill: float) -> Tensor:
    """A per-coordinate statistic of ``param``, created on first use filled with ``fill``."""
    if name not in state:
        state[name] = torch.full_like(
            param, fill, dtype=state_dtype(param), memory_format=torch.preserve_format
        )
    return state[name]


class SharpnessAwareOptimizer(Optimizer):
    """Base class: ``first_step`` perturbs, ``second_step`` restores and descends.

    Use it through ``step(closure)``, or call the two halves yourself::

        loss_fn(model(x), y).backward()
        opt.first_step(zero_grad=True)     # weights are now x_t + e_t
        loss_fn(model(x), y).backward()    # same minibatch
        opt.second_step(zero_grad=True)    # weights restored to x_t, then updated

    The restore is keyed on the parameters ``first_step`` actually perturbed (those that had a
    gradient in the first pass), not on which have a gradient in the second, and copies the saved
    weights back rather than subtracting ``e_t``: after ``second_step`` every perturbed weight is
    bit-for-bit what it was before ``first_step``, even if a branch (stochastic depth, a
    conditional module) produced no gradient for it in the second pass.

    A step whose second gradient turns out unusable (a loss scaler's overflow) is abandoned with
    ``undo_first_step`` after ``first_step(revertible=True)``: the weights and the ascent's
    statistics are put back as they were, and no descent is taken.

    After each ``second_step``, ``perturbation_norm`` is ``||w_t - x_t||`` and
    ``relative_perturbation`` is ``||w_t - x_t|| / ||x_t||``, global over every perturbed
    parameter: 0-dim tensors on the parameters' device, never read back to the host here, so
    logging them costs a sync only when the caller asks for the value. They are the realised
    size of the ascent, which the nominal ``rho`` gives in different units per method.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        # Weights before the ascent, keyed by parameter. Kept out of ``self.state`` so checkpoints
        # do not carry a full copy of the model; the buffers are reused from step to step.
        self._origins: dict[Tensor, Tensor] = {}
        self._perturbed: list[Tensor] | None = None
        self._ascent_norm: Tensor | None = None
        # The ascent's statistics before the current ascent, kept by first_step(revertible=True).
        self._ascent_saved: dict[Tensor, dict[str, Any]] | None = None
        # The realised size of the last ascent, as 0-dim tensors on the parameters' device (read
        # them back when you log, not at every step); None before the first step.
        self.perturbation_norm: Tensor | None = None
        self.relative_perturbation: Tensor | None = None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        for p in self.param_groups[-1]["params"]:
            if p.is_complex():
                raise ValueError(
                    f"{type(self).__name__} takes real parameters; got a complex one of shape "
                    f"{tuple(p.shape)} (view it as pairs of reals with torch.view_as_real)"
                )

    # -- what subclasses implement ---------------------------------------------------------

    def _ascend(self) -> Tensor | None:
        """Add e_t to every parameter that has a ``.grad`` (the ascent gradient s_t); return
        ``||e_t||`` if the ascent knows it from norms it computed anyway, else None. On entry
        ``origins(params)`` hold the current weights, so the parameters themselves are free to
        hold the direction until ``functional.perturb_``."""
        raise NotImplementedError

    def _descend(self) -> None:
        """Update every parameter that has a ``.grad`` (the descent gradient g_t). The weights
        are restored, so ``origins(params)`` are free to serve as scratch."""
        raise NotImplementedError

    def _ascent_statistics(self) -> Any:
        """The per-parameter state that holds the ascent's statistics, under keys starting with
        ``ascent_`` (``rules.Half``); ``undo_first_step`` puts those back as they were."""
        return self.state

    def origins(self, params: list[Tensor]) -> list[Tensor]:
        """The buffers that hold the weights before the ascent, one per parameter, created on
        first use (also for a parameter that gets a gradient in the second pass only)."""
        buffers = []
        for p in params:
            origin = self._origins.get(p)
            if origin is None or origin.shape != p.shape or origin.dtype != p.dtype:
                origin = self._origins[p] = torch.empty_like(p, memory_format=torch.preserve_format)
            buffers.append(origin)
        return buffers

    # -- the protocol ----------------------------------------------------------------------

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False, *, revertible: bool = False) -> None:
        """Perturb the weights along the current ``.grad`` (the gradient at the current weights).

        With ``revertible``, the ascent's statistics (LightSAM's ``u``, ``r``, a decaying
        radius's step count) are copied first, so that ``undo_first_step`` can abandon the step;
        the copy costs their size in memory (none for SAM's ascent, one scalar for LightSAM-I's,
        one or two copies of the weights for LightSAM-II's or -III's)."""
        if self._perturbed is not None:
            raise RuntimeError(
                "first_step() called twice in a row: the weights are already perturbed. "
                "Call second_step() after the second backward pass to restore and update them."
            )
        perturbed = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        self._dense(perturbed)
        if perturbed:
            torch._foreach_copy_(self.origins(perturbed), perturbed)
        self._ascent_saved = None
        if revertible:
            self._ascent_saved = {
                p: {k: _copy(v) for k, v in state.items() if k.startswith("ascent_")}
                for p, state in self._ascent_statistics().items()
            }
        self._ascent_norm = self._ascend()
        self._perturbed = perturbed
        if zero_grad:
            self.zero_grad()

    def _dense(self, params: list[Tensor]) -> None:
        for p in params:
            if p.grad.is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse gradients (a parameter of "
                    f"shape {tuple(p.shape)}); use a dense layer (nn.Embedding(sparse=False))"
                )

    def _measure(self, perturbed: list[Tensor], origins: list[Tensor]) -> None:
        """Keep ``perturbation_norm = ||w_t - x_t||`` and ``relative_perturbation = ||w_t - x_t||
        / ||x_t||``, global over every perturbed parameter, just before the restore: a pass over
        the origins for ``||x_t||`` and, where the ascent did not give the norm, one over the
        weights, which are overwritten with ``w_t - x_t`` as they are about to be restored."""
        foreach = resolve_foreach(self.defaults.get("foreach"), perturbed)
        norm = self._ascent_norm
        if norm is None:
            norm = F.sq_dist_(perturbed, origins, foreach=foreach).sqrt()
        self.perturbation_norm = norm
        self.relative_perturbation = norm / F.sq_norm(origins, foreach=foreach).sqrt()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore the weights saved by ``first_step`` and update them with the current ``.grad``
        (the gradient at the perturbed weights)."""
        if self._perturbed is None:
            raise RuntimeError(
                "second_step() needs a preceding first_step(): compute the loss and call "
                "backward(), then first_step(), then the second backward pass, then second_step()."
            )
        if self._perturbed:
            origins = self.origins(self._perturbed)
            self._measure(self._perturbed, origins)
            torch._foreach_copy_(self._perturbed, origins)
        self._perturbed = None
        self._ascent_saved = None
        self._dense([p for g in self.param_groups for p in g["params"] if p.grad is not None])
        self._descend()
        # An LR scheduler warns when it is stepped before ``optimizer.step()``; the two halves
        # together are this optimizer's step, so mark it as taken the way ``step()`` does.
        self._opt_called = True
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def undo_first_step(self, zero_grad: bool = False) -> None:
        """Abandon the step ``first_step(revertible=True)`` began, as a loss scaler does a step
        whose gradient overflowed: every perturbed weight is put back bit for bit, and the
        ascent's statistics are exactly as before ``first_step`` (entries it created are
        removed). No descent is taken and ``perturbation_norm`` keeps the last step's value; the
        next call is ``first_step`` again."""
        if self._perturbed is None:
            raise RuntimeError(
                "undo_first_step() needs a preceding first_step(): there is no ascent to undo"
            )
        if self._ascent_saved is None:
            raise RuntimeError(
                "undo_first_step() needs first_step(revertible=True), which keeps the ascent's "
                "statistics to put back; complete this step with second_step()"
            )
        if self._perturbed:
            torch._foreach_copy_(self._perturbed, self.origins(self._perturbed))
        states = self._ascent_statistics()
        for p in list(states):
            state = states[p]
            saved = self._ascent_saved.get(p)
            for key in [k for k in state if k.startswith("ascent_")]:
                del state[key]
            if saved is None and not state:
                del states[p]  # the ascent created it
            else:
                state.update(saved or {})
        self._perturbed = None
        self._ascent_saved = None
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """One sharpness-aware step. ``closure`` must clear the gradients, compute the loss on the
        current minibatch, call ``backward()`` and return the loss; it is called twice, at the
        current and at the perturbed weights. Returns the loss at the current weights."""
        if closure is None:
            raise RuntimeError(
                f"{type(self).__name__}.step() needs a closure that clears the gradients, computes "
                "the loss and calls backward(); it is evaluated twice. Without a closure, call "
                "first_step() and second_step() around the second backward pass."
            )
        with torch.enable_grad():
            loss = closure()
        if all(p.grad is None for g in self.param_groups for p in g["params"]):
            raise RuntimeError(
                "the closure computed no gradient: it must call loss.backward() (after clearing "
                "the gradients) and return the loss"
            )
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            closure()
        self.second_step()
        return loss

    @property
    def perturbs(self) -> bool:
        """False when every group's ``rho`` is 0: the ascent is then ``e_t = 0``, so a second
        pass at ``x_t + e_t = x_t`` would only recompute the first pass's gradient, and a
        training step may take the descent on that gradient (``lightsam.TrainStep`` does)."""
        return any(group["rho"] != 0 for group in self.param_groups)

    @property
    def is_perturbed(self) -> bool:
        """True between ``first_step`` and ``second_step`` (or ``undo_first_step``)."""
        return self._perturbed is not None

    # -- checkpoints -----------------------------------------------------------------------

    @property
    def identity(self) -> str:
        """What a state dict of this optimizer is a state of: the class and the constructor
        arguments that change which statistics it keeps or what they mean (the variant, the
        ascent rule, the descent optimizer). ``load_state_dict`` refuses any other's."""
        return class_name(type(self))

    def _state_keys(self) -> frozenset[str] | None:
        """The per-parameter statistics this optimizer keeps, where known; the check of a state
        dict written before lightsam tagged them (``check_loadable``)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        if self._perturbed is not None:
            raise RuntimeError(
                "state_dict() between first_step() and second_step(): the weights are perturbed. "
                "Save after second_step()."
            )
        return tag_state_dict(super().state_dict(), self.identity)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        check_loadable(self, self.identity, state_dict, self._state_keys())
        super().load_state_dict(state_dict)
        keep_saved_state_dtypes(self, state_dict)
