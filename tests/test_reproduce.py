"""A miniature `make reproduce`, end to end: experiments, figures, tables, REPORT.md, README; then
the sweep file edited and rerun, whose old runs must stay out of every number."""

from __future__ import annotations

import collections
import itertools
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from analysis import common
from analysis.results import aggregate, best_settings, collect
from lightsam import store as files

ROOT = Path(__file__).parents[1]
FIGURES = ("heatmaps", "sensitivity", "robustness", "training_curves")
ENDINGS = ("diverged", "stalled", "still improving", "trained")


def lightsam(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "lightsam", *args], capture_output=True, text=True, cwd=cwd
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def best_rows_agree(text: str, store: Path) -> None:
    collection = collect(store)
    best = best_settings(aggregate(collection.runs, collection.missing))
    for row in best.itertuples():
        std = "–" if math.isnan(row.test_acc_std) else f"{100 * row.test_acc_std:.2f}"
        assert f"{100 * row.test_acc_mean:.2f} ± {std} ({row.n_seeds})" in text, row.arm


def score(run: pd.Series) -> float:
    """A run's test accuracy, a diverged one at chance (10 classes)."""
    return run["test_acc"] if run["status"] == "ok" else 0.1


def seed_scores(confirm: pd.DataFrame) -> dict[str, pd.Series]:
    """Each confirmation arm's test scores, by seed."""
    return {arm: own.set_index("seed").apply(score, axis=1) for arm, own in confirm.groupby("arm")}


def t_half(values: np.ndarray) -> float:
    return scipy.stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))


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


def confirmation_agrees(text: str, store: Path, confirm: pd.DataFrame) -> None:
    """Each selected cell's test accuracy and its 95% interval over the fresh seeds, how many
    of them diverged or stalled, and each paired difference against its base with its paired t
    interval, computed here from the confirmation store's results with scipy's Student t."""
    scores, ended = seed_scores(confirm), endings(store, confirm)
    for arm, own in scores.items():
        assert len(own) == 3, arm
        mean, std = 100 * own.mean(), 100 * own.std(ddof=1)
        n = collections.Counter(ended[arm])
        seeds = " and ".join(
            [f"{n['diverged']} diverged (scored as chance)"] * bool(n["diverged"])
            + [f"{n['stalled']} stalled (final training-subset loss at least 0.9x its initial)"]
            * bool(n["stalled"])
        )
        assert (f"test accuracy {mean:.2f}% (std {std:.2f}, 95% CI ±{100 * t_half(own):.2f} "
                f"points, 3 fresh seeds, {seeds or 'none diverged or stalled'})"
                in text), arm  # fmt: skip
    contrasts = {("sgd_sam", "sgd (epochs=1)", "equal epochs"),
                 ("sgd_sam", "sgd (epochs=2)", "equal gradient evaluations")}  # fmt: skip
    for method, base, comparison in contrasts:
        d = (scores[method] - scores[base]).to_numpy()
        low, high = 100 * (d.mean() - t_half(d)), 100 * (d.mean() + t_half(d))
        assert (f"SGD-SAM (1 epochs) minus SGD at {base[-2]} epochs ({comparison}), test "
                f"accuracy: {100 * d.mean():+.2f} points, 95% CI [{low:+.2f}, {high:+.2f}] "
                "(paired t)" in text), comparison  # fmt: skip


def tuning_agrees(text: str, grid: pd.DataFrame) -> None:
    """The tuning cost of each arm at k = 1 and 3 (below its number of cells) and at all of
    them: over every k-subset of its grid cells (one seed each, a diverged run at chance), the
    test score of the subset's best cell on validation (the mean of those tied on it)."""
    for arm, own in grid.groupby("arm"):
        cells = [
            (0.1 if r.status == "diverged" else r.val_acc, score(r)) for _, r in own.iterrows()
        ]
        n, said = len(cells), []
        for k in [k for k in (1, 3) if k < len(cells)] + [len(cells)]:
            picked = []
            for subset in itertools.combinations(cells, k):
                top = max(val for val, _ in subset)
                picked.append(np.mean([test for val, test in subset if val == top]))
            said.append(f"{100 * np.mean(picked):.1f}% at k = {k}")
        assert f"{common.label(arm)}: {', '.join(said)} (all {n} cells)" in text, arm


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


def failures_agree(text: str, store: Path, grid: pd.DataFrame) -> None:
    """Each arm's count of every ending, from each run's result and metrics files."""
    for arm, own in grid.groupby("arm"):
        counts = collections.Counter(
            ending(run.status, run.probe_loss_initial,
                   [m["probe_loss"] for m in files.read_metrics(store / run.run_id)])
            for run in own.itertuples()
        )  # fmt: skip
        said = ", ".join(f"{counts[k]} {k}" for k in ENDINGS)
        epochs = int(own["epochs"].max())
        assert f"{common.label(arm)} ({len(own)} runs, {epochs} epochs): {said}" in text, arm


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


def sci(value: float) -> str:
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def shown(found: tuple[float, int, float, float], cells: int) -> str:
    width, inside, low, high = found
    if not inside:
        return "0 decades (no grid lr within)"
    ends = f"lr {sci(10**low)} to {sci(10**high)}"
    return f"{width:.1f} decades ({ends}, {inside} of {cells} grid lrs)"


def windows_agree(text: str, store: Path, grid: pd.DataFrame) -> dict[str, float]:
    """Every lr window and radius window the report gives after the sharpness-aware arms'
    epochs E (a base's also after 2E), from each run's metrics: the arm's best over its whole
    grid at that budget, a cell's radius level the rank of its rho, a level's radius the median
    realised first ascent of the runs at it. Returns the lr windows' widths the statement
    compares: each sharpness-aware arm's at the middle level after E epochs, each base's after E
    and 2E (keys ``arm@E``)."""
    curves = {run.run_id: probe_curve(store, run) for run in grid.itertuples()}
    sam = grid[grid["rho"].notna()]
    # The level of a cell is the rank of its rho: for a grid whose sharpness-aware arms all run
    # over the same number of rhos, as the smoke grid's do (a single-rho arm would sit at the
    # middle level, and a level's line would leave it out of the others).
    assert sam.groupby("arm")["rho"].nunique().nunique() == 1
    epochs = int(sam["epochs"].max())
    level = {(run.arm, run.rho): sorted(set(own["rho"])).index(run.rho)
             for arm, own in sam.groupby("arm") for run in own.itertuples()}  # fmt: skip
    levels = sorted(set(level.values()))
    radius = {lv: float(np.median([r.perturbation_norm_first for r in sam.itertuples()
                                   if level[(r.arm, r.rho)] == lv])) for lv in levels}  # fmt: skip

    def at(own: pd.DataFrame, epoch: int) -> list[float]:
        return [curves[run_id][epoch - 1] for run_id in own["run_id"]]

    def best(own: pd.DataFrame, epoch: int) -> float:
        return min(loss for loss in at(own, epoch) if math.isfinite(loss))

    middle, widths = (max(levels) + 1) // 2, {}
    for lv in levels:
        parts = []
        for arm in common.ordered(sam["arm"]):
            own = sam[sam["arm"].eq(arm)]
            cells = own[[level[(arm, rho)] == lv for rho in own["rho"]]]
            found = window_of(list(np.log10(cells["lr"])), at(cells, epochs), best(own, epochs))
            parts.append(f"{common.label(arm)} {shown(found, len(cells))}")
            if lv == middle:
                widths[arm] = found[0]
        line = (f"Radius level {lv} (realised ‖e₁‖ ≈ {radius[lv]:.2g}), after {epochs} epochs: "
                f"{'; '.join(parts)}.")  # fmt: skip
        assert line in text, line
    for arm, own in grid[grid["rho"].isna()].groupby("arm"):
        found = [window_of(list(np.log10(own["lr"])), at(own, e), best(own, e))
                 for e in (epochs, 2 * epochs)]  # fmt: skip
        both = [shown(f, len(own)) for f in found]
        assert f"{common.label(arm)} {both[0]} and {both[1]}" in text, arm
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
    assert f"the widest over the lrs: {said}." in text, said
    ascent_swap_agrees(text, {arm: w for arm, (w, _) in widest.items()}, full)
    return widths


def statement_agrees(text: str, widths: dict[str, float], contrasts: pd.DataFrame) -> None:
    """The statement's lr windows of LightSAM-I (the smoke grid's one variant) after E = 1
    epoch at the middle radius against SGD-SAM's and AdaGrad-Norm's after 1 and 2 epochs, a
    difference under a grid step (1 decade: the smoke's lrs are decades) read as none; and the
    bottom line: whether its window is wider than both SGD-SAM's and its base's by a grid step,
    whether it generalises better than its base (a contrast at equal epochs or equal gradient
    evaluations whose verdict, checked by :func:`verdicts_agree`, is "higher")."""

    own, sgd_sam = widths["lightsam_i"], widths["sgd_sam"]
    base = widths["adagrad_norm@1"], widths["adagrad_norm@2"]
    windows = (
        f"the learning-rate window where the training loss is within 2x of the best is "
        f"{own:.1f} decades for LightSAM-I, {compared(own, sgd_sam)} SGD-SAM's ({sgd_sam:.1f}), "
        f"{compared(own, base[0])} AdaGrad-Norm's at 1 epochs ({base[0]:.1f}) and "
        f"{compared(own, base[1])} at 2 ({base[1]:.1f})."
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
    bottom = next(line for line in text.splitlines() if line.startswith("- In short, at 1 epochs"))
    assert bottom.startswith(f"- In short, at 1 epochs on this grid (LightSAM-I at the middle "
                             f"radius): {robust}"), bottom  # fmt: skip
    assert bottom.endswith(f"; and {general}."), bottom


def compared(width: float, other: float) -> str:
    """Two windows' widths in decades, compared as the report states: different only by a grid
    step (1 decade, the smoke grid's lr and radius steps) or more."""
    if width - other >= 1:
        return "wider than"
    return "narrower than" if other - width >= 1 else "about the same as"


def ascent_swap_agrees(text: str, widest: dict[str, float], full: dict[str, bool]) -> None:
    """LightSAM-I's widest radius window against SGD-SAM's and against SAM + AdaGrad-Norm's (the
    same descent with SAM's ascent), read as different only by a level step (1 decade: the
    smoke grid's radii are 0.01 and 0.1) or more, and whether its ascent widens the window."""

    own, control = widest["lightsam_i"], widest["adagrad_norm_sam"]
    every = " (every level)" if full["lightsam_i"] else ""
    assert (f"LightSAM-I {own:.1f}{every}, {compared(own, widest['sgd_sam'])} SGD-SAM's "
            f"({widest['sgd_sam']:.1f}) and {compared(own, control)} SAM + AdaGrad-Norm's "
            f"({control:.1f}), the same descent with SAM's ascent." in text)  # fmt: skip
    widens = "in 1 of the 1 pairs (LightSAM-I)" if own - control >= 1 else "in none of the 1 pairs"
    assert (f"LightSAM's ascent in place of SAM's, the descent unchanged, widens the radius "
            f"window by a level step or more {widens}" in text)  # fmt: skip


def near_best_agrees(text: str, grid: pd.DataFrame, confirm: pd.DataFrame) -> None:
    """Each arm's count of grid cells within 2 sqrt(2) sigma of its best validation accuracy
    (a diverged cell at chance), sigma the std of validation accuracy over the confirmation's
    ok seeds at the arm's own optimizer and epochs."""
    for arm, own in grid.groupby("arm"):
        seeds = confirm[confirm["optimizer"].eq(own["optimizer"].iloc[0])
                        & confirm["epochs"].eq(own["epochs"].iloc[0])
                        & confirm["status"].eq("ok")]["val_acc"]  # fmt: skip
        sigma, threshold = seeds.std(ddof=1), 2 * math.sqrt(2) * seeds.std(ddof=1)
        val = np.where(own["status"].eq("ok"), own["val_acc"], 0.1)
        near = int((val >= val.max() - threshold).sum())
        assert (f"{common.label(arm)}: {near} of {len(own)} grid cells ({near / len(own):.0%}) "
                f"within {100 * threshold:.2f} points of its best (σ = {100 * sigma:.2f} points "
                f"from {len(seeds)} seeds)." in text), arm  # fmt: skip


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


def verdicts_agree(text: str, contrasts: pd.DataFrame, store: Path, confirm: pd.DataFrame) -> None:
    """Each contrast's verdict by the report's rule, from its paired t interval computed here
    and its bootstrap interval (a resampling, so read from the table, but checked to lie within
    the range of the differences, as every resampled mean does), and the report's sentence
    ending of each: the bootstrap interval, the pairs, those with a run that diverged or
    stalled, the verdict."""
    scores, ended = seed_scores(confirm), endings(store, confirm)
    for r in contrasts.itertuples():
        d = (scores[r.method] - scores[r.base]).dropna()
        low, high = d.mean() - t_half(d.to_numpy()), d.mean() + t_half(d.to_numpy())
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
        assert (f"[{100 * r.boot_low:+.2f}, {100 * r.boot_high:+.2f}] (bootstrap, 10000 "
                f"resamples), {len(d)} seed pairs{clause}: {rule}." in text), r  # fmt: skip


def recovery_agrees(text: str, store: Path, reruns: pd.DataFrame) -> None:
    """Each arm's reruns without the loss limit by outcome, from their result and metrics files:
    diverged (a non-finite loss), trained (final training-subset loss below 0.5x its initial
    value), else ok but stalled; and the sentence on what the stop rule cut short."""
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


def theorem_agrees(text: str, directory: Path) -> None:
    """The theorem's problem per arm, from its stored cells (``cells.csv``, a row per arm, lr,
    rho and seed): the (lr, rho) cells in which every seed reached 1e-2 and 1e-3 of the start,
    those in which some seed diverged; and each sharpness-aware arm's shares against its base's,
    different only by more than one cell of the base's grid."""
    cells = pd.read_csv(directory / "cells.csv")
    shares = {}
    for arm, own in cells.groupby("arm"):
        per_cell = own.groupby(["lr", "rho"], dropna=False)
        every = {t: int(per_cell[f"steps_to_{t}"].apply(lambda s: s.notna().all()).sum())
                 for t in ("1e-2", "1e-3")}  # fmt: skip
        n = per_cell.ngroups
        diverged = int(per_cell["diverged"].apply(lambda s: s.gt(0).any()).sum())
        shares[arm] = {t: (k, n) for t, k in every.items()}
        assert (
            f"{common.label(arm)}: reached 1e-2: {every['1e-2']} of {n} cells; 1e-3: "
            f"{every['1e-3']} of {n} cells; some seed diverged in {diverged};" in text
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
        assert "Beyond seed noise (both the paired t and the bootstrap 95% interval" in text
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
    failure count, its lr and radius windows and the one-change radius sentence, its near-best
    count, the selected cells and paired differences on the fresh seeds with their verdicts and
    Holm-adjusted p-values (in ``tables``, the contrasts' CSV), the tuning cost at each k the
    report gives, and the recovery audit's size and outcomes."""
    headings = ("What the data support", "learning-rate windows against the budget",
                "How each run ended", "Generalisation at the cells selected on validation",
                "Near best, by the seed noise", "The recovery audit", "Tuning cost")  # fmt: skip
    for heading in headings:
        assert heading in text, heading
    grid, confirm = collect(runs / "smoke").runs, collect(runs / "smoke_confirm").runs
    failures_agree(text, runs / "smoke", grid)
    widths = windows_agree(text, runs / "smoke", grid)
    convergence_agrees(text, runs / "smoke", grid)
    near_best_agrees(text, grid, confirm)
    confirmation_agrees(text, runs / "smoke_confirm", confirm)
    contrasts = pd.read_csv(tables / "budget_contrasts.csv")
    holm_agrees(contrasts, confirm)
    verdicts_agree(text, contrasts, runs / "smoke_confirm", confirm)
    statement_agrees(text, widths, contrasts)
    generalisation_statement_agrees(text, contrasts)
    tuning_agrees(text, grid)
    reruns = collect(runs / "smoke_recovery").runs
    assert f"of those, {len(reruns)} were rerun without the limit" in text
    recovery_agrees(text, runs / "smoke_recovery", reruns)


def test_miniature_reproduce_writes_a_report_that_agrees_with_the_store(tmp_path):
    runs, figures = tmp_path / "runs", tmp_path / "figures"
    report, readme = tmp_path / "REPORT.md", tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    elsewhere = tmp_path / "elsewhere"  # the command works from any directory
    elsewhere.mkdir()

    first = lightsam("reproduce", "--preset", "smoke", "--out", str(runs), cwd=elsewhere)
    assert "sweep smoke: 16 of 16 runs to launch" in first
    # Fresh seeds 1-3 at each arm's selected cell: SGD-SAM, LightSAM-I, SAM + AdaGrad-Norm, SGD
    # and AdaGrad-Norm at 1 and 2 epochs;
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
    for stem in ("budget_windows", "budget_failures", "budget_contrasts", "budget_tuning"):
        for suffix in (".png", ".pdf"):
            assert (figures / "smoke" / f"{stem}{suffix}").stat().st_size > 0

    text = report.read_text()
    best_rows_agree(text, runs / "smoke")
    assert "16 runs planned" in text and "0 missing" in text and "Outside the plan" not in text
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (report.parent / image).exists(), image
    theorem_agrees(text, runs / "theorem")
    study_agrees(text, runs, figures / "smoke")

    block = readme.read_text().split("<!-- results:start")[1].split("<!-- results:end -->")[0]
    assert "budget_windows.png" in block and "| SGD-SAM |" in block
    assert "After 1 epochs at the middle radius" in block  # the plain statement
    assert "theorem_steps.png" in block and "LightSAM-I against" in block
    assert (ROOT / "README.md").read_text() != readme.read_text()

    # The sweep file edited (epochs 1 -> 2) and rerun into the same store: the old runs are
    # outside the new plan, listed, and pooled into nothing; SGD's runs, at 2 epochs already,
    # are the same computations and are not run again.
    edited = elsewhere / "smoke.yaml"
    text = (ROOT / "sweeps" / "smoke.yaml").read_text()
    text = text.replace("../experiments/", f"{ROOT}/experiments/").replace("epochs: 1", "epochs: 2")
    edited.write_text(text)
    rerun = lightsam("sweep", str(edited), "--out", str(runs / "smoke"), cwd=elsewhere)
    assert "12 of 16 runs to launch" in rerun and "12 run(s) in" in rerun
    status = lightsam("status", str(edited), "--out", str(runs / "smoke"), cwd=elsewhere)
    assert "12 run(s) outside the plan" in status
    lightsam("figures", "--runs", str(runs), "--out", str(figures), "--report", str(report),
             cwd=elsewhere)  # fmt: skip
    text = report.read_text()
    best_rows_agree(text, runs / "smoke")
    assert "`2` epochs" in text and "16 runs planned" in text
    assert "Outside the plan: 12 run directories" in text
    collection = collect(runs / "smoke")
    assert len(collection.runs) == 16 and set(collection.runs["epochs"]) == {2.0}
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
