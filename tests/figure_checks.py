"""Checks that the study's figures draw what the stores hold: each figure is built by the
production code (``analysis.fig_budget``, ``analysis.fig_theorem``, and a sweep store's
``fig_heatmaps``, ``fig_sensitivity``, ``fig_robustness``, ``fig_training_curves``) from the
stores, what it draws is read back from its artists (line data, bar patches, points, image
values, cell texts, tick labels), and compared with hand computations (here and in
``study_reference``) from the same stores' result, metrics and theorem files. Every figure is
also checked to be readable: each panel titled and labelled, and a legend or a colour bar."""

from __future__ import annotations

import collections
import json
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.text import Text
from study_reference import (
    ENDINGS,
    best_of_k,
    ending,
    hand_best_of_k,
    lowest_training_lrs,
    probe_curve,
    radius_levels,
    realised_radii,
    seed_scores,
    stationarity_points,
    t_half,
    window_of,
)

from analysis import (
    common,
    fig_budget,
    fig_heatmaps,
    fig_robustness,
    fig_sensitivity,
    fig_theorem,
    fig_training_curves,
)
from analysis.results import collect
from analysis.study import read_tables
from lightsam import store as files

SHIFT = 0.12  # the windows figure's largest sideways shift of a line off its epoch
MATCHED = " at 2× the epochs"  # a base's line at twice the epochs, labelled so
TARGET = "steps_to_1e-2"


def budget_figures_agree(grid: Path, confirm: Path, recovery: Path) -> None:
    """The budget study's four figures, built from the grid, confirmation and recovery stores,
    against the hand computations from the grid's and the confirmation's runs."""
    tables = read_tables(grid, confirm, recovery)
    runs = complete(collect(grid).runs)
    windows_drawn(fig_budget.windows(tables), grid, runs)
    realised_radius_drawn(fig_budget.realised_radius(tables), grid, runs)
    lowest_lr_drawn(fig_budget.lowest_lr(tables), grid, runs)
    failures_drawn(fig_budget.failures(tables.failure_counts, tables.failure_meanings), grid, runs)
    stationarity_drawn(
        fig_budget.stationarity(tables.failures, tables.failure_meanings), grid, runs
    )
    contrasts_drawn(fig_budget.contrasts(tables.contrasts), tables.contrasts, collect(confirm).runs)
    tuning_drawn(fig_budget.tuning(tables.tuning), runs)


def theorem_figures_agree(directory: Path) -> None:
    """The theorem's two figures, built from its directory, against its ``cells.csv``,
    ``curves.csv`` and ``meta.json``."""
    cells, curves, meta = fig_theorem.read(directory)
    steps_drawn(fig_theorem.steps(cells, meta), directory)
    rates_drawn(fig_theorem.rates(curves, meta), directory)


def complete(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that say something about the optimizer: those that finished or diverged."""
    return runs[runs["status"].isin(files.COMPLETE)]


# -- readable at a glance -------------------------------------------------------------------------


def colorbars(fig: Figure) -> set[Axes]:
    return {im.colorbar.ax for ax in fig.axes for im in ax.images if im.colorbar is not None}


def panels(fig: Figure) -> list[Axes]:
    """The figure's drawn axes, its colour bars left out."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax not in colorbars(fig)]


def named(ax: Axes) -> bool:
    """Whether the y ticks are labelled with names (each row says what it is), or absent."""
    texts = [label.get_text() for label in ax.get_yticklabels()]
    return not texts or not all(is_number(text) for text in texts)


def is_number(text: str) -> bool:
    try:
        float(text.replace("−", "-"))
    except ValueError:
        return False
    return True


def readable(fig: Figure) -> None:
    """Every panel has a title; an x label unless a panel below it in its column (the same
    quantity) has one; and a y label unless its y ticks name its rows or are absent, or a
    panel earlier in its row has one; the figure has a legend with entries or a colour bar."""
    fig.draw_without_rendering()  # the tick labels are formatted when drawn
    labelled_rows = set()
    labelled_below = collections.defaultdict(lambda: -1)  # the lowest x-labelled row a column
    for ax in panels(fig):
        if ax.get_xlabel():
            spec = ax.get_subplotspec()
            labelled_below[spec.colspan.start] = max(labelled_below[spec.colspan.start],
                                                     spec.rowspan.start)  # fmt: skip
    for ax in panels(fig):
        assert ax.get_title(), "a panel without a title"
        row = ax.get_subplotspec().rowspan.start
        assert ax.get_xlabel() or labelled_below[ax.get_subplotspec().colspan.start] > row, (
            ax.get_title()
        )
        if ax.get_ylabel():
            labelled_rows.add(row)
        assert row in labelled_rows or named(ax), ax.get_title()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    assert any(legend.get_texts() for legend in legends) or colorbars(fig), "no legend"


def lines_by_label(ax: Axes) -> dict[str, np.ndarray]:
    """Each line's data, by its label (each label checked to be drawn once)."""
    labels = [line.get_label() for line in ax.lines]
    assert len(set(labels)) == len(labels), f"a line drawn twice in {ax.get_title()}: {labels}"
    return {line.get_label(): line.get_xydata() for line in ax.lines}


# -- budget_windows -------------------------------------------------------------------------------


def hand_windows(store: Path, runs: pd.DataFrame) -> dict[tuple[str, int | None], list[float]]:
    """Each lr window's width in decades after epochs 1, 2, ... of the arm's run, keyed by arm
    and radius level (None for a base): at the cells of that level, against the arm's best
    finite loss over its whole grid at that epoch (no window without one)."""
    assert not runs.duplicated(["arm", "lr", "rho"]).any(), "one seed a grid cell"
    curves = {run.run_id: probe_curve(store, run) for run in runs.itertuples()}
    level, _ = radius_levels(runs[runs["rho"].notna()])
    widths = {}
    for arm, own in runs.groupby("arm"):
        levels = np.array([level.get((arm, rho)) for rho in own["rho"]])
        x = np.log10(own["lr"].to_numpy())
        for epoch in range(1, int(own["epochs"].max()) + 1):
            losses = np.array([curves[run_id][epoch - 1] for run_id in own["run_id"]])
            best = losses[np.isfinite(losses)].min(initial=math.inf)
            for lv in set(levels):
                at = levels == lv
                found = window_of(list(x[at]), list(losses[at]), best) if best < math.inf else [0]
                widths.setdefault((arm, lv), []).append(found[0])
    return widths


def epochs_of(xy: np.ndarray) -> np.ndarray:
    """The epochs a windows line is drawn at, checked to be shifted by one offset of at most
    ``SHIFT``."""
    epochs = np.round(xy[:, 0])
    offset = xy[:, 0] - epochs
    assert np.abs(offset).max() <= SHIFT + 1e-9 and np.ptp(offset) < 1e-9, xy[:, 0]
    return epochs


def windows_drawn(fig: Figure, store: Path, runs: pd.DataFrame) -> None:
    """``budget_windows``: column j holds radius level j, its realised radius in each title;
    every sharpness-aware arm's widths at each level (:func:`hand_windows`) drawn once over its
    column's panels; every base's in every panel, and in the first row also at twice the
    epochs (see :func:`panel_lines`)."""
    readable(fig)
    widths = hand_windows(store, runs)
    sam = runs[runs["rho"].notna()]
    _, radius = radius_levels(sam)
    bases = {arm for arm, level in widths if level is None}
    found = []
    for ax in panels(fig):
        column, row = ax.get_subplotspec().colspan.start, ax.get_subplotspec().rowspan.start
        assert f"realised ‖e₁‖ ≈ {radius[column]:.2g}" in ax.get_title(), ax.get_title()
        drawn = panel_lines(ax, widths, column, int(sam["epochs"].max()))
        # The first row, the methods', also has each base at equal gradient evaluations.
        twice = [False, True] if row == 0 else [False]
        own = {(base, matched) for base in bases for matched in twice}
        assert {key for key in drawn if key[0] in bases} == own, (column, row)
        found += [key for key in drawn if key[0] not in bases]
    assert sorted(found) == sorted(key for key in widths if key[1] is not None), found


def panel_lines(
    ax: Axes, widths: dict[tuple[str, int | None], list[float]], level: int, epochs: int
) -> list[tuple[str, int | bool]]:
    """Each line of a windows panel at radius ``level`` against the sharpness-aware arms'
    ``epochs``: an arm's widths at the level after each epoch, a base's after each epoch, or
    after 2, 4, .., 2 ``epochs`` (labelled so) at half of them, each at its epoch shifted
    sideways by at most ``SHIFT``, within the y-limits. Returns the lines' (arm, level) or, a
    base's, (arm, whether at twice the epochs)."""
    arm_of = {common.label(arm): arm for arm, _ in widths}
    low, high = ax.get_ylim()
    drawn = []
    for label, xy in lines_by_label(ax).items():
        twice = label.endswith(MATCHED)
        arm = arm_of[label.removesuffix(MATCHED)]
        base = (arm, None) in widths
        own = widths[(arm, None if base else level)]
        want = own[1::2] if twice else own
        assert list(epochs_of(xy)) == list(range(1, epochs + 1)), (label, level)
        assert list(xy[:, 1]) == pytest.approx(want[:epochs]), (label, level)
        assert low <= xy[:, 1].min() and xy[:, 1].max() <= high, (label, ax.get_ylim())
        drawn.append((arm, twice if base else level))
    return drawn


# -- budget_failures ------------------------------------------------------------------------------


def failures_drawn(fig: Figure, store: Path, runs: pd.DataFrame) -> None:
    """``budget_failures``: per arm, named by the tick label at its bar, the segment of each
    ending (the legend entry it starts with) as long as the arm's runs that ended so, by
    :func:`study_reference.ending` from each run's metrics, stacked from 0 in turn."""
    readable(fig)
    (ax,) = panels(fig)
    arm_at = {round(y): label.get_text()
              for y, label in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)}  # fmt: skip
    drawn = collections.defaultdict(dict)
    for bars in ax.containers:
        kind = next(e for e in ENDINGS if bars.get_label().startswith(e))
        for patch in bars.patches:
            arm = arm_at[round(patch.get_y() + patch.get_height() / 2)]
            assert patch.get_x() == sum(drawn[arm].values()), (arm, kind)  # stacked in turn
            drawn[arm][kind] = patch.get_width()
    for arm, own in runs.groupby("arm"):
        counts = collections.Counter(
            ending(run.status, run.probe_loss_initial,
                   [m["probe_loss"] for m in files.read_metrics(store / run.run_id)])
            for run in own.itertuples()
        )  # fmt: skip
        assert drawn.pop(common.label(arm)) == {e: counts[e] for e in ENDINGS}, arm
    assert not drawn, f"bars of arms the store does not hold: {list(drawn)}"


# -- budget_radius ---------------------------------------------------------------------------------


def realised_radius_drawn(fig: Figure, store: Path, runs: pd.DataFrame) -> None:
    """``budget_radius``: in the panel titled by its level, each sharpness-aware arm's line at
    epochs 0 .. E, the median of :func:`study_reference.realised_radii` there, every (arm,
    level) drawn once; in each panel a dashed line at the level's radius; log y."""
    readable(fig)
    expected = realised_radii(store, runs)
    _, level_radius = radius_levels(runs[runs["rho"].notna()])
    names = arm_of_label(runs.loc[runs["rho"].notna(), "arm"])
    drawn = set()
    for ax in panels(fig):
        level = int(re.fullmatch(r"radius level (\d+): realised ‖e₁‖ ≈ .*", ax.get_title())[1])
        assert ax.get_title().endswith(f"≈ {level_radius[level]:.2g}"), ax.get_title()
        assert ax.get_yscale() == "log", ax.get_title()
        dashed = [line for line in ax.lines if line.get_linestyle() == "--"
                  and line.get_label() not in names]  # fmt: skip
        assert [list(line.get_ydata()) for line in dashed] == [[level_radius[level]] * 2]
        for label, xy in lines_by_label(ax).items():
            if label not in names:
                continue
            arm = names[label]
            epochs = sorted(e for a, lv, e in expected if (a, lv) == (arm, level))
            assert list(xy[:, 0]) == epochs, (arm, level)
            np.testing.assert_allclose(
                xy[:, 1], [np.median(expected[arm, level, e]) for e in epochs], rtol=1e-12
            )
            assert (arm, level) not in drawn, (arm, level)
            drawn.add((arm, level))
    assert drawn == {(arm, level) for arm, level, _ in expected}, drawn


# -- budget_lowest_lr ------------------------------------------------------------------------------


def lowest_lr_drawn(fig: Figure, store: Path, runs: pd.DataFrame) -> None:
    """``budget_lowest_lr``: in each panel titled by its level, each sharpness-aware arm's line
    through the budgets where :func:`study_reference.lowest_training_lrs` puts its lowest
    training lr inside the grid, and every base's; an open triangle at each budget where a grid
    lr only bounds it from above, and nothing where no lr trains; log-log; every (arm, level)
    drawn once."""
    readable(fig)
    expected = lowest_training_lrs(store, runs)
    _, level_radius = radius_levels(runs[runs["rho"].notna()])
    names, bases = arm_of_label(runs["arm"]), set(runs.loc[runs["rho"].isna(), "arm"])
    drawn = set()
    for ax in panels(fig):
        level = int(re.fullmatch(r"radius level (\d+): realised ‖e₁‖ ≈ .*", ax.get_title())[1])
        assert ax.get_title().endswith(f"≈ {level_radius[level]:.2g}"), ax.get_title()
        assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log"), ax.get_title()
        shown = set()
        for label, xy in lines_by_label(ax).items():
            if label not in names:
                continue
            arm = names[label]
            own = None if arm in bases else level
            inside = sorted((s, lr) for (a, lv, s), (lr, where) in expected.items()
                            if (a, lv) == (arm, own) and where == "inside")  # fmt: skip
            np.testing.assert_allclose(xy, np.array(inside).reshape(-1, 2), rtol=1e-12)
            shown.add((arm, own))
        bounds = sorted(tuple(p) for line in ax.lines if line.get_marker() == "v"
                        for p in line.get_xydata())  # fmt: skip
        assert bounds == sorted(
            (s, lr)
            for (a, lv, s), (lr, where) in expected.items()
            if (a, lv) in shown and where in ("below", "bound")
        ), ax.get_title()
        assert not (drawn & {key for key in shown if key[1] is not None}), shown
        drawn |= shown
    assert drawn == {(arm, level) for arm, level, _ in expected}, drawn


# -- budget_stationarity ---------------------------------------------------------------------------


def stationarity_drawn(fig: Figure, store: Path, runs: pd.DataFrame) -> None:
    """``budget_stationarity``: for each ending but diverged (the legend entry its points start
    with), the points :func:`study_reference.stationarity_points` gives its runs; a dashed line
    at 1, the value at the start; both axes logarithmic."""
    readable(fig)
    (ax,) = panels(fig)
    expected = stationarity_points(store, runs)
    drawn = {}
    for points in ax.collections:
        assert isinstance(points, PathCollection), points
        kind = next(e for e in ENDINGS if points.get_label().startswith(e))
        drawn[kind] = sorted(map(tuple, np.asarray(points.get_offsets(), dtype=float)))
    assert drawn.keys() == expected.keys(), (sorted(drawn), sorted(expected))
    for kind, own in expected.items():
        np.testing.assert_allclose(drawn[kind], sorted(own), rtol=1e-9, err_msg=kind)
    (start,) = ax.get_lines()
    assert list(start.get_ydata()) == [1.0, 1.0] and start.get_linestyle() == "--"
    assert ax.get_xscale() == ax.get_yscale() == "log"


# -- budget_contrasts -----------------------------------------------------------------------------


def contrasts_drawn(fig: Figure, contrasts: pd.DataFrame, confirm: pd.DataFrame) -> None:
    """``budget_contrasts``: one row per contrast of the table, named by its y tick label;
    the thin line its paired t 95% interval and the point its mean, of the test-score
    differences paired by seed (a diverged run at chance), in points; the thick line the
    table's bootstrap interval, within the differences' range; a line at 0."""
    readable(fig)
    (ax,) = panels(fig)
    names = [label.get_text() for label in ax.get_yticklabels()]
    assert len(names) == len(contrasts), names
    at = dict(zip(names, ax.get_yticks(), strict=True))
    scores = seed_scores(confirm)
    drawn = rows_of(ax)
    for r in contrasts.itertuples():
        name = (f"{common.label(r.method)} − {common.label(common.optimizer_of(r.base))} at "
                f"{r.base_epochs:.0f} epochs")  # fmt: skip
        (mean,), t, boot = drawn[at[name]]
        d = 100 * (scores[r.method] - scores[r.base]).dropna().to_numpy()
        assert mean == pytest.approx(d.mean()), name
        assert t == pytest.approx([d.mean() - t_half(d), d.mean() + t_half(d)]), name
        assert boot == pytest.approx([100 * r.boot_low, 100 * r.boot_high]), name
        assert d.min() - 1e-9 <= boot[0] <= boot[1] <= d.max() + 1e-9, name
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.lines), "no line at 0"


def rows_of(ax: Axes) -> dict[float, tuple[list[float], list[float], list[float]]]:
    """Per row of a contrasts panel: the x of its point, then of its intervals by increasing
    line width."""
    rows = collections.defaultdict(list)
    for line in ax.lines:
        xy = line.get_xydata()
        if np.ptp(xy[:, 1]) == 0:  # horizontal: the point and the intervals, not the line at 0
            rows[xy[0, 1]].append((len(xy), line.get_linewidth(), list(xy[:, 0])))
    return {y: tuple(x for *_, x in sorted(row)) for y, row in rows.items()}


# -- budget_tuning --------------------------------------------------------------------------------


def tuning_drawn(fig: Figure, runs: pd.DataFrame) -> None:
    """``budget_tuning``: per arm, against k = 1 .. its cells, the expected test accuracy (%)
    of the validation-best of k random cells, :func:`hand_best_of_k`; against measured compute
    the same, at k times the arm's mean wall minutes a grid run."""
    readable(fig)
    by_k, by_cost = (lines_by_label(ax) for ax in panels(fig))
    assert by_k.keys() == by_cost.keys() == {common.label(arm) for arm in runs["arm"]}
    for arm, own in runs.groupby("arm"):
        name, expected = common.label(arm), hand_best_of_k(own)
        k = np.arange(1, len(expected) + 1)
        assert list(by_k[name][:, 0]) == list(k), name
        for drawn in (by_k[name], by_cost[name]):
            assert list(drawn[:, 1]) == pytest.approx([100 * e for e in expected]), name
        minutes = own["wall_s"].mean() / 60
        assert minutes > 0 and list(by_cost[name][:, 0] / k) == pytest.approx([minutes] * len(k))


# -- the theorem ----------------------------------------------------------------------------------


def by_title(fig: Figure) -> Iterator[tuple[str, Axes]]:
    """Each panel with the arm its title names (its label, before any ``, ρ = ...``)."""
    for ax in panels(fig):
        yield ax.get_title().split(", ρ = ")[0], ax


def tick_values(labels: list[Text]) -> list[float]:
    """The values the tick labels give (drawn, so formatted: see :func:`readable`)."""
    return [float(label.get_text().replace("−", "-")) for label in labels]


def steps_drawn(fig: Figure, directory: Path) -> None:
    """``theorem_steps``: per arm, the heatmap's (rho, lr) cell holds the median over seeds of
    the steps to 1e-2 of those that got there, NaN where none did or every seed diverged, and
    those that all diverged are hatched; rows are the sorted rhos and columns the sorted lrs,
    as the ticks say (one row and no ticks for an arm without rho); the dashed 2/L lines sit at
    2/L on the columns' log-lr scale."""
    readable(fig)
    cells = pd.read_csv(directory / "cells.csv")
    smoothness = json.loads((directory / "meta.json").read_text())["smoothness"]
    arm_of = {common.label(arm): arm for arm in cells["arm"]}
    drawn = dict(by_title(fig))
    assert sorted(arm_of[title] for title in drawn) == sorted(set(cells["arm"]))
    for title, ax in drawn.items():
        own = cells[cells["arm"].eq(arm_of[title])]
        rhos, lrs = sorted(own["rho"].dropna().unique()), sorted(own["lr"].unique())
        assert tick_values(ax.get_xticklabels()) == pytest.approx(lrs), title
        assert tick_values(ax.get_yticklabels()) == pytest.approx(rhos), title
        expected, hatched = np.full((max(len(rhos), 1), len(lrs)), math.nan), set()
        for (lr, rho), cell in own.groupby(["lr", "rho"], dropna=False):
            i, j = 0 if math.isnan(rho) else rhos.index(rho), lrs.index(lr)
            if cell["diverged"].astype(bool).all():
                hatched.add((i, j))
            elif cell[TARGET].notna().any():
                expected[i, j] = cell[TARGET].dropna().median()
        image = ax.images[0].get_array()
        assert np.ma.filled(image.astype(float), math.nan) == pytest.approx(expected, nan_ok=True)
        marks = {(round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in ax.patches
                 if p.get_hatch()}  # fmt: skip
        assert marks == hatched, title
        bound = np.interp(math.log10(2 / smoothness), np.log10(lrs), np.arange(len(lrs)))
        assert ax.lines and all(line.get_xdata() == pytest.approx([bound] * 2) for line in ax.lines)


def rates_drawn(fig: Figure, directory: Path) -> None:
    """``theorem_rates``: per arm, a line per lr of the median over seeds of the mean squared
    gradient norm up to T against T, at the arm's middle rho (the sorted rhos' element
    len // 2, the one its title gives; every row for an arm without rho); and the guide
    T^(-1/2), 1 at the first T."""
    readable(fig)
    curves = pd.read_csv(directory / "curves.csv")
    arm_of = {common.label(arm): arm for arm in curves["arm"]}
    drawn = list(by_title(fig))
    assert sorted(arm_of[title] for title, _ in drawn) == sorted(set(curves["arm"]))
    for title, ax in drawn:
        own = curves[curves["arm"].eq(arm_of[title])]
        rhos = sorted(own["rho"].dropna().unique())
        if rhos:
            middle = rhos[len(rhos) // 2]
            assert float(ax.get_title().rsplit(" = ", 1)[1]) == pytest.approx(middle), title
            own = own[own["rho"].eq(middle)]
        lines = lines_by_label(ax)
        guide = lines.pop("T^(-1/2)")
        assert guide[0, 0] == own["T"].min(), title
        assert list(guide[:, 1]) == pytest.approx(list((guide[:, 0] / guide[0, 0]) ** -0.5))
        assert sorted(float(label.removeprefix("η = ")) for label in lines) == pytest.approx(
            sorted(curves["lr"].unique())
        )
        for label, xy in lines.items():
            at = own[np.isclose(own["lr"], float(label.removeprefix("η = ")))]
            median = at.groupby("T")["avg_sq_grad"].median()
            assert list(xy[:, 0]) == list(median.index), (title, label)
            assert list(xy[:, 1]) == pytest.approx(list(median), nan_ok=True), (title, label)


# -- a sweep store's figures: heatmaps, sensitivity, robustness, training curves ------------------


def store_figures_agree(store: Path, noise: Mapping[str, float] | None = None) -> None:
    """A sweep store's four figures (``heatmaps``, ``sensitivity``, ``robustness``,
    ``training_curves``), built from the store, against the hand computations from its runs'
    results and metrics; near best by ``noise`` per arm when given (a budget study's, from its
    confirmation seeds), else by :func:`hand_noise`."""
    collection = collect(store)
    runs, cells = collection.runs, hand_cells(collection.runs)
    heatmaps_drawn(fig_heatmaps.heatmaps(collection), cells, collection.missing)
    sensitivity_drawn(fig_sensitivity.sensitivity(collection), cells)
    figure = fig_robustness.robustness(collection, noise)
    robustness_drawn(figure, cells, hand_noise(runs) if noise is None else noise)
    training_drawn(fig_training_curves.training_curves(collection), store, runs, cells)


def hand_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, lr, rho) cell with a finished or diverged run: ``val`` and ``test``,
    the means over those runs of their accuracies, a diverged one at chance (one over its
    dataset's classes); ``ok_test``, the mean test accuracy of the finished ones (NaN without);
    ``n_ok`` and ``n_diverged``; and ``chance``. A failed run scores nothing."""
    chance = 1 / runs.groupby("dataset")["num_classes"].transform("max")
    done = runs.assign(chance=chance)[runs["status"].isin(files.COMPLETE)]
    ok = done["status"].eq("ok")
    done = done.assign(val=done["val_acc"].where(ok, done["chance"]),
                       test=done["test_acc"].where(ok, done["chance"]),
                       ok_test=done["test_acc"].where(ok), n_ok=ok, n_diverged=~ok)  # fmt: skip
    return (
        done.groupby(["arm", "lr", "rho"], dropna=False)
        .agg(val=("val", "mean"), test=("test", "mean"), ok_test=("ok_test", "mean"),
             n_ok=("n_ok", "sum"), n_diverged=("n_diverged", "sum"), chance=("chance", "max"))
        .reset_index()
    )  # fmt: skip


def hand_noise(runs: pd.DataFrame) -> dict[str, float]:
    """Per arm, the std of one run's validation accuracy: each cell's variance over its finished
    seeds, weighted by seeds - 1, over the arm's cells with two finished seeds or more (NaN
    where there is none)."""
    noise = {}
    for arm, own in runs[runs["status"].eq("ok")].groupby("arm"):
        spread = own.groupby(["lr", "rho"], dropna=False)["val_acc"].agg(["var", "count"])
        spread = spread[spread["count"].ge(2)]
        dof = spread["count"] - 1
        noise[arm] = math.sqrt((dof * spread["var"]).sum() / dof.sum()) if len(spread) else math.nan
    return noise


def hand_near(cells: pd.DataFrame, sigma: float) -> int | None:
    """How many of an arm's ``cells`` (:func:`hand_cells`) score on validation within
    2 sqrt(2) ``sigma`` of its best cell; None without a sigma."""
    if math.isnan(sigma):
        return None
    return int((cells["val"] >= cells["val"].max() - 2 * math.sqrt(2) * sigma).sum())


def hand_best(cells: pd.DataFrame) -> pd.DataFrame:
    """Per arm (the index), its cell of the highest mean validation score, ties to the smaller
    lr, then the smaller rho: the report's 'Best settings'."""
    ranked = cells.sort_values(["arm", "val", "lr", "rho"], ascending=[True, False, True, True])
    return ranked.groupby("arm").head(1).set_index("arm")


def arm_of_label(arms: pd.Series) -> dict[str, str]:
    return {common.label(arm): arm for arm in arms}


def points(ax: Axes) -> np.ndarray:
    """Every scatter point of a panel, (x, y) rows."""
    drawn = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
    return np.concatenate(drawn) if drawn else np.empty((0, 2))


def rows_named(ax: Axes) -> dict[int, str]:
    """The y tick labels, by the (rounded) y they name."""
    return {round(y): label.get_text()
            for y, label in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)}  # fmt: skip


# -- heatmaps -------------------------------------------------------------------------------------


def heatmaps_drawn(fig: Figure, cells: pd.DataFrame, missing: pd.DataFrame) -> None:
    """``heatmaps``: one panel per arm, titled by it. Rows are the arm's sorted rhos and columns
    its sorted lrs, as the ticks say, counting the planned cells without a result (one row and
    no y ticks for an arm without rho). A cell with a finished run is coloured by the mean test
    accuracy (%) of its finished runs and prints it (.1f); where some runs diverged too it is
    outlined and adds 'd/n div.'; a cell whose every run diverged is hatched, uncoloured, with
    a ×; any other cell is blank. Every panel shares one colour scale, from the lowest to the
    highest coloured value."""
    readable(fig)
    grid = pd.concat([cells[["arm", "lr", "rho"]], missing[["arm", "lr", "rho"]]])
    arm_of = arm_of_label(grid["arm"])
    drawn = {ax.get_title(): ax for ax in panels(fig)}
    assert sorted(arm_of[title] for title in drawn) == sorted(set(grid["arm"])), list(drawn)
    coloured = 100 * cells.loc[cells["n_ok"] > 0, "ok_test"]
    for title, ax in drawn.items():
        arm = arm_of[title]
        own = grid[grid["arm"].eq(arm)]
        rhos, lrs = sorted(own["rho"].dropna().unique()), sorted(own["lr"].unique())
        assert tick_values(ax.get_xticklabels()) == pytest.approx(lrs), title
        assert tick_values(ax.get_yticklabels()) == pytest.approx(rhos), title
        expected = np.full((max(len(rhos), 1), len(lrs)), math.nan)
        hatched, outlined, texts = set(), set(), {}
        for cell in cells[cells["arm"].eq(arm)].itertuples():
            at = (0 if math.isnan(cell.rho) else rhos.index(cell.rho), lrs.index(cell.lr))
            if cell.n_ok == 0:
                hatched.add(at)
                texts[at] = "×"
                continue
            expected[at] = 100 * cell.ok_test
            texts[at] = f"{expected[at]:.1f}"
            if cell.n_diverged:
                outlined.add(at)
                texts[at] += f"\n{cell.n_diverged}/{cell.n_ok + cell.n_diverged} div."
        (image,) = ax.images
        shown = np.ma.filled(image.get_array().astype(float), math.nan)
        assert shown == pytest.approx(expected, nan_ok=True), title
        assert (image.norm.vmin, image.norm.vmax) == pytest.approx(
            (coloured.min(), coloured.max())
        ), title
        at = {(round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in ax.patches if p.get_hatch()}
        assert at == hatched, title
        edges = {(round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in ax.patches
                 if not p.get_fill()}  # fmt: skip
        assert edges == outlined, title
        printed = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
                   for t in ax.texts}  # fmt: skip
        assert printed == texts, title


# -- sensitivity ----------------------------------------------------------------------------------


def sensitivity_drawn(fig: Figure, cells: pd.DataFrame) -> None:
    """``sensitivity``: per sharpness-aware arm, a top panel titled with its best lr (see
    :func:`hand_best`) drawing its cells' mean test score (%, :func:`hand_cells`) at that lr
    against rho; below, panels of the mean test score against lr of such an arm at its best rho
    (the title gives it) and of base optimizers, every arm in one at least. Every line has a
    point at each of its cells, and a chance line at 100 / classes."""
    readable(fig)
    best = hand_best(cells)
    arm_of = arm_of_label(cells["arm"])
    sam = set(cells.loc[cells["rho"].notna(), "arm"])
    along_rho, along_lr = [], set()
    for ax in panels(fig):
        lines = lines_by_label(ax)
        (chance,) = [xy for label, xy in lines.items() if label.startswith("_")]
        assert list(chance[:, 1]) == pytest.approx([100 * cells["chance"].max()] * 2)
        drawn = {label: xy for label, xy in lines.items() if not label.startswith("_")}
        if ax.get_subplotspec().rowspan.start == 0:
            name, lr = ax.get_title().rsplit(" at η = ", 1)
            arm = arm_of[name]
            assert float(lr) == pytest.approx(best.loc[arm, "lr"]), name
            assert list(drawn) == [name], name
            own = cells[cells["arm"].eq(arm) & cells["lr"].eq(best.loc[arm, "lr"])]
            curve_drawn(drawn[name], own, "rho", ax)
            along_rho.append(arm)
            continue
        name, _, rho = ax.get_title().partition(" (ρ = ")
        assert (arm_of[name] in sam) == bool(rho), ax.get_title()
        if rho:
            assert float(rho.removesuffix(")")) == pytest.approx(best.loc[arm_of[name], "rho"])
        assert name in drawn, ax.get_title()
        for label, xy in drawn.items():
            arm = arm_of[label]
            own = cells[cells["arm"].eq(arm)]
            if arm in sam:
                own = own[own["rho"].eq(best.loc[arm, "rho"])]
            curve_drawn(xy, own, "lr", ax)
            along_lr.add(arm)
    assert sorted(along_rho) == sorted(sam), along_rho
    assert along_lr == set(cells["arm"]), along_lr


def curve_drawn(xy: np.ndarray, own: pd.DataFrame, x: str, ax: Axes) -> None:
    """The line ``xy`` is 100 x the cells' test score against their sorted ``x``, each with a
    point."""
    own = own.sort_values(x)
    assert list(xy[:, 0]) == pytest.approx(list(own[x])), (ax.get_title(), x)
    assert list(xy[:, 1]) == pytest.approx(list(100 * own["test"])), (ax.get_title(), x)
    marked = {tuple(point) for point in np.round(points(ax), 9)}
    assert {tuple(point) for point in np.round(xy, 9)} <= marked, ax.get_title()


# -- robustness -----------------------------------------------------------------------------------


def robustness_drawn(fig: Figure, cells: pd.DataFrame, noise: Mapping[str, float]) -> None:
    """``robustness``: one row per arm, named by its y tick label. Left, a bar from the worst
    to the best cell's test score (%, :func:`hand_cells`; the best chosen on validation,
    :func:`hand_best`) and points at the best, the median and the worst; middle, a bar of the
    fraction (%) of the arm's cells near its best by its ``noise`` (:func:`hand_near`),
    labelled 'count/cells', or no bar and 'no seed noise' where the arm has none; right, per
    arm against k = 1 .. its cells, the expected test score (%) of the validation-best of k
    random cells (:func:`best_of_k` over the cells' mean scores)."""
    readable(fig)
    spread, near, tuning = panels(fig)
    best = hand_best(cells)
    arm_of = arm_of_label(cells["arm"])
    named_at = rows_named(spread)
    assert sorted(arm_of[name] for name in named_at.values()) == sorted(best.index), named_at
    (bars,) = [c for c in spread.collections if isinstance(c, LineCollection)]
    segments = {round(seg[0, 1]): sorted(seg[:, 0]) for seg in bars.get_segments()}
    marked = collections.defaultdict(list)
    for x, y in points(spread):
        marked[round(y)].append(x)
    widths = {round(p.get_y() + p.get_height() / 2): p.get_width() for p in near.patches}
    counts = {round(t.get_position()[1]): t.get_text() for t in near.texts}
    curves = lines_by_label(tuning)
    assert set(curves) == set(named_at.values()), list(curves)
    for y, name in named_at.items():
        arm = arm_of[name]
        own = cells[cells["arm"].eq(arm)]
        top, scores = 100 * best.loc[arm, "test"], 100 * own["test"]
        assert segments[y] == pytest.approx(sorted([scores.min(), top])), name
        statistics = sorted([top, scores.median(), scores.min()])
        assert sorted(marked[y]) == pytest.approx(statistics), name
        within = hand_near(own, noise.get(arm, math.nan))
        if within is None:
            assert (widths[y], counts[y]) == (0, "no seed noise"), name
        else:
            assert widths[y] == pytest.approx(100 * within / len(own)), name
            assert counts[y] == f"{within}/{len(own)}", name
        expected = best_of_k(list(zip(own["val"], own["test"], strict=True)))
        assert list(curves[name][:, 0]) == list(range(1, len(own) + 1)), name
        assert list(curves[name][:, 1]) == pytest.approx([100 * e for e in expected]), name


# -- training curves ------------------------------------------------------------------------------


def training_drawn(fig: Figure, store: Path, runs: pd.DataFrame, cells: pd.DataFrame) -> None:
    """``training_curves``: per arm whose best cell (:func:`hand_best`) has a finished run with
    metrics, one line in each panel, labelled with the arm and that cell's lr and rho: the
    training loss and the validation accuracy (%) after each epoch, the mean over the cell's
    finished runs that logged it."""
    readable(fig)
    best = hand_best(cells)
    arm_of = arm_of_label(cells["arm"])
    by_panel = {ax.get_title(): lines_by_label(ax) for ax in panels(fig)}
    assert list(by_panel) == ["Training loss (log scale)", "Validation accuracy"], list(by_panel)
    expected = {}
    for arm, cell in best.iterrows():
        chosen = runs[runs["arm"].eq(arm) & runs["lr"].eq(cell["lr"]) & runs["status"].eq("ok")]
        if not math.isnan(cell["rho"]):
            chosen = chosen[chosen["rho"].eq(cell["rho"])]
        logged = [row for run_id in chosen["run_id"] for row in files.read_metrics(store / run_id)]
        if logged:
            expected[arm] = pd.DataFrame(logged)
    for (column, scale), lines in zip((("train_loss", 1), ("val_acc", 100)), by_panel.values(),
                                      strict=True):  # fmt: skip
        assert len(lines) == len(expected), (column, list(lines))
        for label, xy in lines.items():
            name, setting = label.removesuffix(")").rsplit(" (η=", 1)
            arm = arm_of[name]
            lr, _, rho = setting.partition(", ρ=")
            assert float(lr) == pytest.approx(best.loc[arm, "lr"]), label
            assert float(rho or "nan") == pytest.approx(best.loc[arm, "rho"], nan_ok=True), label
            mean = expected[arm].dropna(subset=[column]).groupby("epoch")[column].mean()
            assert list(xy[:, 0]) == list(mean.index), (column, label)
            assert list(xy[:, 1]) == pytest.approx(list(scale * mean)), (column, label)
