"""Figure 2: test accuracy against rho at each method's best lr, and against lr at its best rho.

Slices of figure 1 through each arm's best cell, with 95% confidence bands over seeds
(where every seed finished). One column per method: radii are not comparable across methods
(LightSAM-II/III's rho is per coordinate), so each gets its own rho axis; below it, the lr
curve of the method at its best rho and of its base optimizer (dashed), on one lr axis. Curves
go through chance where a setting diverged (see analysis.results).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis import common
from analysis.results import Collection, aggregate, best_settings

MARKERS = {"ok": "o", "partial": "D", "diverged": "X"}


def curve(ax: Axes, cells: pd.DataFrame, x: str, arm: str) -> None:
    """Mean test score along ``x`` with its 95% CI band where every seed finished, and a marker
    per cell saying whether it diverged."""
    cells = cells[cells["status"].isin(list(MARKERS))].sort_values(x)
    style = common.line_style(arm)
    ax.plot(cells[x], 100 * cells["test_score"], linewidth=2, **style)
    banded = cells["status"].eq("ok") & cells["test_acc_ci95"].notna()
    ax.fill_between(
        cells[x],
        100 * (cells["test_acc_mean"] - cells["test_acc_ci95"]),
        100 * (cells["test_acc_mean"] + cells["test_acc_ci95"]),
        where=banded.to_numpy(),
        color=style["color"],
        alpha=0.2,
        linewidth=0,
    )
    for status, marker in MARKERS.items():
        shown = cells[cells["status"].eq(status)]
        ax.scatter(
            shown[x],
            100 * shown["test_score"],
            marker=marker,
            s=60,
            zorder=3,
            color=style["color"],
            edgecolor="black",
            linewidth=0.6,
        )


def decorate(ax: Axes, chance: float, xlabel: str) -> None:
    common.log_axis(ax, "x")
    ax.axhline(100 * chance, color="grey", linestyle=":", linewidth=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)


def marker_legend() -> list[Line2D]:
    names = {"ok": "all seeds finished", "partial": "some seeds diverged", "diverged": "diverged"}
    handles = [common.marker_handle(marker, names[status]) for status, marker in MARKERS.items()]
    return [*handles, Line2D([], [], color="grey", linestyle=":", label="chance")]


def rho_panel(ax: Axes, agg: pd.DataFrame, best: pd.Series, arm: str) -> None:
    """Accuracy against rho at the arm's best lr, on its own rho axis."""
    own = agg[agg["arm"].eq(arm) & agg["lr"].eq(best["lr"])]
    curve(ax, own, "rho", arm)
    decorate(ax, best["chance"], common.rho_label(arm))
    ax.set_title(f"{common.label(arm)} at η = {common.decade(best['lr'])}")


def lr_panel(ax: Axes, agg: pd.DataFrame, best: pd.DataFrame, pair: common.Pair) -> None:
    """Accuracy against lr of a method at its best rho and of its base optimizer."""
    for arm in filter(None, pair):
        own = agg[agg["arm"].eq(arm)]
        if arm == pair[0]:
            own = own[own["rho"].eq(best.loc[arm, "rho"])]
        curve(ax, own, "lr", arm)
    decorate(ax, best["chance"].max(), "learning rate η")
    ax.legend(loc="best", framealpha=0.9, fontsize=11)
    method = pair[0] or pair[1]
    at = f" (ρ = {common.decade(best.loc[method, 'rho'])})" if pair[0] else ""
    ax.set_title(f"{common.label(method)}{at}")


def sensitivity(collection: Collection) -> Figure:
    """``sensitivity`` of what ``collection`` holds (see the module docstring)."""
    agg = aggregate(collection.runs, collection.missing)
    best = best_settings(agg).dropna(subset=["lr"]).set_index("arm")
    best["chance"] = agg.groupby("arm")["chance"].max()
    columns = common.pairs(best.index, common.with_rho(agg))
    fig = Figure(figsize=(3.7 * len(columns) + 2, 9), layout="constrained")
    axes = fig.subplots(2, len(columns), squeeze=False, sharey=True)
    for (method, base), top, bottom in zip(columns, axes[0], axes[1], strict=True):
        if method is None:
            top.set_visible(False)
        else:
            rho_panel(top, agg, best.loc[method], method)
        lr_panel(bottom, agg, best, (method, base))
    axes[0, 0].set_ylabel("test accuracy (%)")
    axes[1, 0].set_ylabel("test accuracy (%)")
    fig.legend(handles=marker_legend(), loc="outside lower center", ncols=4, frameon=False)
    fig.suptitle(
        "Sensitivity: mean test accuracy, "
        f"{common.spread_over(agg['n'].max() > 1, '95% CI over seeds')}\n"
        "top: against ρ at each method's best η, each on its own ρ axis;"
        " bottom: against η at its best ρ, base optimizer dashed"
    )
    return fig


@common.styled
def make(collection: Collection, out: Path) -> list[Path]:
    return common.save(sensitivity(collection), out, "sensitivity")


def main(argv: Sequence[str] | None = None) -> None:
    common.store_main(make, __doc__, argv)


if __name__ == "__main__":
    main()
