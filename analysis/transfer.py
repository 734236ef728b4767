"""Transfer: time to a target on each workload, summarised by performance profiles.

Each method runs with its defaults (chosen on one workload) on every workload, without retuning,
over several seeds. Scored as AlgoPerf scores training algorithms (Dahl et al., 2023):

* **Target**, per workload: the best validation accuracy that any method's median over seeds
  reaches at the end of its runs, less ``slack`` (0.005 by default: half a percentage point).
  A workload's target is thus set by the workloads' own best run of the study, never by the
  test set, and is within reach of at least one method.
* **Time to target** of a seed: the number of gradient evaluations, in epochs of one-pass work,
  until its validation accuracy first reaches the target: ``epoch * passes``, with 2 passes per
  step for a sharpness-aware method and 1 otherwise (the compute a SAM epoch costs). A seed that
  never reaches it, diverged or failed, takes infinitely long. A method's time on a workload is
  the median over its seeds (infinite if half or more never arrive).
* **Performance profile** of a method: for each ratio ``tau >= 1``, the fraction of workloads
  on which its time is within ``tau`` times the fastest method's there. At ``tau = 1`` it is the
  share of workloads it wins (ties count for each), and its limit as ``tau`` grows is the share
  it solves at all.

The inputs are plain tables (one row per run and per epoch), so that the scoring is tested on
stores with known answers; ``curves`` reads them from result stores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from analysis import common
from analysis.results import collect, read_metrics, write_csv
from lightsam.optim import OPTIMIZERS

SLACK = 0.005


def curves(stores: Mapping[str, Path]) -> pd.DataFrame:
    """Every run's validation accuracy per epoch, one row per (workload, run, epoch): columns
    ``workload, arm, optimizer, seed, run_id, status, epoch, val_acc``, from the result stores
    of each workload (``{workload: store}``)."""
    frames = []
    for workload, path in stores.items():
        runs = collect(path).runs
        if runs.empty:
            continue
        metrics = read_metrics(path, runs["run_id"])
        if "val_acc" not in metrics:
            metrics = metrics.assign(epoch=np.nan, val_acc=np.nan)
        keep = ["run_id", "arm", "optimizer", "seed", "status"]
        merged = runs[keep].merge(metrics[["run_id", "epoch", "val_acc"]], on="run_id", how="left")
        frames.append(merged.assign(workload=workload))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def passes(optimizer: str) -> int:
    return 2 if OPTIMIZERS[optimizer].sharpness_aware else 1


def targets(table: pd.DataFrame, slack: float = SLACK) -> pd.Series:
    """Per workload, the best median (over seeds) final validation accuracy of any method, less
    ``slack``."""
    done = table[table["status"].eq("ok")].dropna(subset=["val_acc"])
    final = done.sort_values("epoch").groupby(["workload", "arm", "run_id"])["val_acc"].last()
    medians = final.groupby(["workload", "arm"]).median()
    return medians.groupby("workload").max() - slack


def seed_times(table: pd.DataFrame, target: pd.Series) -> pd.DataFrame:
    """Per (workload, arm, run): the one-pass epochs until the run first reaches its workload's
    target (inf if never, or if it diverged or failed)."""
    rows = []
    for (workload, arm, run_id), run in table.groupby(["workload", "arm", "run_id"]):
        reached = run[run["val_acc"] >= target[workload]]
        ok = run["status"].iloc[0] == "ok"
        epoch = reached["epoch"].min() if ok and not reached.empty else math.inf
        rows.append(
            {
                "workload": workload,
                "arm": arm,
                "run_id": run_id,
                "seed": run["seed"].iloc[0],
                "time": epoch * passes(run["optimizer"].iloc[0]),
            }
        )
    return pd.DataFrame(rows)


def method_times(seeds: pd.DataFrame) -> pd.DataFrame:
    """Per workload (rows) and arm (columns), the median over seeds of the time to target."""
    return seeds.groupby(["workload", "arm"])["time"].median().unstack("arm")


def performance_profile(times: pd.DataFrame, taus: Sequence[float]) -> pd.DataFrame:
    """Per arm (columns), for each ``tau`` (rows), the fraction of workloads on which the arm's
    time is at most ``tau`` times the fastest arm's there; a workload no arm solves counts as
    solved by none."""
    best = times.min(axis=1)
    ratios = times.div(best, axis=0).where(np.isfinite(best), math.inf, axis=0)
    return pd.DataFrame(
        {arm: [(ratios[arm] <= tau).mean() for tau in taus] for arm in times.columns},
        index=pd.Index(taus, name="tau"),
    )


@common.styled
def make(stores: Mapping[str, Path], out: Path, slack: float = SLACK) -> list[Path]:
    """``transfer_times.csv`` (each seed's time to target), ``transfer_profile.csv`` and the
    performance-profile figure, from the result stores of the transfer runs."""
    table = curves(stores)
    if table.empty:
        return []
    target = targets(table, slack)
    seeds = seed_times(table, target)
    times = method_times(seeds)
    finite = times.to_numpy()[np.isfinite(times.to_numpy())]
    worst = float((finite / times.min(axis=1).min()).max()) if finite.size else 1.0
    taus = np.unique(np.concatenate([[1.0], np.geomspace(1.0, max(4.0, 1.5 * worst), 60)]))
    profile = performance_profile(times, taus)
    paths = [
        write_csv(seeds.merge(target.rename("target"), on="workload"), out, "transfer_times"),
        write_csv(profile.reset_index(), out, "transfer_profile"),
    ]
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    for arm in common.ordered(profile.columns):
        ax.step(profile.index, profile[arm], where="post", **common.line_style(arm))
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if v in (2, 3, 5) else ""))
    ax.set_xlabel("τ: time to target within τ × the fastest method's")
    ax.set_ylabel("fraction of workloads")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", frameon=False)
    ax.set_title(
        f"Performance profiles over {len(times)} workloads\n(time: one-pass epochs to the "
        f"target, the best median final validation accuracy − {100 * slack:g} points)"
    )
    return [*paths, *common.save(fig, out, "transfer_profile")]
