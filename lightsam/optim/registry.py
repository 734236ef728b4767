"""One registry of optimizers by name, used by experiment specs and sweeps.

Each entry also says what a configuration of it *is*: :meth:`OptimizerEntry.resolve` fills in
the constructor's defaults and normalises numbers, so that ``momentum: 0``, ``momentum: 0.0``
and no momentum at all are one configuration (see :mod:`lightsam.config` for the run identity).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import Optimizer

from lightsam.optim.adagrad_norm import AdaGradNorm
from lightsam.optim.adasam import AdaSAM
from lightsam.optim.base import SharpnessAwareOptimizer
from lightsam.optim.lightsam import LightSAM
from lightsam.optim.rules import ascent_rule
from lightsam.optim.sam import SAM, SharpnessAware

# Arguments that choose how an update is computed (kernels, graph capture, autograd through the
# step), not what it is; they are the library's to pick per device, never part of a run's
# configuration.
IMPLEMENTATION = frozenset({"foreach", "fused", "capturable", "differentiable"})
# Set by the config's own fields, not by ``hparams``.
OWN_FIELDS = frozenset({"lr", "rho"})


def _parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    return {
        name: p
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name not in ("self", "params")
    }


def _canonical(where: str, value: Any, parameter: inspect.Parameter) -> Any:
    """``value`` in the one form the run identity hashes, checked against the type of the
    parameter's default: a number is a float (``0`` is ``0.0``) unless the parameter is declared
    ``int``, a tuple is a list, a flag must be a bool."""
    default = parameter.default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number, got {value!r}")
        if parameter.annotation in (int, "int"):
            if value != int(value):
                raise ValueError(f"{where} must be an integer, got {value!r}")
            return int(value)
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            raise ValueError(f"{where} must be a list of {len(default)} numbers, got {value!r}")
        items = [inspect.Parameter("item", parameter.kind, default=d) for d in default]
        pairs = enumerate(zip(value, items, strict=True))
        return [_canonical(f"{where}[{i}]", v, p) for i, (v, p) in pairs]
    return value


@dataclass(frozen=True)
class OptimizerEntry:
    """How to build one named optimizer: its class, the arguments the name fixes, and, for SAM
    around a base optimizer, the base class whose arguments it also accepts.

    ``legacy`` holds, for each constructor argument added after runs of this optimizer were
    stored (by lightsam or by a torch release), the value that computes what those runs
    computed. At that value the argument is left out of the run identity, so the stored runs
    keep their ids; any other value, or a later change of its default, makes a new run.
    """

    cls: type[Optimizer]
    fixed: dict[str, Any] = field(default_factory=dict)
    base: type[Optimizer] | None = None
    legacy: Mapping[str, Any] = field(default_factory=dict)

    @property
    def _signature(self) -> dict[str, inspect.Parameter]:
        """The arguments the name's constructor takes: the class's own, its ascent rule's (a
        pairing's ``**kwargs``), its base or descent optimizer's."""
        own = _parameters(self.cls)
        if "ascent" in self.fixed:
            own |= ascent_rule(self.fixed["ascent"]).parameters()
        return {**(_parameters(self.base) if self.base else {}), **own}

    @property
    def hyperparameters(self) -> frozenset[str]:
        """Every keyword argument ``create_optimizer`` accepts for this name."""
        return frozenset(set(self._signature) - set(self.fixed) - {"base_optimizer", "descent"})

    @property
    def configurable(self) -> frozenset[str]:
        """The arguments a config's ``optimizer.hparams`` may set: all but ``lr``, ``rho`` and
        the implementation choices."""
        return self.hyperparameters - OWN_FIELDS - IMPLEMENTATION

    @property
    def sharpness_aware(self) -> bool:
        return issubclass(self.cls, SharpnessAwareOptimizer)

    def resolve(self, hparams: Mapping[str, Any]) -> dict[str, Any]:
        """Every configurable argument with its value in canonical form: those given, and the
        constructor's defaults for the others. Raises ValueError for an argument it does not
        take or a value of the wrong type, naming it."""
        unknown = sorted(set(hparams) - self.configurable)
        if unknown:
            raise ValueError(
                f"unknown hyperparameter(s) {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(self.configurable))}"
            )
        signature, resolved = self._signature, {}
        for name in sorted(self.configurable):
            parameter = signature[name]
            if name not in hparams and parameter.default is inspect.Parameter.empty:
                raise ValueError(f"hyperparameter {name} is required")
            value = hparams.get(name, parameter.default)
            resolved[name] = _canonical(f"hparams.{name}", value, parameter)
        return resolved


ADAM_ONLY = {"betas": (0.9, 0.999), "bias_correction": False}


def sam_around(descent: type[Optimizer]) -> OptimizerEntry:
    """SAM's ascent (``normalized``, not adaptive) around ``descent``."""
    return OptimizerEntry(
        SAM, {"base_optimizer": descent, "adaptive": False, "asam_eta": 0.01}, descent
    )


def pairing(ascent: str, descent: type[Optimizer]) -> OptimizerEntry:
    """The ascent rule ``ascent`` around ``descent``."""
    return OptimizerEntry(SharpnessAware, {"descent": descent, "ascent": ascent}, descent)


OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry(torch.optim.SGD),
    "adam": OptimizerEntry(torch.optim.Adam),
    "adamw": OptimizerEntry(torch.optim.AdamW),
    "adagrad": OptimizerEntry(torch.optim.Adagrad),
    "adagrad_norm": OptimizerEntry(AdaGradNorm),
    # SAM's asam_eta only acts with adaptive=True, so SGD-SAM fixes both.
    "sgd_sam": sam_around(torch.optim.SGD),
    "asam": OptimizerEntry(
        SAM, {"base_optimizer": torch.optim.SGD, "adaptive": True}, torch.optim.SGD
    ),
    "adasam": OptimizerEntry(AdaSAM),
    # betas and bias_correction act only in LightSAM-III.
    "lightsam_i": OptimizerEntry(LightSAM, {"variant": "adagrad_norm", **ADAM_ONLY}),
    "lightsam_ii": OptimizerEntry(LightSAM, {"variant": "adagrad", **ADAM_ONLY}),
    "lightsam_iii": OptimizerEntry(LightSAM, {"variant": "adam"}),
    # The ablation arms (ALGORITHMS.md): one change at a time against the pairings above.
    "adam_sam": sam_around(torch.optim.Adam),
    "adamw_sam": sam_around(torch.optim.AdamW),
    "adagrad_sam": sam_around(torch.optim.Adagrad),
    "adagrad_norm_sam": sam_around(AdaGradNorm),
    "lightsam_i_sgd": pairing("adagrad_norm", torch.optim.SGD),
    "sgd_sam_decay": pairing("normalized_decay", torch.optim.SGD),
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
