"""Sweeps: a base experiment spec and its axes, expanded into runs with stable ids.

A sweep file (YAML, in ``sweeps/``)::

    base: ../experiments/mnist5k_lenet.yaml   # relative to the sweep file
    set: {epochs: 5}                           # overrides applied to every run
    seeds: [0, 1, 2]
    optimizers:                                # each optimizer with its own grids
      sgd_sam:     {lr: [0.01, 0.1], rho: [0.01, 0.1], hparams: {momentum: 0.9}}
      lightsam_ii: {lr: [0.001, 0.01], rho: [1.0e-4, 1.0e-3]}
      sgd:         {lr: [0.01, 0.1], hparams: {momentum: 0.9}}

expands into every (optimizer, lr, rho, seed) cell. Each run's id is the hash of its resolved
config (``Config.run_id``), so the same cell is the same run whatever the order or the machine.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightsam.config import Config, ConfigError, apply_overrides, from_dict, read_yaml, set_in
from lightsam.optim import OPTIMIZERS

SWEEP_KEYS = ("base", "set", "seeds", "optimizers")
GRID_KEYS = ("lr", "rho", "hparams")


@dataclass(frozen=True)
class Grid:
    """One optimizer's axes: learning rates, radii (sharpness-aware only), fixed arguments."""

    lr: tuple[float, ...]
    rho: tuple[float | None, ...] = (None,)
    hparams: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sweep:
    name: str
    base: dict[str, Any]
    seeds: tuple[int, ...]
    grids: dict[str, Grid]

    @functools.cached_property
    def runs(self) -> tuple[Config, ...]:
        """Every cell, validated, in a fixed order: optimizer, lr, rho, seed (built once: each
        cell's validation builds its optimizer)."""
        configs = []
        for name, grid in self.grids.items():
            for lr, rho, seed in itertools.product(grid.lr, grid.rho, self.seeds):
                optimizer = {"name": name, "lr": lr, "hparams": grid.hparams}
                if rho is not None:
                    optimizer["rho"] = rho
                configs.append(from_dict({**self.base, "optimizer": optimizer, "seed": seed}))
        return tuple(configs)


def _numbers(where: str, value: Any) -> tuple[float, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise ConfigError(f"{where} must be a number or a non-empty list of numbers, got {value!r}")
    return tuple(float(v) for v in values)


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
    return Grid(lr=_numbers(f"{where}.lr", data["lr"]), rho=rho, hparams=hparams)


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (every run it expands into is validated too)."""
    path = Path(path)
    data = read_yaml(path, "sweep")
    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {path}; valid: {SWEEP_KEYS}")
    for key in ("base", "optimizers"):
        if key not in data:
            raise ConfigError(f"sweep {path} needs a {key!r} key")
    base = read_yaml(path.parent / data["base"], "base spec")
    overrides = data.get("set", {})
    if not isinstance(overrides, dict):
        raise ConfigError("set must be a mapping of spec keys to values")
    base = apply_overrides(base, [])
    for key, value in overrides.items():
        set_in(base, key.split("."), value)
    seeds = data.get("seeds", [base.get("seed", 0)])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"seeds must be a list of integers, got {seeds!r}")
    if not isinstance(data["optimizers"], dict) or not data["optimizers"]:
        raise ConfigError("optimizers must map optimizer names to their grids")
    grids = {name: _grid(name, grid) for name, grid in data["optimizers"].items()}
    sweep = Sweep(name=path.stem, base=base, seeds=tuple(seeds), grids=grids)
    sweep.runs  # noqa: B018  (builds, so validates, every cell before anything is launched)
    return sweep
