"""``make reproduce``: the study's experiments, by preset.

* ``quick``: the theorem's problem (:mod:`lightsam.theorem`) and the ``mnist5k_study`` sweep
  with its stages (:mod:`lightsam.stages`: five fresh seeds at each arm's selected cell, and
  the recovery audit), locally, offline, on a laptop CPU;
* ``paper``: the theorem's problem here and the paper-scale screening sweeps, by successive
  halving (``sweeps/screen_*.yaml``), submitted to SLURM: rerun it as each rung finishes;
* ``smoke``: a miniature of ``quick`` (seconds), for the end-to-end test.

Each step skips what is already done, so a second call only finds nothing to do; the figures,
tables and report are then regenerated from the store by ``analysis/`` (``make figures``),
which never trains.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightsam import launch, paper, stages, store
from lightsam.config import Config, Runtime, read_yaml
from lightsam.plan import Plan
from lightsam.sweep import Sweep, load_sweep
from lightsam.theorem import Problem, run_theorem


@dataclass(frozen=True)
class Preset:
    """``confirm_seeds``: the fresh seeds of the confirm stage (none: no stage follows the
    grids; only where they run locally, to completion); ``recovery``: run the recovery audit.
    ``practical``: the confirm stage of each screening sweep once it is complete
    (``lightsam.paper``); ``transfer_from``: the screening whose selected settings run on the
    specs ``transfer_to`` (``experiments/<name>.yaml``). Both wait for their screening: rerun
    the preset as its rungs finish."""

    sweeps: tuple[str, ...]
    executor: str
    problem: Problem = field(default_factory=Problem)
    confirm_seeds: tuple[int, ...] = ()
    recovery: bool = False
    practical: bool = False
    transfer_from: str | None = None
    transfer_to: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.confirm_seeds or self.recovery) and self.executor != "local":
            raise ValueError("the stages read the grid's results: they need the local executor")


PRESETS = {
    "quick": Preset(
        sweeps=("mnist5k_study",), executor="local", confirm_seeds=(1, 2, 3, 4, 5), recovery=True
    ),
    "paper": Preset(
        sweeps=(
            "screen_mnist_lenet",
            "screen_cifar10_resnet18",
            "screen_cifar100_resnet18",
            "screen_imagenet_vit",
        ),
        executor="slurm",
        practical=True,
        transfer_from="screen_cifar10_resnet18",
        transfer_to=("mnist_lenet", "cifar100_resnet18", "imagenet_vit", "cifar100_wrn16_8"),
    ),
    "smoke": Preset(
        sweeps=("smoke",),
        executor="local",
        problem=Problem(steps=200, seeds=(0,), lr_decades=(-1, 1), rho_decades=(-2, 0)),
        confirm_seeds=(1, 2, 3),  # enough for every interval, verdict and tie of the report
        recovery=True,
    ),
}


def reproduce(
    preset: str,
    *,
    out: Path,
    sweeps_dir: Path,
    runtime: Runtime,
    profile: Any = None,
    max_parallel: int | None = None,
) -> None:
    """Run ``preset``'s experiments into ``out``: ``out/theorem``, ``out/<sweep>`` and its
    stages' stores beside it (``out/<sweep>_confirm``, ``out/<sweep>_recovery``);
    ``profile``: the ``slurm.Profile`` of a preset that submits to SLURM."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {preset!r}")
    chosen = PRESETS[preset]

    started = time.perf_counter()
    meta = run_theorem(out / "theorem", chosen.problem)
    print(f"the theorem's problem: {meta['cells']} runs in {time.perf_counter() - started:.0f} s")

    for name in chosen.sweeps:
        sweep = load_sweep(sweeps_dir / f"{name}.yaml")
        grid = out / sweep.name
        launch.launch_sweep(
            sweep, grid, runtime, executor=chosen.executor, profile=profile,
            max_parallel=max_parallel,
        )  # fmt: skip
        stages_of_grid = []
        if chosen.confirm_seeds:
            stages_of_grid.append(stages.confirmation(sweep.plan(), grid, chosen.confirm_seeds))
        if chosen.recovery:
            stages_of_grid.append(stages.recovery(sweep.plan(), grid))
        for plan, configs in stages_of_grid:
            launch.launch_plan(
                plan, configs, store.stage_store(grid, plan.stage), runtime,
                executor=chosen.executor, max_parallel=max_parallel,
            )  # fmt: skip
        for stage, make in paper_stages(chosen, sweep, grid, sweeps_dir.parent / "experiments"):
            try:
                plan, configs = make()
            except stages.GridIncomplete as waiting:
                print(f"{sweep.name}: the {stage} stage waits for the screening: {waiting}")
                continue
            launch.launch_plan(
                plan, configs, store.stage_store(grid, stage), runtime,
                executor=chosen.executor, profile=profile, max_parallel=max_parallel,
            )  # fmt: skip


def paper_stages(
    chosen: Preset, sweep: Sweep, grid: Path, experiments: Path
) -> list[tuple[str, Callable[[], tuple[Plan, list[Config]]]]]:
    """The ``lightsam.paper`` stages of a screening sweep that ``chosen`` runs: (the name of
    each one's store beside the grid's, what makes its plan and runs)."""
    if sweep.halving is None:
        return []
    rungs, plan = sweep.halving.rungs, sweep.plan()
    made = []
    if chosen.practical:
        made.append(("confirm", functools.partial(paper.confirmation, plan, grid, rungs)))
    if sweep.name == chosen.transfer_from:
        for spec in chosen.transfer_to:
            target = read_yaml(experiments / f"{spec}.yaml", "spec")
            target.pop("optimizer", None)
            made.append(
                (f"transfer_{spec}", functools.partial(paper.transfer, plan, grid, rungs, target))
            )
    return made
