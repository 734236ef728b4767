"""The budget study: does a LightSAM variant train over a wider range of learning rates than
SGD-SAM and than its own base optimizer, does that range widen with more epochs, and does it
generalise better at the cell one would pick?

Three stores, any of which may be absent (what needs it is then skipped):

- the *grid*: every arm over the same decades of lr, one seed, constant lr; the sharpness-aware
  arms at E epochs over three radii, the base optimizers at 2E epochs. A base's first E epochs
  are the run an E-epoch base would be, so its per-epoch metrics give it at equal epochs (epoch
  e) and at equal gradient evaluations (epoch 2e: a sharpness-aware step takes two gradients);
- the *confirmation*: each arm's cell selected on validation in the grid, with fresh seeds (a
  base selected at E and at 2E epochs, two arms);
- the *recovery*: grid runs the stop rule ended as diverged, rerun without it.

Radius levels: the methods' rho values differ (LightSAM-II/III bound each coordinate by rho) but
were chosen so that the realised ``||e_1||`` matches. A cell's *level* is the rank of its rho
among its arm's; an arm with a single rho is at the middle level. A level is labelled by the
median ``perturbation_norm_first`` of the sharpness-aware runs at it.
The match is at the first ascent: an accumulated (LightSAM) ascent shrinks as its denominator
grows, SAM's fixed-radius ascent keeps ``||e_t|| = rho``, and :func:`realised_radii` follows each
level epoch by epoch.

Every loss here is ``probe_loss``, the loss on a fixed subset of the training images at the end
of an epoch: a training loss, on the same images for every run. A run that diverged has an
infinite loss from the epoch it diverged in; failed and missing runs have none and never count.
Runs that probe after some steps too (``probe_steps``) give the budget in optimizer steps, below
an epoch as well: :func:`lowest_training_lrs` follows the lowest learning rate that trains along
it, whose fall with the steps tells under-training at small learning rates from a failure no
budget mends.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import common, fig_budget
from analysis.results import (
    ARM,
    COMPLETE,
    NEAR_SE,
    Collection,
    aggregate,
    best_settings,
    collect,
    expected_best_of_k,
    mean_std_ci,
    read_metrics,
    read_probes,
    scored,
    t_p_value,
    write_csv,
)
from lightsam import store as files
from lightsam.plan import arm_key, arm_labels

FACTOR = 2.0  # an lr is in the window when its training loss is at most FACTOR x the best
STALLED = 0.9  # a run stalled when its final loss is at least STALLED x its initial loss
IMPROVING = 0.1  # still improving: its loss fell by more than this over the last fifth
TRAINED = 0.5  # a rerun trained when its final loss is below TRAINED x its initial loss
N_BOOT, SEED = 10_000, 0
TUNING_BOOT = 1000
STOP_RULE = "divergence_loss"
# Each way a grid run can end, with what it means (the figure's legend).
FAILURES = {
    "diverged": "diverged (stop rule or non-finite loss)",
    "stalled": f"stalled (final loss ≥ {STALLED:g}× initial)",
    "still improving": f"still improving (> {IMPROVING:.0%} drop over the last fifth)",
    "trained": "trained (the rest)",
}
RECOVERY = ("trained", "stalled", "diverged")
UNTRAINED = ("diverged", "stalled")  # endings at or near chance, whatever the seed noise
VARIANTS = ("lightsam_i", "lightsam_ii", "lightsam_iii")
REFERENCE = "sgd_sam"
EQUAL, MATCHED = "equal epochs", "equal gradient evaluations"
ASCENT, DESCENT = "only the ascent differs", "only the descent differs"
# The one-change contrasts the ablation arms exist for: (arm, its control, what differs). SAM's
# ascent around each LightSAM descent isolates LightSAM's ascent; LightSAM-I's ascent around SGD
# isolates it from SGD-SAM's, from SAM's ascent shrunk as rho / sqrt(t) (the schedule alone, no
# accumulator), and from LightSAM-I's descent.
ONE_CHANGE = (("lightsam_i", "adagrad_norm_sam", ASCENT), ("lightsam_ii", "adagrad_sam", ASCENT),
              ("lightsam_iii", "adam_sam", ASCENT), ("lightsam_i_sgd", "sgd_sam", ASCENT),
              ("lightsam_i_sgd", "sgd_sam_decay", ASCENT),
              ("lightsam_i", "lightsam_i_sgd", DESCENT))  # fmt: skip
# Controls whose ascent is SAM's on a radius schedule, not SAM's fixed radius: their one-change
# contrasts ask whether LightSAM's accumulator does more than the schedule, so they stay out of
# the radius-window verdict on LightSAM's ascent in place of SAM's.
SCHEDULED = ("sgd_sam_decay",)
SELECTED_COLUMNS = [ARM, "optimizer", "epochs", "lr", "rho", "seeds", "diverged", "stalled",
                    "test_mean", "test_std", "test_ci", "val_std", "val_seeds"]  # fmt: skip
CONTRAST_COLUMNS = ["method", "base", "comparison", "epochs", "base_epochs", "pairs",
                    "untrained_pairs", "mean", "std", "t_low", "t_high", "boot_low", "boot_high",
                    "verdict", "p", "holm_p"]  # fmt: skip
WINDOW_COLUMNS = [ARM, "optimizer", "level", "epoch", "gradient_epochs", "best_loss", "width",
                  "points", "grid_lrs", "lr_low", "lr_high"]  # fmt: skip


# -- the windows ----------------------------------------------------------------------------------


def window(
    x: Sequence[float], loss: Sequence[float], best: float, factor: float = FACTOR
) -> tuple[float, int, float, float]:
    """The set of ``x`` where the loss is at most ``factor * best``, from its values on a grid:
    (its measure, the number of grid points in it, its lowest and highest x; NaN ends for an
    empty set).

    Between neighbouring grid points with finite losses, log(loss) is linear in x, and the part
    of the segment below the threshold counts: all of it, none, or the part up to the crossing.
    A segment with an infinite (diverged) or NaN (no result) end adds nothing: the window ends
    at its last finite grid point, never extrapolated towards a loss there is none of. So an
    isolated qualifying point adds 0 to the measure and 1 to the count. Without a finite
    positive ``best`` the set is empty."""
    if not factor >= 1:
        raise ValueError(f"factor must be at least 1, got {factor}")
    if len(x) != len(loss):
        raise ValueError(f"x and loss must have one value per grid point: {len(x)}, {len(loss)}")
    order = np.argsort(np.asarray(x, float))
    x, loss = np.asarray(x, float)[order], np.asarray(loss, float)[order]
    if not (math.isfinite(best) and best > 0):
        return 0.0, 0, math.nan, math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.log(loss / (factor * best))  # <= 0 inside; inf diverged; NaN no result
    inside = excess <= 0
    ends, width = list(x[inside]), 0.0
    for i in range(len(x) - 1):
        a, b, step = excess[i], excess[i + 1], x[i + 1] - x[i]
        if not (np.isfinite(a) and np.isfinite(b)) or min(a, b) > 0:
            continue
        if max(a, b) <= 0:
            low, high = x[i], x[i + 1]
        elif a <= 0:
            low, high = x[i], x[i] + step * a / (a - b)
        else:
            low, high = x[i + 1] - step * b / (b - a), x[i + 1]
        width += high - low
        ends += [low, high]
    if not ends:
        return 0.0, 0, math.nan, math.nan
    return width, int(inside.sum()), min(ends), max(ends)


def radius_levels(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per sharpness-aware (arm, rho): its ``level`` and the level's realised
    ``radius`` (see the module docstring)."""
    sam = runs[runs["rho"].notna()]
    grids = sam.groupby(ARM)["rho"].unique()
    count = max((len(g) for g in grids), default=0)
    rows = [
        {ARM: arm, "rho": rho, "level": i if len(rhos) > 1 else count // 2}
        for arm, rhos in grids.items()
        for i, rho in enumerate(sorted(rhos))
    ]
    levels = pd.DataFrame(rows, columns=[ARM, "rho", "level"])
    realised = sam.merge(levels, on=[ARM, "rho"]).groupby("level")["perturbation_norm_first"]
    return levels.assign(radius=levels["level"].map(realised.median()))


def probe_losses(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per complete run and epoch 1..its ``epochs``: ``probe_loss`` at the end of that
    epoch (``metrics``: per-epoch rows, ``analysis.results.read_metrics``); infinite from the
    epoch a run diverged in, NaN where a run logged none."""
    complete = runs[runs["status"].isin(COMPLETE)]
    table = complete.assign(epoch=[list(range(1, int(n) + 1)) for n in complete["epochs"]])
    table = table.explode("epoch").astype({"epoch": int})
    if "probe_loss" in metrics:
        logged = metrics[["run_id", "epoch", "probe_loss"]].astype({"epoch": int})
    else:
        logged = pd.DataFrame({"run_id": pd.Series(dtype=str), "epoch": pd.Series(dtype=int)})
    # A resumed run's metrics are rewritten from its checkpoint: the last row of an epoch holds.
    logged = logged.drop_duplicates(["run_id", "epoch"], keep="last")
    table = table.merge(logged, on=["run_id", "epoch"], how="left")
    loss = table.get("probe_loss", pd.Series(math.nan, index=table.index)).astype(float)
    first_bad = table["diverged_epoch"].fillna(table["epochs_completed"] + 1).fillna(1)
    gone = table["status"].eq("diverged") & table["epoch"].ge(first_bad)
    return table.assign(probe_loss=loss.mask(gone, math.inf)).sort_values(["run_id", "epoch"])


def cell_losses(runs: pd.DataFrame, metrics: pd.DataFrame, levels: pd.DataFrame) -> pd.DataFrame:
    """Per cell and epoch, the median ``probe_loss`` over its seeds (one in the grid), with the
    cell's radius ``level`` (NaN for a base optimizer)."""
    keys = [ARM, "optimizer", "lr", "rho", "epochs", "epoch"]
    table = probe_losses(runs, metrics)
    cells = table.groupby(keys, dropna=False)["probe_loss"].median().reset_index()
    return cells.merge(levels[[ARM, "rho", "level"]], on=[ARM, "rho"], how="left")


def finite_min(losses: pd.Series) -> float:
    """The smallest finite loss; NaN if none is finite (all diverged or missing)."""
    finite = losses[np.isfinite(losses)]
    return float(finite.min()) if len(finite) else math.nan


def lr_windows(cells: pd.DataFrame, factor: float = FACTOR) -> pd.DataFrame:
    """Per arm, radius level and budget (epoch): the lr window, the :func:`window` in
    log10(lr) of the cells' losses at that level against the arm's best at that budget over
    all its radii (a radius at which nothing trains has no window, rather than one as wide as
    the grid around its least bad cell), its ``width`` in decades, its qualifying ``points`` of
    ``grid_lrs``, its ends ``lr_low`` and ``lr_high``; ``gradient_epochs``, the budget in
    epochs of one gradient a step (twice the epochs for a sharpness-aware arm), which pairs a
    base at 2e with a method at e."""
    bests = cells.groupby([ARM, "epoch"])["probe_loss"].agg(finite_min)
    rows = []
    for (arm, level, epoch), at in cells.groupby([ARM, "level", "epoch"], dropna=False):
        best = bests[(arm, epoch)]
        width, points, low, high = window(np.log10(at["lr"]), at["probe_loss"], best, factor)
        gradient_epochs = epoch * (2 if at["rho"].notna().any() else 1)
        rows.append([arm, at["optimizer"].iloc[0], level, epoch, gradient_epochs, best, width,
                     points, len(at), 10**low, 10**high])  # fmt: skip
    return pd.DataFrame(rows, columns=WINDOW_COLUMNS)


def radius_windows(
    cells: pd.DataFrame, levels: pd.DataFrame, factor: float = FACTOR
) -> pd.DataFrame:
    """Per sharpness-aware arm with two or more levels, budget and lr: the ``width``, in decades
    of realised radius (each level at its ``radius``), of the :func:`window` where the loss is
    at most ``factor`` x the arm's best at that budget over its whole grid. The whole grid, not
    that lr: at an lr where nothing trains every radius would otherwise be in the window."""
    radius = levels.drop_duplicates("level").set_index("level")["radius"]
    sam = cells.dropna(subset=["level"]).assign(radius=lambda f: f["level"].map(radius))
    sam = sam[sam["radius"].gt(0)]
    rows = []
    for (arm, epoch), at in sam.groupby([ARM, "epoch"]):
        if at["level"].nunique() < 2:
            continue
        best = finite_min(at["probe_loss"])
        for lr, cell in at.groupby("lr"):
            width, points, _, _ = window(np.log10(cell["radius"]), cell["probe_loss"], best, factor)
            rows.append([arm, epoch, lr, width, points, len(cell)])
    return pd.DataFrame(rows, columns=[ARM, "epoch", "lr", "width", "points", "levels"])


RADIUS_COLUMNS = [ARM, "optimizer", "level", "epoch", "radius", "low", "high", "runs"]


def realised_radii(runs: pd.DataFrame, metrics: pd.DataFrame, levels: pd.DataFrame) -> pd.DataFrame:
    """Per sharpness-aware arm, radius level and epoch, the realised perturbation of the level's
    runs that did not diverge: at epoch 0 each run's first ascent ``||e_1||``
    (``perturbation_norm_first``), at epoch e the mean ``||e_t||`` over that epoch's ascents
    (``perturbation_norm``); ``radius`` their median, ``low`` and ``high`` their extremes,
    ``runs`` their count. The levels match the arms at epoch 0 only: an accumulated or
    moment-based ascent shrinks as its denominator grows, SAM's fixed-radius ascent stays at
    rho."""
    finished = runs[runs["status"].eq("ok") & runs["rho"].notna()]
    finished = finished.merge(levels[[ARM, "rho", "level"]], on=[ARM, "rho"])
    if finished.empty or "perturbation_norm" not in metrics:
        return pd.DataFrame(columns=RADIUS_COLUMNS)
    keys = ["run_id", ARM, "optimizer", "level"]
    # A resumed run's metrics are rewritten from its checkpoint: the last row of an epoch holds.
    logged = metrics.drop_duplicates(["run_id", "epoch"], keep="last")
    logged = logged.merge(finished[[*keys, "epochs"]], on="run_id")
    logged = logged[logged["epoch"].le(logged["epochs"])]
    first = finished.assign(epoch=0, perturbation_norm=finished["perturbation_norm_first"])
    table = pd.concat([first[[*keys, "epoch", "perturbation_norm"]],
                       logged[[*keys, "epoch", "perturbation_norm"]]])  # fmt: skip
    table = table.dropna(subset=["perturbation_norm"]).astype(
        {"epoch": int, "perturbation_norm": float}
    )
    radii = table.groupby([ARM, "optimizer", "level", "epoch"])["perturbation_norm"]
    return radii.agg(radius="median", low="min", high="max", runs="count").reset_index()


# -- the lowest learning rate that trains, against the budget in steps ---------------------------

# A slope over all of an arm's budgets needs MIN_BUDGETS of them inside the grid, spanning at
# least SLOPE_SPAN decades of steps (a factor of about 3); the late slope takes the budgets
# within SLOPE_SPAN of the sharpness-aware arms' last one (an arm's own last, without them), so
# that every arm's is over the same steps. Each comes with its range over the fits that leave
# one budget out, as a single budget can swing a slope over so short a span; with MIN_BUDGETS,
# those fits have three points.
SLOPE_SPAN, MIN_BUDGETS = 0.5, 4
# The lowest lr that trains falls with the budget when a decade of steps lowers it by at least
# a quarter decade: half what an lr x sqrt(steps) law would.
FALLS = -0.25
# Where the lowest lr that trains lies: interpolated between two grid lrs; at most a grid lr
# (the one below it has no result, or no drop in loss to interpolate on); at most the lowest
# lr of the arm's grid, which trains; nowhere in the grid.
INSIDE, BOUND, BELOW, NONE = "inside", "bound", "below", "none"
LOWEST_COLUMNS = [ARM, "optimizer", "level", "step", "lr", "where", "grid_lrs"]
SLOPE_COLUMNS = [ARM, "optimizer", "level", "slope", "slope_low", "slope_high", "budgets",
                 "first_step", "last_step", "lr_first", "lr_last", "late_slope", "late_low",
                 "late_high", "late_step"]  # fmt: skip


def budget_losses(runs: pd.DataFrame, metrics: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """One row per complete run and budget in optimizer steps: its ``probe_loss`` after each
    epoch (:func:`probe_losses`, at ``epoch x steps_per_epoch``: infinite from the epoch a run
    diverged in) and after each of its ``probe_steps`` (``probes``:
    :func:`analysis.results.read_probes`); ``ratio``, that loss over the run's initial one, and
    ``held``, the largest ratio from that budget to the run's end (a budget without a probe, one
    a diverged run stopped short of, takes the largest after it). Runs that recorded no
    ``steps_per_epoch`` have no budgets here."""
    complete = runs[runs["status"].isin(COMPLETE)].dropna(subset=["steps_per_epoch"])
    keys = ["run_id", ARM, "optimizer", "lr", "rho", "probe_loss_initial"]
    ends = probe_losses(complete, metrics)
    ends = ends.assign(step=(ends["epoch"] * ends["steps_per_epoch"]).astype(int))
    early = probes.merge(complete[keys], on="run_id")
    table = pd.concat([ends[[*keys, "step", "probe_loss"]], early[[*keys, "step", "probe_loss"]]])
    table = table.drop_duplicates(["run_id", "step"]).astype({"step": int})
    # Every budget of its arm for every run, NaN where it took no probe.
    steps = table.groupby(ARM)["step"].unique()
    every = pd.DataFrame([(run, step) for run, arm in zip(complete["run_id"], complete[ARM],
                                                          strict=True)
                          for step in steps.get(arm, [])], columns=["run_id", "step"])  # fmt: skip
    table = every.merge(complete[keys], on="run_id").merge(
        table[["run_id", "step", "probe_loss"]], on=["run_id", "step"], how="left"
    )
    table = table.sort_values(["run_id", "step"], ignore_index=True)
    table["ratio"] = table["probe_loss"] / table["probe_loss_initial"]
    # From the end back, the worst so far; cummax leaves a NaN where it is, so it is filled
    # with the worst after it (each run's last budget is an epoch's end, never without a value
    # unless the run logged none).
    backwards = table.iloc[::-1].groupby("run_id")["ratio"]
    held = backwards.cummax().groupby(table["run_id"]).ffill()
    return table.assign(held=held.iloc[::-1])


def lowest_training_lr(lrs: Sequence[float], ratios: Sequence[float]) -> tuple[float, str]:
    """The lowest learning rate at which a run trains by a budget, from each grid lr's ``ratios``
    (:func:`budget_losses`' ``held``: infinite, diverged; NaN, no result): ``(lr, where)``. A
    run trains by a budget when its loss stays below ``STALLED`` x its initial one (the line a
    stalled run ends above) from that budget to its end: a loss that dips on its way to a
    divergence or a stall is not training. So the lowest lr that trains can only fall as the
    budget grows; how fast is what it measures.

    ``where``: ``INSIDE``, log10(lr) interpolated between the first grid lr that trains and
    the one below it, linearly in the log of the loss drop, 1 - ratio, to the drop 1 - STALLED
    (where the drop grows as a power of the lr at a given budget, as at small learning rates,
    the interpolation is exact); ``BOUND``, at most the first grid lr that trains, as the one
    below has no result or no drop (its loss rose, or it diverged); ``BELOW``, at most the
    grid's lowest lr, which trains; ``NONE``, no grid lr trains (NaN)."""
    order = np.argsort(np.asarray(lrs, float))
    lr, ratio = np.asarray(lrs, float)[order], np.asarray(ratios, float)[order]
    trains = np.flatnonzero(ratio < STALLED)  # NaN and infinite ratios never count
    if not len(trains):
        return math.nan, NONE
    k = int(trains[0])
    if k == 0:
        return float(lr[0]), BELOW
    below, above = 1 - ratio[k - 1], 1 - ratio[k]
    if not (np.isfinite(below) and below > 0):  # NaN: no result; <= 0 or -inf: no drop
        return float(lr[k]), BOUND
    a, b = np.log10(lr[k - 1 : k + 1])
    share = (math.log(1 - STALLED) - math.log(below)) / (math.log(above) - math.log(below))
    return float(10 ** (a + share * (b - a))), INSIDE


def lowest_training_lrs(
    budgets: pd.DataFrame, levels: pd.DataFrame, runs: pd.DataFrame
) -> pd.DataFrame:
    """Per arm, radius level (NaN for a base) and budget ``step``: :func:`lowest_training_lr`
    over every lr the arm's ``runs`` have at that level (a failed run, or one without a budget
    there, is a cell without a result), each cell's ``held`` the median over its seeds (one in
    the grid); ``grid_lrs``, how many lrs that is."""
    keys = [ARM, "optimizer", "level", "step"]
    table = budgets.merge(levels[[ARM, "rho", "level"]], on=[ARM, "rho"], how="left")
    cells = table.groupby([*keys, "lr"], dropna=False)["held"].median()
    grid = runs.merge(levels[[ARM, "rho", "level"]], on=[ARM, "rho"], how="left")
    # Keyed by the level's rank, a base's -1: NaN finds nothing in an index.
    planned = {(arm, -1 if math.isnan(level) else level): np.sort(own["lr"].unique())
               for (arm, level), own in grid.groupby([ARM, "level"], dropna=False)}  # fmt: skip
    rows = []
    for (arm, optimizer, level, step), at in cells.groupby(level=keys, dropna=False):
        lrs = planned[(arm, -1 if math.isnan(level) else level)]
        held = at.droplevel(keys).reindex(lrs)
        rows.append([arm, optimizer, level, step, *lowest_training_lr(lrs, held), len(lrs)])
    return pd.DataFrame(rows, columns=LOWEST_COLUMNS)


def lowest_lr_slopes(lowest: pd.DataFrame, late_end: int | None = None) -> pd.DataFrame:
    """Per arm and level, the slope of log10 of the lowest lr that trains against log10 of the
    budget in steps, over the budgets where it is ``INSIDE`` the grid, if they are
    ``MIN_BUDGETS`` or more and span ``SLOPE_SPAN`` decades of steps: -1 where progress at
    small learning rates goes as lr x steps, -1/2 as lr x sqrt(steps) (an AdaGrad-type step, lr
    over the root of the summed squared gradients), 0 where no budget moves it. Least squares,
    each budget weighted by the decades of steps it stands for (half the gap to each
    neighbour), so that the epochs' ends, evenly spaced in steps and so crowded at the top in
    log steps, do not outweigh the probes below an epoch; ``slope_low`` and ``slope_high``, the
    range of the fits that leave one budget out. ``budgets``: how many; the first and last of
    them, and the lr at each. ``late_slope`` (``late_low``, ``late_high``), the same over the
    budgets within ``SLOPE_SPAN`` decades of ``late_end`` (an arm's own last budget if None)
    and not past it (from ``late_step``; NaN with fewer than ``MIN_BUDGETS``): whether the
    lowest lr still falls at the end of the budget, over the same steps for every arm."""
    rows = []
    inside = lowest[lowest["where"].eq(INSIDE)].sort_values("step")
    for (arm, optimizer, level), at in inside.groupby([ARM, "optimizer", "level"], dropna=False):
        x, y = np.log10(at["step"].to_numpy(float)), np.log10(at["lr"].to_numpy(float))
        if len(at) < MIN_BUDGETS or x[-1] - x[0] < SLOPE_SPAN:
            continue
        end = x[-1] if late_end is None else math.log10(late_end)
        late = (x >= end - SLOPE_SPAN) & (x <= end)
        whole = _slopes(x, y)
        enough = late.sum() >= MIN_BUDGETS
        tail = _slopes(x[late], y[late]) if enough else (math.nan,) * 3
        late_step = int(at["step"].to_numpy()[late][0]) if enough else None
        rows.append([arm, optimizer, level, *whole, len(at), int(at["step"].iloc[0]),
                     int(at["step"].iloc[-1]), at["lr"].iloc[0], at["lr"].iloc[-1], *tail,
                     late_step])  # fmt: skip
    return pd.DataFrame(rows, columns=SLOPE_COLUMNS).astype({"late_step": "Int64"})


def _slopes(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """The weighted least-squares slope of ``y`` against ``x`` (see :func:`lowest_lr_slopes`)
    and the smallest and largest of those that leave one point out."""
    out = [_fit(np.delete(x, i), np.delete(y, i)) for i in range(len(x))]
    return _fit(x, y), min(out), max(out)


def _fit(x: np.ndarray, y: np.ndarray) -> float:
    gaps = np.diff(x)
    weight = np.concatenate([[gaps[0]], gaps[:-1] + gaps[1:], [gaps[-1]]]) / 2
    return float(np.polyfit(x, y, 1, w=np.sqrt(weight))[0])


# -- how runs end ---------------------------------------------------------------------------------


def failure(status: str, initial: float, losses: Sequence[float]) -> str | None:
    """How a run ended, from its status, its initial probe loss and its probe loss after each
    epoch: ``diverged`` (its status), ``stalled`` (final loss >= ``STALLED`` x initial), ``still
    improving`` (the loss fell by more than ``IMPROVING`` over the last fifth of its epochs, at
    least the last one: from epoch n - max(1, n // 5), epoch 0 the initial loss), else
    ``trained``; None without the losses to tell."""
    if status == "diverged":
        return "diverged"
    curve = [initial, *losses]
    if len(curve) < 2 or not np.isfinite(curve).all():
        return None
    final = curve[-1]
    if final >= STALLED * initial:
        return "stalled"
    if final < (1 - IMPROVING) * curve[-1 - max(1, len(losses) // 5)]:
        return "still improving"
    return "trained"


def min_sq_grads(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.Series:
    """By run id, the quantity the theorem bounds, on the probe: the smallest squared norm of
    the training-subset gradient over the run's epochs, relative to its value at initialisation
    (the start itself left out, where it is 1 by definition); NaN for a diverged run or one
    that logged none."""
    finished = runs[runs["status"].eq("ok")].set_index("run_id")
    if "probe_grad_norm" not in metrics or finished.empty:
        return pd.Series(math.nan, index=runs["run_id"])
    # A resumed run's metrics are rewritten from its checkpoint: the last row of an epoch holds.
    logged = metrics.drop_duplicates(["run_id", "epoch"], keep="last")
    logged = logged.dropna(subset=["probe_grad_norm"])
    logged = logged[logged["run_id"].isin(finished.index)]
    logged = logged[logged["epoch"].le(logged["run_id"].map(finished["epochs"]))]
    smallest = logged.groupby("run_id")["probe_grad_norm"].min()
    relative = (smallest / finished["probe_grad_norm_initial"].reindex(smallest.index)) ** 2
    return relative.reindex(runs["run_id"])


def failures(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per complete run: its arm, lr, rho, :func:`failure` class (None left out),
    ``final_loss``, its last probe loss (NaN without one), and ``min_sq_grad``
    (:func:`min_sq_grads`)."""
    curves = probe_losses(runs, metrics).groupby("run_id")["probe_loss"].apply(list)
    complete = runs[runs["status"].isin(COMPLETE)]
    own = [curves.get(run.run_id, []) for run in complete.itertuples()]
    classes = [
        failure(run.status, run.probe_loss_initial, curve)
        for run, curve in zip(complete.itertuples(), own, strict=True)
    ]
    table = complete[["run_id", ARM, "optimizer", "lr", "rho"]].assign(
        failure=classes,
        final_loss=[curve[-1] if curve else math.nan for curve in own],
        min_sq_grad=min_sq_grads(complete, metrics).to_numpy(),
    )
    return table.dropna(subset=["failure"])


def failure_counts(classes: pd.DataFrame) -> pd.DataFrame:
    """Per arm (in the study's order), its runs in each class of ``FAILURES``, and ``runs``."""
    counts = pd.crosstab(classes[ARM], classes["failure"])
    counts = counts.reindex(
        index=common.ordered(counts.index), columns=list(FAILURES), fill_value=0
    )
    return counts.assign(runs=counts.sum(axis=1)).rename_axis(ARM).reset_index()


def recovered(status: str, initial: float, final: float) -> str | None:
    """A rerun without the stop rule: ``diverged`` (a non-finite loss), ``trained`` (ok, final
    probe loss below ``TRAINED`` x initial), ``stalled`` (ok, not trained); None without the
    losses to tell."""
    if status == "diverged":
        return "diverged"
    if not (np.isfinite(initial) and np.isfinite(final)):
        return None
    return "trained" if final < TRAINED * initial else "stalled"


def _configs(collection: Collection) -> dict[str, Mapping[str, Any]]:
    if collection.plan is not None:
        return dict(collection.plan.runs)
    return {r: files.read_config(collection.store / r) or {} for r in collection.runs["run_id"]}


def _without_stop_rule(config: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in config.items() if k != STOP_RULE}, sort_keys=True)


def recovery(grid_store: Collection, reruns: Collection, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per complete rerun: the grid run it repeats (``grid_run_id``, None if none: the
    same config but ``divergence_loss``), that run's arm label, lr and rho, and the rerun's
    :func:`recovered` ``outcome`` (``metrics``: the reruns' per-epoch rows)."""
    configs = _configs(grid_store)
    labels = arm_labels(configs.values())
    grid_ids = {_without_stop_rule(config): run_id for run_id, config in configs.items()}
    rerun_configs = _configs(reruns)
    losses = probe_losses(reruns.runs, metrics)
    final = losses[losses["epoch"].eq(losses["epochs"])].set_index("run_id")["probe_loss"]
    rows = []
    for run in reruns.runs[reruns.runs["status"].isin(COMPLETE)].itertuples():
        match = grid_ids.get(_without_stop_rule(rerun_configs.get(run.run_id, {})))
        outcome = recovered(run.status, run.probe_loss_initial, final.get(run.run_id, math.nan))
        arm = labels[arm_key(configs[match])] if match else None
        rows.append([run.run_id, match, arm, run.lr, run.rho, outcome])
    return pd.DataFrame(rows, columns=["run_id", "grid_run_id", ARM, "lr", "rho", "outcome"])


# -- at the selected cells ------------------------------------------------------------------------


def arms(runs: pd.DataFrame) -> pd.DataFrame:
    """Per arm (the index): its ``optimizer``, ``epochs`` and whether it is ``sharpness_aware``
    (has a rho)."""
    return runs.groupby(ARM).agg(
        optimizer=("optimizer", "first"),
        epochs=("epochs", "max"),
        sharpness_aware=("rho", lambda rho: bool(rho.notna().any())),
    )


def with_endings(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``ending``, how each complete run ended by :func:`failure` (NaN where its
    losses cannot tell)."""
    endings = failures(runs, metrics).set_index("run_id")["failure"]
    return runs.assign(ending=runs["run_id"].map(endings))


def selected_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Per arm of the confirmation store (one cell each, its runs' ``ending`` a :func:`failure`
    class, see :func:`with_endings`): its lr, rho, ``seeds`` (complete runs) and how many of
    them ``diverged`` or ``stalled``, test accuracy ``test_mean``, ``test_std`` and 95% t
    half-width ``test_ci`` (a diverged seed at chance), and ``val_std``, the std of validation
    accuracy over its ``val_seeds`` that neither diverged nor stalled: the seed noise of one run
    at that cell that trains (a stalled seed is a failure, counted as one, and its chance-level
    accuracy would put the noise of a trained run at tens of points)."""
    rows = []
    complete = scored(runs)[runs["status"].isin(COMPLETE)]
    for arm, own in complete.groupby(ARM):
        if len(own[["lr", "rho"]].drop_duplicates()) > 1:
            raise ValueError(f"runs: the confirmation arm {arm} has more than one cell")
        first = own.iloc[0]
        ok = own.loc[own["status"].eq("ok") & own["ending"].ne("stalled"), "val_acc"]
        rows.append([arm, first["optimizer"], first["epochs"], first["lr"], first["rho"], len(own),
                     int(own["status"].eq("diverged").sum()),
                     int(own["ending"].eq("stalled").sum()),
                     *mean_std_ci(own["test_score"].dropna()),
                     ok.std(ddof=1) if len(ok) > 1 else math.nan, len(ok)])  # fmt: skip
    table = pd.DataFrame(rows, columns=SELECTED_COLUMNS)
    return table.set_index(ARM).loc[common.ordered(table[ARM])].reset_index()


def paired_difference(
    differences: Sequence[float], n_boot: int = N_BOOT, seed: int = SEED
) -> dict[str, Any]:
    """The mean of paired ``differences`` with its 95% paired t-interval (``t_low``, ``t_high``)
    and two-sided paired t p-value ``p``, its percentile bootstrap interval (``boot_low``,
    ``boot_high``: ``n_boot`` resamples of the pairs with replacement,
    ``numpy.random.default_rng(seed)``), and the ``verdict``: ``higher`` or ``lower`` when both
    intervals exclude 0 on that side (with a handful of pairs the percentile bootstrap is too
    narrow, the t-interval is the stricter), else ``no difference resolved``."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    d = np.asarray(differences, float)
    mean, std, ci = mean_std_ci(d)
    boot = [math.nan, math.nan]
    if len(d) > 1:
        draws = np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))
        boot = np.percentile(d[draws].mean(axis=1), [2.5, 97.5]).tolist()
    t_low, t_high = mean - ci, mean + ci
    p = math.nan
    if len(d) > 1:  # no spread: p is 0 for a nonzero mean, 1 for a zero one
        p = t_p_value(mean / (std / math.sqrt(len(d))), len(d) - 1) if std else float(mean == 0)
    verdict = "no difference resolved"
    if t_low > 0 and boot[0] > 0:
        verdict = "higher"
    elif t_high < 0 and boot[1] < 0:
        verdict = "lower"
    return {"pairs": len(d), "mean": mean, "std": std, "t_low": t_low, "t_high": t_high,
            "boot_low": boot[0], "boot_high": boot[1], "verdict": verdict, "p": p}  # fmt: skip


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of the p-values ``p`` for testing them all at once (the
    family-wise error held at the level they are compared with); NaN stays NaN, outside the
    family."""
    finite = sorted((value, i) for i, value in enumerate(p) if not math.isnan(value))
    adjusted, running = [math.nan] * len(p), 0.0
    for rank, (value, i) in enumerate(finite):
        running = max(running, min(1.0, (len(finite) - rank) * value))
        adjusted[i] = running
    return adjusted


def contrasts(runs: pd.DataFrame, n_boot: int = N_BOOT, seed: int = SEED) -> pd.DataFrame:
    """Per sharpness-aware arm of the confirmation store with a base (``common.BASE_OF``), and
    per ``comparison``: its test accuracy minus its base's, seed by seed, against the base at
    the same epochs (``EQUAL``) and at twice them (``MATCHED``); then each one-change contrast
    of ``ONE_CHANGE`` whose two arms ran at the same epochs (``ASCENT``, ``DESCENT``), each arm
    at its own selected cell; each as :func:`paired_difference`, with ``untrained_pairs`` the
    pairs in which either run diverged or stalled (its ``ending``, :func:`with_endings`: at or
    near chance, one such pair can set the interval's width) and ``holm_p`` its p-value adjusted
    over them all (:func:`holm`)."""
    complete = scored(runs)[runs["status"].isin(COMPLETE)].dropna(subset=["test_score"])
    table, rows = arms(complete), []

    def paired(arm: str, other: str) -> dict[str, Any]:
        a, b = (complete[complete[ARM].eq(x)].set_index("seed") for x in (arm, other))
        differences = (a["test_score"] - b["test_score"]).dropna()
        untrained = a["ending"].isin(UNTRAINED) | b["ending"].isin(UNTRAINED)
        return {"untrained_pairs": int(untrained.reindex(differences.index).sum()),
                **paired_difference(differences.to_numpy(), n_boot, seed)}  # fmt: skip

    for arm in common.ordered(table.index):
        method = table.loc[arm]
        if not method["sharpness_aware"] or not common.BASE_OF.get(method["optimizer"]):
            continue
        for comparison, times in ((EQUAL, 1), (MATCHED, 2)):
            base = table.index[
                ~table["sharpness_aware"]
                & table["optimizer"].eq(common.BASE_OF[method["optimizer"]])
                & table["epochs"].eq(times * method["epochs"])
            ]
            if len(base) != 1:
                continue
            rows.append({"method": arm, "base": base[0], "comparison": comparison,
                         "epochs": method["epochs"], "base_epochs": times * method["epochs"],
                         **paired(arm, base[0])})  # fmt: skip
    sam = table[table["sharpness_aware"]]
    for optimizer, control, comparison in ONE_CHANGE:
        for arm in sam.index[sam["optimizer"].eq(optimizer)]:
            same_epochs = sam["epochs"].eq(sam.at[arm, "epochs"])
            other = sam.index[sam["optimizer"].eq(control) & same_epochs]
            if len(other) == 1:
                rows.append({"method": arm, "base": other[0], "comparison": comparison,
                             "epochs": sam.at[arm, "epochs"], "base_epochs": sam.at[arm, "epochs"],
                             **paired(arm, other[0])})  # fmt: skip
    table = pd.DataFrame(rows, columns=CONTRAST_COLUMNS)
    return table.assign(holm_p=holm(table["p"].tolist()))


def seed_noise(grid_runs: pd.DataFrame, selected: pd.DataFrame) -> pd.Series:
    """Per grid arm with a confirmation arm (the same optimizer and epochs in ``selected``): the
    seed noise of one run there, its ``val_std`` (NaN with fewer than two seeds that trained)."""
    table = arms(grid_runs)
    sigma = selected.set_index(["optimizer", "epochs"])["val_std"]
    keys = {arm: (table.at[arm, "optimizer"], table.at[arm, "epochs"]) for arm in table.index}
    return pd.Series({arm: sigma[key] for arm, key in keys.items() if key in sigma.index})


def near_best(grid_runs: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """Per grid arm with a confirmation arm, its :func:`seed_noise` ``sigma`` and the grid cells
    ``analysis.results.best_settings`` finds near best by it: whose validation score (a diverged
    run at chance) is within ``threshold`` = ``NEAR_SE`` x sigma of its best cell's, their
    number ``near`` of ``cells`` and ``share`` (NaN where sigma is)."""
    noise = seed_noise(grid_runs, selected)
    best = best_settings(aggregate(grid_runs), noise).set_index(ARM)
    best = best.loc[common.ordered(a for a in noise.index if best.at[a, "grid_cells"])]
    return pd.DataFrame({
        ARM: best.index, "sigma": best["seed_noise"], "threshold": best["near_threshold"],
        "near": (best["frac_near_best"] * best["grid_cells"]).round().astype("Int64"),
        "cells": best["grid_cells"],
        "share": best["frac_near_best"],
    }).reset_index(drop=True)  # fmt: skip


def tuning_cost(grid_runs: pd.DataFrame) -> pd.DataFrame:
    """``analysis.results.expected_best_of_k`` on the grid, with ``epoch_equivalents``: k times
    a trial's gradient evaluations in epochs of one gradient a step (2E for a sharpness-aware
    arm at E epochs, 2E for a base at 2E), and ``measured_s``: k times the arm's mean measured
    training seconds a grid run (a run stopped early costs less, as it would in a search).
    Each arm's trials are its grid runs as they ran, a base at 2E epochs (its test accuracy
    exists only at the end), so the bases are compared at equal gradient evaluations."""
    curves = expected_best_of_k(grid_runs, n_boot=TUNING_BOOT, seed=SEED)
    table = arms(grid_runs)
    per_trial = table["epochs"] * np.where(table["sharpness_aware"], 2, 1)
    seconds = grid_runs[grid_runs["status"].isin(COMPLETE)].groupby(ARM)["wall_s"].mean()
    return curves.assign(
        epoch_equivalents=curves["k"] * curves[ARM].map(per_trial),
        measured_s=curves["k"] * curves[ARM].map(seconds),
    )


# -- everything -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyTables:
    """What the sentences and figures are made of, each as its function describes it; None
    where the store it needs is absent. ``grid_runs``: the grid store's runs."""

    factor: float
    failure_meanings: Mapping[str, str]
    stalled: float = STALLED
    grid_runs: pd.DataFrame | None = None
    levels: pd.DataFrame | None = None
    windows: pd.DataFrame | None = None
    radius_windows: pd.DataFrame | None = None
    realised_radii: pd.DataFrame | None = None
    lowest_lrs: pd.DataFrame | None = None
    lowest_lr_slopes: pd.DataFrame | None = None
    failures: pd.DataFrame | None = None
    failure_counts: pd.DataFrame | None = None
    tuning: pd.DataFrame | None = None
    selected: pd.DataFrame | None = None
    contrasts: pd.DataFrame | None = None
    near_best: pd.DataFrame | None = None
    recovery: pd.DataFrame | None = None
    stop_rule: float | None = None  # the grid's divergence_loss

    def csvs(self) -> dict[str, pd.DataFrame]:
        """The tables written as CSV, by file stem."""
        named = {"levels": self.levels, "windows": self.windows, "tuning": self.tuning,
                 "radius_windows": self.radius_windows, "realised_radius": self.realised_radii,
                 "lowest_lr": self.lowest_lrs, "lowest_lr_slopes": self.lowest_lr_slopes,
                 "failures": self.failure_counts,
                 "failure_runs": self.failures, "selected": self.selected,
                 "contrasts": self.contrasts, "near_best": self.near_best,
                 "recovery": self.recovery}  # fmt: skip
        return {f"budget_{name}": t for name, t in named.items() if t is not None}


def _collect(path: Path | None) -> Collection | None:
    """The store at ``path``; None for no path, no directory or no results."""
    if path is None or not Path(path).is_dir():
        return None
    collection = collect(Path(path))
    return None if collection.runs.empty else collection


def read_tables(
    grid_store: Path | None, confirm: Path | None = None, recovery_store: Path | None = None
) -> StudyTables:
    """Read the three stores (see the module docstring) and compute every table."""
    g, c, r = (_collect(p) for p in (grid_store, confirm, recovery_store))
    tables: dict[str, Any] = {}
    if g is not None:
        metrics = read_metrics(g.store, g.runs["run_id"])
        levels = radius_levels(g.runs)
        cells = cell_losses(g.runs, metrics, levels)
        stops = {config.get(STOP_RULE) for config in _configs(g).values()} - {None}
        classes = failures(g.runs, metrics)
        budgets = budget_losses(g.runs, metrics, read_probes(g.store, g.runs["run_id"]))
        lowest = lowest_training_lrs(budgets, levels, g.runs)
        sam_steps = lowest.loc[lowest["level"].notna(), "step"]
        late_end = int(sam_steps.max()) if len(sam_steps) else None
        tables |= {"grid_runs": g.runs, "levels": levels, "windows": lr_windows(cells),
                   "radius_windows": radius_windows(cells, levels),
                   "realised_radii": realised_radii(g.runs, metrics, levels), "failures": classes,
                   "lowest_lrs": lowest, "lowest_lr_slopes": lowest_lr_slopes(lowest, late_end),
                   "failure_counts": failure_counts(classes), "tuning": tuning_cost(g.runs),
                   "stop_rule": min(stops) if stops else None}  # fmt: skip
    if c is not None:
        confirmed = with_endings(c.runs, read_metrics(c.store, c.runs["run_id"]))
        tables |= {"selected": selected_cells(confirmed), "contrasts": contrasts(confirmed)}
        if g is not None:
            tables["near_best"] = near_best(g.runs, tables["selected"])
    if g is not None and r is not None:
        tables["recovery"] = recovery(g, r, read_metrics(r.store, r.runs["run_id"]))
    return StudyTables(factor=FACTOR, failure_meanings=FAILURES, **tables)


# -- the sentences --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyFindings:
    """The study in sentences, each number with its uncertainty; ``statement``: the short plain
    paragraph of what they add up to."""

    windows: list[str]
    failures: list[str]
    generalisation: list[str]
    near_best: list[str]
    recovery: list[str]
    tuning: list[str]
    statement: list[str]

    def all(self) -> list[str]:
        return [sentence for part in fields(self) for sentence in getattr(self, part.name)]


def _sci(value: float, figures: int = 1) -> str:
    """An lr to one figure (or ``figures``), as the figures write it: 1e-3, 2e-1, 2.4e-3."""
    mantissa, exponent = f"{value:.{figures - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _names(arms: Sequence[str]) -> str:
    return ", ".join(common.label(arm) for arm in arms)


def log_step(values: Sequence[float]) -> float:
    """The decades between neighbouring distinct positive ``values`` (the median gap); 1
    without two."""
    logs = np.log10(np.unique([v for v in values if v > 0]))
    return float(np.median(np.diff(logs))) if len(logs) > 1 else 1.0


def grid_step(runs: pd.DataFrame) -> float:
    """The decades between neighbouring learning rates of the grid: what one seed a cell
    resolves a window's width and ends to."""
    return log_step(runs["lr"].dropna())


def compare(width: float, other: float, step: float) -> str:
    """``wider than`` or ``narrower than`` (by a grid ``step`` in decades or more), else
    ``about the same as``."""
    if width - other >= step:
        return "wider than"
    return "narrower than" if other - width >= step else "about the same as"


def _at(windows: pd.DataFrame, arm: str | None, level: float | None, epoch: int) -> Any:
    """The window row of ``arm`` at ``level`` (None: a base) after ``epoch`` epochs, or None."""
    same = windows["level"].isna() if level is None else windows["level"].eq(level)
    return next(
        windows[windows[ARM].eq(arm) & same & windows["epoch"].eq(epoch)].itertuples(), None
    )


def _arm_of(t: StudyTables, optimizer: str | None, sharpness_aware: bool) -> str | None:
    """The grid arm of ``optimizer`` with the most epochs (a base's run covers every shorter)."""
    table = arms(t.grid_runs)
    own = table[table["optimizer"].eq(optimizer) & table["sharpness_aware"].eq(sharpness_aware)]
    return None if own.empty else str(own["epochs"].idxmax())


def _budget(t: StudyTables) -> tuple[int, float | None]:
    """(E, the middle level): the sharpness-aware arms' epochs (every arm's if there are none),
    and the middle of the radius levels (None without levels)."""
    table = arms(t.grid_runs)
    sam = table[table["sharpness_aware"]]
    levels = t.levels["level"]
    middle = None if levels.empty else float(int(levels.max() + 1) // 2)
    return int((sam if len(sam) else table)["epochs"].max()), middle


def _seeds(t: StudyTables) -> str:
    seeds = t.grid_runs["seed"].nunique()
    return "one seed" if seeds == 1 else f"{seeds} seeds"


def _grid(t: StudyTables) -> str:
    lrs = t.grid_runs["lr"]
    return f"{lrs.nunique()} lrs over {math.log10(lrs.max() / lrs.min()):.0f} decades"


def _shown(row: Any) -> str:
    if row is None:
        return "not run"
    if row.points == 0:
        return "0 decades (no grid lr within)"
    return (f"{row.width:.1f} decades (lr {_sci(row.lr_low)} to {_sci(row.lr_high)}, "
            f"{row.points} of {row.grid_lrs} grid lrs)")  # fmt: skip


def _changes(t: StudyTables) -> tuple[int, int, list[tuple[str, Any, Any]]]:
    """(early, E, [(method, its window after ``early`` epochs, after E)]) at the middle level,
    early = E // 2 (at least 1), for SGD-SAM and the LightSAM variants in the grid."""
    epochs, middle = _budget(t)
    early, found = max(1, epochs // 2), []
    for arm in (_arm_of(t, optimizer, True) for optimizer in (REFERENCE, *VARIANTS)):
        rows = [_at(t.windows, arm, middle, e) for e in (early, epochs)]
        found += [(arm, *rows)] if arm and None not in rows else []
    return early, epochs, found


def _lower_end_moves_down(early: Any, final: Any, step: float) -> bool:
    """The window's lower end fell by a grid ``step`` or more (an empty window's is +inf)."""
    before = math.log10(early.lr_low) if early.points else math.inf
    return bool(final.points) and before - math.log10(final.lr_low) >= step


def _radius(value: float) -> str:
    return "not recorded" if math.isnan(value) else f"≈ {value:.2g}"


def _widest_radius_windows(t: StudyTables) -> pd.DataFrame:
    """Each arm's widest radius window over the lrs after E epochs (a :func:`radius_windows`
    row, by arm); empty without radius windows."""
    rw = t.radius_windows
    if rw is None or rw.empty:
        return pd.DataFrame(columns=[ARM]).set_index(ARM)
    final = rw[rw["epoch"].eq(_budget(t)[0])]
    return final.loc[final.groupby(ARM)["width"].idxmax()].set_index(ARM)


def window_sentences(t: StudyTables) -> list[str]:
    w = t.windows
    if w is None or w.empty:
        return []
    epochs, _ = _budget(t)
    out = [
        f"Learning-rate windows: the range of lr, in decades, over which the training-subset "
        f"loss after a budget of epochs is within {t.factor:g}x of the arm's best at that budget "
        f"(over all its radii), log-loss interpolated between the grid's {_grid(t)} and never "
        f"beyond a diverged or missing run. {_seeds(t).capitalize()} a cell: a window is known "
        f"to about a grid step ({grid_step(t.grid_runs):g} decade), and two differ only by a "
        "grid step or more."
    ]
    radius = t.levels.drop_duplicates("level").set_index("level")["radius"]
    for level in sorted(w["level"].dropna().unique()):
        shown = (f"{common.label(a)} {_shown(_at(w, a, level, epochs))}"
                 for a in common.ordered(w.loc[w["level"].eq(level), ARM]))  # fmt: skip
        out.append(f"Radius level {level:.0f} (realised ‖e₁‖ {_radius(radius[level])}), after "
                   f"{epochs} epochs: {'; '.join(shown)}.")  # fmt: skip
    bases = [f"{common.label(b)} {_shown(_at(w, b, None, epochs))} and "
             f"{_shown(_at(w, b, None, 2 * epochs))}"
             for b in common.ordered(w.loc[w["level"].isna(), ARM])]  # fmt: skip
    if bases:
        out.append(f"Base optimizers after {epochs} epochs (equal epochs) and after {2 * epochs} "
                   f"(equal gradient evaluations): {'; '.join(bases)}.")  # fmt: skip
    early, epochs, changes = _changes(t)
    if changes and early < epochs:
        ends = [f"{_sci(r.lr_low) if r.points else 'none'}" for _, a, b in changes for r in (a, b)]
        moves = (f"{common.label(arm)} {a.width:.1f} → {b.width:.1f} decades (lower end "
                 f"{ends[2 * i]} → {ends[2 * i + 1]})"
                 for i, (arm, a, b) in enumerate(changes))  # fmt: skip
        out.append(f"From epoch {early} to {epochs} at the middle radius: {'; '.join(moves)}.")
    widest = _widest_radius_windows(t)
    if len(widest):
        said = (f"{common.label(a)} {widest.at[a, 'width']:.1f} decades at lr "
                f"{_sci(widest.at[a, 'lr'])}" for a in common.ordered(widest.index))  # fmt: skip
        out.append(f"Radius windows after {epochs} epochs (the range of realised radius, "
                   f"{radius.min():.2g} to {radius.max():.2g}, within {t.factor:g}x of the "
                   f"arm's best loss at that budget), the widest over the lrs: "
                   f"{'; '.join(said)}.")  # fmt: skip
    return out + realised_radius_sentences(t) + lowest_lr_sentences(t)


def _own_slopes(t: StudyTables) -> list[tuple[str, Any, pd.DataFrame]]:
    """Each arm with a slope of its lowest training lr (:func:`lowest_lr_slopes`), in the
    study's order: (arm, its row at the middle level, a base's at its only one, or None; all its
    levels' rows)."""
    sl = t.lowest_lr_slopes
    if sl is None or sl.empty:
        return []
    _, middle = _budget(t)
    found = []
    for arm in common.ordered(sl[ARM]):
        own = sl[sl[ARM].eq(arm)]
        at = own[own["level"].isna() | own["level"].eq(middle)]
        found.append((arm, next(at.itertuples(), None), own))
    return found


def _at_the_floor(t: StudyTables) -> dict[str, tuple[int, float]]:
    """The arms whose lowest lr that trains, at the middle level (a base at its only one), is
    ``BELOW`` (at most the grid's lowest lr) at every budget from some step to the last, in the
    study's order: {arm: (that step, that lr)}."""
    low = t.lowest_lrs
    if low is None or low.empty:
        return {}
    _, middle = _budget(t)
    at = low[low["level"].isna() | low["level"].eq(middle)]
    floor = {}
    for arm in common.ordered(at[ARM]):
        own = at[at[ARM].eq(arm)].sort_values("step")
        after = own["where"].iloc[::-1].ne(BELOW).cumsum().iloc[::-1].eq(0)
        if after.any():
            first = own[after].iloc[0]
            floor[arm] = (int(first["step"]), float(first["lr"]))
    return floor


def _without_slope(t: StudyTables) -> list[str]:
    """The arms with no slope at any level whose lowest lr that trains does not end at the grid's
    lowest (:func:`_at_the_floor`), in the study's order."""
    low, sl, floor = t.lowest_lrs, t.lowest_lr_slopes, _at_the_floor(t)
    return [arm for arm in common.ordered(set(low[ARM]) - set(sl[ARM])) if arm not in floor]


def _at_the_floor_said(t: StudyTables) -> str:
    """:func:`_at_the_floor`'s arms, grouped by the step and lr: "the lowest lr that trains
    reaches the grid's lowest, 1e-4, from step 54 on for A and B, from step 108 on for C" (empty
    without any)."""
    groups: dict[tuple[int, float], list[str]] = {}
    for arm, key in _at_the_floor(t).items():
        groups.setdefault(key, []).append(arm)
    if not groups:
        return ""
    by_lr: dict[float, list[str]] = {}
    for (step, lr), arms in sorted(groups.items()):
        by_lr.setdefault(lr, []).append(f"from step {step} on for {_names(arms)}")
    return "; ".join(f"the lowest lr that trains reaches the grid's lowest, {_sci(lr)}, and is at "
                     f"most that {', '.join(parts)}" for lr, parts in by_lr.items())  # fmt: skip


def _spread(value: float, low: float, high: float) -> str:
    """A slope and, in brackets, its range over the fits that leave one budget out."""
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def _slope_shown(row: Any, own: pd.DataFrame) -> str:
    late = "" if math.isnan(row.late_slope) else (
        f", {_spread(row.late_slope, row.late_low, row.late_high)} from step "
        f"{row.late_step}")  # fmt: skip
    levels = (f"; {own['slope'].min():.2f} to {own['slope'].max():.2f} over its {len(own)} "
              "levels with a slope" if len(own) > 1 else "")  # fmt: skip
    return (
        f"from {_sci(row.lr_first)} after {row.first_step} step{'s' * (row.first_step != 1)} "
        f"to {_sci(row.lr_last)} after "
        f"{row.last_step}: slope {_spread(row.slope, row.slope_low, row.slope_high)}{late} "
        f"({row.budgets} budgets{levels})"
    )


def lowest_lr_sentences(t: StudyTables) -> list[str]:
    """The lowest learning rate that trains against the budget in steps
    (:func:`lowest_training_lrs`), as a power of the steps (:func:`lowest_lr_slopes`)."""
    found = _own_slopes(t)
    if not found:
        return []
    said = [f"{common.label(arm)} {_slope_shown(row, own)}"
            for arm, row, own in found if row is not None]  # fmt: skip
    elsewhere = [arm for arm, row, _ in found if row is None]
    tail = [f"{_names(elsewhere)} only at other radii"] if elsewhere else []
    floor, few = _at_the_floor_said(t), _without_slope(t)
    if floor:
        tail.append(floor)
    if few:
        tail.append(f"no slope for {_names(few)} (the lowest lr that trains is inside the grid "
                    "at too few budgets)")  # fmt: skip
    steps = sorted(t.lowest_lrs["step"].unique())
    return [
        f"The lowest learning rate that trains, against the budget in optimizer steps "
        f"({len(steps)} budgets from {steps[0]} to {steps[-1]}, those below an epoch "
        f"included). A run trains by a budget when its training-subset loss stays below "
        f"{STALLED:g}x its initial one from then to its end, so the lowest lr that trains can "
        f"only fall as the budget grows. The lowest grid lr that does is interpolated in log "
        f"lr on the log of the loss drop from the grid lr below it, and fitted as a power of "
        f"the steps over the budgets where it lies inside the grid ({MIN_BUDGETS} or more, "
        f"{SLOPE_SPAN:g} decade of steps or more apart; each budget weighted by the decades of "
        f"steps it stands for), and again over the {SLOPE_SPAN:g} decade of steps up to the "
        f"sharpness-aware arms' last budget, the same steps for every arm; in brackets, the range "
        f"of the fits that leave one budget out. An lr x steps law gives slope -1 (steeper: "
        f"faster than lr x steps), an lr x √steps law (AdaGrad-type steps) -0.5, a lower end no "
        f"budget moves 0. At the middle "
        f"radius (a base at its one): {'; '.join(said)}"
        + (f"; {'; '.join(tail)}" if tail else "")
        + "."
    ]


@dataclass(frozen=True)
class Drift:
    """Where training takes the arms matched at one radius level: each arm's median realised
    radius at its first ascent (``first``) and in its last epoch (``last``), by arm; ``step``,
    the levels' step in decades."""

    level: float
    epochs: int
    first: dict[str, float]
    last: dict[str, float]
    step: float

    @property
    def span(self) -> float:
        """The decades between the arms' smallest and largest ``last``."""
        return math.log10(max(self.last.values()) / min(self.last.values()))


def _drift(t: StudyTables) -> Drift | None:
    """The :class:`Drift` of the middle level after E epochs (None without two arms there)."""
    rr = t.realised_radii
    if rr is None or rr.empty:
        return None
    epochs, middle = _budget(t)
    at = rr[rr["level"].eq(middle)].set_index([ARM, "epoch"])["radius"]
    arms = [a for a in common.ordered(at.index.get_level_values(ARM))
            if at.get((a, 0), 0) > 0 and at.get((a, epochs), 0) > 0]  # fmt: skip
    if len(arms) < 2:
        return None
    return Drift(middle, epochs, {a: float(at[(a, 0)]) for a in arms},
                 {a: float(at[(a, epochs)]) for a in arms}, _radius_grid(t)[1])  # fmt: skip


def realised_radius_sentences(t: StudyTables) -> list[str]:
    """The realised radius of the middle level's arms in their last epoch against their first
    ascent (:func:`realised_radii`), and how far apart that leaves arms matched at the start."""
    d = _drift(t)
    if d is None:
        return []
    rr = t.realised_radii
    final = rr[rr["level"].eq(d.level) & rr["epoch"].eq(d.epochs)].set_index(ARM)
    said = (f"{common.label(a)} {d.last[a]:.2g} ({d.last[a] / d.first[a]:.2g}x its median first "
            f"ascent; its runs {final.at[a, 'low']:.2g} to {final.at[a, 'high']:.2g})"
            for a in d.last)  # fmt: skip
    apart = "a level step or more" if d.span >= d.step else "within a level step"
    radius = t.levels.drop_duplicates("level").set_index("level")["radius"][d.level]
    return [
        f"Realised radius through training (the mean ‖e_t‖ over an epoch's ascents, the median "
        f"over a level's runs that did not diverge; the levels match the arms at the first "
        f"ascent): at the middle level (‖e₁‖ {_radius(radius)}) in epoch {d.epochs}, "
        f"{'; '.join(said)}. The arms' medians end {d.span:.1f} decades apart (the largest over "
        f"the smallest), {apart} ({d.step:g} decade)."
    ]


def failure_sentences(t: StudyTables) -> list[str]:
    f = t.failures
    if f is None or f.empty:
        return []
    stop = f"a loss above {t.stop_rule:g} or a non-finite one" if t.stop_rule else "non-finite"
    out = [
        f"How each grid run ended, at its last epoch: diverged ({stop}), stalled "
        f"(training-subset loss at least {STALLED:g}x its value at initialisation), still "
        f"improving (its loss fell by more than {IMPROVING:.0%} over the last fifth of its "
        f"epochs, at least the last one), trained (the rest). Counts of runs, {_seeds(t)} a cell."
    ]
    epochs = arms(t.grid_runs)["epochs"]
    for row in t.failure_counts.to_dict("records"):
        own = f[f[ARM].eq(row[ARM])]
        where = "".join(
            f"; {kind} at lr {', '.join(_sci(lr) for lr in sorted(lrs.unique()))}"
            for kind in list(FAILURES)[:-1]
            for lrs in [own.loc[own["failure"].eq(kind), "lr"]]
            if len(lrs)
        )
        counts = ", ".join(f"{row[c]} {c}" for c in FAILURES)
        out.append(f"{common.label(row[ARM])} ({row['runs']} runs, {epochs[row[ARM]]:.0f} "
                   f"epochs): {counts}{where}.")  # fmt: skip
    return out + stationarity_sentences(t)


# A measure that puts the stalled run of a pair with one that learned below it this often or
# more misorders one pair in four: it does not tell the two apart.
MISORDERED = 0.25


def stationarity_sentences(t: StudyTables) -> list[str]:
    """Whether the quantity the theorem bounds, :func:`min_sq_grads`, tells the grid's stalled
    runs from those that learned (trained or still improving): each group's median and range,
    and the share of (stalled, learned) pairs in which the stalled run has the smaller, ties
    counted half (0: a measure that separates them; 1/2: one that cannot)."""
    if t.failures is None:
        return []
    measured = t.failures.dropna(subset=["min_sq_grad"])
    stalled = measured.loc[measured["failure"].eq("stalled"), "min_sq_grad"].to_numpy()
    learned = measured.loc[measured["failure"].isin(["still improving", "trained"]),
                           "min_sq_grad"].to_numpy()  # fmt: skip
    if not (len(stalled) and len(learned)):
        return []
    below = stalled[:, None] < learned[None, :]
    tied = stalled[:, None] == learned[None, :]
    share = float((below + tied / 2).mean())

    def group(values: np.ndarray) -> str:
        return f"a median {np.median(values):.2g} ({values.min():.2g} to {values.max():.2g})"

    if share >= MISORDERED:
        verdict = ("a small gradient along the way, what the theorem bounds, does not mark a "
                   "run that learned, and the windows are read on the loss")  # fmt: skip
    elif share > 0:
        verdict = f"the measure tells them apart in all but {share:.0%} of the pairs"
    else:
        verdict = "the measure tells them apart on this grid"
    return [
        "The theorem's measure, a run's smallest squared gradient norm of the training-subset "
        "loss over its epochs relative to its value at initialisation (the start itself left "
        f"out): the grid's {len(stalled)} stalled runs reach {group(stalled)}, its "
        f"{len(learned)} that trained or are still improving {group(learned)}; in {share:.0%} "
        "of the pairs of a stalled run and one that learned the stalled run has the smaller (0% "
        f"for a measure that tells them apart, 50% for one that cannot), so {verdict}."
    ]


def _base(row: Any) -> str:
    """A contrast's base, by optimizer and epochs (its arm label may name them otherwise)."""
    return f"{common.label(common.optimizer_of(row.base))} at {row.base_epochs:.0f} epochs"


def _interval(low: float, high: float) -> str:
    return f"[{100 * low:+.2f}, {100 * high:+.2f}]"


def _leader(s: pd.DataFrame) -> list[str]:
    """The sharpness-aware arm with the highest mean test accuracy, if its 95% interval is
    clear of every other's; else who ties with it (overlapping intervals) and who is below it
    (intervals clear of its)."""
    methods = s[s["rho"].notna()].dropna(subset=["test_mean"]).set_index(ARM)
    if len(methods) < 2:
        return []
    ci = methods["test_ci"].fillna(math.inf)  # one seed: no interval, never clear of others
    top = methods["test_mean"].idxmax()
    overlaps = (methods["test_mean"] + ci).ge(methods.at[top, "test_mean"] - ci[top])
    tied = [arm for arm in methods.index[overlaps] if arm != top]
    below = list(methods.index[~overlaps])
    name = f"{common.label(top)} ({100 * methods.at[top, 'test_mean']:.2f}%)"
    if not tied:
        return [f"{name} has the highest test accuracy among the sharpness-aware arms, its 95% "
                "interval clear of every other's."]  # fmt: skip
    return [f"No sharpness-aware arm leads: the highest mean is {name}; {_names(tied)} tie "
            "with it (95% intervals overlapping its)"
            + (f", and {_names(below)} {'is' if len(below) == 1 else 'are'} below it "
               "(intervals clear of its)" if below else "")
            + "."]  # fmt: skip


def generalisation_sentences(t: StudyTables) -> list[str]:
    s = t.selected
    if s is None or s.empty:
        return []
    out = []
    for r in s.itertuples():
        rho = "" if math.isnan(r.rho) else f", rho {r.rho:g}"
        out.append(f"{common.label(r.arm)} at its cell selected on validation ({r.epochs:.0f} "
                   f"epochs, lr {_sci(r.lr)}{rho}): test accuracy {100 * r.test_mean:.2f}% (std "
                   f"{100 * r.test_std:.2f}, 95% CI ±{100 * r.test_ci:.2f} points, {r.seeds} "
                   f"fresh seeds, {_endings(r)}).")  # fmt: skip
    out += _leader(s)
    for r in t.contrasts.itertuples():
        out.append(f"{common.label(r.method)} ({r.epochs:.0f} epochs) minus {_base(r)} "
                   f"({r.comparison}), test accuracy: {100 * r.mean:+.2f} points, 95% CI "
                   f"{_interval(r.t_low, r.t_high)} (paired t) and "
                   f"{_interval(r.boot_low, r.boot_high)} (bootstrap, {N_BOOT} resamples), "
                   f"{r.pairs} seed pairs{_untrained_pairs(r)}: {r.verdict}.")  # fmt: skip
    return out


def _endings(r: Any) -> str:
    """How many of a selected cell's seeds diverged or stalled."""
    said = []
    if r.diverged:
        said.append(f"{r.diverged} diverged (scored as chance)")
    if r.stalled:
        said.append(f"{r.stalled} stalled (final training-subset loss at least {STALLED:g}x its "
                    "initial)")  # fmt: skip
    return " and ".join(said) or "none diverged or stalled"


def _unresolved_by_failure(contrasts: pd.DataFrame) -> str:
    """A clause for the unresolved ``contrasts`` with a run that diverged or stalled among their
    pairs, if any: there a run at or near chance, not the seed noise of trained runs, keeps the
    interval wide."""
    wide = contrasts[contrasts["verdict"].eq("no difference resolved")
                     & contrasts["untrained_pairs"].gt(0)]  # fmt: skip
    if wide.empty:
        return ""
    said = ", ".join(f"{common.label(r.method)} against {_base(r)}" for r in wide.itertuples())
    return (f", though in {len(wide)} unresolved contrast{'s' * (len(wide) > 1)} ({said}) a "
            "run that diverged or stalled, not the seed noise of trained runs, keeps the "
            "interval wide")  # fmt: skip


def _untrained_pairs(r: Any) -> str:
    """A contrast's pairs with a run that diverged or stalled, if any: at or near chance, one of
    them sets the interval's width, so an unresolved contrast there says little about seed
    noise."""
    n = r.untrained_pairs
    return f" ({n} pair{'s' * (n > 1)} with a run that diverged or stalled)" if n else ""


def near_best_sentences(t: StudyTables) -> list[str]:
    if t.near_best is None or t.near_best.empty:
        return []
    selected = t.selected.set_index(["optimizer", "epochs"])
    table = arms(t.grid_runs)
    out = []
    for r in t.near_best.itertuples():
        own = selected.loc[(table.at[r.arm, "optimizer"], table.at[r.arm, "epochs"])]
        failed = [f"{own[kind]} {kind}" for kind in ("diverged", "stalled") if own[kind]]
        dropped, kept = int(own["diverged"] + own["stalled"]), int(own["val_seeds"])
        left_out = f", its {' and '.join(failed)} seed{'s' * (dropped != 1)} left out" * bool(
            failed
        )
        trained = f"{kept} seed{'s' * (kept != 1)}"
        if np.isnan(r.sigma):
            out.append(f"{common.label(r.arm)}: no seed noise to calibrate by ({trained} of "
                       f"{own['seeds']} trained{left_out}).")  # fmt: skip
            continue
        out.append(f"{common.label(r.arm)}: {int(r.near)} of {int(r.cells)} grid cells "
                   f"({r.share:.0%}) within {100 * r.threshold:.2f} points of its best (σ = "
                   f"{100 * r.sigma:.2f} points from {trained}{left_out}).")  # fmt: skip
    return [
        "Near best, calibrated by the seed noise: a grid cell (one seed) is near best when its "
        f"validation accuracy is within {NEAR_SE:.2f}σ (2√2σ: two single runs differ with std "
        "√2σ, two standard errors) of its arm's best cell, σ the std of validation accuracy over "
        "the confirmation seeds at the arm's selected cell that neither diverged nor stalled (a "
        "seed that did is a failure, counted in the generalisation section, not seed noise); a "
        "diverged cell counts as chance.",
        *out,
    ]


def recovery_sentences(t: StudyTables) -> list[str]:
    r = t.recovery
    if r is None:
        return []
    paired = r.dropna(subset=["grid_run_id"])
    stop = f"a loss above {t.stop_rule:g}" if t.stop_rule else "the stop rule"
    runs = t.grid_runs
    diverged = runs["status"].eq("diverged")
    by_rule = int((diverged & runs["stopping_loss"].notna()).sum())
    unpaired = len(r) - len(paired)
    out = [f"Of the {int(diverged.sum())} grid runs that diverged, {by_rule} were stopped by "
           f"{stop} (the others by a non-finite loss, which cannot recover); of those, "
           f"{len(paired)} were rerun without the limit, so that only a non-finite loss ends a "
           "run"
           + (f"; {unpaired} rerun(s) match no grid run and are left out" if unpaired else "")
           + "."]  # fmt: skip
    counts = pd.crosstab(paired[ARM], paired["outcome"]).reindex(columns=RECOVERY, fill_value=0)
    for arm in common.ordered(counts.index):
        c = counts.loc[arm]
        out.append(f"{common.label(arm)}: {c.sum()} rerun(s), {c['trained']} trained (final "
                   f"training-subset loss below {TRAINED:g}x its initial value), {c['stalled']} "
                   f"ok but stalled, {c['diverged']} diverged (non-finite).")  # fmt: skip
    trained = int(counts["trained"].sum())
    if trained:
        out.append(f"So the stop rule cut short {trained} run(s) that would have trained: "
                   "there, the divergence is the stop rule's, not the optimizer's.")  # fmt: skip
    else:
        out.append("No rerun trained: the stop rule cut short no run that would have trained.")
    return out


TUNING_K = (1, 3)  # the trials a tuning sentence quotes, besides the whole grid


def tuning_sentences(t: StudyTables) -> list[str]:
    """Each arm's expected test accuracy after k random grid cells, picked on validation, at a
    few k and at the whole grid, with what a trial costs."""
    u = t.tuning
    if u is None or u.empty:
        return []
    noise = ("one seed a cell, so each figure carries a single run's seed noise (see the "
             "near-best section)") if t.grid_runs["seed"].nunique() == 1 else (
             f"{_seeds(t)} a cell, band over seeds in the figure")  # fmt: skip
    out = [f"Tuning cost: the expected test accuracy of the cell a random search of k grid "
           f"cells picks on validation (exact over the k-subsets; a diverged run at chance); "
           f"{noise}. A sharpness-aware trial at E epochs and a base's at 2E cost the same "
           f"gradient evaluations, so equal k is equal compute between them."]  # fmt: skip
    for arm in common.ordered(u[ARM]):
        own = u[u[ARM].eq(arm)].set_index("k")
        n = int(own["grid_cells"].iloc[0])
        ks = [k for k in TUNING_K if k < n] + [n]
        said = ", ".join(f"{100 * own.at[k, 'expected']:.1f}% at k = {k}" for k in ks)
        minutes = own.at[1, "measured_s"] / 60
        measured = f", {minutes:.2f} min measured" if math.isfinite(minutes) else ""
        cost = own.at[1, "epoch_equivalents"]
        out.append(f"{common.label(arm)}: {said} (all {n} cells); a trial costs "
                   f"{cost:.0f} epochs of gradients{measured}.")  # fmt: skip
    return out


@dataclass(frozen=True)
class VariantWindows:
    """A LightSAM variant's window after E epochs at the middle radius (``own``), and the
    windows it is judged against: SGD-SAM's there (``reference``) and its base's, grid arm
    ``base``, after E and 2E epochs (``base_equal``, ``base_matched``); None where not run."""

    variant: str
    own: Any
    reference: Any
    base: str | None
    base_equal: Any
    base_matched: Any


def _variant_windows(t: StudyTables) -> list[VariantWindows]:
    """Each variant of the grid with the windows it is compared with (E: :func:`_budget`)."""
    epochs, middle = _budget(t)
    reference = _at(t.windows, _arm_of(t, REFERENCE, True), middle, epochs)
    found = []
    for variant in VARIANTS:
        own = _at(t.windows, _arm_of(t, variant, True), middle, epochs)
        if own is None:
            continue
        base = _arm_of(t, common.BASE_OF[variant], False)
        equal, matched = (_at(t.windows, base, None, e) if base else None
                          for e in (epochs, 2 * epochs))  # fmt: skip
        found.append(VariantWindows(variant, own, reference, base, equal, matched))
    return found


def _windows_statement(t: StudyTables) -> list[str]:
    """Each variant's window after E epochs at the middle radius against SGD-SAM's and its
    base's (at E and 2E epochs); whether the windows' lower ends move down from E // 2 to E, and
    whether the grid could have seen them move; whether the arms' best cells still improved."""
    epochs, _ = _budget(t)
    step = grid_step(t.grid_runs)
    parts = []
    for w in _variant_windows(t):
        own = w.own
        others = [(w.reference, "SGD-SAM's")]
        if w.base is not None:
            others += [(w.base_equal, f"{common.label(w.base)}'s at {epochs} epochs"),
                       (w.base_matched, f"at {2 * epochs}")]  # fmt: skip
        bits = [f"{compare(own.width, o.width, step)} {what} ({o.width:.1f})"
                for o, what in others if o]  # fmt: skip
        listed = " and ".join([", ".join(bits[:-1]), bits[-1]] if len(bits) > 1 else bits)
        parts.append(f"{own.width:.1f} decades for {common.label(own.arm)}"
                     + (f", {listed}" if bits else ""))  # fmt: skip
    out = [f"After {epochs} epochs at the middle radius (a base also after {2 * epochs}: the same "
           f"gradient evaluations), the learning-rate window where the training loss is within "
           f"{t.factor:g}x of the best is {'; '.join(parts)}."] if parts else []  # fmt: skip
    out.append(f"The windows come from {_seeds(t)} a cell on a grid of {_grid(t)}, so a "
               f"difference under a grid step ({step:g} decade) is read as none.")  # fmt: skip
    early, epochs, changes = _changes(t)
    if changes and early < epochs:
        moved = [arm for arm, a, b in changes if _lower_end_moves_down(a, b, step)]
        # Were the runs' progress a function of lr x steps, more epochs would move the lower
        # end down by log10(epochs / early) decades: a grid coarser than that cannot see it.
        shift = math.log10(epochs / early)
        if len(moved) == len(changes):
            verdict = (
                f"every method ({_names(moved)}), so the failures at small learning rates are "
                "under-training: more epochs bring those rates within reach"
            )
        elif moved:
            verdict = (
                f"{_names(moved)} only, so more epochs rescue small learning rates for them and "
                "not for the others"
            )
        elif shift < step:
            verdict = (
                f"none of the methods ({_names([arm for arm, _, _ in changes])}); but were "
                f"progress a matter of lr x steps, {epochs / early:g}x the epochs would move it "
                f"by {shift:.1f} decade, under the grid step, so these two budgets alone cannot "
                "tell failure at small learning rates from under-training"
            )
        else:
            verdict = (
                f"none of the methods ({_names([arm for arm, _, _ in changes])}), so within this "
                "budget more epochs do not bring the small learning rates within reach"
            )
        out.append(f"From epoch {early} to {epochs}, at the middle radius, the window's lower end "
                   f"moves down by a grid step or more for {verdict}.")  # fmt: skip
    out += _lowest_lr_statement(t)
    out += _descent_sets_the_lowest_lr(t)
    out += _convergence_statement(t)
    return out


def _kind(own: pd.DataFrame, slope: str) -> str | None:
    """Whether the lowest lr that trains falls with the budget by the ``slope`` column
    (``slope`` or ``late_slope``) of an arm's levels, each with its range over the fits that
    leave one budget out: ``falls`` (every level's range at ``FALLS`` or steeper), ``slower``
    (every level's above it), ``levels differ`` (each level's on one side, not all on the same
    one), ``undetermined`` (a left-out budget puts some level's on either side); None without a
    slope."""
    low, high = _RANGE[slope]
    ranges = own[[low, high]].dropna()
    if ranges.empty:
        return None
    if ranges[high].max() <= FALLS:
        return "falls"
    if ranges[low].min() > FALLS:
        return "slower"
    decided = (ranges[high] <= FALLS) | (ranges[low] > FALLS)
    return "levels differ" if decided.all() else "undetermined"


_RANGE = {"slope": ("slope_low", "slope_high"), "late_slope": ("late_low", "late_high")}
_KINDS = {"falls": "it falls by a quarter decade or more a decade for {}",
          "slower": "it falls more slowly for {}",
          "levels differ": "it falls so at some radius levels only for {}",
          "undetermined": "a left-out budget puts its slope on either side of "
                          f"{FALLS:g} for {{}}"}  # fmt: skip


def _kinds(t: StudyTables, slope: str) -> dict[str, list[str]]:
    """The arms with a slope at their middle level (a base at its one), by :func:`_kind`, each
    named with that level's slope, or with every level's and its range where they differ or a
    left-out budget decides."""
    kinds: dict[str, list[str]] = {kind: [] for kind in _KINDS}
    low, high = _RANGE[slope]
    for arm, row, own in _own_slopes(t):
        kind = _kind(own, slope)
        if row is None or kind is None:
            continue
        if kind in ("falls", "slower"):
            shown = f"{getattr(row, slope):.2f}"
        else:
            levels = own.dropna(subset=[slope]).sort_values("level")
            shown = ", ".join(_spread(r[slope], r[low], r[high]) for _, r in levels.iterrows())
            shown = f"by level: {shown}" if len(levels) > 1 else shown
        kinds[kind].append(f"{common.label(arm)} ({shown})")
    return kinds


def _lowest_lr_statement(t: StudyTables) -> list[str]:
    """Whether the lowest learning rate that trains falls with the budget in steps by a quarter
    decade a decade or more (:func:`lowest_lr_slopes`, :func:`_kind`), over each arm's budgets
    and over the last ``SLOPE_SPAN`` decade of them; and the arms whose lowest lr that trains
    ends at the grid's lowest (:func:`_at_the_floor`)."""
    whole = _kinds(t, "slope")
    found = sum(len(v) for v in whole.values())
    if not found:
        return []
    out = (f"The lowest learning rate that trains can only fall as the budget grows (a run that "
           f"stays below {STALLED:g}x its initial loss from one budget on does so from every "
           f"later one); how fast it falls tells a budget effect from a floor. Over each arm's "
           f"budgets, it falls by a quarter decade or more a decade of steps (slope {FALLS:g} or "
           f"steeper at every radius level with a slope, with any one budget left out) for "
           f"{len(whole['falls'])} of the {found} arms with a slope")  # fmt: skip
    if whole["falls"]:
        out += (f": {', '.join(whole['falls'])}; within these budgets the lowest lr that trains "
                "is the budget's for them, more steps bringing smaller learning rates to "
                "train")  # fmt: skip
    rest = [_KINDS[kind].format(", ".join(arms)) for kind, arms in whole.items()
            if arms and kind != "falls"]  # fmt: skip
    out += "".join(f"; {part}" for part in rest)
    late = _kinds(t, "late_slope")
    bits = [_KINDS[kind].format(", ".join(arms)) for kind, arms in late.items() if arms]
    if bits:
        start = _late_start(t)
        out += f". From step {start} to the last, {'; '.join(bits)}" if start else ""
    floor = _at_the_floor_said(t)
    if floor:
        out += f". {floor[0].upper()}{floor[1:]}"
    return [out + ". One seed a cell; the slopes by level and budget are in the Optimisation "
            "section, the curves in the lowest-lr figure."]  # fmt: skip


def _late_start(t: StudyTables) -> int | None:
    """The first budget of the late fits (the same for every arm), None without one."""
    steps = t.lowest_lr_slopes["late_step"].dropna()
    return int(steps.min()) if len(steps) else None


def _descent_sets_the_lowest_lr(t: StudyTables) -> list[str]:
    """Each sharpness-aware arm's lowest training lr at its middle level against its base's
    (``common.BASE_OF``) at the sharpness-aware arms' last budget, where both lie inside the
    grid, as a ratio (the base's run is held below the line to its own end, twice as far); the
    pairs where both are bounded by the grid's lowest lr, listed apart, as their distance is not
    known; the rest left out."""
    low = t.lowest_lrs
    if low is None or low.empty or low["level"].isna().all():
        return []
    _, middle = _budget(t)
    step = grid_step(t.grid_runs)
    last = int(low.loc[low["level"].notna(), "step"].max())
    at = low[low["step"].eq(last)].set_index([ARM, "level"])
    pairs, bounded, near = [], [], 0
    for arm in common.ordered(at.index.get_level_values(ARM)):
        base = _arm_of(t, common.BASE_OF.get(common.optimizer_of(arm)), False)
        if (arm, middle) not in at.index or (base, math.nan) not in at.index:
            continue
        mine, theirs = at.loc[(arm, middle)], at.loc[(base, math.nan)]
        if mine["where"] == theirs["where"] == BELOW:
            bounded.append(f"{common.label(arm)} and {common.label(base)}")
        elif mine["where"] == theirs["where"] == INSIDE:
            ratio = mine["lr"] / theirs["lr"]
            pairs.append(f"{common.label(arm)} {_sci(mine['lr'], 2)}, {ratio:.2f}x "
                         f"{common.label(base)}'s {_sci(theirs['lr'], 2)}")  # fmt: skip
            near += abs(math.log10(ratio)) < step
    if not pairs:
        return []
    verdict = (f", so at the middle radius these {near} arms' ascents move the lowest lr that "
               "trains by less than a grid step from their descents' alone"
               if near == len(pairs) else "")  # fmt: skip
    both = f"; both bounded by the grid's lowest lr: {', '.join(bounded)}" if bounded else ""
    return [f"The lowest learning rate that trains by {last} steps, the sharpness-aware arms' "
            f"last budget, each arm at the middle radius against its base (whose run must stay "
            f"below the line to its own end, twice as far): {'; '.join(pairs)}"
            f"{both}. {near} of the {len(pairs)} arms with both inside the grid are within a "
            f"grid step ({step:g} decade) of their base{verdict}; one seed a cell."]  # fmt: skip


@dataclass(frozen=True)
class AscentSwap:
    """An arm with LightSAM's ascent (``arm``) and its control, the same descent with SAM's
    fixed-radius ascent (``control``), by their widest radius window after E epochs (None: not
    run over radii); ``reference``, SGD-SAM's, for a LightSAM variant (None otherwise)."""

    arm: str
    width: float
    full: bool
    control: str | None
    control_width: float | None
    reference: float | None


def _radius_grid(t: StudyTables) -> tuple[np.ndarray, float]:
    """The levels' realised radii (positive, sorted) and their step in decades."""
    radius = np.sort(t.levels["radius"].dropna().unique())
    radius = radius[radius > 0]
    return radius, log_step(radius)


def _ascent_swaps(t: StudyTables) -> list[AscentSwap]:
    """Each one-change pair of ``ONE_CHANGE`` whose ascent differs from SAM's fixed-radius one
    (a ``SCHEDULED`` control left out), by the widest radius window over the lrs after E epochs
    of each (:func:`_widest_radius_windows`); ``full``: the arm's widest takes in every level,
    the whole span of the grid, so the grid cannot show how much wider it is."""
    widest = _widest_radius_windows(t)
    if widest.empty:
        return []

    def width(optimizer: str) -> tuple[str | None, float | None]:
        arm = _arm_of(t, optimizer, True)
        return arm, (float(widest.at[arm, "width"]) if arm in widest.index else None)

    _, reference = width(REFERENCE)
    found = []
    for method, control, what in ONE_CHANGE:
        (arm, own), (other, theirs) = width(method), width(control)
        if what == ASCENT and control not in SCHEDULED and arm is not None and own is not None:
            full = bool(widest.at[arm, "points"] == widest.at[arm, "levels"])
            found.append(AscentSwap(arm, own, full, other if theirs is not None else None,
                                    theirs, reference if method in VARIANTS else None))  # fmt: skip
    return found


def _radius_statement(t: StudyTables, swaps: Sequence[AscentSwap]) -> list[str]:
    """Whether LightSAM's ascent, in place of SAM's around the same descent, widens the range of
    radii that train: each such arm's radius window against its control's (and a variant's
    against SGD-SAM's), from :func:`_ascent_swaps`."""
    if not swaps:
        return []
    epochs, _ = _budget(t)
    radius, step = _radius_grid(t)
    parts = []
    for s in swaps:
        bits = [] if s.reference is None else [
            f"{compare(s.width, s.reference, step)} SGD-SAM's ({s.reference:.1f})"]  # fmt: skip
        if s.control is not None:
            bits.append(f"{compare(s.width, s.control_width, step)} "
                        f"{common.label(s.control)}'s ({s.control_width:.1f}), the same descent "
                        "with SAM's ascent")  # fmt: skip
        span = " (every level)" if s.full else ""
        parts.append(f"{common.label(s.arm)} {s.width:.1f}{span}" + (", " if bits else "")
                     + " and ".join(bits))  # fmt: skip
    out = (f"Radius windows after {epochs} epochs (decades of realised radius, {radius.min():.2g} "
           f"to {radius.max():.2g} over {len(radius)} levels, where the training loss is within "
           f"{t.factor:g}x of the arm's best; the widest over the lrs; a difference under a "
           f"level step, {step:g} decade, is read as none): {'; '.join(parts)}.")  # fmt: skip
    verdict = _ascent_verdict(swaps, step)
    return [out + (f" So {verdict}." if verdict else "")]


def _drift_statement(t: StudyTables) -> list[str]:
    """Whether the radius levels still match the arms at the end of training (:func:`_drift`):
    the arms whose realised radius moved a level step or more from their first ascent, and
    whether the arms end more than a level step apart."""
    d = _drift(t)
    if d is None:
        return []
    moved = [a for a in d.last if abs(math.log10(d.last[a] / d.first[a])) >= d.step]
    factors = ", ".join(f"{d.last[a] / d.first[a]:.2g}x" for a in moved)
    which = (f"the realised radius of {_names(moved)} has moved a level step or more from it "
             f"({factors} at the middle level)" if moved else
             "no arm's realised radius has moved a level step from it")  # fmt: skip
    apart = (f"the arms' medians end {d.span:.1f} decades apart, a level step or more, so a "
             "radius window compares them at their first ascent, not at the radius they end at"
             if d.span >= d.step else f"the arms' medians end within a level step of each other "
             f"({d.span:.1f} decades), so the levels still match them")  # fmt: skip
    return [f"The radius levels match the arms at their first ascent: by epoch {d.epochs} "
            f"{which}, and {apart}."]  # fmt: skip


# How a radius window compares with its control's, by :func:`compare`, in a clause.
_BY_STEP = {"wider than": "wider by a level step or more", "narrower than":
            "narrower by a level step or more", "about the same as": "about the same"}  # fmt: skip


@dataclass(frozen=True)
class SchedulePair:
    """An arm with LightSAM's accumulated ascent (``arm``) against SAM's ascent on a radius
    schedule around the same descent (``control``, one of ``SCHEDULED``): their widest radius
    windows after E epochs, whether each takes in every level (``full``), how the arm's compares
    (:func:`compare`: ``radius``), and their test-accuracy contrast (None if not confirmed)."""

    arm: str
    control: str
    widths: tuple[float, float]
    full: tuple[bool, bool]
    radius: str
    contrast: Any | None

    @property
    def same(self) -> bool:
        """The accumulator does nothing the schedule does not: radius windows under a level
        step apart and test accuracies within seed noise."""
        return (self.radius == "about the same as" and self.contrast is not None
                and self.contrast.verdict == "no difference resolved")  # fmt: skip


def _schedule_pairs(t: StudyTables) -> list[SchedulePair]:
    """Each one-change pair of ``ONE_CHANGE`` whose control is in ``SCHEDULED``, both arms run
    over the radii, as a :class:`SchedulePair`."""
    widest = _widest_radius_windows(t)
    if widest.empty:
        return []
    _, step = _radius_grid(t)
    c = t.contrasts
    found = []
    for method, control, what in ONE_CHANGE:
        arm, other = _arm_of(t, method, True), _arm_of(t, control, True)
        if control not in SCHEDULED or what != ASCENT or not {arm, other} <= set(widest.index):
            continue
        mine, theirs = widest.loc[arm], widest.loc[other]
        pair = None if c is None else c[c["method"].eq(arm) & c["base"].eq(other)]
        r = None if pair is None else next(pair[pair["comparison"].eq(ASCENT)].itertuples(), None)
        widths = (float(mine["width"]), float(theirs["width"]))
        full = (bool(mine["points"] == mine["levels"]), bool(theirs["points"] == theirs["levels"]))
        found.append(SchedulePair(arm, other, widths, full, compare(*widths, step), r))
    return found


def _schedule_statement(t: StudyTables, pairs: Sequence[SchedulePair]) -> list[str]:
    """Each :class:`SchedulePair`: the arm's widest radius window after E epochs against the
    control's, their test accuracy contrast where the confirmation has it, and whether the
    accumulator does, on this grid, anything the schedule alone does not."""
    if not pairs:
        return []
    epochs, _ = _budget(t)
    out = []
    for p in pairs:
        units = (" decades", "")
        mine, theirs = (f"{w:.1f}{unit}" + (" (every level)" if f else "")
                        for w, f, unit in zip(p.widths, p.full, units, strict=True))  # fmt: skip
        said = (f"Against {common.label(p.control)}, SAM's ascent shrunk as ρ/√t around the same "
                f"descent (the schedule without the accumulator), {common.label(p.arm)}'s widest "
                f"radius window after {epochs} epochs is {mine} against {theirs}: "
                f"{_BY_STEP[p.radius]}")  # fmt: skip
        r = p.contrast
        if r is not None:
            said += (f"; its test accuracy at its selected cell differs by {100 * r.mean:+.2f} "
                     f"points (95% CI {_interval(r.t_low, r.t_high)}): {r.verdict}")  # fmt: skip
        if p.same:
            said += (
                "; so on this grid the accumulator does nothing the ρ/√t schedule alone does not"
            )
            if all(p.full):
                said += (", though both train at every radius tried, so the grid cannot show "
                         "whether either is wider")  # fmt: skip
        out.append(said + ".")
    return out


def _ascent_verdict(swaps: Sequence[AscentSwap], step: float) -> str | None:
    """In how many one-change pairs LightSAM's ascent widens the radius window over SAM's by a
    level ``step``, and in how many the grid is too narrow to show it (None without a pair run
    over radii)."""
    pairs = [s for s in swaps if s.control is not None]
    if not pairs:
        return None
    wider = [s.arm for s in pairs if compare(s.width, s.control_width, step) == "wider than"]
    capped = [s.arm for s in pairs if s.full and s.arm not in wider]
    which = f" ({_names(wider)})" if wider else ""
    out = ("LightSAM's ascent in place of SAM's, the descent unchanged, widens the radius window "
           f"by a level step or more in {len(wider) or 'none'} of the {len(pairs)} "
           f"pairs{which}")  # fmt: skip
    if capped:
        out += (f", though with it {_names(capped)} train{'s' * (len(capped) == 1)} at every "
                "radius tried, so this grid cannot show how much wider")  # fmt: skip
    return out


def _convergence_statement(t: StudyTables) -> list[str]:
    """Which arms' best grid run (the lowest final training-subset loss) was still improving
    at its last epoch: there the budget, not the optimizer, bounds the windows."""
    f = t.failures
    if f is None or f.empty:
        return []
    finished = f[f["failure"].ne("diverged")].dropna(subset=["final_loss"])
    best = finished.loc[finished.groupby(ARM)["final_loss"].idxmin()].set_index(ARM)
    if best.empty:
        return []
    improving = [arm for arm in common.ordered(best.index)
                 if best.at[arm, "failure"] == "still improving"]  # fmt: skip
    said = (f"{len(improving)} of the {len(best)} arms ({_names(improving)}), so their budgets "
            "stop short of convergence and their windows are the budget's as much as the "
            "optimizer's") if improving else f"none of the {len(best)} arms"  # fmt: skip
    return [f"The best grid run (lowest final training-subset loss) was still improving at its "
            f"last epoch (a loss drop of more than {IMPROVING:.0%} over the last fifth) for "
            f"{said}."]  # fmt: skip


def _interval_pair(r: Any) -> str:
    return (f"{100 * r.mean:+.2f} points, 95% CI {_interval(r.t_low, r.t_high)} (t), "
            f"{_interval(r.boot_low, r.boot_high)} (bootstrap)")  # fmt: skip


def _generalisation_statement(t: StudyTables) -> list[str]:
    """Which variants differ from their bases in test accuracy beyond seed noise, if any, and
    where the bootstrap interval alone would say they do."""
    c = t.contrasts
    own = (
        None
        if c is None
        else c[
            c["method"].map(common.optimizer_of).isin(VARIANTS)
            & c["comparison"].isin([EQUAL, MATCHED])
        ]
    )
    if own is None or own.empty:
        return ["Whether a LightSAM variant generalises better than its base was not measured "
                "(no confirmation runs of the variants and their bases)."]  # fmt: skip
    rule = "both the paired t and the bootstrap 95% interval clear of 0"
    resolved = own[own["verdict"].ne("no difference resolved")]
    if resolved.empty:
        out = [f"No LightSAM variant's test accuracy at its selected cell differs from its "
               f"base's beyond seed noise ({rule}): differences "
               f"{100 * own['mean'].min():+.2f} to {100 * own['mean'].max():+.2f} points, "
               f"{own['pairs'].max()} seed pairs{_unresolved_by_failure(own)}."]  # fmt: skip
    else:
        said = "; ".join(
            f"{common.label(method)} scores " + " and ".join(
                f"{r.verdict} than {_base(r)} ({_interval_pair(r)})" for r in rows.itertuples())
            for method, rows in resolved.groupby("method", sort=False)
        )  # fmt: skip
        rest = len(own) - len(resolved)
        out = [f"Beyond seed noise ({rule}), in test accuracy at the selected cells, {said}"
               + (f"; the variants' other {rest} contrast(s) with their bases are not resolved"
                  if rest else "") + "."]  # fmt: skip
    alone = own[own["verdict"].eq("no difference resolved")
                & ((own["boot_low"] > 0) | (own["boot_high"] < 0))]  # fmt: skip
    if len(alone):
        said = "; ".join(f"{common.label(r.method)} against {_base(r)} ({_interval_pair(r)})"
                         for r in alone.itertuples())  # fmt: skip
        out.append(f"The bootstrap interval alone, too narrow with {own['pairs'].max()} pairs, "
                   f"excludes 0 for {said}: a hint, not a resolved difference.")  # fmt: skip
    return out


def _matched_statement(t: StudyTables) -> list[str]:
    """Every sharpness-aware arm against its base at the same gradient evaluations (the base at
    twice the epochs): the compute-matched comparison."""
    c = t.contrasts
    matched = None if c is None else c[c["comparison"].eq(MATCHED)]
    if matched is None or matched.empty:
        return []

    def listed(verdict: str) -> str:
        rows = matched[matched["verdict"].eq(verdict)]
        if rows.empty:
            return f"none scores {verdict}"
        said = ", ".join(f"{common.label(r.method)} {100 * r.mean:+.2f}" for r in rows.itertuples())
        return f"{len(rows)} score{'s' * (len(rows) == 1)} {verdict} ({said} points)"

    return [f"At equal gradient evaluations (each base trained twice the epochs), of the "
            f"{len(matched)} sharpness-aware arms {listed('lower')} than their base beyond seed "
            f"noise and {listed('higher')}; the rest are not resolved."]  # fmt: skip


def _multiplicity_statement(t: StudyTables) -> list[str]:
    """How many resolved contrasts survive a Holm correction over all of them."""
    c = t.contrasts
    if c is None or c.empty:
        return []
    tested = c.dropna(subset=["p"])
    resolved = tested[tested["verdict"].ne("no difference resolved")]
    if resolved.empty:
        return []
    kept = resolved[resolved["holm_p"].lt(0.05)]
    names = "; ".join(f"{common.label(r.method)} against {_base(r)} (Holm p "
                      + ("< 0.001" if r.holm_p < 0.001 else f"= {r.holm_p:.3f}") + ")"
                      for r in kept.itertuples())  # fmt: skip
    return [f"Tested together, {len(kept)} of the {len(resolved)} resolved contrasts keep a "
            f"family-wise 5% level (Holm over all {len(tested)} paired t-tests)"
            + (f": {names}." if len(kept) else ": none.")]  # fmt: skip


def _one_change_statement(t: StudyTables) -> list[str]:
    """Each one-change contrast (``ONE_CHANGE``) in test accuracy: whose ascent, or descent,
    makes a difference beyond seed noise. Each arm is at its own selected cell, so a contrast
    compares the two arms as tuned on the same grid, not at one lr and radius."""
    c = t.contrasts
    own = None if c is None else c[c["comparison"].isin([ASCENT, DESCENT])]
    if own is None or own.empty:
        return []
    said = "; ".join(
        f"{common.label(r.method)} minus {common.label(common.optimizer_of(r.base))} "
        f"({r.comparison}): {100 * r.mean:+.2f} points, 95% CI {_interval(r.t_low, r.t_high)}"
        f"{_untrained_pairs(r)}, {r.verdict}" for r in own.itertuples()
    )  # fmt: skip
    resolved = own["verdict"].ne("no difference resolved").sum()
    verdict = (
        "no change of the ascent or the descent alone moves test accuracy beyond seed noise"
        if resolved == 0
        else f"{resolved} of the {len(own)} single changes move it beyond seed noise"
    ) + _unresolved_by_failure(own)
    return [
        f"One change at a time, each arm at its own cell selected on validation (so each is "
        f"tuned over the same grid, not run at one lr and radius): {said}; so {verdict}."
    ]


def _bottom_line(
    t: StudyTables, swaps: Sequence[AscentSwap], schedules: Sequence[SchedulePair]
) -> list[str]:
    """The paper's claim against the numbers, in one sentence: which variants' lr windows are
    wider by a grid step than both SGD-SAM's and their base's (at the same epochs), whether
    LightSAM's ascent widens the radius window (:func:`_ascent_verdict` of ``swaps``), whether
    a ρ/√t schedule alone matches the accumulator (``schedules``), and which variants generalise
    better than their base beyond seed noise."""
    if t.windows is None or t.windows.empty:
        return []
    epochs, _ = _budget(t)
    step = grid_step(t.grid_runs)
    judged = [w for w in _variant_windows(t)
              if w.reference is not None and w.base_equal is not None]  # fmt: skip
    if not judged:
        return []
    measured = [w.variant for w in judged]
    wider = [w.variant for w in judged
             if all(compare(w.own.width, o.width, step) == "wider than"
                    for o in (w.reference, w.base_equal))]  # fmt: skip
    c = t.contrasts
    better = [] if c is None else sorted(
        {common.optimizer_of(m) for m in c.loc[c["verdict"].eq("higher")
         & c["comparison"].isin([EQUAL, MATCHED]), "method"]} & set(VARIANTS))  # fmt: skip
    robust = (f"the learning-rate window of {_names(wider)} is wider than both SGD-SAM's and "
              "its base's by a grid step or more, as the claim of insensitivity predicts"
              if wider else "no LightSAM variant's learning-rate window exceeds both "
              "SGD-SAM's and its base's by a grid step, as the claim of insensitivity would "
              "predict")  # fmt: skip
    general = (f"{_names(better)} generalise{'s' * (len(better) == 1)} better than "
               f"{'its' if len(better) == 1 else 'their'} base beyond seed noise" if better
               else "no variant generalises better than its base beyond seed noise")  # fmt: skip
    if c is None or c.empty:
        general = "whether the variants generalise better than their bases was not measured"
    ascent = _ascent_verdict(swaps, _radius_grid(t)[1])
    radius = f"; {ascent}" if ascent else ""
    matched = [p for p in schedules if p.same]
    if matched:
        radius += "".join(f"; SAM's ascent shrunk as ρ/√t ({common.label(p.control)}) matches "
                          f"{common.label(p.arm)}'s accumulated ascent in radius window and test "
                          "accuracy" for p in matched)  # fmt: skip
    return [f"In short, at {epochs} epochs on this grid ({_names(measured)} at the middle radius): "
            f"{robust}{radius}{_small_lr_clause(t)}; and {general}."]  # fmt: skip


def _small_lr_clause(t: StudyTables) -> str:
    """SGD-SAM's and the variants' lowest lr that trains, as a clause of the bottom line: how it
    falls over their budgets and at their end (:func:`_kind`), or the step from which it is at
    most the grid's lowest (:func:`_at_the_floor`); nothing where no arm has a slope, as the
    statement then says nothing of it."""
    if not _own_slopes(t):
        return ""
    floor = _at_the_floor(t)
    said = {}
    for arm, row, own in _own_slopes(t):
        if row is None or arm in floor:
            continue
        whole, late = _kind(own, "slope"), _kind(own, "late_slope")
        if whole == "falls":
            said[arm] = {"falls": "falls with the steps to the end", None: "falls with the steps",
                         "slower": "falls, then more slowly,"}.get(
                late, "falls (the end undetermined)")  # fmt: skip
        else:
            said[arm] = {"slower": "falls more slowly", "levels differ": "falls at some radius "
                         "levels only"}.get(whole, "cannot be told")  # fmt: skip
    said |= {arm: f"reaches the grid's lowest by step {step}" for arm, (step, _) in floor.items()}
    arms = [a for a in (_arm_of(t, o, True) for o in (REFERENCE, *VARIANTS)) if a in said]
    if not arms:
        return ""
    groups: dict[str, list[str]] = {}
    for arm in arms:
        groups.setdefault(said[arm], []).append(arm)
    parts = ", ".join(f"{what} for {_names(group)}" for what, group in groups.items())
    return f"; at the small-lr end, the lowest learning rate that trains {parts}"


def statement(t: StudyTables) -> list[str]:
    """A few plain sentences of what the numbers add up to, whichever way they fall."""
    windows = t.windows is not None and not t.windows.empty
    swaps, schedules = _ascent_swaps(t), _schedule_pairs(t)
    return [
        *(_windows_statement(t) if windows else []),
        *_radius_statement(t, swaps),
        *_drift_statement(t),
        *_schedule_statement(t, schedules),
        *_generalisation_statement(t),
        *_matched_statement(t),
        *_one_change_statement(t),
        *_multiplicity_statement(t),
        *_bottom_line(t, swaps, schedules),
    ]


def findings(t: StudyTables) -> StudyFindings:
    parts = (window_sentences, failure_sentences, generalisation_sentences, near_best_sentences,
             recovery_sentences, tuning_sentences, statement)  # fmt: skip
    return StudyFindings(*(part(t) for part in parts))


def study_findings(grid: Path, confirm: Path | None, recovery: Path | None) -> StudyFindings:
    """The study's sentences from the three stores (see :func:`read_tables`)."""
    return findings(read_tables(grid, confirm, recovery))


def make_all(tables: StudyTables, out: Path) -> tuple[StudyFindings, list[Path]]:
    """Every table of the study as ``out/budget_*.csv`` and its figures (:mod:`fig_budget`);
    returns the sentences and the paths written."""
    paths = [write_csv(table, out, name) for name, table in tables.csvs().items()]
    return findings(tables), paths + fig_budget.make(tables, out)
