"""What a sweep will cost, before anything is submitted: runs, epochs and GPU-hours per rung.

The cost of an epoch comes from the SLURM profile's ``epoch_gpu_hours``, keyed by workload
(``<dataset>/<model>``): the GPU-hours one epoch of a one-pass optimizer takes with the
profile's resources (all of a job's GPUs), measured on that cluster or estimated from a
comparable one, as the profile's comments should say; or from a calibration file of
``lightsam calibrate`` (``lightsam.calibrate``), measured in a short run, which a dry run given
one prefers for the workloads it measured. A sharpness-aware epoch counts twice: it
runs two forward/backward passes per step, and the training-step benchmark (``make bench``)
puts the rest of its overhead at a few percent; at ``rho = 0`` it counts once, as the training
step then takes one pass (``lightsam.step``). Under successive halving the later rungs are
bounds: every arm keeps its share of cells, and each continued run trains only the epochs
since the rung before (``lightsam.halving``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lightsam.config import Config
from lightsam.optim import OPTIMIZERS
from lightsam.plan import arm_key, cell_key
from lightsam.sweep import Sweep

# The README's block of the paper preset's cost, rewritten by ``lightsam figures --readme``.
README_START = "<!-- cost:start (written by lightsam figures; do not edit) -->"
README_END = "<!-- cost:end -->"


def workload(config: Config) -> str:
    return f"{config.dataset}/{config.model}"


@dataclass(frozen=True)
class Line:
    """One stage of a sweep: ``runs`` that train ``run_epochs`` epochs in all there, costing
    ``gpu_hours`` (None where a workload has no cost in ``missing``)."""

    stage: str
    runs: int
    run_epochs: int
    gpu_hours: float | None
    missing: tuple[str, ...] = ()


def epoch_gpu_hours(config: Config, per_epoch: Mapping[str, float]) -> float | None:
    """The GPU-hours of one epoch of ``config``, None if its workload has no cost."""
    hours = per_epoch.get(workload(config))
    if hours is None:
        return None
    return hours * passes(config)


def passes(config: Config) -> int:
    """Forward/backward passes per step: two for a sharpness-aware optimizer that perturbs."""
    two = OPTIMIZERS[config.optimizer.name].sharpness_aware and config.optimizer.rho != 0
    return 2 if two else 1


def _line(stage: str, runs: Sequence[tuple[Config, int, int]], per_epoch) -> Line:
    """``runs``: (a config, how many runs like it, epochs each trains in this stage)."""
    missing = sorted({workload(c) for c, _, _ in runs if epoch_gpu_hours(c, per_epoch) is None})
    hours = None
    if not missing:
        hours = sum(epoch_gpu_hours(c, per_epoch) * n * epochs for c, n, epochs in runs)
    return Line(stage, sum(n for _, n, _ in runs), sum(n * e for _, n, e in runs), hours,
                tuple(missing))  # fmt: skip


def sweep_cost(sweep: Sweep, per_epoch: Mapping[str, float]) -> list[Line]:
    """The grid's line, and under halving one line per later rung."""
    grid = [(config, 1, config.epochs) for config in sweep.runs]
    lines = [_line("grid" if sweep.halving is None else "rung 0", grid, per_epoch)]
    if sweep.halving is None:
        return lines
    arms: dict[str, list[Config]] = {}
    for config in sweep.runs:
        arms.setdefault(arm_key(config.to_dict()), []).append(config)
    seeds = len(sweep.seeds)
    cells = {key: len({cell_key(c.to_dict()) for c in arm}) for key, arm in arms.items()}
    rungs = sweep.halving.rungs
    for rung in range(1, len(rungs)):
        cells = {key: sweep.halving.kept(n) for key, n in cells.items()}
        new = rungs[rung] - rungs[rung - 1]
        # Which cells are kept is not known yet: price each as the arm's dearest (rho > 0).
        runs = [(max(arms[key], key=passes), n * seeds, new) for key, n in cells.items()]
        lines.append(_line(f"rung {rung}", runs, per_epoch))
    return lines


def describe(lines: Sequence[Line], source: str | None) -> list[str]:
    """The cost lines a dry run prints, and the total; ``source``: where the costs of an epoch
    come from (a profile, a calibration file), or with a workload missing, where they were
    looked for (None: nowhere)."""
    said = []
    for line in lines:
        bound = "at most " if line.stage.startswith("rung ") and line.stage != "rung 0" else ""
        cost = "GPU-hours unknown" if line.gpu_hours is None else f"{line.gpu_hours:.1f} GPU-hours"
        said.append(
            f"  {line.stage}: {bound}{line.runs} runs, {line.run_epochs} run-epochs, {cost}"
        )
    missing = sorted({w for line in lines for w in line.missing})
    if source is None:
        said.append(
            "  GPU-hours: measure an epoch (lightsam calibrate, then --calibration FILE) or name "
            "a profile with epoch_gpu_hours (--executor slurm --profile)"
        )
    elif missing:
        said.append(
            f"  no cost of an epoch of {', '.join(missing)} in {source}: measure it (lightsam "
            "calibrate, then --calibration FILE) or give it in the profile's epoch_gpu_hours"
        )
    else:
        said.append(f"  total: {sum(line.gpu_hours for line in lines):.1f} GPU-hours ({source})")
    return said


def table(sweeps: Sequence[Sweep], per_epoch: Mapping[str, float], source: str) -> str:
    """A markdown table of ``sweeps``' cost, rung by rung, and the total (the README's)."""
    rows = ["| sweep | stage | runs | run-epochs | GPU-hours |", "|---|---|---:|---:|---:|"]
    total: float | None = 0.0
    for sweep in sweeps:
        for line in sweep_cost(sweep, per_epoch):
            bound = "≤ " if line.stage not in ("grid", "rung 0") else ""
            hours = "unknown" if line.gpu_hours is None else f"{bound}{line.gpu_hours:,.0f}"
            rows.append(
                f"| `{sweep.name}` | {line.stage} | {bound}{line.runs:,} | "
                f"{bound}{line.run_epochs:,} | {hours} |"
            )
            total = None if total is None or line.gpu_hours is None else total + line.gpu_hours
    shown = "unknown" if total is None else f"≤ {total:,.0f}"
    rows.append(f"| **total** | | | | **{shown}** |")
    note = f"GPU-hours from {source} (a sharpness-aware epoch at rho > 0 counts twice)."
    return "\n".join(rows) + f"\n\n{note}\n"
