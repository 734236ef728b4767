"""The experiment configuration: one typed, validated object, loaded from a YAML spec.

A spec names every hyperparameter of a run; ``--set key=value`` overrides reach nested fields
(``optimizer.rho=0.1``). Everything is checked before anything trains: unknown keys, wrong types
and invalid values raise :class:`ConfigError` naming the field and the valid choices.

What a run computes and where it runs are two objects. :class:`Config` is the computation, and
all of it is the run's identity; :class:`Runtime` (device, memory format, data directory,
logging) is the one place for what does not change the result, so a run keeps its id when it
moves to another machine or device.

The identity (:meth:`Config.identity`) is canonical: the optimizer's hyperparameters are
resolved against its constructor (defaults filled in, ``0`` and ``0.0`` one number), and it
carries ``SCHEMA``. A field added to ``Config`` after runs were stored is declared with
:func:`added_later` and the value that reproduces those runs; at that value it is left out of
the identity, so stored runs keep their ids, and because the legacy value is written in code, a
later change of the field's default cannot make a new run take an old, different run's id. A
store written under an earlier schema is brought up to date by ``lightsam migrate``
(:mod:`lightsam.migrate`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from lightsam.data import AUGMENTATIONS, DATASETS, TRAIN_POOL_SIZES
from lightsam.models import MODELS, TIMM_PREFIX, is_timm_model
from lightsam.optim import OPTIMIZERS, create_optimizer, optimizer_entry
from lightsam.optim.registry import IMPLEMENTATION, OWN_FIELDS
from lightsam.plan import SCHEMA_KEY, flatten
from lightsam.step import PERTURBATIONS

LR_SCHEDULES = ("constant", "cosine", "step")
# fp16 autocasts to float16 and scales the loss (a GradScaler, ``lightsam.step``): for CUDA; it
# runs on CPU too, where the tests use it, but slower than fp32 there.
PRECISIONS = ("fp32", "bf16", "fp16")
# The version of the identity's definition; a run directory records the one it was written
# under (config.json's "schema"). 1: before it was recorded (hyperparameters as written).
SCHEMA = 2


def added_later(legacy: Any) -> dict[str, Any]:
    """The metadata of a ``Config`` field added after runs were stored under this schema:
    ``legacy`` is the value that computes what those runs computed (usually the behaviour before
    the field existed, whatever its default becomes)."""
    return {"legacy": legacy}


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2 floats: PyYAML follows YAML 1.1, which reads ``1e-3`` (no dot) as a
    string, the way most people write a learning rate. A key given twice in one mapping is an
    error: PyYAML would keep the last one silently."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found the key {key!r} a second time", key_node.start_mark,
                )  # fmt: skip
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


class ConfigError(ValueError):
    """An invalid spec or override; the message names the field and the valid choices."""


@dataclass(frozen=True)
class OptimizerConfig:
    """``name`` in the ``lightsam.create_optimizer`` registry and its constructor arguments:
    ``lr``, ``rho`` for the sharpness-aware ones, and any other (``momentum``, ``betas``,
    ``weight_decay``, ...) in ``hparams``. A validated config holds every argument of the
    constructor in ``hparams`` (``OptimizerEntry.resolve``), the defaults written out."""

    name: str
    lr: float
    rho: float | None = None
    hparams: dict[str, Any] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``create_optimizer``."""
        rho = {} if self.rho is None else {"rho": self.rho}
        hparams = {k: tuple(v) if isinstance(v, list) else v for k, v in self.hparams.items()}
        return {"lr": self.lr, **rho, **hparams}


@dataclass(frozen=True)
class Config:
    """Everything that defines what a training run computes.

    Learning-rate schedules act per step: ``cosine`` decays from ``optimizer.lr`` to 0 over the
    run; ``step`` multiplies by ``lr_gamma`` at each epoch in ``lr_milestones``. A linear
    warm-up of ``warmup_steps`` steps, or ``warmup_epochs`` epochs (rounded to whole steps; at
    most one of the two), ramps the factor from ``1/W`` at the first step to 1 at step ``W``,
    for every schedule; ``cosine`` then decays over the steps after the warm-up, and ``step``
    keeps its milestones. Under ``constant`` (warm-up or not) the factor at a step does not
    depend on ``epochs``, so a run is the first epochs of any longer one: what successive
    halving continues (``lightsam.halving``). A training loss
    above ``divergence_loss`` (or non-finite) ends the run as ``diverged``; with
    ``divergence_loss: null`` only a non-finite loss does (to check whether runs that the stop
    rule ends would have recovered).

    ``probe_size`` (0: off) is the number of training images, the first of the training split,
    on which the loss and the norm of its full gradient are measured before the first step and
    after every epoch: the optimisation objective, which the running training loss (a mean over
    moving weights) is not. The probe reads the weights and changes nothing, so it is in the
    identity only because the run records more. ``probe_steps`` (increasing step counts, none
    at an epoch's end, where the probe runs anyway) adds probes after those many optimizer steps
    of the run, recorded in ``result.json``'s ``probes``: the budget axis below one epoch, where
    a study of how the smallest learning rate that trains moves with the steps needs budgets a
    decade apart.

    ``batch_size`` is the global batch: with several processes each takes an equal share of it
    (it must divide evenly). ``accumulation`` runs each step in that many micro-batches, to fit
    memory; ``perturbation`` says whether SAM's ascent follows the gradient of the global batch
    (``global``) or each process's own (``local``: m-sharpness, m the per-process batch); and
    ``sync_batchnorm`` makes BatchNorm normalise with the statistics of all processes (on GPUs;
    with one process there is nothing to pool). See ``lightsam.step``.

    All three belong to the run's identity, because each can change what a run computes:
    accumulation through BatchNorm, which normalises each micro-batch on its own (without
    BatchNorm only floating-point rounding differs); local perturbation through the number of
    processes, which sets m; SyncBatchNorm through the statistics it normalises with. The number
    of processes itself is not a config field, as a global-mode run computes the same whatever
    it is (BatchNorm aside): it is recorded in ``result.json`` and ``environment.json``, and a
    local-mode run refuses to resume with a different one. ``num_workers`` belongs to it too:
    ImageFolder workers draw the augmentations, seeded per worker.

    ``deterministic`` runs with ``torch.use_deterministic_algorithms`` (and cuBLAS's fixed
    workspace): on CUDA several kernels (convolution backward, scatter-add, some reductions)
    otherwise add in a varying order, so neither a rerun nor a resumed run repeats the numbers;
    an operation with no deterministic kernel then raises, naming itself. It is in the identity
    since the kernels it picks compute other numbers; on CPU it changes nothing.
    """

    dataset: str
    model: str
    optimizer: OptimizerConfig
    epochs: int
    batch_size: int
    lr_schedule: str = "constant"
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    label_smoothing: float = 0.0
    augment: str = "none"
    val_size: int = 5000
    split_seed: int = 0
    seed: int = 0
    eval_every: int = 1
    precision: str = "fp32"
    grad_clip: float | None = None
    divergence_loss: float | None = 1e3
    accumulation: int = 1
    perturbation: str = "global"
    sync_batchnorm: bool = False
    num_workers: int = 4
    probe_size: int = field(default=0, metadata=added_later(0))
    deterministic: bool = field(default=False, metadata=added_later(False))
    warmup_epochs: float = field(default=0.0, metadata=added_later(0.0))
    warmup_steps: int = field(default=0, metadata=added_later(0))
    probe_steps: tuple[int, ...] = field(default=(), metadata=added_later(()))

    def to_dict(self) -> dict[str, Any]:
        """The config as stored (``config.json``, the plan): every field, and the schema it was
        written under, in JSON's types (lists, not tuples). ``from_dict`` reads it back."""
        return json.loads(json.dumps({SCHEMA_KEY: SCHEMA, **dataclasses.asdict(self)}))

    def identity(self) -> dict[str, Any]:
        """What the run computes, canonically: :meth:`to_dict` without the fields and optimizer
        arguments that are at their legacy value (see the module docstring)."""
        values = self.to_dict()
        for f in dataclasses.fields(self):
            # The legacy value in JSON's types too, as to_dict writes it (a tuple as a list).
            if "legacy" in f.metadata and values[f.name] == json.loads(
                json.dumps(f.metadata["legacy"])
            ):
                del values[f.name]
        legacy = optimizer_entry(self.optimizer.name).legacy
        values["optimizer"]["hparams"] = {
            k: v
            for k, v in values["optimizer"]["hparams"].items()
            if not (k in legacy and legacy[k] == v)
        }
        return values

    def warmup_length(self, steps_per_epoch: int) -> int:
        """The warm-up in steps, for a run of ``steps_per_epoch`` steps per epoch."""
        return self.warmup_steps or round(self.warmup_epochs * steps_per_epoch)

    def run_id(self) -> str:
        """A stable hash of :meth:`identity`: the same computation has the same id on any
        machine, however its spec spelled it."""
        canonical = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> Config:
        return from_dict({**self.to_dict(), **changes})


@dataclass(frozen=True)
class Runtime:
    """Where and how a run executes: none of it changes what the run computes, so none of it is
    in the run identity. ``device``: ``auto`` (CUDA if present), ``cpu``, ``cuda`` or
    ``cuda:N``; ``channels_last``: the memory format of images and convolution weights;
    ``data_dir``, ``download``: where datasets are read, and whether a missing one is fetched;
    ``wandb``: also log to Weights & Biases; ``progress``: a progress bar (None: only on a
    terminal)."""

    device: str = "auto"
    channels_last: bool = False
    data_dir: Path = Path("data")
    download: bool = False
    wandb: bool = False
    progress: bool | None = None

    def __post_init__(self) -> None:
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError as error:
                raise ConfigError(
                    f"device must be auto, cpu, cuda or cuda:N; got {self.device!r}"
                ) from error


# -- building and checking ------------------------------------------------------------------------


def _check_type(path: str, value: Any, annotation: Any) -> Any:
    """``value`` converted to ``annotation`` where that is lossless (an int for a float, a list
    for a tuple), or a ConfigError naming ``path``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_type(path, value, inner)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)

    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        return tuple(_check_type(f"{path}[{i}]", v, args[0]) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be a mapping, got {value!r}")
        return dict(value)
    expected = origin or annotation
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{path} must be {expected.__name__}, got {value!r}")
    return value


def build_dataclass(cls: type, data: Any, path: str) -> Any:
    """A ``cls`` from the mapping ``data``, each value checked against its field's type (nested
    dataclasses built the same way), or a ConfigError naming the field (``path.field``); an
    unknown key is an error."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'the spec'} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f" in {path}" if path else ""
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)}{where}; valid keys: {', '.join(fields)}"
        )
    values = {}
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing required key {key}")
            continue
        if dataclasses.is_dataclass(hints[name]):
            values[name] = build_dataclass(hints[name], data[name], key)
        else:
            values[name] = _check_type(key, data[name], hints[name])
    return cls(**values)


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _at_least(name: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")


def _resolved_optimizer(opt: OptimizerConfig, stored: bool) -> OptimizerConfig:
    """``opt`` checked, with every constructor argument in ``hparams`` (see
    ``OptimizerEntry.resolve``). A ``stored`` config (one read back from a store) lacks only
    arguments added since it was written: they take their legacy value, not today's default."""
    _choice("optimizer.name", opt.name, tuple(OPTIMIZERS))
    entry = optimizer_entry(opt.name)
    if entry.sharpness_aware and opt.rho is None:
        raise ConfigError(f"optimizer.rho is required for the sharpness-aware {opt.name!r}")
    if not entry.sharpness_aware and opt.rho is not None:
        raise ConfigError(f"optimizer.rho is not a hyperparameter of {opt.name!r}")
    for name in opt.hparams:
        if name in OWN_FIELDS:
            raise ConfigError(f"optimizer.hparams.{name}: set optimizer.{name} instead")
        if name in IMPLEMENTATION:
            raise ConfigError(
                f"optimizer.hparams.{name} chooses an implementation, not the computation; "
                "lightsam picks it for the device, so a spec cannot set it"
            )
    given = {**entry.legacy, **opt.hparams} if stored else opt.hparams
    try:
        resolved = dataclasses.replace(opt, hparams=entry.resolve(given))
        # Build it once on a dummy parameter: the optimizer's own checks (lr > 0, rho >= 0,
        # betas in [0, 1)) run before anything trains.
        create_optimizer(opt.name, [torch.zeros(1, requires_grad=True)], **resolved.kwargs())
    except (ValueError, TypeError) as error:
        raise ConfigError(f"optimizer ({opt.name}): {error}") from error
    return resolved


def validate(config: Config, stored: bool = False) -> Config:
    """Check every value; returns ``config`` with its optimizer's arguments resolved, or raises
    ConfigError."""
    _finite(config)
    config = dataclasses.replace(config, optimizer=_resolved_optimizer(config.optimizer, stored))
    _choice("dataset", config.dataset, DATASETS)
    if not config.model.startswith(TIMM_PREFIX):
        _choice("model", config.model, (*MODELS, f"{TIMM_PREFIX}<name>"))
    elif not is_timm_model(config.model.removeprefix(TIMM_PREFIX)):
        raise ConfigError(f"model {config.model!r}: timm has no such model (timm.list_models())")
    _at_least("epochs", config.epochs, 1)
    _at_least("batch_size", config.batch_size, 1)
    _choice("lr_schedule", config.lr_schedule, LR_SCHEDULES)
    if config.lr_schedule == "step" and not config.lr_milestones:
        raise ConfigError("lr_milestones must list the epochs of the steps for lr_schedule=step")
    milestones = list(config.lr_milestones)
    if milestones and (
        milestones != sorted(set(milestones))
        or not 1 <= milestones[0] <= milestones[-1] <= config.epochs
    ):
        raise ConfigError(
            f"lr_milestones must be increasing epochs in [1, epochs={config.epochs}], got "
            f"{milestones}"
        )
    _at_least("lr_gamma", config.lr_gamma, 0.0)
    _at_least("warmup_epochs", config.warmup_epochs, 0.0)
    _at_least("warmup_steps", config.warmup_steps, 0)
    if config.warmup_epochs and config.warmup_steps:
        raise ConfigError("give the warm-up as warmup_epochs or as warmup_steps, not both")
    if config.warmup_epochs > config.epochs:
        raise ConfigError(
            f"warmup_epochs {config.warmup_epochs:g} is longer than the run (epochs "
            f"{config.epochs})"
        )
    if not 0.0 <= config.label_smoothing < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {config.label_smoothing!r}")
    _choice("augment", config.augment, AUGMENTATIONS)
    _at_least("val_size", config.val_size, 1)
    _at_least("split_seed", config.split_seed, 0)
    _at_least("seed", config.seed, 0)
    _at_least("eval_every", config.eval_every, 1)
    _choice("precision", config.precision, PRECISIONS)
    if config.grad_clip is not None and not config.grad_clip > 0:
        raise ConfigError(f"grad_clip must be > 0 or null, got {config.grad_clip!r}")
    if config.divergence_loss is not None and not config.divergence_loss > 0:
        raise ConfigError(f"divergence_loss must be > 0 or null, got {config.divergence_loss!r}")
    _at_least("accumulation", config.accumulation, 1)
    _choice("perturbation", config.perturbation, PERTURBATIONS)
    _at_least("num_workers", config.num_workers, 0)
    _at_least("probe_size", config.probe_size, 0)
    if config.probe_size and config.dataset == "imagenet":
        raise ConfigError(
            "probe_size: the training-subset probe needs a dataset held in memory "
            f"({', '.join(d for d in DATASETS if d != 'imagenet')}), not imagenet"
        )
    steps = list(config.probe_steps)
    if steps and not config.probe_size:
        raise ConfigError("probe_steps needs the probe: set probe_size > 0")
    if steps and (steps != sorted(set(steps)) or steps[0] < 1):
        raise ConfigError(f"probe_steps must be increasing step counts >= 1, got {steps}")
    return config


def check_fits_the_data(config: Config) -> None:
    """ConfigError unless the validation split, a training batch and the probe fit the training
    images of ``config``'s in-memory dataset (ImageFolder's size is known only on reading it).
    Checked before a run starts or a sweep is launched, not on every config: a stored or
    planned config is read whatever its data."""
    pool = TRAIN_POOL_SIZES.get(config.dataset)
    if pool is None:
        return
    if config.val_size >= pool:
        raise ConfigError(
            f"val_size {config.val_size} leaves no training images: {config.dataset} has {pool}"
        )
    train = pool - config.val_size
    for name in ("batch_size", "probe_size"):
        if getattr(config, name) > train:
            raise ConfigError(
                f"{name} {getattr(config, name)} is larger than the training split: {train} "
                f"images of {config.dataset} after val_size {config.val_size}"
            )
    steps_per_epoch = train // config.batch_size  # the loader drops a last partial batch
    check_warmup(config, steps_per_epoch)
    check_probe_steps(config, steps_per_epoch)


def check_warmup(config: Config, steps_per_epoch: int) -> None:
    warm, total = config.warmup_length(steps_per_epoch), config.epochs * steps_per_epoch
    if warm >= total:
        raise ConfigError(
            f"the warm-up ({warm} steps) must end before the run does ({total} steps: "
            f"{config.epochs} epochs of {steps_per_epoch})"
        )


def check_probe_steps(config: Config, steps_per_epoch: int) -> None:
    total = config.epochs * steps_per_epoch
    for step in config.probe_steps:
        if step >= total:
            raise ConfigError(
                f"probe_steps: step {step} is not inside the run ({total} steps: "
                f"{config.epochs} epochs of {steps_per_epoch})"
            )
        if step % steps_per_epoch == 0:
            raise ConfigError(
                f"probe_steps: step {step} ends epoch {step // steps_per_epoch}, which is "
                "probed anyway"
            )


def _finite(config: Config) -> None:
    """No NaN or infinity anywhere: a run would train on it and store a fake data point (a
    'diverged' run at an infinite learning rate)."""
    for key, value in flatten(dataclasses.asdict(config)).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ConfigError(f"{key} must be finite, got {value!r}")


def from_dict(data: dict[str, Any]) -> Config:
    """A validated Config from a spec's mapping, or from a stored one (``Config.to_dict``, which
    carries its ``schema``): in a stored config, a field added since it was written takes its
    legacy value, as the run it describes computed with that."""
    data = dict(data)
    schema = data.pop(SCHEMA_KEY, None)
    if schema is not None and schema != SCHEMA:
        raise ConfigError(
            f"schema: this config was written under schema {schema!r}; this lightsam reads "
            f"schema {SCHEMA}; `lightsam migrate STORE` brings a store up to date"
        )
    runtime = sorted(set(data) & RUNTIME_KEYS)
    if runtime:
        flags = ", ".join(f"--{key.replace('_', '-')}" for key in runtime)
        raise ConfigError(
            f"{', '.join(runtime)}: where a run executes is not part of the experiment; "
            f"give it on the command line ({flags}), not in the spec"
        )
    stored = schema is not None
    if stored:
        for f in dataclasses.fields(Config):
            if "legacy" in f.metadata and f.name not in data:
                data[f.name] = f.metadata["legacy"]
    return validate(build_dataclass(Config, data, ""), stored=stored)


RUNTIME_KEYS = frozenset(f.name for f in dataclasses.fields(Runtime))


# -- specs and overrides --------------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optimizer.rho=0.1"`` -> ``(["optimizer", "rho"], 0.1)``; the value is read as YAML, so
    ``1e-3``, ``[0.9, 0.99]``, ``null`` and ``true`` have their types."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"an override must look like key=value, got {text!r}")
    try:
        return key.split("."), yaml_load(value) if value else ""
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or "not YAML"
        raise ConfigError(
            f"--set {text}: the value is not valid YAML ({problem}); quote a string, write a "
            "list as [a, b]"
        ) from error


def set_in(data: dict[str, Any], keys: list[str], value: Any) -> None:
    """``data[k1][k2]... = value``, creating the mappings on the way. A key missing from the spec
    is added, so that an unknown one is rejected by validation like any other."""
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(keys)}: {key} is not a mapping")
        node = child
    node[keys[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``data`` with ``key.sub=value`` overrides applied."""
    data = json.loads(json.dumps(data))
    for text in overrides:
        set_in(data, *parse_override(text))
    return data


def read_yaml(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` (an empty file is an empty mapping), or a
    ConfigError that names ``what`` it was meant to be."""
    path = Path(path)
    try:
        data = yaml_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {what} {path}: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must be a YAML mapping")
    return data


def load_spec(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a YAML spec, apply ``overrides``, validate."""
    return from_dict(apply_overrides(read_yaml(path, "spec"), list(overrides)))
