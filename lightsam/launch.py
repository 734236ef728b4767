"""Launching a sweep's plan: a local process pool, SLURM job arrays (:mod:`lightsam.slurm`), or
in-process through submitit's debug executor.

The launcher knows nothing of the science: it gets a plan, a result store and a runtime, and
runs :func:`run_one` for each run the store still lacks. What is complete is never launched
again; a run being trained elsewhere is skipped (``store.exclusive``); a run waiting in a live
SLURM job is not submitted twice; a failed run keeps its traceback in its run directory and is
rerun only when asked (``retry_failed``).
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from lightsam import halving, stages, store
from lightsam.config import Config, Runtime, check_fits_the_data, from_dict
from lightsam.plan import Plan
from lightsam.sweep import Sweep
from lightsam.train import run

EXECUTORS = ("local", "slurm", "debug")
STATES = ("done", "diverged", "failed", "running", "queued", "missing")


# -- what a job does ------------------------------------------------------------------------------


def run_one(config: dict[str, Any], out: str, runtime: Runtime) -> str:
    """Train one run unless it is complete (``done`` / ``diverged``) or being trained elsewhere
    (``running``); returns its state. Exceptions propagate, so the job shows as failed."""
    try:
        result = run(from_dict(config), Path(out), runtime)
    except store.RunLocked:
        return "running"
    return "done" if result["status"] == "ok" else result["status"]


# -- what is left to do ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreState:
    """A store against a plan: each planned run's state (``STATES``), the run directories that
    are not in the plan, and a note when the scheduler could not be asked about queued runs."""

    states: dict[str, str]
    outside: tuple[str, ...]
    queue_note: str | None = None

    def counts(self, plan: Plan) -> dict[str, collections.Counter]:
        """Per optimizer, how many planned runs are in each state."""
        counts: dict[str, collections.Counter] = {}
        for run_id, state in self.states.items():
            name = plan.runs[run_id]["optimizer"]["name"]
            counts.setdefault(name, collections.Counter())[state] += 1
        return counts


def queued_runs(out: Path) -> tuple[set[str], str | None]:
    """The runs of ``out`` that a live SLURM job will still train (pending, or started but not
    yet holding the run's lock), and a note if the scheduler could not be asked."""
    if not store.read_submissions(out):
        return set(), None
    from lightsam import slurm  # only stores with submissions need a scheduler

    try:
        live = slurm.live_submissions(out)
    except slurm.SchedulerUnavailable as error:
        return set(), f"{error}; runs submitted to SLURM may be queued yet shown as missing"
    return {row["run_id"] for row in live}, None


def state_of(run_dir: Path, queued: bool = False) -> str:
    if store.is_running(run_dir):
        return "running"
    result = store.read_result(run_dir)
    if result is None or (queued and result.get("status") == "failed"):
        return "queued" if queued else "missing"
    return "done" if result.get("status") == "ok" else result.get("status", "failed")


def store_state(plan: Plan, out: Path) -> StoreState:
    """Where every run of ``plan`` stands in ``out``, and what ``out`` holds beyond it."""
    queued, note = queued_runs(out)
    states = {run_id: state_of(out / run_id, run_id in queued) for run_id in plan.runs}
    outside = tuple(p.name for p in store.run_dirs(out) if p.name not in plan.runs)
    return StoreState(states, outside, note)


def to_launch(state: StoreState, *, retry_failed: bool) -> list[str]:
    """The run ids a launch starts: the missing ones, or with ``retry_failed`` the failed ones
    (never a queued or running one)."""
    wanted = "failed" if retry_failed else "missing"
    return [run_id for run_id, s in state.states.items() if s == wanted]


# -- local ----------------------------------------------------------------------------------------


# How often (seconds) a worker checks that its launcher is still there.
PARENT_POLL_S = 0.5


def _init_worker(threads: int, launcher: int) -> None:
    torch.set_num_threads(threads)
    threading.Thread(target=_stop_without, args=(launcher,), daemon=True).start()


def _stop_without(launcher: int) -> None:
    """End this worker once its launcher is gone (killed, by any signal, kill -9 included: no
    handler in the launcher could cover that), so that no orphan goes on training unseen. Its
    run is left incomplete, with its lock released and its last checkpoint, and resumes when
    the sweep is launched again."""
    while os.getppid() == launcher:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


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
        initargs=(threads, os.getpid()),
    ) as pool:
        futures = [pool.submit(run_one, c.to_dict(), str(out), runtime) for c in configs]
        bar = tqdm(
            as_completed(futures), total=len(futures), desc="sweep", disable=not sys.stderr.isatty()
        )
        for future in bar:
            try:
                counts[future.result()] += 1
            except Exception as error:  # the run directory holds the traceback; the others go on
                counts["failed"] += 1
                if isinstance(error, store.WriteFailed):  # then it may hold nothing
                    tqdm.write(str(error), file=sys.stderr)
            bar.set_postfix(counts)
    return counts


# -- a whole sweep ---------------------------------------------------------------------------------


def launch_sweep(sweep: Sweep, out: Path, runtime: Runtime, **options: Any) -> None:
    """Launch ``sweep``'s plan into ``out`` (:func:`launch_plan`, with its keyword ``options``):
    the one way ``lightsam sweep`` and ``lightsam reproduce`` run a sweep file. Under
    ``halving``, then every later rung whose rung before is complete (``lightsam.halving``)."""
    plan, configs = sweep.plan(), list(sweep.runs)
    launch_plan(plan, configs, out, runtime, **options)
    if sweep.halving is None:
        return
    rungs = sweep.halving.rungs
    for rung in range(1, len(rungs)):
        previous = halving.rung_store(out, rung - 1)
        try:
            plan, configs, record = halving.promote(plan, previous, rung, sweep.halving)
        except stages.GridIncomplete as waiting:
            print(
                f"rung {rung} ({rungs[rung]} epochs) waits for rung {rung - 1}: {waiting}; "
                "rerun the same command once it has finished"
            )
            return
        here = halving.rung_store(out, rung)
        store.write_json(here / store.PROMOTION, record)
        continued = halving.continue_runs(configs, previous, here, rungs[rung - 1])
        if continued:
            print(f"rung {rung}: {continued} runs continue from rung {rung - 1}'s checkpoints")
        launch_plan(plan, configs, here, runtime, **options)


def launch_plan(
    plan: Plan,
    configs: Sequence[Config],
    out: Path,
    runtime: Runtime,
    *,
    executor: str = "local",
    profile: Any = None,
    max_parallel: int | None = None,
    retry_failed: bool = False,
) -> None:
    """Write ``plan`` into ``out`` and launch what the store still lacks (see
    :func:`to_launch`) of its runs, ``configs``, saying so. SLURM returns after submitting
    (``profile``: a ``slurm.Profile``); the local and debug executors return when the runs are
    done."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}; got {executor!r}")
    by_id = {config.run_id(): config for config in configs}
    if set(by_id) != set(plan.runs):
        raise ValueError("configs must be the plan's runs, each once")
    for config in configs:
        check_fits_the_data(config)  # before any run directory or job exists
    store.write_plan(out, plan)
    for note in plan.notes:
        print(f"note: {note}")
    state = store_state(plan, out)
    if state.queue_note:
        print(f"warning: {state.queue_note}")
    configs = [by_id[run_id] for run_id in to_launch(state, retry_failed=retry_failed)]
    waiting = sum(s in ("queued", "running") for s in state.states.values())
    busy = f" ({waiting} queued or running)" if waiting else ""
    name = plan.sweep if plan.stage == "grid" else f"{plan.sweep} ({plan.stage})"
    print(f"sweep {name}: {len(configs)} of {len(plan.runs)} runs to launch{busy} -> {out}")
    if state.outside:
        outside = len(state.outside)
        print(f"{outside} run(s) in {out} are outside the plan (lightsam status lists them)")
    if not configs:
        return
    if executor == "slurm":
        from lightsam import slurm

        array_ids = slurm.submit(
            configs, out, runtime, profile or slurm.Profile(), max_parallel=max_parallel
        )
        print(f"submitted SLURM job arrays: {' '.join(array_ids)}")
        return
    started = time.perf_counter()
    if executor == "debug":
        from lightsam import slurm

        counts = slurm.run_debug(configs, out, runtime)
    else:
        counts = launch_local(configs, out, runtime, max_parallel=max_parallel)
        store.record_launch(
            out,
            {
                "runs": len(configs),
                "wall_s": time.perf_counter() - started,
                "cores": available_cores(),
                "parallel": max_parallel or available_cores(),
            },
        )
    states = ", ".join(f"{s} {counts[s]}" for s in STATES if counts[s])
    print(f"{states} in {time.perf_counter() - started:.0f} s")
