"""The plan of a sweep, and the identity of its cells.

A :class:`Plan` is what a store should hold: the sweep's name, the file it came from, and each
run id with its canonical config (``Config.to_dict``). Launching, ``lightsam status`` and the
analysis read it; :mod:`lightsam.store` writes it.

A *cell* is a run's config without its seed: the seeds of one cell are repeats of one
computation, and only they are pooled. An *arm* is a cell without its ``lr`` and ``rho``: the
grid a heatmap shows. Both are defined by the whole config, never by a few fields, so two cells
that share (optimizer, lr, rho) but differ in anything else (epochs, batch size, an optimizer
argument) stay two cells, and :func:`arm_labels` names the difference.

This module reads plain JSON mappings and needs neither torch nor the training code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Not part of what a run computes: the schema says how the rest is written.
SCHEMA_KEY = "schema"
SEED = "seed"
GRID_AXES = ("lr", "rho")
# A sweep file's plan is a grid; the stages that follow it (lightsam.stages) have plans of their
# own, of the same sweep, made from the grid's results, as have the rungs of successive halving
# after the first (lightsam.halving: rung1, rung2, ...).
STAGES = ("grid", "confirm", "recovery", "transfer")
RUNG = "rung"


def is_stage(name: str) -> bool:
    number = name.removeprefix(RUNG)
    return name in STAGES or (number != name and number.isdigit() and int(number) >= 1)


@dataclass(frozen=True)
class Plan:
    """``runs`` maps each run id to its stored config; ``source`` is the sweep file's path and
    ``source_sha256`` the hash of its text when the plan was made; ``notes`` say what of the
    sweep file did not reach every run (a base-spec argument some optimizer does not take), or
    for a later stage what was chosen from the grid's results; ``stage`` is one of ``STAGES``."""

    sweep: str
    source: str
    source_sha256: str
    runs: Mapping[str, Mapping[str, Any]]
    notes: tuple[str, ...] = field(default=())
    stage: str = "grid"

    def __post_init__(self) -> None:
        if not is_stage(self.stage):
            raise ValueError(
                f"stage must be one of {', '.join(STAGES)} or {RUNG}<n>; got {self.stage!r}"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep,
            "stage": self.stage,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "notes": list(self.notes),
            "runs": {run_id: dict(config) for run_id, config in self.runs.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> Plan:
        """The plan in ``data``; ValueError if it is not one."""
        if not isinstance(data, dict) or not isinstance(data.get("runs"), dict):
            raise ValueError("a plan is a mapping with a 'runs' mapping of run ids to configs")
        missing = sorted({"sweep", "source", "source_sha256"} - set(data))
        if missing:
            raise ValueError(f"a plan needs {', '.join(missing)}")
        if not all(isinstance(c, dict) for c in data["runs"].values()):
            raise ValueError("every run of a plan must map to its config")
        return cls(
            sweep=data["sweep"],
            source=data["source"],
            source_sha256=data["source_sha256"],
            runs=data["runs"],
            notes=tuple(data.get("notes", ())),
            stage=data.get("stage", "grid"),  # plans written before stages were grids
        )


def _key(config: Mapping[str, Any], drop: Iterable[str]) -> str:
    kept = {k: v for k, v in flatten(config).items() if k not in set(drop)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"lr": 0.1}}`` -> ``{"optimizer.lr": 0.1}``, without the schema."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if not prefix and key == SCHEMA_KEY:
            continue
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def cell_key(config: Mapping[str, Any]) -> str:
    """The id of the run's cell: its whole config but the seed."""
    return _key(config, [SEED])


def arm_key(config: Mapping[str, Any]) -> str:
    """The id of the run's arm: its whole config but the seed, ``lr`` and ``rho``."""
    return _key(config, [SEED, *(f"optimizer.{axis}" for axis in GRID_AXES)])


def _short(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, float) else f"{value:g}"


def arm_labels(configs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """A name for every arm among ``configs``, by arm key: the optimizer's name, and where
    several arms share it, what sets each apart (``sgd_sam (epochs=10)``), in a fixed order."""
    arms: dict[str, dict[str, Any]] = {}
    for config in configs:
        flat = flatten(config)
        for axis in (SEED, *(f"optimizer.{a}" for a in GRID_AXES)):
            flat.pop(axis, None)
        arms.setdefault(arm_key(config), flat)
    by_name: dict[str, list[str]] = {}
    for key, flat in arms.items():
        by_name.setdefault(flat["optimizer.name"], []).append(key)
    labels = {}
    for name, keys in by_name.items():
        if len(keys) == 1:
            labels[keys[0]] = name
            continue
        fields = sorted({f for k in keys for f in arms[k]})
        differing = [f for f in fields if len({_short(arms[k].get(f)) for k in keys}) > 1]
        for k in keys:
            shown = ", ".join(
                f"{f.removeprefix('optimizer.hparams.')}={_short(arms[k].get(f))}"
                for f in differing
            )
            labels[k] = f"{name} ({shown})"
    return labels
