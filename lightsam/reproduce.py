"""``make reproduce``: the study's experiments, by preset.

* ``quick``: the parameter-agnostic experiment and the ``mnist5k_quick`` sweep, locally, offline,
  on a laptop CPU (about 15 minutes on 2 cores);
* ``paper``: the parameter-agnostic experiment here and the paper-scale sweeps submitted to SLURM;
* ``smoke``: a miniature of ``quick`` (seconds), for the end-to-end test.

Each step skips what is already done, so a second call only finds nothing to do; the figures,
tables and report are then regenerated from the store by ``analysis/`` (``make figures``),
which never trains.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightsam import launch
from lightsam.agnostic import Problem, run_agnostic
from lightsam.config import Runtime
from lightsam.sweep import load_sweep


@dataclass(frozen=True)
class Preset:
    sweeps: tuple[str, ...]
    executor: str
    problem: Problem = field(default_factory=Problem)


PRESETS = {
    "quick": Preset(sweeps=("mnist5k_quick",), executor="local"),
    "paper": Preset(
        sweeps=(
            "mnist_lenet",
            "cifar10_resnet18",
            "cifar10_wrn28_10",
            "cifar100_resnet18",
            "cifar100_wrn28_10",
            "imagenet_vit",
        ),
        executor="slurm",
    ),
    "smoke": Preset(
        sweeps=("smoke",),
        executor="local",
        problem=Problem(steps=100, lr_decades=(-1, 2), rho_decades=(-2, 1)),
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
    """Run ``preset``'s experiments into ``out``: ``out/agnostic`` and ``out/<sweep>``
    (``profile``: the ``slurm.Profile`` of a preset that submits to SLURM)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {preset!r}")
    chosen = PRESETS[preset]

    started = time.perf_counter()
    rows = run_agnostic(out / "agnostic", chosen.problem)
    print(
        f"parameter-agnostic experiment: {len(rows)} cells in {time.perf_counter() - started:.0f} s"
    )

    for name in chosen.sweeps:
        sweep = load_sweep(sweeps_dir / f"{name}.yaml")
        launch.launch_sweep(
            sweep,
            out / sweep.name,
            runtime,
            executor=chosen.executor,
            profile=profile,
            max_parallel=max_parallel,
        )
