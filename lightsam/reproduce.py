"""``make reproduce``: the study's experiments, by preset.

* ``quick``: the theorem's problem (:mod:`lightsam.theorem`) and the ``mnist5k_quick`` sweep,
  locally, offline, on a laptop CPU;
* ``paper``: the theorem's problem here and the paper-scale sweeps submitted to SLURM;
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
from lightsam.config import Runtime
from lightsam.sweep import load_sweep
from lightsam.theorem import Problem, run_theorem


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
        problem=Problem(steps=200, seeds=(0,), lr_decades=(-1, 1), rho_decades=(-2, 0)),
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
    """Run ``preset``'s experiments into ``out``: ``out/theorem`` and ``out/<sweep>``
    (``profile``: the ``slurm.Profile`` of a preset that submits to SLURM)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {preset!r}")
    chosen = PRESETS[preset]

    started = time.perf_counter()
    meta = run_theorem(out / "theorem", chosen.problem)
    print(f"the theorem's problem: {meta['cells']} runs in {time.perf_counter() - started:.0f} s")

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
