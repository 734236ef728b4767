"""The paper-scale stages that follow a screening sweep (``sweeps/screen_*.yaml``), each a plan of
its own, made from the screening's last rung once it is complete (``stages.GridIncomplete``
until then).

* **confirm**, the practical setting. For each method (an arm of the screening), the cell with
  the best validation accuracy at the full budget among its ``rho > 0`` cells, rerun with a
  cosine schedule (the spec's warm-up kept) on 5 fresh seeds; its base optimizer, the arm's
  best ``rho = 0`` cell (which is the base exactly), at twice the epochs, the compute-matched
  comparison, on the same seeds (a base optimizer's own arm, AdamW's, likewise); and the
  3 x 3 block of that cell's ``lr`` and ``rho`` times ``10^(-1/2), 1, 10^(1/2)`` (the
  screening's half-decade steps) on 3 of the seeds: the nine settings of the paper's "mean +/-
  std" table, every one of them shown (``analysis.table_nine``).
* **transfer**. Every method's cells selected on one screening (CIFAR-10's in the paper
  preset), the method's and its base's, rerun without retuning, with a cosine schedule, on
  other workloads' specs, among them a held-out one never used for any choice
  (``experiments/cifar100_wrn16_8.yaml``), on 3 fresh seeds; scored by time to target and
  performance profiles (``analysis.transfer``).

Selection reads validation accuracy only (``stages.rank``); the test set is read once, by each
run at its end. The seeds are fresh: the screening ran seed 0.
"""

from __future__ import annotations

import math
from pathlib import Path

from lightsam import halving, stages, store
from lightsam.config import Config, from_dict
from lightsam.plan import Plan, arm_labels

SEEDS = (1, 2, 3, 4, 5)
BLOCK_SEEDS = (1, 2, 3)
TRANSFER_SEEDS = (1, 2, 3)
HALF_DECADE = math.sqrt(10.0)


def last_rung(grid_plan: Plan, grid_store: Path, rungs: tuple[int, ...]) -> list[stages.GridRun]:
    """The runs of a screening's last rung, all complete, or ``stages.GridIncomplete``."""
    plan, where = grid_plan, grid_store
    for rung in range(1, len(rungs)):
        where = halving.rung_store(grid_store, rung)
        plan = store.read_plan(where)
        if plan is None:
            raise stages.GridIncomplete(f"rung {rung} of {grid_store} has not been launched yet")
    return stages.read_grid(plan, where)


def selected(runs: list[stages.GridRun]) -> dict[str, tuple[Config | None, Config | None]]:
    """Per arm label: its best ``rho > 0`` cell and its best base cell (``rho = 0``, or any cell
    of a base optimizer's arm, which has no rho) at the runs' budget, each None where no such
    cell reached it (halving pruned them all)."""
    labels = arm_labels(run.config.to_dict() for run in runs)
    chosen = {}
    for key, arm in stages.arms_of(runs).items():
        epochs, cells = arm[0].config.epochs, stages.cells_of(arm)
        chosen[labels[key]] = (
            _best([cell for cell in cells if cell[0].config.optimizer.rho], epochs),
            _best([cell for cell in cells if not cell[0].config.optimizer.rho], epochs),
        )
    return chosen


def _best(cells: list[list[stages.GridRun]], epochs: int) -> Config | None:
    if not cells:
        return None
    return min(cells, key=lambda cell: stages.rank(cell, epochs))[0].config


def _round(value: float) -> float:
    return float(f"{value:.3g}")


def practical(config: Config, **changes) -> Config:
    """``config`` under a cosine schedule (the warm-up it has kept)."""
    return config.replace(lr_schedule="cosine", **changes)


def confirmation(grid_plan: Plan, grid_store: Path, rungs: tuple[int, ...]) -> tuple[Plan, list]:
    """The confirm stage of a screening (its grid ``grid_plan`` in ``grid_store``, halved at
    ``rungs``): its plan, whose notes say what was selected, and its runs."""
    configs, notes = [], []
    for label, (best, base) in selected(last_rung(grid_plan, grid_store, rungs)).items():
        if base is not None:
            epochs = 2 * base.epochs
            configs += [practical(base, epochs=epochs, seed=seed) for seed in SEEDS]
            what = "(rho = 0)" if base.optimizer.rho is not None else "(a base optimizer)"
            notes.append(f"{label}'s base {what}: lr={base.optimizer.lr:g}, {epochs} epochs")
        if best is None:
            if base is None or base.optimizer.rho is not None:  # not a base optimizer's arm
                notes.append(f"{label}: no cell with rho > 0 reached the full budget")
            continue
        configs += [practical(best, seed=seed) for seed in SEEDS]
        notes.append(f"{label}: lr={best.optimizer.lr:g}, rho={best.optimizer.rho:g}")
        lr, rho = best.optimizer.lr, best.optimizer.rho
        for f_lr in (1 / HALF_DECADE, 1.0, HALF_DECADE):
            for f_rho in (1 / HALF_DECADE, 1.0, HALF_DECADE):
                optimizer = {**best.to_dict()["optimizer"], "lr": _round(lr * f_lr),
                             "rho": _round(rho * f_rho)}  # fmt: skip
                block = best.replace(optimizer=optimizer)
                configs += [practical(block, seed=seed) for seed in BLOCK_SEEDS]
    return stages.stage_plan(grid_plan, "confirm", configs, notes), _unique(configs)


def transfer(
    grid_plan: Plan, grid_store: Path, rungs: tuple[int, ...], spec: dict
) -> tuple[Plan, list]:
    """The transfer stage onto the workload of ``spec`` (a spec's dict, without optimizer): each
    cell selected on the screening, its optimizer as it was, on that workload's spec."""
    configs, notes = [], []
    for label, pair in selected(last_rung(grid_plan, grid_store, rungs)).items():
        for config in (c for c in pair if c is not None):
            optimizer = config.to_dict()["optimizer"]
            moved = from_dict({**spec, "optimizer": optimizer, "lr_schedule": "cosine"})
            configs += [moved.replace(seed=seed) for seed in TRANSFER_SEEDS]
            rho = "" if config.optimizer.rho is None else f", rho={config.optimizer.rho:g}"
            notes.append(f"{label}: lr={config.optimizer.lr:g}{rho} from the screening")
    return stages.stage_plan(grid_plan, "transfer", configs, notes), _unique(configs)


def _unique(configs: list[Config]) -> list[Config]:
    """One config per run id (the block's centre is the selected cell's first seeds)."""
    return list({config.run_id(): config for config in configs}.values())
