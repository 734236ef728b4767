"""One registry of optimizers by name, used by experiment specs and sweeps."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import Optimizer

from lightsam.optim.adagrad_norm import AdaGradNorm
from lightsam.optim.adasam import AdaSAM
from lightsam.optim.base import SharpnessAwareOptimizer
from lightsam.optim.lightsam import LightSAM
from lightsam.optim.sam import SAM


def _arguments(fn: Callable[..., Any]) -> set[str]:
    return {
        name
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name not in ("self", "params")
    }


@dataclass(frozen=True)
class OptimizerEntry:
    """How to build one named optimizer: its class, the arguments the name fixes, and, for SAM
    around a base optimizer, the base class whose arguments it also accepts."""

    cls: type[Optimizer]
    fixed: dict[str, Any] = field(default_factory=dict)
    base: type[Optimizer] | None = None

    @property
    def hyperparameters(self) -> frozenset[str]:
        names = _arguments(self.cls) | (_arguments(self.base) if self.base else set())
        return frozenset(names - set(self.fixed) - {"base_optimizer"})

    @property
    def sharpness_aware(self) -> bool:
        return issubclass(self.cls, SharpnessAwareOptimizer)


OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry(torch.optim.SGD),
    "adam": OptimizerEntry(torch.optim.Adam),
    "adagrad": OptimizerEntry(torch.optim.Adagrad),
    "adagrad_norm": OptimizerEntry(AdaGradNorm),
    "sgd_sam": OptimizerEntry(SAM, {"base_optimizer": torch.optim.SGD}, torch.optim.SGD),
    "asam": OptimizerEntry(
        SAM, {"base_optimizer": torch.optim.SGD, "adaptive": True}, torch.optim.SGD
    ),
    "adasam": OptimizerEntry(AdaSAM),
    "lightsam_i": OptimizerEntry(LightSAM, {"variant": "adagrad_norm"}),
    "lightsam_ii": OptimizerEntry(LightSAM, {"variant": "adagrad"}),
    "lightsam_iii": OptimizerEntry(LightSAM, {"variant": "adam"}),
}


def optimizer_entry(name: str) -> OptimizerEntry:
    """The registry entry for ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def create_optimizer(name: str, params: Iterable[Any], **hparams: Any) -> Optimizer:
    """Build the optimizer registered as ``name`` over ``params``.

    ``hparams`` are the constructor's keyword arguments (for ``sgd_sam`` and ``asam`` those of
    ``SAM`` and of ``torch.optim.SGD``); an unknown one is a ``ValueError`` listing the valid ones.
    """
    entry = optimizer_entry(name)
    unknown = sorted(set(hparams) - entry.hyperparameters)
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for optimizer {name!r}; "
            f"valid: {', '.join(sorted(entry.hyperparameters))}"
        )
    return entry.cls(params, **entry.fixed, **hparams)
