"""A screening by successive halving, per workload: each method's learning-rate window at every
epoch the halving reached, and what tuning costs in device-hours.

Read from the grid's store and its rung stores (``analysis.fig_halving.follow``): each grid run
is followed to the last rung it was continued to, whose per-epoch records hold every epoch from
the first (a continued run is the run trained to that length directly).

- **Windows** (``screening_windows.csv``): at each epoch, per arm and ``rho``, the lr window
  (``analysis.study.window`` on log10 lr) where the epoch's training loss (its mean over the
  epoch's steps) is at most ``FACTOR`` x the arm's best at that epoch over all its radii. Up to
  the first rung every cell has a loss; after it only the continued cells do, and a pruned cell
  counts as outside the window, as a diverged one does. So a window past the first rung is
  that of the cells the halving kept, which is what it spends its budget on, not the window the
  whole grid would have at that epoch. ``rho = 0`` is the method's base optimizer.
- **How each run ended** (``screening_failures.csv``): ``analysis.study.failure`` at the last
  epoch it trained (its rung), with the epochs' training losses and, for the loss before the
  first step, ln(classes), a softmax classifier's loss at chance (there is no probe before the
  first step on these workloads), and where the halving left it (pruned at a rung, or complete).
- **Tuning cost** (``screening_tuning.csv``): ``analysis.results.expected_best_of_k`` on the
  first rung's runs, the only ones every cell has, against k x the arm's mean device-hours a
  run (``wall_s`` x processes, as measured); and the halving's own outcome per arm: the
  device-hours it spent on the arm over all rungs and the test accuracy of its cell with the
  best validation accuracy at the last rung (``screening_halving.csv``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

from analysis import common, fig_budget
from analysis.fig_halving import follow, promotions
from analysis.results import ARM, collect, expected_best_of_k, write_csv
from analysis.study import (
    FACTOR,
    FAILURES,
    STALLED,
    failure,
    failure_counts,
    finite_min,
    window,
)
from lightsam import store as files

TUNING_BOOT = 1000
NO_RHO = -1.0  # the rho of a base optimizer's cells while grouping (pandas drops NaN keys)
CURVE_COLUMNS = [ARM, "lr", "rho", "seed", "epoch", "train_loss"]
FAILURE_COLUMNS = [ARM, "lr", "rho", "seed", "epochs_reached", "ending", "failure"]
WINDOW_COLUMNS = [ARM, "rho", "epoch", "width", "points", "cells", "grid_lrs"]
HALVING_COLUMNS = [ARM, "device_hours", "lr", "rho", "epochs", "val_acc", "test_acc"]


def device_hours(result: dict) -> float:
    """The device-hours a run's training took: its ``wall_s`` on each of its processes (0 for a
    result that records none: a run that failed before its first epoch)."""
    return (result.get("wall_s") or 0.0) * (result.get("world_size") or 1) / 3600


def curves(followed: pd.DataFrame) -> pd.DataFrame:
    """One row per grid run (``follow``) and epoch it trained: its training loss, infinite in
    the epoch it diverged in."""
    rows = []
    for run in followed.itertuples():
        where = Path(run.store) / run.run_id
        key = {ARM: run.arm, "lr": run.lr, "rho": run.rho, "seed": run.seed}
        for row in files.read_metrics(where):
            rows.append({**key, "epoch": row["epoch"], "train_loss": row.get("train_loss")})
        result = files.read_result(where) or {}
        if result.get("status") == "diverged" and result.get("diverged_epoch"):
            rows.append({**key, "epoch": result["diverged_epoch"], "train_loss": math.inf})
    table = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    return table.astype({"train_loss": float}).drop_duplicates(
        [ARM, "lr", "rho", "seed", "epoch"], keep="last"
    )


def windows(table: pd.DataFrame, factor: float = FACTOR) -> pd.DataFrame:
    """Per arm, ``rho`` and epoch: the lr window of the cells' losses (median over seeds) against
    the arm's best at that epoch; ``cells``: the cells with a loss then, of ``grid_lrs``."""
    table = table.assign(rho=table["rho"].fillna(NO_RHO))  # a base arm: one group, not NaN
    lrs = table.groupby([ARM, "rho"])["lr"].unique()
    cells = table.groupby([ARM, "lr", "rho", "epoch"])["train_loss"].median().reset_index()
    bests = cells.groupby([ARM, "epoch"])["train_loss"].agg(finite_min)
    rows = []
    for (arm, rho, epoch), at in cells.groupby([ARM, "rho", "epoch"]):
        everywhere = np.sort(lrs[(arm, rho)])
        losses = at.set_index("lr")["train_loss"].reindex(everywhere)  # NaN: pruned or none
        width, points, _, _ = window(np.log10(everywhere), losses, bests[(arm, epoch)], factor)
        rows.append([arm, rho, epoch, width, points, int(losses.notna().sum()), len(everywhere)])
    found = pd.DataFrame(rows, columns=WINDOW_COLUMNS)
    return found.assign(rho=found["rho"].where(found["rho"].ne(NO_RHO)))


def failures(followed: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """One row per grid run that completed (``follow``; a failed run says nothing of the
    optimizer): how it ended (``analysis.study.failure``, from ln(classes) and its training
    losses, ``table``) and where the halving left it."""
    table = table.assign(rho=table["rho"].fillna(NO_RHO)).sort_values("epoch")
    losses = table.groupby([ARM, "lr", "rho", "seed"])["train_loss"].apply(list)
    rows = []
    for run in followed.itertuples():
        result = files.read_result(Path(run.store) / run.run_id) or {}
        if result.get("status") not in files.COMPLETE or not result.get("num_classes"):
            continue
        rho = NO_RHO if pd.isna(run.rho) else run.rho
        curve = losses.get((run.arm, run.lr, rho, run.seed), [])
        if result["status"] == "diverged":
            curve = []  # failure() reads the status
        kind = failure(result["status"], math.log(result["num_classes"]), curve)
        rows.append([run.arm, run.lr, run.rho, run.seed, run.epochs_reached, run.ending, kind])
    return pd.DataFrame(rows, columns=FAILURE_COLUMNS).dropna(subset=["failure"])


def halving_outcome(followed: pd.DataFrame) -> pd.DataFrame:
    """Per arm: the device-hours the halving spent on it (every run's training over all its
    rungs: a continued run's ``wall_s`` includes the epochs it continued) and its pick, the
    cell with the best validation accuracy among those that trained to the last rung."""
    rows = []
    for arm, own in followed.groupby(ARM, sort=False):
        results = [files.read_result(Path(r.store) / r.run_id) or {} for r in own.itertuples()]
        spent = sum(device_hours(result) for result in results)
        reached = own.assign(test_acc=[r.get("test_acc") for r in results])
        reached = reached[reached["ending"].eq("complete") & reached["val_acc"].notna()]
        if reached.empty:
            rows.append([arm, spent, *[math.nan] * 5])
            continue
        cells = reached.groupby(["lr", "rho"], dropna=False)[["val_acc", "test_acc"]].mean()
        cells = cells.reset_index().sort_values(["val_acc", "lr"], ascending=[False, True])
        pick = cells.iloc[0]
        epochs = own.loc[own["ending"].eq("complete"), "epochs_reached"].max()
        rows.append([arm, spent, pick["lr"], pick["rho"], epochs, pick["val_acc"],
                     pick["test_acc"]])  # fmt: skip
    return pd.DataFrame(rows, columns=HALVING_COLUMNS)


def tuning(first_rung: pd.DataFrame) -> pd.DataFrame:
    """The expected best of k on the first rung's runs, with ``device_hours``: k x the arm's
    mean device-hours a run."""
    curves = expected_best_of_k(first_rung, n_boot=TUNING_BOOT, seed=0)
    hours = [device_hours(run) for run in first_rung.to_dict("records")]
    per_run = pd.Series(hours, index=first_rung.index).groupby(first_rung[ARM]).mean()
    return curves.assign(device_hours=curves["k"] * curves[ARM].map(per_run))


def _widest(w: pd.DataFrame, base: bool) -> pd.DataFrame:
    """Per arm and epoch, the widest window over its radii above 0 (or its ``rho = 0`` one)."""
    own = w[w["rho"].eq(0)] if base else w[w["rho"].isna() | w["rho"].gt(0)]
    return own.groupby([ARM, "epoch"], as_index=False)["width"].max()


@common.styled
def make(grid: Path, out: Path) -> list[Path]:
    """The figures and tables of the screening stored in ``grid``; none if it is not a halving
    or its first rung has no results."""
    records = promotions(grid)
    first = collect(grid).runs
    if not records or first.empty:
        return []
    followed = follow(grid, records)
    table = curves(followed)
    w = windows(table)
    t = tuning(first)
    h = halving_outcome(followed)
    f = failures(followed, table)
    rungs = [records[0]["selected_at_epochs"], *(r["continued_to_epochs"] for r in records)]
    paths = [
        write_csv(w, out, "screening_windows"),
        write_csv(t, out, "screening_tuning"),
        write_csv(h, out, "screening_halving"),
        write_csv(f, out, "screening_failures"),
    ]
    if not f.empty:
        title = "How each run ended, at the last epoch it trained (its rung; training loss)"
        fig = fig_budget.failures(failure_counts(f), FAILURES, title)
        paths += common.save(fig, out, "screening_failures")

    fig = Figure(figsize=(15, 5.6), layout="constrained")
    by_epoch, by_cost = fig.subplots(1, 2)
    solid, dashed = _widest(w, base=False), _widest(w, base=True)
    for arm in common.ordered(w[ARM]):
        style = common.line_style(arm)
        own = solid[solid[ARM].eq(arm)]
        by_epoch.plot(own["epoch"], own["width"], linewidth=2, **style)
        base = dashed[dashed[ARM].eq(arm)]
        if not base.empty:
            by_epoch.plot(base["epoch"], base["width"], color=style["color"], linestyle="--",
                          linewidth=1.2)  # fmt: skip
        curve = t[t[ARM].eq(arm)]
        by_cost.plot(curve["device_hours"], 100 * curve["expected"], linewidth=2, **style)
        by_cost.fill_between(curve["device_hours"], 100 * curve["low"], 100 * curve["high"],
                             color=style["color"], alpha=0.12, linewidth=0)  # fmt: skip
        picked = h[h[ARM].eq(arm)]
        by_cost.plot(picked["device_hours"], 100 * picked["test_acc"], "*", markersize=11,
                     color=style["color"])  # fmt: skip
    for epochs in rungs[:-1]:
        by_epoch.axvline(epochs, color="0.3", linestyle=":", linewidth=1)
    by_epoch.set_xlabel("epoch (dotted: the rungs; after the first, continued cells only)")
    by_epoch.set_ylabel(f"lr window: decades within {FACTOR:g}x the best training loss")
    by_epoch.set_title("Widest window over the radii (dashed: rho = 0, the base)")
    by_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_cost.set_xscale("log")
    by_cost.xaxis.set_minor_formatter(NullFormatter())  # the minor labels overlap
    by_cost.set_xlabel(f"device-hours: k random cells at {rungs[0]} epochs (★ the halving's spend)")
    by_cost.set_ylabel("test accuracy of the val-best (%)")
    by_cost.set_title("Expected best of k (95% band over seeds); ★ the halving's pick")
    by_cost.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    for ax in (by_epoch, by_cost):
        ax.grid(alpha=0.3)
    return [*common.save(fig, out, "screening"), *paths]


def failure_sentences(f: pd.DataFrame) -> list[str]:
    """Per arm, its runs in each class, and how many of each the halving pruned."""
    if f.empty:
        return []
    said = []
    for arm in common.ordered(f[ARM]):
        own = f[f[ARM].eq(arm)]
        parts = []
        for kind in FAILURES:
            of = own[own["failure"].eq(kind)]
            if len(of):
                pruned = int(of["ending"].str.startswith("pruned").sum())
                parts.append(f"{len(of)} {kind}" + (f" ({pruned} pruned)" if pruned else ""))
        said.append(
            f"{common.label(arm)}, how its {len(own)} runs ended at the last epoch each trained "
            f"(stalled: training loss at least {STALLED:g}x ln(classes)): {', '.join(parts)}."
        )
    return said


def _rho(rho: float) -> str:
    return f", rho {rho:g}" if math.isfinite(rho) else ""


def summary(out: Path) -> list[str]:
    """Sentences from the tables ``make`` wrote into ``out``; none if it wrote none."""
    if not (out / "screening_windows.csv").exists():
        return []
    w = pd.read_csv(out / "screening_windows.csv")
    h = pd.read_csv(out / "screening_halving.csv")
    t = pd.read_csv(out / "screening_tuning.csv")
    widest = _widest(w, base=False)
    first, last = widest["epoch"].min(), widest["epoch"].max()
    bases = _widest(w, base=True)
    said = []
    for arm in common.ordered(widest[ARM]):
        own = widest[widest[ARM].eq(arm)].set_index("epoch")["width"]
        base = bases[bases[ARM].eq(arm)].set_index("epoch")["width"]
        shown = f"{own.get(first, math.nan):.1f} decades after {first} epochs"
        if last in own.index and last != first:
            shown += f", {own[last]:.1f} after {last} (continued cells only)"
        if first in base.index:
            shown += f"; at rho = 0 (its base) {base[first]:.1f} after {first}"
        said.append(f"{common.label(arm)}: lr window {shown}.")
    said += failure_sentences(pd.read_csv(out / "screening_failures.csv"))
    for row in h.set_index(ARM).loc[common.ordered(h[ARM])].reset_index().itertuples():
        curve = t[t[ARM].eq(row.arm)]
        if curve.empty or not math.isfinite(row.test_acc):
            continue
        whole = curve.iloc[-1]
        said.append(
            f"{common.label(row.arm)}: every one of its {int(whole['grid_cells'])} cells at "
            f"{first} epochs costs {whole['device_hours']:.3g} device-hours for a test accuracy "
            f"of {100 * whole['expected']:.2f}% at its val-best (95% band {100 * whole['low']:.2f}"
            f" to {100 * whole['high']:.2f}); the halving spent {row.device_hours:.3g} and its "
            f"pick (lr {row.lr:g}{_rho(row.rho)}, {int(row.epochs)} epochs) scores "
            f"{100 * row.test_acc:.2f}%."
        )
    return said


def main(argv=None) -> None:
    args = common.parse(__doc__.splitlines()[0], argv)
    common.report(make(args.store, args.out))


if __name__ == "__main__":
    main()
