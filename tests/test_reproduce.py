"""A miniature `make reproduce`, end to end: experiments, figures, tables, REPORT.md, README, each
sentence and figure checked against hand computations from the stores (``study_reference``,
``figure_checks``); then the sweep file edited and rerun, whose old runs must stay out of every
number."""

from __future__ import annotations

import collections
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from figure_checks import (
    budget_figures_agree,
    hand_best,
    hand_cells,
    hand_near,
    store_figures_agree,
    theorem_figures_agree,
)
from study_reference import (
    ENDINGS,
    ending,
    endings,
    hand_best_of_k,
    loss_limit,
    lowest_lr_slopes,
    lowest_training_lrs,
    probe_curve,
    radius_levels,
    realised_radii,
    seed_scores,
    stationarity_points,
    t_half,
    window_of,
)

from analysis import common
from analysis.results import aggregate, collect
from lightsam import store as files

ROOT = Path(__file__).parents[1]
FIGURES = ("heatmaps", "sensitivity", "robustness", "training_curves")


def lightsam(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "lightsam", *args], capture_output=True, text=True, cwd=cwd
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def best_rows_agree(text: str, store: Path, noise: Mapping[str, float]) -> None:
    """Every row of the 'Best settings' table, in the report and in the store's ``best.md``
    beside its figures, from the store's runs by hand (``figure_checks.hand_cells`` and
    ``hand_best``): each arm's cell of the best mean validation score, its test accuracy mean
    and std over the seeds that finished, the median and worst cell score over the grid and the
    share of cells near the best by the arm's seed ``noise`` (``figure_checks.hand_near``; a
    diverged run at chance; – without one), and the arm's diverged, failed and missing runs."""
    collection = collect(store)
    runs, planned = collection.runs, collection.missing
    cells = hand_cells(runs)
    for arm, best in hand_best(cells).iterrows():
        own, scores = runs[runs["arm"].eq(arm)], 100 * cells.loc[cells["arm"].eq(arm), "test"]
        at = own[own["lr"].eq(best.lr) & (own["rho"].isna() if math.isnan(best.rho)
                                           else own["rho"].eq(best.rho))]  # fmt: skip
        finished = 100 * at.loc[at["status"].eq("ok"), "test_acc"]
        std = f"{finished.std(ddof=1):.2f}" if len(finished) > 1 else "–"
        status = collections.Counter(own["status"])
        rho = "–" if math.isnan(best.rho) else sci(best.rho)
        near = hand_near(cells[cells["arm"].eq(arm)], noise.get(arm, math.nan))
        share = "–" if near is None else f"{near / len(scores):.0%}"
        row = (f"| {common.label(arm)} | {sci(best.lr)} | {rho} | {finished.mean():.2f} ± {std} "
               f"({len(finished)}) | {scores.median():.2f} | {scores.min():.2f} | "
               f"{share} | {status['diverged']} | {status['failed']} | "
               f"{int(planned['arm'].eq(arm).sum()) if len(planned) else 0} |")  # fmt: skip
        assert row in text, row


def store_header_agrees(text: str, store: Path) -> None:
    """What the grid's store section says was run, from each run directory's config, result
    and environment files and the store's launch records (its stages' beside it): the data and
    model settings, seeds and statuses, each arm's grid, the environment and provenance, and
    the wall times."""
    dirs = sorted(d for d in store.iterdir() if (d / "config.json").exists())
    configs = [files.read_config(d) for d in dirs]
    results = [files.read_result(d) for d in dirs]
    segments = [files.read_environment(d) for d in dirs]

    def values(key: str) -> str:
        return " / ".join(f"`{v}`" for v in sorted({str(c[key]) for c in configs}))

    assert (f"- Data and model: {values('dataset')} with {values('model')}, {values('epochs')} "
            f"epochs, batch size {values('batch_size')}, {values('val_size')} training images "
            f"held out for validation, LR schedule {values('lr_schedule')}, augmentation "
            f"{values('augment')}." in text)  # fmt: skip
    status = collections.Counter(r["status"] for r in results)
    seeds = ", ".join(sorted({str(c["seed"]) for c in configs}))
    assert (f"- Seeds: {seeds}; {len(dirs)} runs planned, {status['ok']} ok, {status['diverged']} "
            f"diverged, {status['failed']} failed, 0 missing." in text)  # fmt: skip
    cells = collections.defaultdict(lambda: (set(), set()))
    for c in configs:
        lrs, rhos = cells[c["optimizer"]["name"]]
        lrs.add(c["optimizer"]["lr"])
        rhos.update({c["optimizer"].get("rho")} - {None})
    for arm, (lrs, rhos) in cells.items():
        grid = f"lr {', '.join(sci(v) for v in sorted(lrs))}"
        grid += f"; rho {', '.join(sci(v) for v in sorted(rhos))}" if rhos else ""
        assert f"  - {common.label(arm)}: {grid}\n" in text, arm

    def every(key: str) -> str:
        return ", ".join(sorted({str(seg[key]) for run in segments for seg in run}))

    assert (f"- Environment: git commit {every('git_commit')}, Python {every('python')}, torch "
            f"{every('torch')}, device {every('device_name')}, {every('cpu_threads')} thread(s) "
            "per run. The runs repeat bit for bit on the same CPU type and torch build; on "
            "another CPU type float rounding differs and a rerun differs as a reseeded one "
            "would, so a window or a verdict near its threshold can change."
            in text)  # fmt: skip
    several = sum(len({seg["git_commit"] for seg in run}) > 1 for run in segments)
    dirty = sum(any(seg["git_dirty"] for seg in run) for run in segments)
    resumed = sum(len(run) > 1 for run in segments)
    assert (f"- Provenance: {several} of {len(dirs)} runs trained across more than one git "
            f"commit, {dirty} from a tree with uncommitted changes" in text)  # fmt: skip
    assert f"changes (its `git diff` kept in the run directory), {resumed} resumed at least" in text
    launches = files.read_launches(store)
    stages = [sum(x["wall_s"] for x in files.read_launches(files.stage_store(store, stage)))
              for stage in ("confirm", "recovery")]  # fmt: skip
    wall = sum(x["wall_s"] for x in launches)
    cores = ", ".join(sorted({str(x["cores"]) for x in launches}))
    training = sum(r["wall_s"] for r in results)
    assert (f"- Wall time: {wall / 60:.1f} minutes for the grid's runs ({len(launches)} "
            f"launch(es), {cores} cores), {stages[0] / 60:.1f} for its confirm stage, "
            f"{stages[1] / 60:.1f} for its recovery stage: {(wall + sum(stages)) / 60:.1f} in all; "
            f"{training / 60:.1f} minutes of training summed over the grid's runs."
            in text)  # fmt: skip


def confirmation_agrees(text: str, store: Path, confirm: pd.DataFrame) -> None:
    """Each selected cell, as its fresh seeds ran it (epochs, lr, rho), its test accuracy and
    95% interval over them (scipy's Student t), and how many of them diverged or stalled."""
    scores, ended = seed_scores(confirm), endings(store, confirm)
    for arm, own in scores.items():
        assert len(own) == 3, arm
        cells = confirm.loc[confirm["arm"].eq(arm), ["epochs", "lr", "rho"]].drop_duplicates()
        assert len(cells) == 1, arm  # every fresh seed at the one selected cell
        cell = cells.iloc[0]
        radius = "" if math.isnan(cell.rho) else f", rho {cell.rho:g}"
        mean, std = 100 * own.mean(), 100 * own.std(ddof=1)
        n = collections.Counter(ended[arm])
        seeds = " and ".join(
            [f"{n['diverged']} diverged (scored as chance)"] * bool(n["diverged"])
            + [f"{n['stalled']} stalled (final training-subset loss at least 0.9x its initial)"]
            * bool(n["stalled"])
        )
        assert (f"- {common.label(arm)} at its cell selected on validation ({cell.epochs:.0f} "
                f"epochs, lr {sci(cell.lr)}{radius}): test accuracy {mean:.2f}% (std {std:.2f}, "
                f"95% CI ±{100 * t_half(own):.2f} points, 3 fresh seeds, "
                f"{seeds or 'none diverged or stalled'})." in text), arm  # fmt: skip


def selection_agrees(grid_store: Path, grid: pd.DataFrame, confirm: pd.DataFrame) -> None:
    """Each confirmation arm's cell is the one its grid arm selects on validation after the
    arm's epochs (a base's grid run also gives every shorter budget): the highest mean over the
    cell's seeds of the validation accuracy at that epoch, from the runs' metrics (chance once
    a run diverged), ties to the smaller lr, then the smaller rho. The test set plays no part."""
    for arm, own in confirm.groupby("arm"):
        first = own.iloc[0]
        epochs, runs = int(first.epochs), grid[grid["optimizer"].eq(first.optimizer)]
        scores = collections.defaultdict(list)
        for run in runs.itertuples():
            if run.status == "diverged" and run.diverged_epoch <= epochs:
                val = 1 / run.num_classes
            else:
                (val,) = [m["val_acc"] for m in files.read_metrics(grid_store / run.run_id)
                          if m["epoch"] == epochs]  # fmt: skip
            scores[(run.lr, 0.0 if math.isnan(run.rho) else run.rho)].append(val)
        lr, rho = min(scores, key=lambda cell: (-np.mean(scores[cell]), *cell))
        assert (first.lr, 0.0 if math.isnan(first.rho) else first.rho) == (lr, rho), arm


def tuning_agrees(text: str, grid: pd.DataFrame) -> None:
    """The tuning cost of each arm at k = 1 and 3 (below its number of cells) and at all of
    them: over every k-subset of its grid cells (one seed each, a diverged run at chance), the
    test score of the subset's best cell on validation (the mean of those tied on it), to the
    report's 0.1 point (a mean of scores in tenths of a point can fall on a rounding tie, which
    either summation order may break); and what a trial costs."""
    for arm, own in grid.groupby("arm"):
        every = hand_best_of_k(own)
        ks = [k for k in (1, 3) if k < len(own)] + [len(own)]
        expected = {k: 100 * every[k - 1] for k in ks}
        # A trial's cost: its gradient evaluations in one-pass epochs, and the arm's mean
        # measured training time a grid run (those that did not fail to run).
        epochs = int(own["epochs"].iloc[0]) * (2 if own["rho"].notna().all() else 1)
        minutes = own.loc[own["status"].isin(files.COMPLETE), "wall_s"].mean() / 60
        listed = r"(?:\d+\.\d% at k = \d+, )*\d+\.\d% at k = \d+"
        line = re.search(rf"- {re.escape(common.label(arm))}: ({listed}) \(all {len(own)} cells\); "
                         rf"a trial costs {epochs} epochs of gradients, {minutes:.2f} min "
                         r"measured\.", text)  # fmt: skip
        assert line, arm
        said = {int(k): float(v) for v, k in re.findall(r"(\d+\.\d)% at k = (\d+)", line[1])}
        assert said.keys() == expected.keys(), (arm, said)
        for k, value in expected.items():
            assert abs(said[k] - value) <= 0.05 + 1e-9, (arm, k, said[k], value)


def failures_agree(text: str, store: Path, grid: pd.DataFrame) -> None:
    """The endings' stated definitions, those :func:`study_reference.ending` applies, with the
    loss limit the runs' configs set; each arm's count of every ending, from each run's result
    and metrics files, and the lrs at which its runs ended each way but trained."""
    limit = loss_limit(store, grid["run_id"])
    assert (f"- How each grid run ended, at its last epoch: diverged (a loss above {limit:g} or a "
            f"non-finite one), stalled (training-subset loss at least 0.9x its value at "
            f"initialisation), still improving (its loss fell by more than 10% over the last "
            f"fifth of its epochs, at least the last one), trained (the rest). Counts of runs, one "
            f"seed a cell." in text)  # fmt: skip
    for arm, own in grid.groupby("arm"):
        ended = endings(store, own)[arm].to_numpy()
        counts = collections.Counter(ended)
        said = ", ".join(f"{counts[k]} {k}" for k in ENDINGS)
        where = "".join(
            f"; {kind} at lr {', '.join(sci(lr) for lr in sorted(set(own['lr'][ended == kind])))}"
            for kind in ENDINGS[:-1]
            if counts[kind]
        )
        epochs = int(own["epochs"].max())
        assert f"{common.label(arm)} ({len(own)} runs, {epochs} epochs): {said}{where}." in text, (
            arm
        )


def stationarity_agrees(text: str, store: Path, grid: pd.DataFrame) -> None:
    """The theorem's measure (:func:`study_reference.stationarity_points`) of the stalled grid runs
    against those that trained or are still improving: each group's size, median and range,
    the share of pairs in which the stalled run has the smaller (ties half), and the verdict
    that share gives by the threshold the analysis states (a quarter of the pairs)."""
    points = stationarity_points(store, grid)
    stalled = [measure for _, measure in points.get("stalled", [])]
    learned = [measure for kind in ("still improving", "trained")
               for _, measure in points.get(kind, [])]  # fmt: skip
    assert stalled and learned, "the miniature has runs that stall and runs that learn"
    pairs = [1.0 if s < v else 0.5 if s == v else 0.0 for s in stalled for v in learned]
    share = sum(pairs) / len(pairs)
    verdict = (
        "a small gradient along the way, what the theorem bounds, does not mark a run that "
        "learned, and the windows are read on the loss"
        if share >= 0.25
        else f"the measure tells them apart in all but {share:.0%} of the pairs"
        if share > 0
        else "the measure tells them apart on this grid"
    )

    def group(values: list[float]) -> str:
        return (f"a median {statistics.median(values):.2g} ({min(values):.2g} to "
                f"{max(values):.2g})")  # fmt: skip

    assert (
        "The theorem's measure, a run's smallest squared gradient norm of the training-subset "
        "loss over its epochs relative to its value at initialisation (the start itself left "
        f"out): the grid's {len(stalled)} stalled runs reach {group(stalled)}, its "
        f"{len(learned)} that trained or are still improving {group(learned)}; in {share:.0%} "
        f"of the pairs of a stalled run and one that learned the stalled run has the smaller "
        f"(0% for a measure that tells them apart, 50% for one that cannot), so {verdict}."
    ) in text


def realised_radius_agrees(text: str, store: Path, grid: pd.DataFrame) -> None:
    """The realised radius at the middle level in the last epoch of the sharpness-aware arms
    (:func:`study_reference.realised_radii`): each arm's median, its ratio to the median first
    ascent, its runs' range; the decades between the arms' medians; the arms that moved a level
    step (the decades between the two levels' radii) from their first ascent, and both verdicts
    by that step."""
    sam = grid[grid["rho"].notna()]
    epochs = int(sam["epochs"].max())
    _, level_radius = radius_levels(sam)
    (low, middle) = sorted(level_radius)  # the smoke grid's two levels: the middle is the upper
    step = math.log10(level_radius[middle] / level_radius[low])
    radii = realised_radii(store, grid)
    arms = common.ordered(arm for arm, level, _ in radii if level == middle)
    assert len(arms) >= 2, arms
    first = {a: statistics.median(radii[a, middle, 0]) for a in arms}
    last = {a: statistics.median(radii[a, middle, epochs]) for a in arms}
    said = "; ".join(f"{common.label(a)} {last[a]:.2g} ({last[a] / first[a]:.2g}x its median "
                     f"first ascent; its runs {min(radii[a, middle, epochs]):.2g} to "
                     f"{max(radii[a, middle, epochs]):.2g})" for a in arms)  # fmt: skip
    span = math.log10(max(last.values()) / min(last.values()))
    apart = "a level step or more" if span >= step else "within a level step"
    assert (
        f"at the middle level (‖e₁‖ ≈ {level_radius[middle]:.2g}) in epoch {epochs}, {said}. The "
        f"arms' medians end {span:.1f} decades apart (the largest over the smallest), {apart} "
        f"({step:g} decade)."
    ) in text
    moved = [a for a in arms if abs(math.log10(last[a] / first[a])) >= step]
    assert moved != arms, "SAM's ascent keeps its radius: some arm of the smoke grid stays"
    factors = ", ".join(f"{last[a] / first[a]:.2g}x" for a in moved)
    which = (f"the realised radius of {', '.join(common.label(a) for a in moved)} has moved a "
             f"level step or more from it ({factors} at the middle level)" if moved
             else "no arm's realised radius has moved a level step from it")  # fmt: skip
    apart = (f"the arms' medians end {span:.1f} decades apart, a level step or more, so a radius "
             "window compares them at their first ascent, not at the radius they end at"
             if span >= step else f"the arms' medians end within a level step of each other "
             f"({span:.1f} decades), so the levels still match them")  # fmt: skip
    assert (
        f"The radius levels match the arms at their first ascent: by epoch {epochs} {which}, and "
        f"{apart}."
    ) in text


def middle_level(grid: pd.DataFrame) -> int:
    """The smoke grid's middle radius level: of its two, the upper (the report's rank of
    (levels + 1) // 2)."""
    return max(radius_levels(grid[grid["rho"].notna()])[1])


def lowest_lr_agrees(text: str, store: Path, grid: pd.DataFrame, tables: Path) -> None:
    """The lowest learning rate that trains at every budget in steps, in ``tables``' CSV, and
    each arm's slope of it against the steps, in the CSV and in the report (the sentence absent
    where no arm has one), against :func:`study_reference.lowest_training_lrs`. The smoke grid
    has budgets below an epoch (its probe steps), lrs inside the grid and under it."""
    lowest = lowest_training_lrs(store, grid)
    table = pd.read_csv(tables / "budget_lowest_lr.csv")
    shown = {(row.arm, None if math.isnan(row.level) else int(row.level), int(row.step)):
             (row.lr, row.where) for row in table.itertuples()}  # fmt: skip
    assert shown.keys() == lowest.keys()
    for key, (lr, where) in lowest.items():
        assert shown[key][1] == where, key
        assert math.isnan(lr) or math.isclose(shown[key][0], lr, rel_tol=1e-9), key
    assert {where for _, where in lowest.values()} == {"inside", "below", "none"}
    assert min(step for _, _, step in lowest) < min(grid["steps_per_epoch"])  # a probe step
    slopes = lowest_lr_slopes(lowest, max(step for _, level, step in lowest if level is not None))
    fitted = pd.read_csv(tables / "budget_lowest_lr_slopes.csv")
    columns = ["slope", "slope_low", "slope_high", "late_slope", "late_low", "late_high"]
    assert {(r.arm, None if math.isnan(r.level) else int(r.level)): tuple(r[columns])
            for _, r in fitted.iterrows()} == pytest.approx(slopes, nan_ok=True)  # fmt: skip
    assert ("The lowest learning rate that trains, against the budget" in text) == bool(slopes)
    for (arm, level), (slope, low, high, *_) in slopes.items():
        if level in (None, middle_level(grid)):
            assert f"{common.label(arm)} from " in text and (
                f"slope {slope:.2f} [{low:.2f}, {high:.2f}]" in text), arm  # fmt: skip
    # Each sharpness-aware arm at the middle level against its base at the arms' last budget:
    # in the smoke grid each pair is bounded by the grids' lowest lrs, so their distance is not
    # known and the report compares none.
    middle = middle_level(grid)
    last = max(step for _, level, step in lowest if level is not None)
    for arm in {arm for arm, level, _ in lowest if level == middle}:
        base = common.BASE_OF[common.optimizer_of(arm)]
        assert lowest[arm, middle, last][1] == lowest[base, None, last][1] == "below", arm
    assert f"The lowest learning rate that trains by {last} steps" not in text


def sci(value: float) -> str:
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def shown(found: tuple[float, int, float, float], cells: int) -> str:
    width, inside, low, high = found
    if not inside:
        return "0 decades (no grid lr within)"
    ends = f"lr {sci(10**low)} to {sci(10**high)}"
    return f"{width:.1f} decades ({ends}, {inside} of {cells} grid lrs)"


Window = tuple[float, int, float, float]  # window_of's (width, grid points, lowest, highest)


def windows_agree(
    text: str, store: Path, grid: pd.DataFrame
) -> tuple[dict[str, float], dict[str, tuple[Window, Window]], str]:
    """Every lr window and radius window the report gives after the sharpness-aware arms'
    epochs E (a base's also after 2E), from each run's metrics: the arm's best over its whole
    grid at that budget, a cell's radius level the rank of its rho, a level's radius the median
    realised first ascent of the runs at it. Returns the lr windows' widths the statement
    compares: each sharpness-aware arm's at the middle level after E epochs, each base's after E
    and 2E (keys ``arm@E``); and SGD-SAM's and LightSAM-I's windows at the middle level after
    E // 2 and after E epochs, which the report compares (:func:`window_changes_agree`); and
    the verdict on LightSAM's ascent (:func:`ascent_swap_agrees`)."""
    curves = {run.run_id: probe_curve(store, run) for run in grid.itertuples()}
    sam = grid[grid["rho"].notna()]
    epochs = int(sam["epochs"].max())
    level, radius = radius_levels(sam)
    levels = sorted(radius)

    def at(own: pd.DataFrame, epoch: int) -> list[float]:
        return [curves[run_id][epoch - 1] for run_id in own["run_id"]]

    def best(own: pd.DataFrame, epoch: int) -> float:
        return min(loss for loss in at(own, epoch) if math.isfinite(loss))

    middle, widths, changes = (max(levels) + 1) // 2, {}, {}
    for lv in levels:
        parts = []
        for arm in common.ordered(sam["arm"]):
            own = sam[sam["arm"].eq(arm)]
            cells = own[[level[(arm, rho)] == lv for rho in own["rho"]]]
            found = [window_of(list(np.log10(cells["lr"])), at(cells, e), best(own, e))
                     for e in (max(1, epochs // 2), epochs)]  # fmt: skip
            parts.append(f"{common.label(arm)} {shown(found[1], len(cells))}")
            if lv == middle:
                widths[arm] = found[1][0]
                if arm in ("sgd_sam", "lightsam_i"):
                    changes[arm] = (found[0], found[1])
        line = (f"- Radius level {lv} (realised ‖e₁‖ ≈ {radius[lv]:.2g}), after {epochs} epochs: "
                f"{'; '.join(parts)}.")  # fmt: skip
        assert line in text, line
    bases = []
    for arm in common.ordered(grid.loc[grid["rho"].isna(), "arm"]):
        own = grid[grid["arm"].eq(arm)]
        found = [window_of(list(np.log10(own["lr"])), at(own, e), best(own, e))
                 for e in (epochs, 2 * epochs)]  # fmt: skip
        both = [shown(f, len(own)) for f in found]
        bases.append(f"{common.label(arm)} {both[0]} and {both[1]}")
        widths |= {f"{arm}@{epochs}": found[0][0], f"{arm}@{2 * epochs}": found[1][0]}
    widest, full = {}, {}
    for arm in common.ordered(sam["arm"]):
        own = sam[sam["arm"].eq(arm)]
        x = {rho: math.log10(radius[level[(arm, rho)]]) for rho in own["rho"]}
        found = {-lr: window_of([x[r] for r in cell["rho"]], at(cell, epochs), best(own, epochs))
                 for lr, cell in own.groupby("lr")}  # fmt: skip
        width, lr = max((w[0], lr) for lr, w in found.items())  # the smallest lr among equals
        widest[arm], full[arm] = (width, -lr), found[lr][1] == len(levels)
    said = "; ".join(f"{common.label(arm)} {w:.1f} decades at lr {sci(lr)}"
                     for arm, (w, lr) in widest.items())  # fmt: skip
    assert (f"- Base optimizers after {epochs} epochs (equal epochs) and after {2 * epochs} (equal "
            f"gradient evaluations): {'; '.join(bases)}." in text), bases  # fmt: skip
    span = f"{min(radius.values()):.2g} to {max(radius.values()):.2g}"
    assert (f"- Radius windows after {epochs} epochs (the range of realised radius, {span}, within "
            f"2x of the arm's best loss at that budget), the widest over the lrs: {said}."
            in text), said  # fmt: skip
    lrs = sorted(set(grid["lr"]))
    decades = f"{len(lrs)} lrs over {math.log10(lrs[-1] / lrs[0]):.0f} decades"
    assert np.median(np.diff(np.log10(lrs))) == pytest.approx(1)  # compared()'s grid step
    assert (f"- Learning-rate windows: the range of lr, in decades, over which the training-subset "
            f"loss after a budget of epochs is within 2x of the arm's best at that budget (over "
            f"all its radii), log-loss interpolated between the grid's {decades} and never beyond "
            f"a diverged or missing run. One seed a cell: a window is known to about a grid step "
            f"(1 decade), and two differ only by a grid step or more." in text)  # fmt: skip
    assert (f"- The windows come from one seed a cell on a grid of {decades}, so a difference "
            f"under a grid step (1 decade) is read as none." in text)  # fmt: skip
    radii = f"decades of realised radius, {span} over {len(levels)} levels"
    swap = ascent_swap_agrees(text, {arm: w for arm, (w, _) in widest.items()}, full, epochs, radii)
    return widths, changes, swap


def window_changes_agree(text: str, changes: dict[str, tuple[Window, Window]], epochs: int) -> None:
    """SGD-SAM's and LightSAM-I's lr windows at the middle level from E // 2 to E epochs, and
    the statement's verdict: whose lower end moves down by a grid step (1 decade) or more, an
    empty window's lower end counting as +inf; were none to move, the grid could not see it, for
    2x the epochs would move it by log10(2) = 0.3 decade, under the step."""
    early = epochs // 2
    assert early >= 1, "the smoke grid runs at least 2 epochs: the report compares budgets"

    def lower(found: Window) -> str:
        return sci(10 ** found[2]) if found[1] else "none"

    moves = "; ".join(f"{common.label(arm)} {a[0]:.1f} → {b[0]:.1f} decades (lower end "
                      f"{lower(a)} → {lower(b)})" for arm, (a, b) in changes.items())  # fmt: skip
    assert f"From epoch {early} to {epochs} at the middle radius: {moves}." in text, moves
    moved = [arm for arm, (a, b) in changes.items()
             if b[1] and (a[2] if a[1] else math.inf) - b[2] >= 1]  # fmt: skip
    names = ", ".join(common.label(arm) for arm in (moved or changes))
    verdict = (
        f"every method ({names}), so the failures at small learning rates are under-training: "
        "more epochs bring those rates within reach"
        if len(moved) == len(changes)
        else f"{names} only, so more epochs rescue small learning rates for them and not for the "
        "others"
        if moved
        else f"none of the methods ({names}); but were progress a matter of lr x steps, "
        f"{epochs / early:g}x the epochs would move it by {math.log10(epochs / early):.1f} "
        "decade, under the grid step, so these two budgets alone cannot tell failure at small "
        "learning rates from under-training"
    )
    assert (f"From epoch {early} to {epochs}, at the middle radius, the window's lower end moves "
            f"down by a grid step or more for {verdict}." in text), verdict  # fmt: skip


def statement_agrees(
    text: str, widths: dict[str, float], contrasts: pd.DataFrame, epochs: int, swap: str
) -> None:
    """The statement's lr windows of LightSAM-I (the smoke grid's one variant) after E =
    ``epochs`` at the middle radius against SGD-SAM's and AdaGrad-Norm's after E and 2E, a
    difference under a grid step (1 decade: the smoke's lrs are decades) read as none; and the
    bottom line: whether its window is wider than both SGD-SAM's and its base's by a grid step,
    whether it generalises better than its base (a contrast at equal epochs or equal gradient
    evaluations whose verdict, checked by :func:`verdicts_agree`, is "higher")."""

    own, sgd_sam = widths["lightsam_i"], widths["sgd_sam"]
    base = widths[f"adagrad_norm@{epochs}"], widths[f"adagrad_norm@{2 * epochs}"]
    windows = (
        f"- After {epochs} epochs at the middle radius (a base also after {2 * epochs}: the same "
        f"gradient evaluations), the learning-rate window where the training loss is within 2x of "
        f"the best is "
        f"{own:.1f} decades for LightSAM-I, {compared(own, sgd_sam)} SGD-SAM's ({sgd_sam:.1f}), "
        f"{compared(own, base[0])} AdaGrad-Norm's at {epochs} epochs ({base[0]:.1f}) and "
        f"{compared(own, base[1])} at {2 * epochs} ({base[1]:.1f})."
    )
    assert windows in text, windows
    wider = own - sgd_sam >= 1 and own - base[0] >= 1
    robust = (
        "the learning-rate window of LightSAM-I is wider than both SGD-SAM's and its base's by "
        "a grid step or more"
        if wider
        else "no LightSAM variant's learning-rate window exceeds both SGD-SAM's and its base's "
        "by a grid step"
    )
    against_base = contrasts["comparison"].isin(["equal epochs", "equal gradient evaluations"])
    own_contrasts = contrasts[contrasts["method"].eq("lightsam_i") & against_base]
    better = own_contrasts["verdict"].eq("higher").any()
    general = ("LightSAM-I generalises better than its base beyond seed noise" if better
               else "no variant generalises better than its base beyond seed noise")  # fmt: skip
    start = f"- In short, at {epochs} epochs on this grid (LightSAM-I at the middle radius): "
    bottom = next(line for line in text.splitlines() if line.startswith(start))
    ascent = f"LightSAM's ascent in place of SAM's, the descent unchanged, {swap}"
    claim = (
        "as the claim of insensitivity predicts"
        if wider
        else "as the claim of insensitivity would predict"
    )
    assert bottom == f"{start}{robust}, {claim}; {ascent}; and {general}.", bottom


def compared(width: float, other: float) -> str:
    """Two windows' widths in decades, compared as the report states: different only by a grid
    step (1 decade, the smoke grid's lr and radius steps) or more."""
    if width - other >= 1:
        return "wider than"
    return "narrower than" if other - width >= 1 else "about the same as"


def ascent_swap_agrees(
    text: str, widest: dict[str, float], full: dict[str, bool], epochs: int, radii: str
) -> str:
    """LightSAM-I's widest radius window after ``epochs`` against SGD-SAM's and against SAM +
    AdaGrad-Norm's (the same descent with SAM's ascent), over the ``radii`` the grid realised,
    read as different only by a level step (1 decade: the smoke grid's radii are 0.01 and 0.1)
    or more; whether its ascent widens the window, and whether the grid can show by how much
    (not when the window takes in every level). Returns that verdict, which the bottom line
    repeats."""
    own, control = widest["lightsam_i"], widest["adagrad_norm_sam"]
    every = " (every level)" if full["lightsam_i"] else ""
    wider = own - control >= 1
    widens = "in 1 of the 1 pairs (LightSAM-I)" if wider else "in none of the 1 pairs"
    capped = (", though with it LightSAM-I trains at every radius tried, so this grid cannot "
              "show how much wider") if full["lightsam_i"] and not wider else ""  # fmt: skip
    assert (f"- Radius windows after {epochs} epochs ({radii}, where the training loss is within "
            f"2x of the arm's best; the widest over the lrs; a difference under a level step, 1 "
            f"decade, is read as none): LightSAM-I {own:.1f}{every}, "
            f"{compared(own, widest['sgd_sam'])} SGD-SAM's ({widest['sgd_sam']:.1f}) and "
            f"{compared(own, control)} SAM + AdaGrad-Norm's ({control:.1f}), the same descent "
            f"with SAM's ascent. So LightSAM's ascent in place of SAM's, the descent unchanged, "
            f"widens the radius window by a level step or more {widens}{capped}."
            in text)  # fmt: skip
    return f"widens the radius window by a level step or more {widens}{capped}"


def trained_confirmation(
    grid: pd.DataFrame, store: Path, confirm: pd.DataFrame
) -> dict[str, tuple[pd.Series, list[str], int]]:
    """Per grid arm with a confirmation arm (its optimizer at its epochs): the validation
    accuracies of the confirmation's seeds that neither diverged nor stalled, how those left
    out ended ("2 stalled") and the number of seeds."""
    ended, found = endings(store, confirm), {}
    for arm, own in grid.groupby("arm"):
        mine = confirm[confirm["optimizer"].eq(own["optimizer"].iloc[0])
                       & confirm["epochs"].eq(own["epochs"].iloc[0])]  # fmt: skip
        if mine.empty:
            continue
        how = ended[mine["arm"].iloc[0]].loc[mine["seed"]].to_numpy()
        seeds = mine.loc[~np.isin(how, ["diverged", "stalled"]), "val_acc"]
        failed = [f"{n} {kind}" for kind in ("diverged", "stalled") if (n := (how == kind).sum())]
        found[arm] = seeds, failed, len(how)
    return found


def confirmation_noise(grid: pd.DataFrame, store: Path, confirm: pd.DataFrame) -> dict[str, float]:
    """Per grid arm, the std of its :func:`trained_confirmation` seeds' validation accuracy
    (NaN with fewer than two)."""
    return {arm: seeds.std(ddof=1) if len(seeds) > 1 else math.nan
            for arm, (seeds, *_) in trained_confirmation(grid, store, confirm).items()}  # fmt: skip


def near_best_agrees(text: str, grid: pd.DataFrame, store: Path, confirm: pd.DataFrame) -> None:
    """Each arm's count of grid cells within 2 sqrt(2) sigma of its best validation accuracy
    (a diverged cell at chance), sigma the std of validation accuracy over the confirmation's
    seeds at the arm's own optimizer and epochs that neither diverged nor stalled, those that
    did named as left out."""
    assert ("a grid cell (one seed) is near best when its validation accuracy is within "
            f"{2 * math.sqrt(2):.2f}σ (2√2σ: two single runs differ with std √2σ, two standard "
            "errors) of its arm's best cell" in text)  # fmt: skip
    for arm, (seeds, failed, total) in trained_confirmation(grid, store, confirm).items():
        own = grid[grid["arm"].eq(arm)]
        plural = "s" * (total - len(seeds) > 1)
        left_out = f", its {' and '.join(failed)} seed{plural} left out" if failed else ""
        trained = f"{len(seeds)} seed{'s' * (len(seeds) != 1)}"
        if len(seeds) < 2:
            assert (f"{common.label(arm)}: no seed noise to calibrate by ({trained} of "
                    f"{total} trained{left_out})." in text), arm  # fmt: skip
            continue
        sigma, threshold = seeds.std(ddof=1), 2 * math.sqrt(2) * seeds.std(ddof=1)
        val = np.where(own["status"].eq("ok"), own["val_acc"], 0.1)
        near = int((val >= val.max() - threshold).sum())
        assert (f"{common.label(arm)}: {near} of {len(own)} grid cells ({near / len(own):.0%}) "
                f"within {100 * threshold:.2f} points of its best (σ = {100 * sigma:.2f} points "
                f"from {trained}{left_out})." in text), arm  # fmt: skip


def holm_agrees(contrasts: pd.DataFrame, confirm: pd.DataFrame) -> None:
    """The contrasts table's p-values (a two-sided one-sample t-test of the paired differences,
    scipy's) and their Holm adjustment over all of them, done here by hand."""
    scores = seed_scores(confirm)
    p = [scipy.stats.ttest_1samp((scores[r.method] - scores[r.base]).dropna(), 0).pvalue
         for r in contrasts.itertuples()]  # fmt: skip
    assert contrasts["p"].to_list() == pytest.approx(p, nan_ok=True)
    family = sorted((value, i) for i, value in enumerate(p) if not math.isnan(value))
    adjusted, running = [math.nan] * len(p), 0.0
    for rank, (value, i) in enumerate(family):
        running = max(running, min(1.0, (len(family) - rank) * value))
        adjusted[i] = running
    assert contrasts["holm_p"].to_list() == pytest.approx(adjusted, nan_ok=True)


def verdicts_agree(
    text: str, contrasts: pd.DataFrame, store: Path, confirm: pd.DataFrame
) -> dict[tuple[str, str], int]:
    """Each contrast's mean and verdict by the report's rule, from its paired t interval
    computed here and its bootstrap interval (a resampling, so read from the table, but checked
    to lie within the range of the differences, as every resampled mean does), and the report's
    sentence ending of each: the bootstrap interval, the pairs, those with a run that diverged
    or stalled, the verdict. Returns the count of those pairs by (method, base)."""
    scores, ended, untrained_pairs = seed_scores(confirm), endings(store, confirm), {}
    for r in contrasts.itertuples():
        d = (scores[r.method] - scores[r.base]).dropna()
        low, high = d.mean() - t_half(d.to_numpy()), d.mean() + t_half(d.to_numpy())
        assert r.mean == pytest.approx(d.mean()), r.method
        assert (r.t_low, r.t_high) == pytest.approx((low, high)), r.method
        assert d.min() - 1e-12 <= r.boot_low <= r.boot_high <= d.max() + 1e-12, r.method
        rule = ("higher" if low > 0 and r.boot_low > 0
                else "lower" if high < 0 and r.boot_high < 0
                else "no difference resolved")  # fmt: skip
        assert r.verdict == rule, r.method
        untrained = sum(bool({ended[r.method][seed], ended[r.base][seed]} & {"diverged", "stalled"})
                        for seed in d.index)  # fmt: skip
        pairs = f"{untrained} pair{'s' * (untrained > 1)}"
        clause = f" ({pairs} with a run that diverged or stalled)" if untrained else ""
        (method, epochs), (base, base_epochs) = (
            confirm.loc[confirm["arm"].eq(arm), ["optimizer", "epochs"]].iloc[0]
            for arm in (r.method, r.base)
        )
        assert (f"- {common.label(method)} ({epochs:.0f} epochs) minus {common.label(base)} at "
                f"{base_epochs:.0f} epochs ({r.comparison}), test accuracy: {100 * d.mean():+.2f} "
                f"points, 95% CI [{100 * low:+.2f}, {100 * high:+.2f}] (paired t) and "
                f"[{100 * r.boot_low:+.2f}, {100 * r.boot_high:+.2f}] (bootstrap, 10000 "
                f"resamples), {len(d)} seed pairs{clause}: {rule}." in text), r  # fmt: skip
        untrained_pairs[(r.method, r.base)] = untrained
    return untrained_pairs


def leader_agrees(text: str, confirm: pd.DataFrame) -> None:
    """The sharpness-aware arm with the highest mean test score over its fresh seeds, and who
    ties with it (95% t intervals overlapping its) or is below it (clear of it); a leader only
    when no interval overlaps its."""
    scores = seed_scores(confirm)
    sam = sorted(confirm.loc[confirm["rho"].notna(), "arm"].unique())
    mean = {arm: scores[arm].mean() for arm in sam}
    half = {arm: t_half(scores[arm].to_numpy()) for arm in sam}
    top = max(sam, key=mean.get)
    tied = [a for a in sam if a != top and mean[a] + half[a] >= mean[top] - half[top]]
    below = [a for a in sam if a != top and a not in tied]
    name = f"{common.label(top)} ({100 * mean[top]:.2f}%)"

    def listed(arms: list[str]) -> str:
        return ", ".join(common.label(a) for a in common.ordered(arms))

    if not tied:
        said = (f"{name} has the highest test accuracy among the sharpness-aware arms, its 95% "
                "interval clear of every other's.")  # fmt: skip
    else:
        lower = (f", and {listed(below)} {'is' if len(below) == 1 else 'are'} below it "
                 "(intervals clear of its)") if below else ""  # fmt: skip
        said = (f"No sharpness-aware arm leads: the highest mean is {name}; {listed(tied)} tie "
                f"with it (95% intervals overlapping its){lower}.")  # fmt: skip
    assert said in text, said


def one_change_agrees(
    text: str, contrasts: pd.DataFrame, untrained: dict[tuple[str, str], int]
) -> None:
    """The one-change sentence: each contrast of two arms that differ only in the ascent or only
    in the descent, by the numbers of the contrasts table (checked by :func:`verdicts_agree`),
    with its pairs holding a run that diverged or stalled (``untrained``, by method and base,
    from :func:`verdicts_agree`), and how
    many of them move test accuracy beyond seed noise."""
    own = contrasts[contrasts["comparison"].str.startswith("only the")]
    assert len(own), "the smoke grid has a one-change pair: LightSAM-I and SAM + AdaGrad-Norm"
    said = []
    for r in own.itertuples():
        n = untrained[(r.method, r.base)]
        pairs = f" ({n} pair{'s' * (n > 1)} with a run that diverged or stalled)" if n else ""
        said.append(f"{common.label(r.method)} minus {common.label(r.base)} ({r.comparison}): "
                    f"{100 * r.mean:+.2f} points, 95% CI [{100 * r.t_low:+.2f}, "
                    f"{100 * r.t_high:+.2f}]{pairs}, {r.verdict}")  # fmt: skip
    resolved = int(own["verdict"].ne("no difference resolved").sum())
    verdict = (
        f"{resolved} of the {len(own)} single changes move it beyond seed noise"
        if resolved
        else "no change of the ascent or the descent alone moves test accuracy beyond seed noise"
    )
    assert (f"One change at a time, each arm at its own cell selected on validation (so each is "
            f"tuned over the same grid, not run at one lr and radius): {'; '.join(said)}; so "
            f"{verdict}" in text), said  # fmt: skip


def multiplicity_agrees(text: str, contrasts: pd.DataFrame) -> None:
    """The Holm sentence: how many of the resolved contrasts keep a family-wise 5% level, by
    the Holm-adjusted p-values that :func:`holm_agrees` recomputes; no sentence when none is
    resolved."""
    tested = contrasts.dropna(subset=["p"])
    resolved = tested[tested["verdict"].ne("no difference resolved")]
    if resolved.empty:
        assert "Tested together" not in text
        return
    kept = resolved[resolved["holm_p"].lt(0.05)]
    names = "; ".join(f"{common.label(r.method)} against "
                      f"{common.label(common.optimizer_of(r.base))} at {r.base_epochs:.0f} epochs "
                      "(Holm p "
                      + ("< 0.001" if r.holm_p < 0.001 else f"= {r.holm_p:.3f}") + ")"
                      for r in kept.itertuples())  # fmt: skip
    assert (f"- Tested together, {len(kept)} of the {len(resolved)} resolved contrasts keep a "
            f"family-wise 5% level (Holm over all {len(tested)} paired t-tests): "
            f"{names or 'none'}." in text)  # fmt: skip


def recovery_agrees(text: str, grid_store: Path, store: Path, reruns: pd.DataFrame) -> None:
    """The audit's size: the grid's diverged runs, those of them the loss limit stopped (their
    stopping loss recorded; the limit read from their configs), those rerun without it. Each
    arm's reruns by outcome, from their result and metrics files: diverged (a non-finite loss),
    trained (final training-subset loss below 0.5x its initial value), else ok but stalled; and
    the sentence on what the stop rule cut short."""
    grid = collect(grid_store).runs
    diverged = grid[grid["status"].eq("diverged")]
    stopped = diverged[diverged["stopping_loss"].notna()]
    limit = loss_limit(grid_store, stopped["run_id"])
    assert (f"Of the {len(diverged)} grid runs that diverged, {len(stopped)} were stopped by a "
            f"loss above {limit:g} (the others by a non-finite loss, which cannot recover); of "
            f"those, {len(reruns)} were rerun without the limit, so that only a non-finite loss "
            "ends a run." in text)  # fmt: skip
    outcomes = {}
    for run in reruns.itertuples():
        final = [m["probe_loss"] for m in files.read_metrics(store / run.run_id)][-1:]
        trained = bool(final) and final[0] < 0.5 * run.probe_loss_initial
        outcomes.setdefault(run.arm, collections.Counter())[
            "diverged" if run.status == "diverged" else "trained" if trained else "stalled"
        ] += 1
    for arm, n in outcomes.items():
        assert (f"{common.label(arm)}: {n.total()} rerun(s), {n['trained']} trained (final "
                f"training-subset loss below 0.5x its initial value), {n['stalled']} ok but "
                f"stalled, {n['diverged']} diverged (non-finite)." in text), arm  # fmt: skip
    trained = sum(n["trained"] for n in outcomes.values())
    assert (f"So the stop rule cut short {trained} run(s) that would have trained" if trained
            else "No rerun trained: the stop rule cut short no run") in text  # fmt: skip


def half_window(cells: pd.DataFrame) -> str:
    """The lrs at which, in at least half of an arm's radii, every seed reached 1e-2."""
    every = cells.groupby(["lr", "rho"], dropna=False)["steps_to_1e-2"].apply(
        lambda s: s.notna().all()
    )
    share = every.groupby(level="lr").mean()
    return ", ".join(sci(lr) for lr in share.index[share >= 0.5]) or "none"


def best_cell(cells: pd.DataFrame, curves: pd.DataFrame, steps: int) -> str:
    """An arm's best cell, the lowest median over seeds of the mean squared gradient norm up to
    T (the first in (lr, rho) order among equals), with that median and the median slope of
    log(mean up to T) against log(T) over horizons T >= steps / 100, fitted here from the
    curves by least squares, not read from the cells."""
    median = cells.groupby(["lr", "rho"], dropna=False)["avg_sq_grad"].median()
    lr, rho = median.fillna(math.inf).idxmin()
    at = (curves["lr"] == lr) & (curves["rho"].isna() if math.isnan(rho) else curves["rho"] == rho)
    late = curves[at & (curves["T"] >= steps / 100)]
    slopes = []
    for _, seed in late.groupby("seed"):
        y = np.log(seed["avg_sq_grad"].to_numpy())
        finite = np.isfinite(y).all() and len(y) > 1
        slopes.append(np.polyfit(np.log(seed["T"].to_numpy()), y, 1)[0] if finite else math.nan)
    where = f"lr {sci(lr)}" + ("" if math.isnan(rho) else f", rho {sci(rho)}")
    value = median.fillna(math.inf).min()
    return (f"best cell ({where}): mean squared gradient norm {value:.2g} of the "
            f"start, slope against T over the last two decades {pd.Series(slopes).median():.2f} "
            "(the theorem's rate is -0.5).")  # fmt: skip


def theorem_agrees(text: str, directory: Path) -> None:
    """The theorem's problem per arm, from its stored cells (``cells.csv``, a row per arm, lr,
    rho and seed) and curves (``curves.csv``, a row per cell, seed and horizon T): the runs that
    ever came to 1e-4; the (lr, rho) cells in which every seed reached 1e-2 and 1e-3 of the
    start, those in which some seed diverged, those in which every seed ended above its start
    without diverging, the lrs where most radii reached 1e-2, the best
    cell (:func:`best_cell`); and each sharpness-aware arm's shares against its base's,
    different only by more than one cell of the base's grid."""
    cells, curves = pd.read_csv(directory / "cells.csv"), pd.read_csv(directory / "curves.csv")
    meta = json.loads((directory / "meta.json").read_text())
    setting, lrs, rhos = (
        meta["settings"],
        sorted(set(cells["lr"])),
        sorted(set(cells["rho"].dropna())),
    )
    smoothness = meta["smoothness"]
    assert meta["cells"] == len(cells) and sorted(set(cells["seed"])) == sorted(setting["seeds"])
    reached = int((cells["min_sq_grad"] <= 1e-4).sum())
    assert (f"- Problem: {meta['description']}; n = {setting['n']}, d = {setting['dim']}, L <= "
            f"{smoothness:.3g} (so 2/L = {2 / smoothness:.3g}), batch {setting['batch']}, D0 = "
            f"{setting['d0']:g}, D1 = {setting['d1']:g}; T = {setting['steps']} steps; lr from "
            f"{sci(lrs[0])} to {sci(lrs[-1])} ({math.log10(lrs[-1] / lrs[0]):.0f} decades), rho "
            f"from {sci(rhos[0])} to {sci(rhos[-1])} ({math.log10(rhos[-1] / rhos[0]):.0f}); "
            f"{len(setting['seeds'])} seeds; {len(cells)} runs in {meta['wall_s']:.0f} s. Targets: "
            f"the squared gradient norm at 1e-2 and at 1e-3 of its start, within T, with every "
            f"seed; {reached} of the {len(cells)} runs ever came to 1e-4 (their smallest squared "
            "gradient norm)." in text)  # fmt: skip
    shares = {}
    for arm, own in cells.groupby("arm"):
        per_cell = own.groupby(["lr", "rho"], dropna=False)
        every = {t: int(per_cell[f"steps_to_{t}"].apply(lambda s: s.notna().all()).sum())
                 for t in ("1e-2", "1e-3")}  # fmt: skip
        n = per_cell.ngroups
        diverged = int(per_cell["diverged"].apply(lambda s: s.gt(0).any()).sum())
        above = sum(bool((cell["diverged"] == 0).all() and (cell["final_sq_grad"] >= 1).all())
                    for _, cell in per_cell)  # fmt: skip
        shares[arm] = {t: (k, n) for t, k in every.items()}
        assert (
            f"{common.label(arm)}: reached 1e-2: {every['1e-2']} of {n} cells; 1e-3: "
            f"{every['1e-3']} of {n} cells; some seed diverged in {diverged}; every seed ended "
            f"above its start without diverging in {above}; learning rates at "
            f"which at least half of the radii reached 1e-2: {half_window(own)}; "
            f"{best_cell(own, curves[curves['arm'].eq(arm)], setting['steps'])}" in text
        ), arm
    for method, base in common.BASE_OF.items():
        if method not in shares or base not in shares:
            continue
        said = []
        for t in ("1e-2", "1e-3"):
            (a, n), (b, m) = shares[method][t], shares[base][t]
            verdict = (
                "wider than"
                if a / n > b / m + 1 / m
                else "narrower than"
                if a / n < b / m - 1 / m
                else "about the same as"
            )
            said.append(f"at {t}, {verdict} its base's ({a}/{n} against {b}/{m})")
        assert (f"{common.label(method)} against {common.label(base)}, the share of the grid "
                f"that reached each target: {'; '.join(said)}." in text), method  # fmt: skip


def convergence_agrees(text: str, store: Path, grid: pd.DataFrame) -> None:
    """The arms whose best grid run (lowest final training-subset loss among those that did not
    diverge) was still improving at its last epoch, by :func:`ending`."""
    improving, arms = [], 0
    for arm in common.ordered(grid["arm"]):
        finals = {}
        for run in grid[grid["arm"].eq(arm) & grid["status"].ne("diverged")].itertuples():
            losses = [m["probe_loss"] for m in files.read_metrics(store / run.run_id)]
            finals[run.run_id] = (losses[-1], ending(run.status, run.probe_loss_initial, losses))
        if finals:
            arms += 1
            if min(finals.values())[1] == "still improving":
                improving.append(common.label(arm))
    said = (f"{len(improving)} of the {arms} arms ({', '.join(improving)}), so their budgets "
            "stop short of convergence" if improving else f"none of the {arms} arms")  # fmt: skip
    assert (f"was still improving at its last epoch (a loss drop of more than 10% over the last "
            f"fifth) for {said}" in text), said  # fmt: skip


def generalisation_statement_agrees(text: str, contrasts: pd.DataFrame) -> None:
    """The statement's sentences on LightSAM-I against its base, and on every sharpness-aware
    arm against its base at equal gradient evaluations, from the contrasts' verdicts (each
    checked by :func:`verdicts_agree`): resolved or not, the range of differences, the contrasts
    that only the bootstrap interval resolves, the arms that score lower or higher."""
    base = contrasts["comparison"].isin(["equal epochs", "equal gradient evaluations"])
    own = contrasts[contrasts["method"].eq("lightsam_i") & base]
    unresolved = own["verdict"].eq("no difference resolved")
    if unresolved.all():
        assert (f"No LightSAM variant's test accuracy at its selected cell differs from its base's "
                f"beyond seed noise (both the paired t and the bootstrap 95% interval clear of "
                f"0): differences {100 * own['mean'].min():+.2f} to {100 * own['mean'].max():+.2f} "
                f"points, {own['pairs'].max()} seed pairs" in text)  # fmt: skip
    else:
        said = " and ".join(
            f"{r.verdict} than AdaGrad-Norm at {r.base_epochs:.0f} epochs ({100 * r.mean:+.2f} "
            f"points, 95% CI [{100 * r.t_low:+.2f}, {100 * r.t_high:+.2f}] (t), "
            f"[{100 * r.boot_low:+.2f}, {100 * r.boot_high:+.2f}] (bootstrap))"
            for r in own[~unresolved].itertuples()
        )
        rest = int(unresolved.sum())
        others = (f"; the variants' other {rest} contrast(s) with their bases are not resolved"
                  if rest else "")  # fmt: skip
        assert (f"- Beyond seed noise (both the paired t and the bootstrap 95% interval clear of "
                f"0), in test accuracy at the selected cells, LightSAM-I scores {said}{others}."
                in text), said  # fmt: skip
    hint = own[unresolved & ((own["boot_low"] > 0) | (own["boot_high"] < 0))]
    for r in hint.itertuples():
        assert (
            f"LightSAM-I against AdaGrad-Norm at {r.base_epochs:.0f} epochs ({100 * r.mean:+.2f} "
            f"points, 95% CI [{100 * r.t_low:+.2f}, {100 * r.t_high:+.2f}] (t), "
            f"[{100 * r.boot_low:+.2f}, {100 * r.boot_high:+.2f}] (bootstrap))" in text
        ), r
    assert ("The bootstrap interval alone" in text) == (len(hint) > 0)
    matched = contrasts[contrasts["comparison"].eq("equal gradient evaluations")]
    line = next(line for line in text.splitlines() if line.startswith("- At equal gradient"))
    assert f"of the {len(matched)} sharpness-aware arms" in line, line
    for verdict in ("lower", "higher"):
        rows = matched[matched["verdict"].eq(verdict)]
        assert (f"none scores {verdict}" in line) == rows.empty, (verdict, line)
        for r in rows.itertuples():
            assert f"{common.label(r.method)} {100 * r.mean:+.2f}" in line, (r.method, line)


def study_agrees(text: str, runs: Path, tables: Path) -> None:
    """The budget study's sections, against the stores computed here by hand: each arm's
    endings and where they fall, the theorem's measure, the realised radius through training,
    its lr and radius windows, their change from E // 2 to E epochs and the one-change radius
    sentence, its near-best count, the selected cells (chosen
    on validation by the stated rule), the
    leader (if any) and the paired differences on the fresh seeds with their verdicts and
    Holm-adjusted p-values (in ``tables``, the contrasts' CSV), the statement, the tuning cost
    at each k the report gives, and the recovery audit's size and outcomes."""
    headings = ("What the data support", "learning-rate windows against the budget",
                "How each run ended", "Generalisation at the cells selected on validation",
                "Near best, by the seed noise", "The recovery audit", "Tuning cost")  # fmt: skip
    for heading in headings:
        assert heading in text, heading
    grid, confirm = collect(runs / "smoke").runs, collect(runs / "smoke_confirm").runs
    epochs = int(grid.loc[grid["rho"].notna(), "epochs"].max())
    failures_agree(text, runs / "smoke", grid)
    stationarity_agrees(text, runs / "smoke", grid)
    realised_radius_agrees(text, runs / "smoke", grid)
    lowest_lr_agrees(text, runs / "smoke", grid, tables)
    widths, changes, swap = windows_agree(text, runs / "smoke", grid)
    window_changes_agree(text, changes, epochs)
    convergence_agrees(text, runs / "smoke", grid)
    near_best_agrees(text, grid, runs / "smoke_confirm", confirm)
    selection_agrees(runs / "smoke", grid, confirm)
    confirmation_agrees(text, runs / "smoke_confirm", confirm)
    leader_agrees(text, confirm)
    contrasts = pd.read_csv(tables / "budget_contrasts.csv")
    holm_agrees(contrasts, confirm)
    untrained = verdicts_agree(text, contrasts, runs / "smoke_confirm", confirm)
    one_change_agrees(text, contrasts, untrained)
    multiplicity_agrees(text, contrasts)
    statement_agrees(text, widths, contrasts, epochs, swap)
    generalisation_statement_agrees(text, contrasts)
    tuning_agrees(text, grid)
    reruns = collect(runs / "smoke_recovery").runs
    recovery_agrees(text, runs / "smoke", runs / "smoke_recovery", reruns)


def test_miniature_reproduce_writes_a_report_that_agrees_with_the_store(tmp_path):
    runs, figures = tmp_path / "runs", tmp_path / "figures"
    report, readme = tmp_path / "REPORT.md", tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    elsewhere = tmp_path / "elsewhere"  # the command works from any directory
    elsewhere.mkdir()

    first = lightsam("reproduce", "--preset", "smoke", "--out", str(runs), cwd=elsewhere)
    assert "sweep smoke: 16 of 16 runs to launch" in first
    # Fresh seeds 1-3 at each arm's selected cell: SGD-SAM, LightSAM-I, SAM + AdaGrad-Norm, SGD
    # and AdaGrad-Norm at 2 and 4 epochs;
    # and SGD-SAM's runs at lr = 10 that the loss limit stopped (not a non-finite loss), without.
    assert "sweep smoke (confirm): 21 of 21 runs to launch" in first
    grid = collect(runs / "smoke").runs
    stopped = int(grid["stopping_loss"].notna().sum())
    assert stopped >= 1 and f"sweep smoke (recovery): {stopped} of {stopped} runs" in first
    again = lightsam("reproduce", "--preset", "smoke", "--out", str(runs), cwd=elsewhere)
    for stage in (
        "smoke: 0 of 16",
        "smoke (confirm): 0 of 21",
        f"smoke (recovery): 0 of {stopped}",
    ):
        assert f"sweep {stage} runs to launch" in again  # a second call trains nothing

    lightsam("figures", "--runs", str(runs), "--out", str(figures), "--report", str(report),
             "--readme", str(readme), cwd=elsewhere)  # fmt: skip
    for stem in FIGURES:
        for suffix in (".png", ".pdf"):
            assert (figures / "smoke" / f"{stem}{suffix}").stat().st_size > 0
    for name in ("best.md", "best.tex", "runs.csv", "aggregate.csv"):
        assert (figures / "smoke" / name).stat().st_size > 0
    for name in ("theorem_steps", "theorem_rates"):
        assert (figures / "theorem" / f"{name}.png").stat().st_size > 0
    for stem in ("budget_windows", "budget_radius", "budget_failures", "budget_stationarity",
                 "budget_contrasts", "budget_tuning"):  # fmt: skip
        for suffix in (".png", ".pdf"):
            assert (figures / "smoke" / f"{stem}{suffix}").stat().st_size > 0

    text = report.read_text()
    grid, confirm = collect(runs / "smoke").runs, collect(runs / "smoke_confirm").runs
    noise = confirmation_noise(grid, runs / "smoke_confirm", confirm)
    best_rows_agree(text, runs / "smoke", noise)
    best_rows_agree((figures / "smoke" / "best.md").read_text(), runs / "smoke", noise)
    store_header_agrees(text, runs / "smoke")
    assert "Outside the plan" not in text
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (report.parent / image).exists(), image
    theorem_agrees(text, runs / "theorem")
    study_agrees(text, runs, figures / "smoke")
    store_figures_agree(runs / "smoke", noise)
    theorem_figures_agree(runs / "theorem")
    budget_figures_agree(runs / "smoke", runs / "smoke_confirm", runs / "smoke_recovery")

    block = readme.read_text().split("<!-- results:start")[1].split("<!-- results:end -->")[0]
    assert "budget_windows.png" in block and "budget_radius.png" in block and "| SGD-SAM |" in block
    assert "After 2 epochs at the middle radius" in block  # the plain statement
    assert "theorem_steps.png" in block and "LightSAM-I against" in block
    assert (ROOT / "README.md").read_text() != readme.read_text()

    # The sweep file edited (epochs 2 -> 3) and rerun into the same store: the old runs are
    # outside the new plan, listed, and pooled into nothing; the bases' runs, at 4 epochs of
    # their own, are the same computations and are not run again.
    edited = elsewhere / "smoke.yaml"
    text = (ROOT / "sweeps" / "smoke.yaml").read_text()
    text = text.replace("../experiments/", f"{ROOT}/experiments/").replace(
        "epochs: 2\n", "epochs: 3\n"
    )
    edited.write_text(text)
    rerun = lightsam("sweep", str(edited), "--out", str(runs / "smoke"), cwd=elsewhere)
    assert "12 of 16 runs to launch" in rerun and "12 run(s) in" in rerun
    status = lightsam("status", str(edited), "--out", str(runs / "smoke"), cwd=elsewhere)
    assert "12 run(s) outside the plan" in status
    lightsam("figures", "--runs", str(runs), "--out", str(figures), "--report", str(report),
             cwd=elsewhere)  # fmt: skip
    text = report.read_text()
    grid = collect(runs / "smoke").runs
    best_rows_agree(text, runs / "smoke", confirmation_noise(grid, runs / "smoke_confirm", confirm))
    assert "`3` / `4` epochs" in text and "16 runs planned" in text
    assert "Outside the plan: 12 run directories" in text
    collection = collect(runs / "smoke")
    assert len(collection.runs) == 16 and set(collection.runs["epochs"]) == {3.0, 4.0}
    assert aggregate(collection.runs)["n"].max() == 1  # one seed a cell, as planned


def test_make_dry_run_prices_the_paper_preset_and_runs_nothing():
    """`make reproduce PRESET=paper --dry-run`: make's own -n, under which the Makefile runs
    only the dry run of the preset."""
    before = sorted(p.name for p in ROOT.iterdir())
    done = subprocess.run(
        ["make", "reproduce", "PRESET=paper", "PROFILE=gpu_example", "--dry-run"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert sum(line.startswith("cost of sweep screen_") for line in lines) == 4
    assert any(line.startswith("preset paper: ") for line in lines)
    assert not any(line.startswith("submitted") for line in lines)
    assert sorted(p.name for p in ROOT.iterdir()) == before
