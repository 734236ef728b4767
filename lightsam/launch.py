"""Launching runs: a local process pool, SLURM job arrays through submitit, or in-process.

The launcher knows nothing of the science: it gets configs, a result store and a runtime, and
runs :func:`run_one` for each. What is already complete is never launched again; a run being
trained elsewhere is skipped (``store.exclusive``); a failed run keeps its traceback in its run
directory and is rerun only when asked (``retry_failed``).
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import submitit
import torch
from tqdm import tqdm

from lightsam import store
from lightsam.config import Config, ConfigError, from_dict, read_yaml
from lightsam.sweep import Sweep
from lightsam.train import Runtime, run

EXECUTORS = ("local", "slurm", "debug")
PLAN = "sweep.json"
LAUNCHES = "launches.jsonl"
STATES = ("done", "diverged", "failed", "running", "missing")


# -- what a job does ------------------------------------------------------------------------------


def run_one(config: dict[str, Any], out: str, runtime: Runtime) -> str:
    """Train one run unless it is complete (``done`` / ``diverged``) or being trained elsewhere
    (``running``); returns its state. Exceptions propagate, so the job shows as failed."""
    try:
        result = run(from_dict(config), Path(out), runtime)
    except store.RunLocked:
        return "running"
    return "done" if result["status"] == "ok" else result["status"]


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


# -- what is left to do ---------------------------------------------------------------------------


def state_of(run_dir: Path) -> str:
    if store.is_running(run_dir):
        return "running"
    result = store.read_result(run_dir)
    if result is None:
        return "missing"
    return "done" if result.get("status") == "ok" else result.get("status", "failed")


def status(configs: Iterable[Config], out: Path) -> dict[str, collections.Counter]:
    """Per optimizer, how many runs are done, diverged, failed, running and missing."""
    counts: dict[str, collections.Counter] = {}
    for config in configs:
        counter = counts.setdefault(config.optimizer.name, collections.Counter())
        counter[state_of(out / config.run_id())] += 1
    return counts


def to_launch(configs: Iterable[Config], out: Path, *, retry_failed: bool) -> list[Config]:
    """The runs a launch submits: the missing ones, or with ``retry_failed`` the failed ones."""
    wanted = "failed" if retry_failed else "missing"
    return [c for c in configs if state_of(out / c.run_id()) == wanted]


def write_plan(sweep: Sweep, out: Path) -> None:
    """Record the sweep's cells in ``out/sweep.json``, so that the store says what it should
    hold: the analysis reports missing cells of a half-done sweep from it."""
    cells = [
        {
            "run_id": c.run_id(),
            "optimizer": c.optimizer.name,
            "lr": c.optimizer.lr,
            "rho": c.optimizer.rho,
            "seed": c.seed,
        }
        for c in sweep.runs
    ]
    store.write_json(out / PLAN, {"sweep": sweep.name, "runs": cells})


# -- local ----------------------------------------------------------------------------------------


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def available_cores() -> int:
    return len(os.sched_getaffinity(0))


def launch_local(
    configs: list[Config], out: Path, runtime: Runtime, *, max_parallel: int | None = None
) -> collections.Counter:
    """Run at most ``max_parallel`` runs at once (default: one per core), each in a worker
    process with its share of the cores as threads; a progress bar follows the sweep."""
    max_parallel = max_parallel or available_cores()
    threads = max(1, available_cores() // max_parallel)
    runtime = dataclasses.replace(runtime, progress=False)
    counts: collections.Counter = collections.Counter()
    # Workers are spawned (a clean interpreter, no forked threads) and reused across runs, so
    # torch is imported once per worker rather than once per run.
    with ProcessPoolExecutor(
        max_workers=max_parallel,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(threads,),
    ) as pool:
        futures = [pool.submit(run_one, c.to_dict(), str(out), runtime) for c in configs]
        bar = tqdm(
            as_completed(futures), total=len(futures), desc="sweep", disable=not sys.stderr.isatty()
        )
        for future in bar:
            try:
                counts[future.result()] += 1
            except Exception:  # the run directory holds the traceback; the others go on
                counts["failed"] += 1
            bar.set_postfix(counts)
    return counts


def launch_debug(configs: list[Config], out: Path, runtime: Runtime) -> collections.Counter:
    """Every run in this process, one after the other, through submitit's debug executor."""
    executor = submitit.AutoExecutor(folder=out / ".submitit", cluster="debug")
    counts: collections.Counter = collections.Counter()
    for config in configs:
        job = executor.submit(RunJob(), config.to_dict(), str(out), runtime)
        try:
            counts[job.result()] += 1
        except Exception:
            counts["failed"] += 1
    return counts


# -- SLURM ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """A cluster's resources for one run, from ``slurm/profiles/<name>.yaml``.

    ``setup`` lines run in the job before Python starts (``module load cuda``, activating an
    environment); ``extra`` passes any other sbatch option (``{constraint: a100}``).

    ``nodes`` x ``tasks_per_node`` processes train each run together, data-parallel: one task
    per GPU (``tasks_per_node`` = ``gpus_per_node``), ``cpus_per_task`` each. ``mem_gb`` is per
    node. With several tasks, srun ends them all as soon as one fails, rather than leaving the
    others waiting in a collective until it times out.
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
    setup: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

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


def load_profile(name_or_path: str) -> Profile:
    """A profile by path, or by name in ./slurm/profiles."""
    path = Path(name_or_path)
    if not path.suffix:
        path = Path("slurm") / "profiles" / f"{name_or_path}.yaml"
    data = read_yaml(path, "SLURM profile")
    valid = {f.name for f in fields(Profile)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in {path}; valid: {', '.join(sorted(valid))}"
        )
    if "setup" in data:
        data["setup"] = tuple(data["setup"] or ())
    return Profile(**data)


def cluster_max_array_size() -> int | None:
    """The cluster's MaxArraySize (array indices run from 0 to it minus 1), if it answers."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
    return int(match.group(1)) if match else None


def launch_slurm(
    configs: list[Config],
    out: Path,
    runtime: Runtime,
    profile: Profile,
    *,
    max_parallel: int | None = None,
) -> list[str]:
    """Submit the runs as SLURM job arrays, each below the cluster's maximum array size and
    with at most ``max_parallel`` (default: the profile's) tasks running at once. Returns the
    array job ids without waiting for them."""
    out = out.resolve()
    runtime = dataclasses.replace(runtime, data_dir=runtime.data_dir.resolve(), progress=False)
    executor = submitit.AutoExecutor(folder=out / ".submitit" / "%j", cluster="slurm")
    parameters = profile.submitit_parameters()
    if max_parallel:
        parameters["slurm_array_parallelism"] = max_parallel
    executor.update_parameters(**parameters)
    size = min(filter(None, (profile.max_array_size, cluster_max_array_size())))
    job_ids = []
    for start in range(0, len(configs), size):
        chunk = configs[start : start + size]
        jobs = executor.map_array(
            RunJob(), [c.to_dict() for c in chunk], [str(out)] * len(chunk), [runtime] * len(chunk)
        )
        job_ids.append(jobs[0].job_id.split("_")[0])
    return job_ids


# -- a whole sweep ---------------------------------------------------------------------------------


def record_launch(out: Path, runs: int, wall_s: float, parallel: int) -> None:
    """Append a local launch's wall time to ``out/launches.jsonl``: the report states how long
    the study took (a resumed study took the sum of its launches)."""
    path = out / LAUNCHES
    earlier = store.read_jsonl(path) if path.exists() else []
    record = {"runs": runs, "wall_s": wall_s, "cores": available_cores(), "parallel": parallel}
    store.write_jsonl(path, [*earlier, record])


def launch_sweep(
    sweep: Sweep,
    out: Path,
    runtime: Runtime,
    *,
    executor: str = "local",
    profile: Profile | None = None,
    max_parallel: int | None = None,
    retry_failed: bool = False,
) -> None:
    """Launch what ``sweep`` still lacks in ``out`` (see :func:`to_launch`) and say so: the one
    way ``lightsam sweep`` and ``lightsam reproduce`` run a sweep. SLURM returns after
    submitting; the local and debug executors return when the runs are done."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}; got {executor!r}")
    write_plan(sweep, out)
    configs = to_launch(sweep.runs, out, retry_failed=retry_failed)
    print(f"sweep {sweep.name}: {len(configs)} of {len(sweep.runs)} runs to launch -> {out}")
    if not configs:
        return
    if executor == "slurm":
        job_ids = launch_slurm(
            configs, out, runtime, profile or Profile(), max_parallel=max_parallel
        )
        print(f"submitted SLURM job arrays: {' '.join(job_ids)}")
        return
    started = time.perf_counter()
    if executor == "debug":
        counts = launch_debug(configs, out, runtime)
    else:
        counts = launch_local(configs, out, runtime, max_parallel=max_parallel)
        wall_s = time.perf_counter() - started
        record_launch(out, len(configs), wall_s, max_parallel or available_cores())
    states = ", ".join(f"{state} {counts[state]}" for state in STATES if counts[state])
    print(f"{states} in {time.perf_counter() - started:.0f} s")
