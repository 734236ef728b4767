"""Figure 3: how much each arm's grid loses against its best cell, and what tuning costs.

Left, the test accuracy of the best cell (chosen on validation), the grid median and the worst
cell; middle, the fraction of the grid near the best by the seed noise (its validation accuracy
within 2√2σ of the best cell's, ``analysis.results.best_settings``); right, the expected test
accuracy after a random search of k grid cells (exact expectation over all k-subsets, band from
resampling seeds). A method that does not need tuning reaches its best at small k. Diverged
runs count as chance (see analysis.results).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

from analysis import common
from analysis.results import Collection, aggregate, best_settings, expected_best_of_k

STATISTICS = {"best_test": ("o", "best (chosen on val.)"), "median_test": ("D", "grid median"),
              "worst_test": ("v", "worst cell")}  # fmt: skip
N_BOOT, SEED = 1000, 0


def spread(ax: Axes, summary: pd.DataFrame) -> None:
    """Best, median and worst cell per arm, one row each."""
    y = np.arange(len(summary))[::-1]
    colors = [common.line_style(o)["color"] for o in summary.index]
    ax.hlines(y, 100 * summary["worst_test"], 100 * summary["best_test"], color=colors, lw=2.5)
    for column, (marker, _) in STATISTICS.items():
        ax.scatter(
            100 * summary[column],
            y,
            marker=marker,
            s=70,
            color=colors,
            edgecolor="black",
            linewidth=0.6,
            zorder=3,
        )
    ax.set_yticks(y, [common.label(o) for o in summary.index])
    ax.set_xlim(0, 100)
    ax.set_xlabel("test accuracy (%)")
    ax.set_title("Best, median and worst cell")
    ax.grid(axis="x", alpha=0.3)


def near_best(ax: Axes, summary: pd.DataFrame) -> None:
    """The fraction of the grid near the best cell by the seed noise, as bars; an arm without a
    seed noise is written so, with no bar."""
    y = np.arange(len(summary))[::-1]
    colors = [common.line_style(o)["color"] for o in summary.index]
    share = summary["frac_near_best"].fillna(0)
    ax.barh(y, 100 * share, color=colors, edgecolor="black", linewidth=0.6)
    for yi, (_, row) in zip(y, summary.iterrows(), strict=True):
        if np.isnan(row["frac_near_best"]):
            ax.text(2, yi, "no seed noise", va="center", color="0.4")
            continue
        count = round(row["frac_near_best"] * row["grid_cells"])
        ax.text(100 * row["frac_near_best"] + 2, yi, f"{count}/{row['grid_cells']}", va="center")
    ax.tick_params(axis="y", left=False, labelleft=False)
    ax.set_xlim(0, 115)
    ax.set_xlabel("grid cells (%)")
    ax.set_title("Near best\n(val. within 2√2σ)")
    ax.grid(axis="x", alpha=0.3)


def tuning_cost(ax: Axes, curves: pd.DataFrame, arms: Sequence[str]) -> None:
    """Expected best test accuracy of a random search against its number of trials k."""
    for arm in arms:
        own = curves[curves["arm"].eq(arm)]
        style = common.line_style(arm)
        ax.plot(own["k"], 100 * own["expected"], linewidth=2, **style)
        ax.fill_between(
            own["k"],
            100 * own["low"],
            100 * own["high"],
            color=style["color"],
            alpha=0.15,
            linewidth=0,
        )
    ax.set_xscale("log")
    ticks = [k for k in (1, 2, 3, 5, 10, 20, 30, 50, 100) if k <= curves["k"].max()]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("grid cells tried at random, k")
    ax.set_ylabel("expected test accuracy (%)")
    banded = (curves["high"] > curves["low"]).any()
    ax.set_title(f"Expected best of k ({common.spread_over(banded, '95% band over seeds')})")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)


def robustness(collection: Collection, noise: Mapping[str, float] | None = None) -> Figure:
    """``robustness`` of what ``collection`` holds (see the module docstring), near best by
    ``noise`` (see ``analysis.results.best_settings``)."""
    agg = aggregate(collection.runs, collection.missing)
    summary = best_settings(agg, noise).dropna(subset=["lr"]).set_index("arm")
    arms = common.ordered(summary.index)
    summary = summary.loc[arms]
    curves = expected_best_of_k(collection.runs, n_boot=N_BOOT, seed=SEED)
    fig = Figure(figsize=(16, 0.5 * len(arms) + 4), layout="constrained")
    left, middle, right = fig.subplots(1, 3, width_ratios=[1.3, 0.8, 1.5])
    middle.sharey(left)
    spread(left, summary)
    near_best(middle, summary)
    tuning_cost(right, curves, arms)
    fig.legend(
        handles=[common.marker_handle(marker, name) for marker, name in STATISTICS.values()],
        loc="outside lower left",
        ncols=3,
        frameon=False,
    )
    fig.suptitle("Robustness over each method's whole grid (diverged runs count as chance)")
    return fig


@common.styled
def make(collection: Collection, out: Path, noise: Mapping[str, float] | None = None) -> list[Path]:
    return common.save(robustness(collection, noise), out, "robustness")


def main(argv: Sequence[str] | None = None) -> None:
    common.store_main(make, __doc__, argv)


if __name__ == "__main__":
    main()
