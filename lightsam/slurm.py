"""Runs on a SLURM cluster: profiles, job-array submission through submitit, the queue, cancel.

A sweep's runs go out as job arrays (one task per run, at most ``array_parallelism`` running at
once). Each submitted run is recorded in the store (``store.record_submissions``) with its array
job and task, so that ``lightsam status`` can tell a run that is waiting in the queue
(``queued``) from one that no live job will train (``missing``), a relaunch never submits a
queued run twice, and ``lightsam cancel`` finds the sweep's live jobs. The queue is asked with
``squeue``; a cluster that does not answer makes those questions unanswerable, and the callers
say so rather than guess.

Preemption and time limits: submitit sends the job ``SIGUSR2`` ``signal_delay_s`` seconds
before the end, and :class:`RunJob` (a ``submitit.helpers.Checkpointable``) has itself requeued
under the same job id; the run resumes from its last epoch checkpoint.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import math
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
import torch

from lightsam import store
from lightsam.config import Config, ConfigError, Runtime, build_dataclass, read_yaml
from lightsam.launch import run_one

# States after which a job will not run again (squeue lists them only for MinJobAge seconds).
FINISHED = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
    "PREEMPTED", "REVOKED", "TIMEOUT",
})  # fmt: skip


class RunJob(submitit.helpers.Checkpointable):
    """``run_one`` as a submitit job. On preemption or time-out submitit calls ``checkpoint``
    (inherited), which resubmits the same call; the run then resumes from its last epoch
    checkpoint, so a requeued job loses at most one epoch of work.

    A job with several tasks (``Profile.tasks_per_node``, ``nodes``) trains one run on all of
    them: every task makes this call, joins the run's process group (``train.run``), and returns
    the main task's state, which is the job's result (submitit's ``result()`` is task 0's). Only
    the main task takes the run's lock and writes; only it checkpoints and requeues the job on
    preemption (submitit's rule too).
    """

    def __call__(self, config: dict[str, Any], out: str, runtime: Runtime) -> str:
        # Use the CPUs SLURM allotted, not every core of the node; the thread count also fixes
        # the order of floating-point reductions, so equal counts give bit-identical runs.
        cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        if cpus:
            torch.set_num_threads(int(cpus))
        return run_one(config, out, runtime)


@dataclass(frozen=True)
class Profile:
    """A cluster's resources for one run, from ``slurm/profiles/<name>.yaml``.

    ``setup`` lines run in the job before Python starts (``module load cuda``, activating an
    environment); ``extra`` passes any other sbatch option (``{constraint: a100}``).

    ``max_requeues``: how many times a run that reaches ``timeout_min`` is requeued to resume
    from its checkpoint (submitit's ``max_num_timeout``, 3 by default there, which caps a run
    at 4 x ``timeout_min``); a preempted run is requeued whatever this says.

    ``nodes`` x ``tasks_per_node`` processes train each run together, data-parallel: one task
    per GPU (``tasks_per_node`` = ``gpus_per_node``), ``cpus_per_task`` each. ``mem_gb`` is per
    node. With several tasks, srun ends them all as soon as one fails, rather than leaving the
    others waiting in a collective until it times out.

    ``epoch_gpu_hours`` maps workloads (``<dataset>/<model>``) to the GPU-hours of one epoch of
    a one-pass optimizer in one job of this profile: what ``--dry-run`` prices a sweep with
    (``lightsam.cost``); say in a comment whether it was measured or estimated.
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    timeout_min: int = 60
    array_parallelism: int = 64
    max_array_size: int = 1000
    signal_delay_s: int = 120
    max_requeues: int = 50
    setup: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    epoch_gpu_hours: dict[str, float] = field(default_factory=dict)

    def submitit_parameters(self) -> dict[str, Any]:
        parameters: dict[str, Any] = {
            "slurm_partition": self.partition,
            "slurm_account": self.account,
            "slurm_qos": self.qos,
            "nodes": self.nodes,
            "tasks_per_node": self.tasks_per_node,
            "gpus_per_node": self.gpus_per_node,
            "cpus_per_task": self.cpus_per_task,
            "mem_gb": self.mem_gb,
            "timeout_min": self.timeout_min,
            "slurm_array_parallelism": self.array_parallelism,
            "slurm_signal_delay_s": self.signal_delay_s,
            "slurm_setup": list(self.setup),
            "slurm_additional_parameters": dict(self.extra),
        }
        if self.nodes * self.tasks_per_node > 1:
            parameters["slurm_srun_args"] = ["--kill-on-bad-exit=1"]
        return {k: v for k, v in parameters.items() if v is not None and v != [] and v != {}}


# The profile's counts, with their least valid value.
PROFILE_MINIMA = {"nodes": 1, "tasks_per_node": 1, "gpus_per_node": 0, "cpus_per_task": 1,
                  "timeout_min": 1, "array_parallelism": 1, "max_array_size": 1,
                  "signal_delay_s": 0, "max_requeues": 0}  # fmt: skip


def load_profile(path: Path) -> Profile:
    """The profile in the YAML file ``path``, every value checked (its type, its range, no
    unknown key; ``setup`` a list of lines), or a ConfigError naming the key."""
    data = read_yaml(path, "SLURM profile")
    if data.get("setup") is None:
        data.pop("setup", None)
    try:
        profile = build_dataclass(Profile, data, "")
    except ConfigError as error:
        raise ConfigError(f"SLURM profile {path}: {error}") from error
    for name, minimum in PROFILE_MINIMA.items():
        if getattr(profile, name) < minimum:
            raise ConfigError(
                f"SLURM profile {path}: {name} must be >= {minimum}, got {getattr(profile, name)}"
            )
    if profile.mem_gb is not None and not profile.mem_gb > 0:
        raise ConfigError(f"SLURM profile {path}: mem_gb must be > 0 or null, got {profile.mem_gb}")
    for workload, hours in profile.epoch_gpu_hours.items():
        if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
            raise ConfigError(
                f"SLURM profile {path}: epoch_gpu_hours.{workload} must be a number of hours "
                f"> 0, got {hours!r}"
            )
        if workload.count("/") != 1:
            raise ConfigError(
                f"SLURM profile {path}: epoch_gpu_hours keys are <dataset>/<model>, got "
                f"{workload!r}"
            )
    return profile


def _command(*args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None


def cluster_max_array_size() -> int | None:
    """The cluster's MaxArraySize (array indices run from 0 to it minus 1), if it answers."""
    done = _command("scontrol", "show", "config")
    if done is None or done.returncode:
        return None
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", done.stdout, re.MULTILINE)
    return int(match.group(1)) if match else None


def submit(
    configs: list[Config], out: Path, runtime: Runtime, profile: Profile, *, max_parallel=None
) -> list[str]:
    """Submit the runs as job arrays, each below the cluster's maximum array size and with at
    most ``max_parallel`` (default: the profile's) tasks running at once; record every run's
    array job and task in the store. Returns the array job ids without waiting for them."""
    out = out.resolve()
    runtime = dataclasses.replace(runtime, data_dir=runtime.data_dir.resolve(), progress=False)
    executor = submitit.AutoExecutor(
        folder=store.submitit_folder(out) / "%j",
        cluster="slurm",
        slurm_max_num_timeout=profile.max_requeues,
    )
    parameters = profile.submitit_parameters()
    if max_parallel:
        parameters["slurm_array_parallelism"] = max_parallel
    executor.update_parameters(**parameters)
    size = min(filter(None, (profile.max_array_size, cluster_max_array_size())))
    array_ids = []
    for start in range(0, len(configs), size):
        chunk = configs[start : start + size]
        jobs = executor.map_array(
            RunJob(), [c.to_dict() for c in chunk], [str(out)] * len(chunk), [runtime] * len(chunk)
        )
        submitted_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        rows = []
        for config, job in zip(chunk, jobs, strict=True):
            array_id, _, task = job.job_id.partition("_")
            rows.append({
                "run_id": config.run_id(), "job_id": job.job_id, "array_id": array_id,
                "task": int(task) if task else None, "submitted_at": submitted_at,
            })  # fmt: skip
        store.record_submissions(out, rows)
        array_ids.append(rows[0]["array_id"])
    return array_ids


def run_debug(configs: list[Config], out: Path, runtime: Runtime) -> collections.Counter:
    """Every run in this process, one after the other, through submitit's debug executor: the
    SLURM path (pickling, the job body) without a cluster."""
    executor = submitit.AutoExecutor(folder=store.submitit_folder(out), cluster="debug")
    counts: collections.Counter = collections.Counter()
    for config in configs:
        job = executor.submit(RunJob(), config.to_dict(), str(out), runtime)
        try:
            counts[job.result()] += 1
        except Exception:
            counts["failed"] += 1
    return counts


class SchedulerUnavailable(RuntimeError):
    """squeue or scancel did not answer."""


def _squeue(job_ids: Iterable[str]) -> subprocess.CompletedProcess:
    done = _command("squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(job_ids))
    if done is None:
        raise SchedulerUnavailable("squeue is not available: is this a SLURM cluster's host?")
    return done


def live_tasks(array_ids: Iterable[str]) -> set[str]:
    """The job ids (``<array>_<task>``, or ``<job>``) of the given arrays that are pending or
    running: those that may still train a run. Raises SchedulerUnavailable if the queue cannot
    be read."""
    ids = sorted(set(array_ids))
    if not ids:
        return set()
    done = _squeue(ids)
    lines = done.stdout.splitlines()
    if done.returncode:
        # squeue refuses a list naming a job the controller has forgotten (older than
        # MinJobAge): ask for each one alone.
        lines = []
        for job_id in ids:
            single = _squeue([job_id])
            if single.returncode and "Invalid job id" not in single.stderr:
                raise SchedulerUnavailable(f"squeue failed: {single.stderr.strip()}")
            lines += single.stdout.splitlines()
    live = set()
    for line in lines:
        job_id, _, state = line.strip().partition("|")
        if job_id and state and state.split()[0] not in FINISHED:
            live.add(job_id)
    return live


def live_submissions(out: Path) -> list[dict[str, Any]]:
    """The submission records of ``out`` whose job is pending or running. Raises
    SchedulerUnavailable if the queue cannot be read."""
    submissions = store.read_submissions(out)
    live = live_tasks(row["array_id"] for row in submissions) if submissions else set()
    return [row for row in submissions if row["job_id"] in live]


def cancel(job_ids: Iterable[str]) -> None:
    """``scancel`` the given jobs or array tasks."""
    ids = sorted(set(job_ids))
    if not ids:
        return
    done = _command("scancel", *ids)
    if done is None or done.returncode:
        detail = "scancel is not available" if done is None else done.stderr.strip()
        raise SchedulerUnavailable(f"cancelling {len(ids)} job(s) failed: {detail}")
