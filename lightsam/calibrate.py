"""``lightsam calibrate``: the cost of an epoch, measured in a short run on this machine.

:func:`measure` trains a config's real model on its real data for a few steps and evaluates a
few validation batches, and from their times prices one epoch of a one-pass optimizer on this
device: what a SLURM profile's ``epoch_gpu_hours`` says, measured instead of estimated. Nothing
is written to a store: no run directory, no checkpoint, no result. The measurements go to a
calibration file (``runs/calibration.json`` by default), which a dry run reads with
``--calibration`` (``lightsam.cost``)::

    {"schema": 1, "workloads": {"<dataset>/<model>": {<a Measurement's fields>}}}

Which run a sweep's workload is measured on (:func:`representatives`): the sweep's first
one-pass run of it (a base optimizer, or a sharpness-aware one at ``rho = 0``, whose step takes
one pass), whose time is then the one-pass step itself; failing that, its first run, whose step
time is divided by its passes.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lightsam import cost, project, store
from lightsam.config import Config, ConfigError, Runtime
from lightsam.distributed import DistributedEnv
from lightsam.train import (
    Parts,
    build,
    deterministic_algorithms,
    evaluate,
    preflight,
    resolve_device,
    set_epoch,
)

SCHEMA = 1
# One process and no process group: the backend is never used (``data_parallel`` leaves the
# model as it is, and ``resolve_device`` reads the device's name).
ONE_PROCESS = DistributedEnv(rank=0, world_size=1, local_rank=0, backend="gloo")


def default_path() -> Path:
    return project.default("runs") / "calibration.json"


@dataclass(frozen=True)
class Measurement:
    """What :func:`measure` found for one workload (``<dataset>/<model>``) on ``device`` (the
    GPU's or CPU's name, as ``environment.json`` records it), with ``torch`` at ``measured_at``
    (UTC): ``steps`` training steps timed after ``warmup`` untimed ones, of ``optimizer`` at
    ``batch_size`` and ``precision`` with its ``passes`` forward/backward passes a step, and one
    evaluation of the validation split.

    ``epoch_gpu_hours`` is the GPU-hours of one epoch of a one-pass optimizer: the step time
    over its passes, times ``steps_per_epoch``, plus ``eval_seconds`` times ``evals_per_epoch``
    (``1 / eval_every``). GPU-hours are per GPU: a job on k GPUs takes about 1/k of the wall
    time for the same GPU-hours, DDP's scaling losses aside (on a CPU they are the process's
    hours). A sharpness-aware step divided by its passes slightly over-states a one-pass step
    (it includes the optimizer's own work, twice its base's), so the estimate errs high. Data
    loading is included, so the loader's workers (``num_workers``) and the CPUs the job has
    matter. Left out: the checkpoint after each epoch, the test set's one evaluation at the end
    of a run, and the probe (``probe_size``).
    """

    workload: str
    device: str
    torch: str
    measured_at: str
    steps: int
    warmup: int
    batch_size: int
    precision: str
    optimizer: str
    passes: int
    seconds_per_step: float
    steps_per_epoch: int
    eval_seconds: float
    evals_per_epoch: float

    @property
    def epoch_gpu_hours(self) -> float:
        train = self.seconds_per_step / self.passes * self.steps_per_epoch
        return (train + self.eval_seconds * self.evals_per_epoch) / 3600

    def to_dict(self) -> dict[str, Any]:
        """The fields and ``epoch_gpu_hours``: a workload's entry in the calibration file."""
        return {**dataclasses.asdict(self), "epoch_gpu_hours": self.epoch_gpu_hours}


def _epochs(loader: Any) -> Iterator[Any]:
    """``loader``'s batches, epoch 0's, then epoch 1's, and so on without end."""
    for epoch in itertools.count():
        set_epoch(loader, epoch)
        yield from loader


def _timed(work: Callable[[], object], device: torch.device) -> float:
    """The seconds ``work`` takes, until the device has finished it: CUDA runs asynchronously,
    so the clock is read after a synchronisation."""
    start = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _train(parts: Parts, batches: Iterator[Any], count: int, device: torch.device) -> None:
    """``count`` steps, as the training loop takes them (``lightsam.train.train``)."""
    for _ in range(count):
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        parts.step(x.contiguous(memory_format=parts.memory_format), y)
        parts.scheduler.step()


def _evaluate(parts: Parts, batches: Iterator[Any], count: int, device: torch.device) -> None:
    """``count`` batches evaluated as a run evaluates its validation split."""
    evaluate(
        parts.module, itertools.islice(batches, count), parts.loss_fn, device, parts.autocast_dtype
    )


def measure(config: Config, runtime: Runtime, *, steps: int, warmup: int) -> Measurement:
    """Time ``config``'s training step and its evaluation on ``runtime``'s device, one process.

    The model and data are built as a run builds them (``lightsam.train.build``), with
    ``config.deterministic``'s kernels. ``warmup`` untimed steps come first (they absorb the
    start-up: the loader's workers, kernel selection, the allocator's first requests), then
    ``steps`` timed ones, continuing into the next epoch's batches when the training split has
    fewer. The evaluation is timed on up to ``steps`` validation batches, after up to
    ``warmup`` untimed ones, in eval mode without gradients and under the config's precision
    (``lightsam.train.evaluate``), and extrapolated to the whole validation split.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    preflight(config, runtime)
    device = resolve_device(runtime.device, ONE_PROCESS)
    with deterministic_algorithms(config.deterministic):
        parts = build(config, runtime, ONE_PROCESS, device)
        parts.model.train()
        batches = _epochs(parts.loaders["train"])
        _timed(lambda: _train(parts, batches, warmup, device), device)  # finished, not timed
        step_s = _timed(lambda: _train(parts, batches, steps, device), device) / steps
        val = parts.loaders["val"]
        evaluated, batches = min(steps, len(val)), _epochs(val)
        if warmup:  # evaluate() divides by the images it saw: none is no evaluation
            _evaluate(parts, batches, min(warmup, len(val)), device)
        seconds = _timed(lambda: _evaluate(parts, batches, evaluated, device), device)
        eval_s = seconds / evaluated * len(val)
    return Measurement(
        workload=cost.workload(config),
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else store.cpu_name(),
        torch=torch.__version__,
        measured_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        steps=steps,
        warmup=warmup,
        batch_size=config.batch_size,
        precision=config.precision,
        optimizer=config.optimizer.name,
        passes=cost.passes(config),
        seconds_per_step=step_s,
        steps_per_epoch=parts.steps_per_epoch,
        eval_seconds=eval_s,
        evals_per_epoch=1 / config.eval_every,
    )


def representatives(runs: Iterable[Config]) -> list[Config]:
    """One run of each workload of ``runs``, in the order the workloads first appear: its
    first one-pass run if it has one (its step is then a one-pass step, not one divided by its
    passes), else its first run."""
    chosen: dict[str, Config] = {}
    for config in runs:
        key = cost.workload(config)
        if key not in chosen or (cost.passes(chosen[key]) > 1 and cost.passes(config) == 1):
            chosen[key] = config
    return list(chosen.values())


def load(path: Path) -> dict[str, dict[str, Any]]:
    """The calibration file's workloads, each entry checked (a mapping with ``device`` and
    ``measured_at`` strings and an ``epoch_gpu_hours`` finite and > 0), or a ConfigError naming
    the file and the problem in one line."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"cannot read calibration {path}: {error.strerror or error}") from error
    except ValueError as error:
        raise ConfigError(f"calibration {path} is not JSON: {error}") from error
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else None
        raise ConfigError(
            f"calibration {path}: schema must be {SCHEMA} (a file of lightsam calibrate), got "
            f"{schema!r}"
        )
    workloads = data.get("workloads")
    if not isinstance(workloads, dict):
        raise ConfigError(f"calibration {path}: workloads must be a mapping, got {workloads!r}")
    for key, entry in workloads.items():
        where = f"calibration {path}: workloads.{key}"
        if key.count("/") != 1:
            raise ConfigError(f"calibration {path}: workloads are <dataset>/<model>, got {key!r}")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a mapping, got {entry!r}")
        hours = entry.get("epoch_gpu_hours")
        number = isinstance(hours, (int, float)) and not isinstance(hours, bool)
        if not (number and math.isfinite(hours) and hours > 0):
            raise ConfigError(
                f"{where}.epoch_gpu_hours must be a number of hours > 0, got {hours!r}"
            )
        for name in ("device", "measured_at"):
            if not isinstance(entry.get(name), str):
                raise ConfigError(f"{where}.{name} must be a string, got {entry.get(name)!r}")
    return workloads


def write(path: Path, measurements: Iterable[Measurement]) -> dict[str, dict[str, Any]]:
    """Merge ``measurements`` into the calibration file ``path`` (created if missing) and
    return its workloads: each replaces the file's entry of its workload unless that one was
    measured later. Written atomically (``store.WriteFailed`` if it cannot be, the file as it
    was); a ConfigError if the file there is not a calibration file, which is left alone."""
    workloads = load(path) if Path(path).exists() else {}
    for measurement in measurements:
        old = workloads.get(measurement.workload)
        if old is None or old["measured_at"] <= measurement.measured_at:
            workloads[measurement.workload] = measurement.to_dict()
    store.write_json(Path(path), {"schema": SCHEMA, "workloads": workloads})
    return workloads


def epoch_gpu_hours(workloads: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The per-epoch costs of :func:`load`'s workloads, as a profile's ``epoch_gpu_hours``."""
    return {key: entry["epoch_gpu_hours"] for key, entry in workloads.items()}
