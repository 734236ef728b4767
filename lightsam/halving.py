"""Successive halving on the store: every cell screened at a short budget, the best continued.

A sweep file with ``halving``::

    halving: {rungs: [20, 60, 200], keep: 0.34}

trains every cell of the grid for ``rungs[0]`` epochs, in the sweep's store. Once all of them
are complete, the best ``keep`` of each arm's cells (at least one) continue to ``rungs[1]``
epochs in ``<store>_rung1``, and so on to the last rung, which is the sweep's ``epochs``.

* **Per arm.** Each method's own grid is screened against itself: a study of sensitivity needs
  every method's curve up to the full budget, not only the overall winner's.
* **Selection** reads validation accuracy only: a cell's mean over its seeds at the rung, ties
  to the smaller ``lr``, then ``rho`` (as the confirm stage selects, ``lightsam.stages``). A cell
  with a diverged run is not continued: the run stopped mid-epoch and counts as chance.
* **Continuation.** A cell's run at rung k is its config with ``epochs = rungs[k]``. Under a
  constant schedule (warm-up allowed) a run is exactly the first epochs of any longer one
  (``Config``), so it starts from the final checkpoint of the rung before
  (``store.continue_from``) and trains the new epochs only. Nothing is trained twice, and the
  result is that of the run trained to that length directly; its ``wall_s`` includes the
  epochs it continued.
* **Pruned** cells keep their runs at the rung they reached. Each rung's store holds
  ``promotion.json``: every cell of the rung before, kept or pruned, with its score.
* **Launching**: with the local executor the rungs follow one another in one call. On SLURM each
  rung is a job array, submitted once the rung before has finished: rerun ``lightsam sweep``,
  which finds the finished rung and submits the next (a rung still running is left alone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightsam import stages, store
from lightsam.config import Config, ConfigError, from_dict
from lightsam.plan import RUNG, Plan, arm_labels

HALVING_KEYS = ("rungs", "keep")


@dataclass(frozen=True)
class Halving:
    """``rungs``: increasing epochs, the last the sweep's budget; ``keep``: the fraction of each
    arm's cells that continue from one rung to the next, in ``(0, 1)``."""

    rungs: tuple[int, ...]
    keep: float

    @classmethod
    def parse(cls, data: Any) -> Halving:
        if not isinstance(data, dict):
            raise ConfigError(f"halving must be a mapping with keys {', '.join(HALVING_KEYS)}")
        unknown = sorted(set(data) - set(HALVING_KEYS))
        if unknown:
            valid = ", ".join(HALVING_KEYS)
            raise ConfigError(f"unknown key(s) {', '.join(unknown)} in halving; valid: {valid}")
        rungs, keep = data.get("rungs"), data.get("keep")
        if (
            not isinstance(rungs, list)
            or len(rungs) < 2
            or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in rungs)
            or rungs != sorted(set(rungs))
        ):
            raise ConfigError(
                f"halving.rungs must be two or more increasing numbers of epochs, got {rungs!r}"
            )
        if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep < 1:
            raise ConfigError(f"halving.keep must be a fraction in (0, 1), got {keep!r}")
        return cls(rungs=tuple(rungs), keep=float(keep))

    def check(self, config: Config) -> None:
        """ConfigError unless ``config`` (a run of the sweep at its full budget) can be
        screened at these rungs and continued exactly."""
        if config.epochs != self.rungs[-1]:
            raise ConfigError(
                f"halving.rungs ends at {self.rungs[-1]} epochs, but the sweep's runs have "
                f"epochs {config.epochs}: the last rung is the full budget"
            )
        if config.lr_schedule != "constant":
            raise ConfigError(
                f"halving continues runs exactly only at a constant learning rate (warm-up "
                f"allowed), not lr_schedule {config.lr_schedule}: a cosine or step schedule "
                "depends on the run's length"
            )
        uneven = [r for r in self.rungs if r % config.eval_every]
        if uneven:
            raise ConfigError(
                f"halving.rungs {uneven} are not multiples of eval_every {config.eval_every}: "
                "each rung is selected on its validation accuracy"
            )

    def kept(self, cells: int) -> int:
        """How many of an arm's ``cells`` continue to the next rung."""
        return max(1, math.ceil(self.keep * cells))


def rung_store(grid_store: Path, rung: int) -> Path:
    """The store of rung ``rung`` (0: the grid's own store)."""
    return grid_store if rung == 0 else store.stage_store(grid_store, f"{RUNG}{rung}")


def promote(
    previous: Plan, previous_store: Path, rung: int, halving: Halving
) -> tuple[Plan, list[Config], dict[str, Any]]:
    """Rung ``rung``'s plan and runs, from the complete rung before it (``previous`` in
    ``previous_store``; ``stages.GridIncomplete`` otherwise), and the promotion record."""
    runs = stages.read_grid(previous, previous_store)
    at, to = halving.rungs[rung - 1], halving.rungs[rung]
    labels = arm_labels(previous.runs.values())
    configs: list[Config] = []
    cells_record, notes = [], []
    for key, arm in stages.arms_of(runs).items():
        ranked = sorted(stages.cells_of(arm), key=lambda cell: stages.rank(cell, at))
        trained = [c for c in ranked if all(r.result["status"] == "ok" for r in c)]
        chosen = trained[: halving.kept(len(ranked))]
        for cell in ranked:
            decision = "kept" if any(cell is c for c in chosen) else "pruned"
            if decision == "kept":
                configs += [run.config.replace(epochs=to) for run in cell]
            optimizer = cell[0].config.optimizer
            cells_record.append(
                {
                    "arm": labels[key],
                    "lr": optimizer.lr,
                    "rho": optimizer.rho,
                    "val_acc": -stages.rank(cell, at)[0],
                    "runs": [run.config.run_id() for run in cell],
                    "decision": decision,
                }
            )
        notes.append(f"{labels[key]}: {len(chosen)} of {len(ranked)} cells continue to {to} epochs")
    plan = stages.stage_plan(previous, f"{RUNG}{rung}", configs, notes)
    record = {
        "rung": rung,
        "from_store": str(previous_store),
        "selected_at_epochs": at,
        "continued_to_epochs": to,
        "keep": halving.keep,
        "cells": cells_record,
    }
    return plan, configs, record


def continue_runs(configs: list[Config], previous_store: Path, out: Path, at: int) -> int:
    """Start each of ``configs`` (rung runs in ``out``) from its run of the rung before, in
    ``previous_store``, after checking that the stored run is that computation at ``at``
    epochs; returns how many were started so."""
    started = 0
    for config in configs:
        prefix = previous_store / config.replace(epochs=at).run_id()
        stored = store.read_config(prefix)
        result = store.read_result(prefix) or {}
        if (
            stored is None
            or from_dict(stored).replace(epochs=config.epochs).run_id() != config.run_id()
            or result.get("status") != "ok"
            or result.get("epochs_completed") != at
        ):
            raise ValueError(f"{prefix} is not the {at}-epoch run of {config.run_id()}")
        started += store.continue_from(prefix, out / config.run_id())
    return started
