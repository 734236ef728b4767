"""Sweeps: a base experiment spec and its axes, expanded into a plan of runs with stable ids.

A sweep file (YAML, in ``sweeps/``)::

    base: ../experiments/mnist5k_lenet.yaml   # relative to the sweep file
    set: {epochs: 5}                           # overrides applied to every run
    seeds: [0, 1, 2]
    optimizers:                                # each optimizer with its own grids
      sgd_sam:     {lr: [0.01, 0.1], rho: [0.01, 0.1], hparams: {momentum: 0.9}}
      lightsam_ii: {lr: [0.001, 0.01], rho: [1.0e-4, 1.0e-3]}
      sgd:         {lr: [0.01, 0.1], hparams: {momentum: 0.9}, set: {epochs: 10}}

expands into every (optimizer, lr, rho, seed) cell; ``halving: {rungs: [...], keep: f}`` screens
them by successive halving (``lightsam.halving``). A grid's own ``set`` overrides the sweep's
for its runs (a base optimizer trained twice as long, at the compute of a two-pass method); it
sets spec fields, not the optimizer (its grid and ``hparams`` do that).

Each grid sets its optimizer's name, ``lr`` and ``rho``; every other optimizer argument is
merged, never dropped: the base spec's ``optimizer.hparams``, then those of
``set: {optimizer.hparams.<name>: ...}``, then the grid's own ``hparams``, each over the one
before. A base-spec argument reaches the optimizers that take
it, and the plan notes which ones do not; an argument in ``set`` that no optimizer of the sweep
takes, and ``set`` of the optimizer's name, ``lr`` or ``rho`` (which the grids sweep), are
errors. Each run's id is the hash of its canonical config (``Config.run_id``), so the same cell
is the same run whatever the order or the spelling of the file.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightsam.config import Config, ConfigError, apply_overrides, from_dict, read_yaml, set_in
from lightsam.halving import Halving
from lightsam.optim import OPTIMIZERS
from lightsam.plan import Plan

SWEEP_KEYS = ("base", "set", "seeds", "optimizers", "halving")
GRID_KEYS = ("lr", "rho", "hparams", "set")
SWEPT = ("name", "lr", "rho")  # the optimizer fields each grid sets


@dataclass(frozen=True)
class Grid:
    """One optimizer's axes: learning rates, radii (sharpness-aware only), fixed arguments, and
    the spec fields its runs set over the sweep's (``overrides``: dotted keys)."""

    lr: tuple[float, ...]
    rho: tuple[float | None, ...] = (None,)
    hparams: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sweep:
    """``base``: the base spec with ``set`` applied, ``optimizer`` left out (the grids and
    ``shared`` make it); ``source_sha256``: the hash of the file's text as it was read;
    ``shared``: the optimizer arguments from the base spec and ``set``;
    ``notes``: which of those some optimizer does not take."""

    name: str
    source: Path
    source_sha256: str
    base: dict[str, Any]
    shared: dict[str, Any]
    seeds: tuple[int, ...]
    grids: dict[str, Grid]
    notes: tuple[str, ...] = ()
    halving: Halving | None = None

    @functools.cached_property
    def runs(self) -> tuple[Config, ...]:
        """Every cell, validated, in a fixed order: optimizer, lr, rho, seed (built once: each
        cell's validation builds its optimizer). With ``halving``, at its first rung."""
        configs = []
        for name, grid in self.grids.items():
            accepted = OPTIMIZERS[name].configurable
            hparams = {k: v for k, v in self.shared.items() if k in accepted} | grid.hparams
            base = apply_overrides(self.base, [])
            for key, value in grid.overrides.items():
                set_in(base, key.split("."), value)
            for lr, rho, seed in itertools.product(grid.lr, grid.rho, self.seeds):
                optimizer = {"name": name, "lr": lr, "hparams": hparams}
                if rho is not None:
                    optimizer["rho"] = rho
                config = from_dict({**base, "optimizer": optimizer, "seed": seed})
                if self.halving is not None:
                    self.halving.check(config)
                    config = config.replace(epochs=self.halving.rungs[0])
                configs.append(config)
        return tuple(configs)

    def plan(self) -> Plan:
        """The plan of this sweep: every run id with its canonical config."""
        return Plan(
            sweep=self.name,
            source=str(self.source.resolve()),
            source_sha256=self.source_sha256,
            runs={config.run_id(): config.to_dict() for config in self.runs},
            notes=self.notes,
        )


def _numbers(where: str, value: Any) -> tuple[float, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise ConfigError(f"{where} must be a number or a non-empty list of numbers, got {value!r}")
    return _distinct(where, tuple(float(v) for v in values))


def _distinct(where: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """``values``, or a ConfigError naming one given twice (one computation planned twice)."""
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(f"{where} lists {', '.join(f'{v:g}' for v in repeated)} more than once")
    return values


def _grid(name: str, data: Any) -> Grid:
    where = f"optimizers.{name}"
    if name not in OPTIMIZERS:
        raise ConfigError(f"{where}: unknown optimizer; valid names: {', '.join(OPTIMIZERS)}")
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping with keys {', '.join(GRID_KEYS)}")
    unknown = sorted(set(data) - set(GRID_KEYS))
    if unknown:
        valid = ", ".join(GRID_KEYS)
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {where}; valid: {valid}")
    if "lr" not in data:
        raise ConfigError(f"{where}.lr is required")
    sharpness_aware = OPTIMIZERS[name].sharpness_aware
    if sharpness_aware != ("rho" in data):
        need = "needs" if sharpness_aware else "takes no"
        raise ConfigError(f"{where}: {name} {need} a rho grid")
    rho = _numbers(f"{where}.rho", data["rho"]) if sharpness_aware else (None,)
    hparams = data.get("hparams", {})
    if not isinstance(hparams, dict):
        raise ConfigError(f"{where}.hparams must be a mapping")
    overrides = data.get("set", {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}.set must be a mapping of spec keys to values")
    if any(key.split(".")[0] == "optimizer" for key in overrides):
        raise ConfigError(
            f"{where}.set: the grid sets its optimizer's lr and rho, and its hparams the other "
            "arguments; set spec fields here (epochs, batch_size, ...)"
        )
    return Grid(
        lr=_numbers(f"{where}.lr", data["lr"]), rho=rho, hparams=hparams, overrides=overrides
    )


def _hparams(optimizer: Any, where: str) -> dict[str, Any]:
    if optimizer is None:
        return {}
    if not isinstance(optimizer, dict):
        raise ConfigError(f"{where}optimizer must be a mapping")
    hparams = optimizer.get("hparams", {})
    if not isinstance(hparams, dict):
        raise ConfigError(f"{where}optimizer.hparams must be a mapping")
    return hparams


def _shared_hparams(
    spec: dict[str, Any], overrides: dict[str, Any], grids: dict[str, Grid]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The optimizer arguments every grid starts from (the base spec's, then ``set``'s) and the
    notes on those that some optimizer does not take; ConfigError for a ``set`` that would be
    ignored."""
    changed: dict[str, Any] = {"optimizer": {"hparams": {}}}
    for key, value in overrides.items():
        keys = key.split(".")
        if keys[0] != "optimizer":
            continue
        if len(keys) == 1 or keys[1] != "hparams":
            raise ConfigError(
                f"set: {key}: each optimizer's grid sets its {', '.join(SWEPT)} "
                "(optimizers.<name>); set optimizer.hparams.<argument> for the others"
            )
        set_in(changed, keys, value)
    from_set = _hparams(changed["optimizer"], "set: ")
    shared = _hparams(spec.get("optimizer"), "the base spec's ") | from_set
    notes = []
    for argument in sorted(shared):
        takers = [name for name in grids if argument in OPTIMIZERS[name].configurable]
        others = [name for name in grids if name not in takers]
        if argument in from_set and not takers:
            raise ConfigError(
                f"set: optimizer.hparams.{argument} is an argument of none of the sweep's "
                f"optimizers ({', '.join(grids)})"
            )
        if others:
            to = f"reaches {', '.join(takers)}; not" if takers else "reaches none of"
            value = shared[argument]
            notes.append(f"optimizer.hparams.{argument}={value!r} {to} {', '.join(others)}")
    return shared, tuple(notes)


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (every run it expands into is validated too)."""
    path = Path(path)
    data = read_yaml(path, "sweep")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {path}; valid: {SWEEP_KEYS}")
    for key in ("base", "optimizers"):
        if key not in data:
            raise ConfigError(f"sweep {path} needs a {key!r} key")
    if not isinstance(data["base"], str):
        raise ConfigError(f"base must be the path of a spec (a string), got {data['base']!r}")
    spec = read_yaml(path.parent / data["base"], "base spec")
    overrides = data.get("set", {})
    if not isinstance(overrides, dict):
        raise ConfigError("set must be a mapping of spec keys to values")
    if not isinstance(data["optimizers"], dict) or not data["optimizers"]:
        raise ConfigError("optimizers must map optimizer names to their grids")
    grids = {name: _grid(name, grid) for name, grid in data["optimizers"].items()}
    halving = Halving.parse(data["halving"]) if "halving" in data else None
    if halving is not None:
        own = [name for name, grid in grids.items() if "epochs" in grid.overrides]
        if own:
            raise ConfigError(
                f"optimizers.{own[0]}.set.epochs: under halving every cell runs the rungs' "
                "epochs; compare a base optimizer at its own budget in a sweep of its own"
            )
    shared, notes = _shared_hparams(spec, overrides, grids)
    base = apply_overrides(spec, [])
    for key, value in overrides.items():
        if key.split(".")[0] != "optimizer":
            set_in(base, key.split("."), value)
    base.pop("optimizer", None)
    seeds = data.get("seeds", [base.get("seed", 0)])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ConfigError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    _distinct("seeds", tuple(seeds))
    sweep = Sweep(
        name=path.stem,
        source=path,
        source_sha256=digest,
        base=base,
        shared=shared,
        seeds=tuple(seeds),
        grids=grids,
        notes=notes,
        halving=halving,
    )
    ids = [config.run_id() for config in sweep.runs]  # builds, so validates, every cell
    if len(set(ids)) < len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigError(
            f"sweep {path} lists one computation more than once (runs {', '.join(repeated)}): "
            "a grid value or seed repeated, or spelled twice"
        )
    return sweep
