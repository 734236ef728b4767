"""The budget study's figures (the tables are :mod:`analysis.study`'s).

``budget_windows``: the lr window (decades of lr where the training loss is within F x the arm's
best) against the budget in epochs, one panel per radius level with the base optimizers in each
(dashed at equal epochs, thin dotted at twice the epochs: equal gradient evaluations), and below
them a row of AdaSAM and the ablation arms, level by level. ``budget_failures``: how each grid
run ended. ``budget_stationarity``: each grid run that did not diverge, its final training-subset
loss against the theorem's measure (its smallest squared gradient norm over the epochs, relative
to the start), by how it ended. ``budget_radius``: the realised perturbation ``||e_t||`` through
training at each radius level, against the level's first-ascent radius. ``budget_contrasts``:
each sharpness-aware arm's test accuracy minus its base's at the selected cells, paired by seed,
with the t and bootstrap intervals.
``budget_tuning``: the expected best of k random grid cells against k and against the measured
training time it costs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import ScalarFormatter

from analysis import common
from analysis.results import ARM

if TYPE_CHECKING:  # the study module writes these figures: no import at run time
    from analysis.study import StudyTables

# The methods of the first row; AdaSAM and the ablation arms get a row of their own.
METHODS = ("sgd_sam", "lightsam_i", "lightsam_ii", "lightsam_iii")
OUTCOMES = {
    "diverged": {"color": common.DIVERGED_FACE, "hatch": "///"},
    "stalled": {"color": common.OKABE_ITO["orange"]},
    "still improving": {"color": common.OKABE_ITO["sky blue"]},
    "trained": {"color": common.OKABE_ITO["bluish green"]},
}
GRID_ENDINGS = "How each grid run ended, at its last epoch (training-subset loss)"


def _line(ax: Axes, x: pd.Series, y: pd.Series, arm: str, **extra: object) -> None:
    ax.plot(
        x, y, **({"marker": "o", "markersize": 5, "linewidth": 2} | common.line_style(arm) | extra)
    )


def _rows(arms: pd.Series) -> tuple[list[str], list[str]]:
    """The arms in the study's order, split into SGD-SAM and the LightSAM variants (the first
    row of a figure) and AdaSAM and the ablation arms (a row of their own)."""
    ordered = common.ordered(arms)
    return ([a for a in ordered if common.optimizer_of(a) in METHODS],
            [a for a in ordered if common.optimizer_of(a) not in METHODS])  # fmt: skip


def windows(t: StudyTables) -> Figure:
    """``budget_windows`` (see the module docstring)."""
    w = t.windows
    sam, bases = w[w["level"].notna()], w[w["level"].isna()]
    epochs = int((sam if len(sam) else w)["epoch"].max())
    levels = sorted(sam["level"].unique()) or [math.nan]
    radius = t.levels.drop_duplicates("level").set_index("level")["radius"]
    methods, others = _rows(sam[ARM])
    rows = [(methods, True)]
    if others:  # AdaSAM and the ablation arms: a row of their own, beside the bases only
        rows.append((others, False))
    fig = Figure(figsize=(5.2 * len(levels), 4.8 * len(rows) + 0.8), layout="constrained")
    # Not shared: a panel left empty would take the shared tick labels with it.
    grid = fig.subplots(len(rows), len(levels), squeeze=False)
    handles: dict[str, Line2D] = {}
    for (arms, matched), axes in zip(rows, grid, strict=True):
        for ax, level in zip(axes, levels, strict=True):
            shown = [a for a in arms if sam[ARM].eq(a).mul(sam["level"].eq(level)).any()]
            if not shown and not matched:  # a single-radius arm has no line at this level
                ax.set_axis_off()
                continue
            _windows_panel(ax, sam, bases, shown, level, epochs, matched)
            what = f"radius level {level:.0f}" if matched else "AdaSAM and the ablation arms"
            at = "" if math.isnan(level) else f"\nrealised ‖e₁‖ ≈ {radius.get(level, math.nan):.2g}"
            ax.set_title(what + at if at else "learning-rate windows")
            ax.set_xlabel("budget (epochs)")
            ax.set_xticks(range(1, epochs + 1))
            ax.set_ylim(-0.15, max(1.0, t.windows["width"].max()) + 0.3)
            ax.grid(alpha=0.3)
            handles |= dict(zip(*ax.get_legend_handles_labels()[::-1], strict=True))
        drawn = [ax for ax in axes if ax.axison]
        drawn[0].set_ylabel(f"lr window (decades) where\ntraining loss ≤ {t.factor:g}× best")
    fig.legend(
        handles.values(),
        handles.keys(),
        loc="outside lower center",
        ncols=5,
        frameon=False,
        fontsize=10,
    )
    fig.suptitle(
        f"Learning-rate window where the training-subset loss ≤ {t.factor:g}× the arm's "
        "best, against the budget\n(bases dashed; dotted: a base at 2× the epochs, the same "
        "gradient evaluations)"
    )
    return fig


def _windows_panel(
    ax: Axes,
    sam: pd.DataFrame,
    bases: pd.DataFrame,
    shown: list[str],
    level: float,
    epochs: int,
    matched: bool,
) -> None:
    """One panel: the windows of ``shown`` at ``level`` and of every base, against the epochs
    (``matched``: each base also at twice the epochs)."""
    drawn = [*shown, *common.ordered(bases[ARM])]
    # Windows are often equal (whole grid steps): a small sideways shift keeps lines apart.
    shift = dict(zip(drawn, np.linspace(-0.12, 0.12, len(drawn)), strict=True))
    for arm in shown:
        own = sam[sam[ARM].eq(arm) & sam["level"].eq(level)]
        _line(ax, own["epoch"] + shift[arm], own["width"], arm)
    for base in common.ordered(bases[ARM]):
        own = bases[bases[ARM].eq(base) & bases["epoch"].le(epochs)]
        _line(ax, own["epoch"] + shift[base], own["width"], base, marker="")
        later = bases[bases[ARM].eq(base) & bases["epoch"].le(2 * epochs)]
        later = later[later["epoch"] % 2 == 0]
        if matched and len(later):
            _line(
                ax,
                later["epoch"] / 2 + shift[base],
                later["width"],
                base,
                linestyle=":",
                linewidth=1.2,
                markerfacecolor="white",
                markersize=4,
                label=f"{common.label(base)} at 2× the epochs",
            )


def realised_radius(t: StudyTables) -> Figure:
    """``budget_radius``: the realised radius (:func:`analysis.study.realised_radii`'s median)
    against the epoch, one panel per radius level with the level's radius dashed; SGD-SAM and
    the LightSAM variants in the first row, AdaSAM and the ablation arms in the second."""
    rr = t.realised_radii
    levels = sorted(rr["level"].unique())
    radius = t.levels.drop_duplicates("level").set_index("level")["radius"]
    rows = [arms for arms in _rows(rr[ARM]) if arms]
    fig = Figure(figsize=(5.2 * len(levels), 4.4 * len(rows) + 1.0), layout="constrained")
    grid = fig.subplots(len(rows), len(levels), squeeze=False, sharey=True)
    handles: dict[str, Line2D] = {}
    for arms, axes in zip(rows, grid, strict=True):
        for ax, level in zip(axes, levels, strict=True):
            for arm in arms:
                own = rr[rr[ARM].eq(arm) & rr["level"].eq(level)].sort_values("epoch")
                if len(own):
                    _line(ax, own["epoch"], own["radius"], arm, markersize=4)
            ax.axhline(radius[level], color="grey", linestyle="--", linewidth=1,
                       label="the level's ‖e₁‖ (matched at the first ascent)")  # fmt: skip
            ax.set_yscale("log")
            ax.set_title(f"radius level {level:.0f}: realised ‖e₁‖ ≈ {radius[level]:.2g}")
            ax.set_xlabel("epoch (0: the first ascent)")
            ax.set_xticks(range(int(rr["epoch"].max()) + 1))
            ax.grid(alpha=0.3)
            handles |= dict(zip(*ax.get_legend_handles_labels()[::-1], strict=True))
        axes[0].set_ylabel("realised ‖e_t‖ (epoch mean,\nmedian over the level's runs)")
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=4,
               frameon=False, fontsize=10)  # fmt: skip
    fig.suptitle("Realised perturbation ‖e_t‖ through training, at radius levels matched at the "
                 "first ascent\n(grid runs that did not diverge; SAM's fixed-radius ascent keeps "
                 "‖e_t‖ = ρ, on the dashed line)")  # fmt: skip
    return fig


def lowest_lr(t: StudyTables) -> Figure:
    """``budget_lowest_lr``: the lowest learning rate that trains
    (:func:`analysis.study.lowest_training_lrs`) against the budget in steps, log-log, one panel
    per radius level with the base optimizers in each (dashed); a filled marker where it lies
    inside the grid, an open triangle where a grid lr only bounds it from above (the grid's
    lowest, which trains, or one whose neighbour below gives nothing to interpolate on), nothing
    where no grid lr trains; grey guides of slope -1 (lr x steps) and -1/2 (lr x sqrt(steps))."""
    low = t.lowest_lrs
    sam, bases = low[low["level"].notna()], low[low["level"].isna()]
    levels = sorted(sam["level"].unique()) or [math.nan]
    radius = t.levels.drop_duplicates("level").set_index("level")["radius"]
    rows = [arms for arms in _rows(sam[ARM]) if arms] or [[]]
    lrs = t.grid_runs["lr"].dropna()
    fig = Figure(figsize=(5.2 * len(levels), 4.6 * len(rows) + 1.2), layout="constrained")
    grid = fig.subplots(len(rows), len(levels), squeeze=False, sharex=True, sharey=True)
    handles: dict[str, Line2D] = {}
    for arms, axes in zip(rows, grid, strict=True):
        for ax, level in zip(axes, levels, strict=True):
            at = sam[sam["level"].eq(level)]
            for arm in [a for a in arms if at[ARM].eq(a).any()]:
                _bounded_line(ax, at[at[ARM].eq(arm)], arm)
            for base in common.ordered(bases[ARM]):
                _bounded_line(ax, bases[bases[ARM].eq(base)], base, marker="", linewidth=1.4)
            steps = low["step"]
            x = np.array([steps.min(), steps.max()], float)
            for power, style, law in ((1.0, ":", "lr × steps"), (0.5, "-.", "lr × √steps")):
                ax.plot(x, lrs.max() * (x / x[0]) ** -power, color="grey", linewidth=1,
                        linestyle=style, label=f"slope -{power:g}: {law}")  # fmt: skip
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(lrs.min() / 3, lrs.max() * 3)
            ax.set_yticks(sorted(lrs.unique()))
            title = "" if math.isnan(level) else f"radius level {level:.0f}"
            if not math.isnan(level):
                title += f": realised ‖e₁‖ ≈ {radius.get(level, math.nan):.2g}"
            ax.set_title(title or "the lowest learning rate that trains")
            ax.set_xlabel("budget (optimizer steps)")
            ax.grid(alpha=0.3, which="both")
            handles |= dict(zip(*ax.get_legend_handles_labels()[::-1], strict=True))
        axes[0].set_ylabel("lowest lr that trains\n(interpolated between grid lrs)")
    handles["at most this lr (an upper bound)"] = Line2D(
        [], [], color="grey", marker="v", markerfacecolor="white", linestyle=""
    )
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=5,
               frameon=False, fontsize=10)  # fmt: skip
    fig.suptitle(
        "The lowest learning rate that trains (training-subset loss stays below "
        f"{t.stalled:g}× its start), against the budget\n(bases dashed; it can only fall with "
        "the budget: steeply, the small-lr failures are under-training; flat, a floor)"
    )
    return fig


def _bounded_line(ax: Axes, own: pd.DataFrame, arm: str, **extra: object) -> None:
    """``own``'s lowest training lr against the step where it is inside the grid, and an open
    triangle where a grid lr only bounds it from above."""
    own = own.sort_values("step")
    inside = own[own["where"].eq("inside")]
    _line(ax, inside["step"], inside["lr"], arm, markersize=4, **extra)
    below = own[own["where"].isin(["below", "bound"])]
    if len(below):
        style = common.line_style(arm)
        ax.plot(below["step"], below["lr"], linestyle="", marker="v", markersize=6,
                color=style["color"], markerfacecolor="white")  # fmt: skip


def failures(
    counts: pd.DataFrame, meanings: Mapping[str, str], title: str = GRID_ENDINGS
) -> Figure:
    """Per arm (a row of ``counts``), its runs in each class of ``meanings``, stacked."""
    fig = Figure(figsize=(11, 0.45 * len(counts) + 2.8), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(counts))[::-1]
    left = np.zeros(len(counts))
    for outcome, meaning in meanings.items():
        values = counts[outcome].to_numpy(float)
        ax.barh(
            y,
            values,
            left=left,
            edgecolor="black",
            linewidth=0.6,
            label=meaning,
            color=OUTCOMES[outcome]["color"],
            hatch=OUTCOMES[outcome].get("hatch"),
        )
        for yi, x, v in zip(y, left, values, strict=True):
            if v:
                ax.text(
                    x + v / 2,
                    yi,
                    f"{v:.0f}",
                    ha="center",
                    va="center",
                    fontsize=10,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1, "alpha": 0.8},
                )
        left += values
    ax.set_yticks(y, [common.label(a) for a in counts[ARM]])
    ax.set_xlabel("grid runs (count)")
    fig.legend(loc="outside lower center", ncols=2, frameon=False)
    ax.set_title(title)
    return fig


def stationarity(f: pd.DataFrame, meanings: Mapping[str, str]) -> Figure:
    """``budget_stationarity`` of the grid runs' endings ``f`` (:func:`analysis.study.failures`):
    one point per run with a ``min_sq_grad``, coloured by its ending."""
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    for outcome in ("stalled", "still improving", "trained"):
        own = f[f["failure"].eq(outcome)].dropna(subset=["min_sq_grad"])
        if len(own):
            ax.scatter(own["final_loss"], own["min_sq_grad"], s=30, edgecolor="black",
                       linewidth=0.5, color=OUTCOMES[outcome]["color"],
                       label=meanings[outcome])  # fmt: skip
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="its value at initialisation")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("final training-subset loss")
    ax.set_ylabel("smallest squared gradient norm\nover the epochs / at initialisation")
    ax.set_title("The theorem's measure against the training loss (grid runs, diverged left out)")
    ax.legend(frameon=False, fontsize=9)
    return fig


def contrasts(c: pd.DataFrame) -> Figure:
    """``budget_contrasts`` of the contrasts' table ``c``."""
    fig = Figure(figsize=(12, 0.5 * len(c) + 3.4), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(c))[::-1]
    for yi, row in zip(y, c.itertuples(), strict=True):
        color = common.line_style(row.method)["color"]
        marker = {"equal epochs": "o", "equal gradient evaluations": "s"}.get(row.comparison, "D")
        ax.plot([100 * row.t_low, 100 * row.t_high], [yi, yi], color=color, linewidth=1.2)
        ax.plot(
            [100 * row.boot_low, 100 * row.boot_high],
            [yi, yi],
            color=color,
            linewidth=5,
            alpha=0.5,
            solid_capstyle="butt",
        )
        ax.plot(
            100 * row.mean, yi, marker=marker, color=color, markeredgecolor="black", markersize=9
        )
    labels = [
        f"{common.label(r.method)} − {common.label(common.optimizer_of(r.base))} at "
        f"{r.base_epochs:.0f} epochs"
        for r in c.itertuples()
    ]
    ax.set_yticks(y, labels)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_xlabel("paired difference in test accuracy (points)")
    ax.grid(axis="x", alpha=0.3)
    handles = [
        Line2D([], [], color="grey", linewidth=1.2, label="paired t 95% CI"),
        Line2D([], [], color="grey", linewidth=5, alpha=0.5, label="bootstrap 95% CI"),
        common.marker_handle("o", "base at equal epochs"),
        common.marker_handle("s", "base at 2× epochs (equal gradient evals)"),
        common.marker_handle("D", "one change: only the ascent, or the descent"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    epochs = " / ".join(f"{e:.0f}" for e in sorted(c["epochs"].unique()))
    ax.set_title(
        "Test accuracy, sharpness-aware minus its base or its one-change control, at the cells "
        f"selected on validation\n(paired by seed; each method at {epochs} epochs)"
    )
    return fig


def tuning(curves: pd.DataFrame) -> Figure:
    """``budget_tuning`` of the tuning-cost table ``curves``."""
    fig = Figure(figsize=(15, 5.6), layout="constrained")
    by_k, by_cost = fig.subplots(1, 2, sharey=True)
    for arm in common.ordered(curves[ARM]):
        own = curves[curves[ARM].eq(arm)]
        style = common.line_style(arm)
        for ax, x in ((by_k, own["k"]), (by_cost, own["measured_s"] / 60)):
            ax.plot(x, 100 * own["expected"], linewidth=2, **style)
            if (own["high"] > own["low"]).any():  # one seed a cell: no band to draw
                ax.fill_between(
                    x,
                    100 * own["low"],
                    100 * own["high"],
                    color=style["color"],
                    alpha=0.12,
                    linewidth=0,
                )
    for ax in (by_k, by_cost):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.grid(alpha=0.3)
    by_k.set_xlabel("grid cells tried at random, k")
    by_cost.set_xlabel("k × measured training minutes per trial (one core)")
    by_k.set_ylabel("expected test accuracy of the val-best (%)")
    banded = (curves["high"] > curves["low"]).any()
    seeds = common.spread_over(banded, "95% band over seeds")
    by_k.set_title(f"Expected best of k random grid cells ({seeds})")
    by_cost.set_title("The same against measured compute (a SAM step takes 2 passes)")
    by_cost.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


@common.styled
def make(t: StudyTables, out: Path) -> list[Path]:
    """The study's figures of what ``t`` holds (a figure whose table is absent is not drawn)."""
    paths = []
    if t.windows is not None and not t.windows.empty:
        paths += common.save(windows(t), out, "budget_windows")
    if t.realised_radii is not None and not t.realised_radii.empty:
        paths += common.save(realised_radius(t), out, "budget_radius")
    if t.lowest_lrs is not None and t.lowest_lrs["where"].ne("none").any():
        paths += common.save(lowest_lr(t), out, "budget_lowest_lr")
    if t.failures is not None and not t.failures.empty:
        paths += common.save(failures(t.failure_counts, t.failure_meanings), out, "budget_failures")
        if t.failures["min_sq_grad"].notna().any():
            paths += common.save(
                stationarity(t.failures, t.failure_meanings), out, "budget_stationarity"
            )
    if t.contrasts is not None and not t.contrasts.empty:
        paths += common.save(contrasts(t.contrasts), out, "budget_contrasts")
    if t.tuning is not None and not t.tuning.empty:
        paths += common.save(tuning(t.tuning), out, "budget_tuning")
    return paths
