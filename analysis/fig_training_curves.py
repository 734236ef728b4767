"""Figure 4: training loss and validation accuracy per epoch at each arm's best setting.

The setting is the one chosen on validation (analysis.results.best_settings); lines are the mean
over its seeds that finished, bands their range (min to max).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from analysis import common
from analysis.results import Collection, aggregate, best_settings, read_metrics

PANELS = {"train_loss": "training loss", "val_acc": "validation accuracy (%)"}


def best_runs(collection: Collection, best: pd.DataFrame) -> pd.DataFrame:
    """(run_id, arm) of the ok runs of each arm's best cell."""
    runs = collection.runs[collection.runs["status"].eq("ok")]
    chosen = best[["arm", "lr", "rho"]]
    return runs.merge(chosen, on=["arm", "lr", "rho"])[["run_id", "arm"]]


def band(ax: Axes, metrics: pd.DataFrame, column: str, arm: str, name: str) -> None:
    """Mean over seeds per epoch, shaded from the lowest to the highest seed."""
    scale = 100 if column == "val_acc" else 1
    stats = metrics.dropna(subset=[column]).groupby("epoch")[column].agg(["mean", "min", "max"])
    style = common.line_style(arm) | {"label": name}
    ax.plot(stats.index, scale * stats["mean"], marker="o", linewidth=2, **style)
    ax.fill_between(
        stats.index,
        scale * stats["min"],
        scale * stats["max"],
        color=style["color"],
        alpha=0.15,
        linewidth=0,
    )


def training_curves(collection: Collection) -> Figure:
    """``training_curves`` of what ``collection`` holds (see the module docstring)."""
    best = best_settings(aggregate(collection.runs)).dropna(subset=["lr"])
    chosen = best_runs(collection, best)
    metrics = read_metrics(collection.store, chosen["run_id"]).merge(chosen, on="run_id")
    fig = Figure(figsize=(15, 6), layout="constrained")
    axes = dict(zip(PANELS, fig.subplots(1, 2), strict=True))
    for row in best.set_index("arm").loc[common.ordered(best["arm"])].itertuples():
        own = metrics[metrics["arm"].eq(row.Index)]
        if own.empty:
            continue
        rho = "" if np.isnan(row.rho) else f", ρ={common.decade(row.rho)}"
        name = f"{common.label(row.Index)} (η={common.decade(row.lr)}{rho})"
        for column, ax in axes.items():
            band(ax, own, column, row.Index, name)
    for column, ax in axes.items():
        ax.set_xlabel("epoch")
        ax.set_ylabel(PANELS[column])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes["train_loss"].set_yscale("log")
    axes["train_loss"].yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    axes["train_loss"].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes["train_loss"].yaxis.set_minor_formatter(NullFormatter())
    axes["train_loss"].set_title("Training loss (log scale)")
    axes["val_acc"].set_title("Validation accuracy")
    axes["val_acc"].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    seeds = int(chosen.groupby("arm").size().max()) if len(chosen) else 0
    fig.suptitle("Training at each method's best setting: "
                 + common.spread_over(seeds > 1, "mean over seeds, band = min to max"))  # fmt: skip
    return fig


@common.styled
def make(collection: Collection, out: Path) -> list[Path]:
    return common.save(training_curves(collection), out, "training_curves")


def main(argv: Sequence[str] | None = None) -> None:
    common.store_main(make, __doc__, argv)


if __name__ == "__main__":
    main()
