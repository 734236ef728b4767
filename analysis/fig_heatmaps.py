"""Figure 1: mean test accuracy over the (lr, rho) grid of every arm, on one colour scale.

A flat, wide bright region is what "insensitive to lr and rho" looks like. Each sharpness-aware
method is a rho x lr heatmap with its base optimizer (no rho) as a one-row strip below it.
Diverged cells are hatched, never coloured as 0; cells where only some seeds diverged are
outlined and say how many; cells without a result are blank.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from analysis import common
from analysis.results import Collection, aggregate

BLOCKS_PER_ROW = 2


def cell_grid(
    cells: pd.DataFrame,
) -> tuple[list[float], list[float], np.ndarray, np.ndarray, np.ndarray]:
    """(rhos, lrs, accuracy %, marks, texts) as (rho, lr) matrices, rho NaN for a strip."""
    rhos = sorted(cells["rho"].dropna().unique()) or [np.nan]
    lrs = sorted(cells["lr"].unique())
    values, marks, texts = common.empty_grid(len(rhos), len(lrs))
    for row in cells.itertuples():
        i = 0 if np.isnan(row.rho) else rhos.index(row.rho)
        j = lrs.index(row.lr)
        values[i, j] = 100 * row.test_acc_mean
        if row.status in ("ok", "partial"):
            marks[i, j] = "" if row.status == "ok" else "partial"
            texts[i, j] = f"{values[i, j]:.1f}"
        if row.status == "partial":
            texts[i, j] += f"\n{row.n_diverged}/{row.n_ok + row.n_diverged} div."
        if row.status == "diverged":
            marks[i, j] = "diverged"
    return rhos, lrs, values, marks, texts


def panel(
    ax: Axes, cells: pd.DataFrame, arm: str, norm: Normalize, strip: bool, xlabel: bool
) -> AxesImage:
    rhos, lrs, values, marks, texts = cell_grid(cells)
    image = common.heatmap(ax, values, marks, texts, norm, common.ACCURACY_CMAP)
    common.category_ticks(ax, "x", lrs)
    if xlabel:
        ax.set_xlabel("learning rate η")
    if strip:
        ax.set_yticks([])
    else:
        common.category_ticks(ax, "y", rhos)
        ax.set_ylabel(common.rho_label(arm))
    ax.set_title(common.label(arm), fontweight="bold")
    return image


def heatmaps(collection: Collection) -> Figure:
    """``heatmaps`` of what ``collection`` holds (see the module docstring)."""
    agg = aggregate(collection.runs, collection.missing)
    coloured = agg.loc[agg["status"].isin(["ok", "partial"]), "test_acc_mean"] * 100
    norm = common.value_range(coloured, default=(0, 100))
    with_rho = common.with_rho(agg)
    pairs = common.pairs(agg["arm"].unique(), with_rho)
    block_rows = -(-len(pairs) // BLOCKS_PER_ROW)
    columns = min(len(pairs), BLOCKS_PER_ROW)
    n_rho = agg.groupby("arm")["rho"].nunique().max() or 1
    fig = Figure(
        figsize=(5.4 * columns + 1.2, (0.55 * n_rho + 2.4) * block_rows), layout="constrained"
    )
    grid = fig.add_gridspec(2 * block_rows, columns, height_ratios=[n_rho, 1.25] * block_rows)
    axes = []
    for index, (method, base) in enumerate(pairs):
        row, column = divmod(index, BLOCKS_PER_ROW)
        for arm, offset in ((method, 0), (base, 1)):
            if arm is None:
                continue
            ax = fig.add_subplot(grid[2 * row + offset, column])
            cells = agg[agg["arm"].eq(arm)]
            strip = arm not in with_rho
            image = panel(ax, cells, arm, norm, strip, xlabel=strip or base is None)
            axes.append(ax)
    fig.colorbar(image, ax=axes, label="mean test accuracy (%)", shrink=0.8, aspect=40)
    runs, seeds = collection.runs, int(agg["n"].max())
    fig.suptitle(
        f"Test accuracy over the grid: {common.listed(runs['dataset'])}, "
        f"{common.listed(runs['model'])}, {common.listed(runs['epochs'].astype(int))} epochs, "
        + ("one seed a cell" if seeds <= 1 else f"mean over up to {seeds} seeds")
    )
    fig.legend(
        handles=common.heatmap_legend(
            partial=agg["status"].eq("partial").any(),
            blank=agg["status"].isin(["missing", "failed"]).any(),
        ),
        loc="outside lower center",
        ncols=3,
        frameon=False,
    )
    return fig


@common.styled
def make(collection: Collection, out: Path) -> list[Path]:
    return common.save(heatmaps(collection), out, "heatmaps")


def main(argv: Sequence[str] | None = None) -> None:
    common.store_main(make, __doc__, argv)


if __name__ == "__main__":
    main()
