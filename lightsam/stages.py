"""The stages that follow a grid sweep once all its runs are complete, each a plan of its own.

* **confirm**: fresh seeds at each arm's selected cell. For each arm and each *budget* (every
  arm's number of epochs in the grid, up to its own: a base optimizer run at twice the epochs of
  the sharpness-aware arms is selected at both), the cell with the highest validation accuracy
  after that many epochs, averaged over the grid's seeds, a run diverged by then counting as
  chance; ties go to the smaller ``lr``, then ``rho``. It is rerun at that budget with each of
  the fresh seeds, whose test accuracy is then free of the selection (the grid's seeds chose the
  cell). A budget shorter than a run is read from its per-epoch records, which is the shorter
  run exactly only at a constant learning rate (the batches of epoch e depend only on the seed
  and e); under another schedule each arm is selected at its own epochs alone.
* **recovery**: whether the stop rule (a loss above ``divergence_loss``) ends runs that would
  have recovered. Every run the rule ended (a finite stopping loss; a non-finite one cannot
  recover) is rerun with ``divergence_loss: null``, not only those at a window's edge, so the
  audit says for every cell the rule stopped whether the optimizer would have diverged without
  it (the grid's own counts stay as the grid ran).

Selection reads validation accuracy only; the test set is read once, by each run at its end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightsam import store
from lightsam.config import Config, from_dict
from lightsam.plan import Plan, arm_key, arm_labels, cell_key


class GridIncomplete(RuntimeError):
    """A stage was asked for before every run of its grid had a result."""


@dataclass(frozen=True)
class GridRun:
    config: Config
    result: dict[str, Any]
    metrics: list[dict[str, Any]]


def read_grid(plan: Plan, out: Path) -> list[GridRun]:
    """Every run of the grid ``plan`` in ``out``, or GridIncomplete naming what is not done or
    failed (a stage chosen from part of a grid would depend on which runs happened to finish)."""
    runs, pending = [], []
    for run_id, stored in plan.runs.items():
        result = store.read_result(out / run_id)
        if result is None or result.get("status") not in store.COMPLETE:
            pending.append(run_id)
            continue
        runs.append(GridRun(from_dict(dict(stored)), result, store.read_metrics(out / run_id)))
    if pending:
        raise GridIncomplete(
            f"{len(pending)} of {len(plan.runs)} runs of the grid in {out} are not complete "
            f"(failed, running or missing: {', '.join(pending[:5])}); finish the sweep first"
        )
    return runs


def val_acc_at(run: GridRun, epoch: int) -> float:
    """The run's validation accuracy after ``epoch`` epochs; chance if it diverged by then."""
    if run.result["status"] == "diverged" and run.result["diverged_epoch"] <= epoch:
        return 1.0 / run.result["num_classes"]
    row = next((r for r in run.metrics if r["epoch"] == epoch), None)
    if row is None or "val_acc" not in row:
        raise ValueError(
            f"run {run.config.run_id()} has no validation accuracy at epoch {epoch} "
            "(select at budgets it evaluated: eval_every)"
        )
    return row["val_acc"]


def _by(runs: list[GridRun], key: Callable[[dict[str, Any]], str]) -> dict[str, list[GridRun]]:
    groups: dict[str, list[GridRun]] = {}
    for run in runs:
        groups.setdefault(key(run.config.to_dict()), []).append(run)
    return groups


def stage_plan(grid: Plan, stage: str, configs: list[Config], notes: list[str]) -> Plan:
    """The plan of a later stage of ``grid``: its runs ``configs``, with ``notes``."""
    return Plan(
        sweep=grid.sweep,
        source=grid.source,
        source_sha256=grid.source_sha256,
        runs={config.run_id(): config.to_dict() for config in configs},
        notes=tuple(notes),
        stage=stage,
    )


def budgets(arm: list[GridRun], grid_epochs: set[int]) -> list[int]:
    """The budgets an arm is selected at: its own epochs, and at a constant learning rate every
    shorter number of epochs that another arm of the grid runs."""
    config = arm[0].config
    if config.lr_schedule != "constant":
        return [config.epochs]
    return sorted(e for e in grid_epochs if e <= config.epochs)


def rank(cell: list[GridRun], epochs: int) -> tuple[float, float, float]:
    """A cell's place in a selection after ``epochs`` epochs (smaller is better): its mean
    validation accuracy over its seeds, higher first, then the smaller ``lr``, then ``rho``."""
    score = sum(val_acc_at(run, epochs) for run in cell) / len(cell)
    optimizer = cell[0].config.optimizer
    return (-score, optimizer.lr, optimizer.rho or 0.0)


def cells_of(runs: list[GridRun]) -> list[list[GridRun]]:
    return list(_by(runs, cell_key).values())


def arms_of(runs: list[GridRun]) -> dict[str, list[GridRun]]:
    return _by(runs, arm_key)


def _setting(config: Config) -> str:
    rho = "" if config.optimizer.rho is None else f", rho={config.optimizer.rho:g}"
    return f"lr={config.optimizer.lr:g}{rho}"


def confirmation(grid: Plan, out: Path, seeds: tuple[int, ...]) -> tuple[Plan, list[Config]]:
    """The confirm stage of the grid ``grid`` stored in ``out``: its plan (its notes say which
    cell each arm chose, at which budget, with what validation accuracy) and its runs."""
    if not seeds:
        raise ValueError("seeds must name at least one fresh seed")
    runs = read_grid(grid, out)
    reused = sorted({run.config.seed for run in runs} & set(seeds))
    if reused:
        raise ValueError(f"seeds {reused} chose the cells; the confirmation needs fresh seeds")
    labels = arm_labels(grid.runs.values())
    grid_epochs = {run.config.epochs for run in runs}
    configs, notes = [], []
    for key, arm in _by(runs, arm_key).items():
        cells = _by(arm, cell_key).values()
        for epochs in budgets(arm, grid_epochs):
            best = min(cells, key=lambda cell, epochs=epochs: rank(cell, epochs))
            chosen = best[0].config
            configs += [chosen.replace(epochs=epochs, seed=seed) for seed in seeds]
            notes.append(
                f"{labels[key]}: {_setting(chosen)} selected at {epochs} epochs "
                f"(validation accuracy {-rank(best, epochs)[0]:.4f} over {len(best)} seed(s))"
            )
    return stage_plan(grid, "confirm", configs, notes), configs


def recovery(grid: Plan, out: Path) -> tuple[Plan, list[Config]]:
    """The recovery stage of the grid ``grid`` stored in ``out``: every run the stop rule
    ended, with ``divergence_loss: null`` (its plan's notes list them)."""
    stopped = [
        run
        for run in read_grid(grid, out)
        if run.result["status"] == "diverged" and run.result.get("stopping_loss") is not None
    ]
    labels = arm_labels(grid.runs.values())
    configs, notes = [], []
    for run in stopped:
        configs.append(run.config.replace(divergence_loss=None))
        notes.append(
            f"{labels[arm_key(run.config.to_dict())]}: {_setting(run.config)} stopped in "
            f"epoch {run.result['diverged_epoch']} at loss {run.result['stopping_loss']:.3g}"
        )
    return stage_plan(grid, "recovery", configs, notes), configs
