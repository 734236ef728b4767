"""Hand computations of what the study reports, from a store's result and metrics files, written
from the report's stated definitions: nothing here shares code with ``analysis``. The miniature
(``test_reproduce``) and its figure checks judge the report and the figures against them."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from lightsam import store as files

ENDINGS = ("diverged", "stalled", "still improving", "trained")


def score(run: pd.Series) -> float:
    """A run's test accuracy, a diverged one at chance (10 classes)."""
    return run["test_acc"] if run["status"] == "ok" else 0.1


def seed_scores(confirm: pd.DataFrame) -> dict[str, pd.Series]:
    """Each confirmation arm's test scores, by seed."""
    return {arm: own.set_index("seed").apply(score, axis=1) for arm, own in confirm.groupby("arm")}


def t_half(values: np.ndarray) -> float:
    return scipy.stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))


def ending(status: str, initial: float, losses: list[float]) -> str:
    """How a run ended, by the report's stated definitions: diverged; stalled at 0.9 x its
    initial probe loss or above; still improving when its loss fell by more than 10% over the
    last fifth of its epochs (at least the last one); else trained."""
    if status == "diverged":
        return "diverged"
    curve = [initial, *losses]
    if curve[-1] >= 0.9 * initial:
        return "stalled"
    earlier = curve[-1 - max(1, len(losses) // 5)]
    return "still improving" if curve[-1] < 0.9 * earlier else "trained"


def endings(store: Path, runs: pd.DataFrame) -> dict[str, pd.Series]:
    """Each arm's runs' endings (:func:`ending`), by seed, from their result and metrics files."""
    return {
        arm: pd.Series(
            [ending(run.status, run.probe_loss_initial,
                    [m["probe_loss"] for m in files.read_metrics(store / run.run_id)])
             for run in own.itertuples()],
            index=own["seed"],
        )
        for arm, own in runs.groupby("arm")
    }  # fmt: skip


def smallest_sq_grad(store: Path, run: Any) -> float:
    """The theorem's measure as the report states it: the smallest squared training-subset
    gradient norm over the run's epochs, over its value at initialisation; NaN unless it
    finished ok."""
    if run.status != "ok":
        return math.nan
    logged = {m["epoch"]: m["probe_grad_norm"] for m in files.read_metrics(store / run.run_id)}
    norms = [logged[e] for e in range(1, int(run.epochs) + 1)]
    return (min(norms) / run.probe_grad_norm_initial) ** 2


def stationarity_points(store: Path, runs: pd.DataFrame) -> dict[str, list[tuple[float, float]]]:
    """By ending, diverged left out: each run's final training-subset loss and its
    :func:`smallest_sq_grad`, from its result and metrics files."""
    points: dict[str, list[tuple[float, float]]] = {}
    for run in runs.itertuples():
        losses = [m["probe_loss"] for m in files.read_metrics(store / run.run_id)]
        kind = ending(run.status, run.probe_loss_initial, losses)
        if kind != "diverged":
            points.setdefault(kind, []).append((losses[-1], smallest_sq_grad(store, run)))
    return points


def probe_curve(store: Path, run: Any) -> list[float]:
    """A run's training-subset loss at the end of each epoch, infinite from the epoch it
    diverged in."""
    logged = {m["epoch"]: m["probe_loss"] for m in files.read_metrics(store / run.run_id)}
    stop = run.diverged_epoch if run.status == "diverged" else math.inf
    return [math.inf if e >= stop else logged[e] for e in range(1, int(run.epochs) + 1)]


def window_of(x: list[float], losses: list[float], best: float) -> tuple[float, int, float, float]:
    """The report's stated window: the x (log10 of lr or radius) where the loss is at most 2x
    ``best``, log-loss linear between neighbouring finite grid points, nothing across an
    infinite one: (width, grid points inside, lowest x, highest x)."""
    points = sorted(zip(x, losses, strict=True))
    limit = math.log(2 * best)
    ends = [xi for xi, loss in points if loss <= 2 * best]
    inside, width = len(ends), 0.0
    for (x0, l0), (x1, l1) in itertools.pairwise(points):
        if not (math.isfinite(l0) and math.isfinite(l1)):
            continue
        a, b = math.log(l0) - limit, math.log(l1) - limit
        if a > 0 and b > 0:
            continue
        crossing = x0 + (x1 - x0) * a / (a - b) if a != b else x0
        low, high = (x0 if a <= 0 else crossing), (x1 if b <= 0 else crossing)
        width += high - low
        ends += [low, high]
    return width, inside, min(ends, default=math.nan), max(ends, default=math.nan)


def radius_levels(sam: pd.DataFrame) -> tuple[dict[tuple[str, float], int], dict[int, float]]:
    """The radius level of each sharpness-aware (arm, rho), the rank of its rho, and each level's
    radius, the median realised first ascent of the runs at it: for a grid whose arms all run
    over the same number of rhos, as the smoke grid's do (a single-rho arm would sit at the
    middle level, and a level's line would leave it out of the others)."""
    assert sam.groupby("arm")["rho"].nunique().nunique() == 1
    level = {(run.arm, run.rho): sorted(set(own["rho"])).index(run.rho)
             for arm, own in sam.groupby("arm") for run in own.itertuples()}  # fmt: skip
    radius = {lv: float(np.median([r.perturbation_norm_first for r in sam.itertuples()
                                   if level[(r.arm, r.rho)] == lv]))
              for lv in sorted(set(level.values()))}  # fmt: skip
    return level, radius


def realised_radii(store: Path, runs: pd.DataFrame) -> dict[tuple[str, int, int], list[float]]:
    """By (arm, radius level, epoch), the realised perturbation of the level's sharpness-aware
    runs that finished ok, as the report states it: at epoch 0 each run's first ascent, at
    epoch e its mean ``||e_t||`` over that epoch, from its result and metrics files."""
    sam = runs[runs["rho"].notna()]
    level, _ = radius_levels(sam)
    found: dict[tuple[str, int, int], list[float]] = {}
    for run in sam[sam["status"].eq("ok")].itertuples():
        logged = {
            m["epoch"]: m["perturbation_norm"] for m in files.read_metrics(store / run.run_id)
        }
        sizes = [run.perturbation_norm_first, *(logged[e] for e in range(1, int(run.epochs) + 1))]
        for epoch, size in enumerate(sizes):
            found.setdefault((run.arm, level[(run.arm, run.rho)], epoch), []).append(size)
    return found


def held_ratios(store: Path, run: Any) -> dict[int, float]:
    """By budget in optimizer steps (each probe step in the run's result, each epoch's end at
    epoch x steps_per_epoch), the worst probe loss over the initial one from that budget to the
    run's end, a diverged run's infinite from the epoch it diverged in."""
    result = files.read_result(store / run.run_id)
    per_epoch, epochs = result["steps_per_epoch"], int(run.epochs)
    stop = run.diverged_epoch if run.status == "diverged" else math.inf
    logged = {m["epoch"]: m["probe_loss"] for m in files.read_metrics(store / run.run_id)}
    loss = {e * per_epoch: math.inf if e >= stop else logged[e] for e in range(1, epochs + 1)}
    for probe in result.get("probes", []):
        loss[probe["step"]] = probe["probe_loss"]
    steps = sorted(loss)
    ratios = [loss[s] / run.probe_loss_initial for s in steps]
    return {s: max(ratios[i:]) for i, s in enumerate(steps)}


def lowest_training_lrs(store: Path, runs: pd.DataFrame) -> dict[tuple, tuple[float, str]]:
    """By (arm, radius level or None for a base, budget), the report's lowest lr that trains
    there and where it lies: over every grid lr of the level, the first whose run stays below
    0.9x its initial loss from that budget on; ``inside`` the grid (log lr interpolated on the
    log of the drop, 1 - ratio, from the lr below to the drop 0.1), ``bound`` (the lr below has
    no result, or no drop: at most the first that trains), ``below`` (the grid's lowest lr
    trains), or ``none``. A budget a diverged run stopped short of counts as infinite; a failed
    run's lr has no result."""
    sam = runs[runs["rho"].notna()]
    level, _ = radius_levels(sam) if len(sam) else ({}, {})
    done = runs[runs["status"].isin(files.COMPLETE)]
    held = {run.run_id: held_ratios(store, run) for run in done.itertuples()}
    found = {}
    for (arm, key), own in runs.groupby(
        ["arm", runs.apply(lambda r: level.get((r["arm"], r["rho"]), -1), axis=1)]
    ):
        steps = sorted({s for run in own.itertuples() if run.run_id in held
                        for s in held[run.run_id]})  # fmt: skip
        cells = sorted(own.itertuples(), key=lambda r: r.lr)
        where = None if key == -1 else key
        for step in steps:
            ratio = [held[r.run_id].get(step, math.inf) if r.run_id in held else math.nan
                     for r in cells]  # fmt: skip
            first = next((i for i, q in enumerate(ratio) if q < 0.9), None)
            if first is None:
                found[arm, where, step] = (math.nan, "none")
            elif first == 0:
                found[arm, where, step] = (cells[0].lr, "below")
            elif not 0 < 1 - ratio[first - 1] < math.inf:  # NaN, a rise or a divergence
                found[arm, where, step] = (cells[first].lr, "bound")
            else:
                x0, x1 = math.log10(cells[first - 1].lr), math.log10(cells[first].lr)
                d0, d1 = math.log(1 - ratio[first - 1]), math.log(1 - ratio[first])
                x = x0 + (x1 - x0) * (math.log(0.1) - d0) / (d1 - d0)
                found[arm, where, step] = (10**x, "inside")
    return found


def weighted_slope(steps: list[float], lrs: list[float]) -> float:
    """The least-squares slope of log lr against log steps, each point's squared residual
    weighted by the decades of steps it stands for: half the gap to each neighbour."""
    x, y = np.log10(steps), np.log10(lrs)
    edges = np.concatenate([[x[0]], (x[1:] + x[:-1]) / 2, [x[-1]]])
    weight = np.diff(edges)
    mean_x, mean_y = np.average(x, weights=weight), np.average(y, weights=weight)
    return float(np.sum(weight * (x - mean_x) * (y - mean_y)) / np.sum(weight * (x - mean_x) ** 2))


def lowest_lr_slopes(
    lowest: dict[tuple, tuple[float, str]], late_end: int
) -> dict[tuple, tuple[float, ...]]:
    """By (arm, level), over the budgets where the lowest lr that trains is inside the grid
    (four or more, half a decade of steps apart): the :func:`weighted_slope`, the smallest and
    largest of those leaving one budget out, and the same three over the budgets from half a
    decade below ``late_end`` to it (NaN with fewer than four)."""
    slopes = {}
    for arm, level in {(a, lv) for a, lv, _ in lowest}:
        inside = sorted((s, lr) for (a, lv, s), (lr, where) in lowest.items()
                        if (a, lv) == (arm, level) and where == "inside")  # fmt: skip
        if len(inside) < 4 or math.log10(inside[-1][0] / inside[0][0]) < 0.5:
            continue
        late = [(s, lr) for s, lr in inside if s <= late_end and math.log10(late_end / s) <= 0.5]
        tail = _with_left_out(late) if len(late) >= 4 else [math.nan] * 3
        slopes[arm, level] = (*_with_left_out(inside), *tail)
    return slopes


def _with_left_out(points: list[tuple[float, float]]) -> list[float]:
    fits = [weighted_slope(*zip(*(points[:i] + points[i + 1 :]), strict=True))
            for i in range(len(points))]  # fmt: skip
    return [weighted_slope(*zip(*points, strict=True)), min(fits), max(fits)]


def hand_best_of_k(own: pd.DataFrame) -> list[float]:
    """At k = 1 .. the arm's cells, the mean over every k-subset of its grid cells (one seed
    each, a diverged run at chance) of the test score of the subset's best on validation (the
    mean of those tied on it)."""
    return best_of_k([(0.1 if r.status == "diverged" else r.val_acc, score(r))
                      for _, r in own.iterrows()])  # fmt: skip


def best_of_k(cells: list[tuple[float, float]]) -> list[float]:
    """At k = 1 .. len(cells), the mean over every k-subset of the (validation, test) scores
    ``cells`` of the test score of the subset's best on validation (the mean of those tied)."""
    expected = []
    for k in range(1, len(cells) + 1):
        picked = []
        for subset in itertools.combinations(cells, k):
            top = max(val for val, _ in subset)
            picked.append(np.mean([test for val, test in subset if val == top]))
        expected.append(float(np.mean(picked)))
    return expected


def loss_limit(store: Path, run_ids: pd.Series) -> float:
    """The loss above which the runs ``run_ids`` of ``store`` stop as diverged, from their
    configs (one value for all of them)."""
    (limit,) = {files.read_config(store / run_id)["divergence_loss"] for run_id in run_ids}
    return limit
