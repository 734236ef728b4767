"""The theorem's problem (lightsam.theorem): how fast, and from which (lr, rho), each arm drives
the gradient norm down on a stochastic non-convex problem with affine-variance noise.

Two figures. ``theorem_steps``: per arm, the steps each (lr, rho) cell needs until
``||grad f||^2`` falls to 1e-2 of its start (median over seeds; a cell some seed never brings
there within T is outlined, one no seed does is blank, one that diverged is hatched), with the
``lr = 2/L`` line of gradient descent's stability bound. ``theorem_rates``: per arm, the
average ``||grad f||^2`` up to T against T, one line per lr at the arm's middle radius (median
over seeds), beside the ``T^(-1/2)`` rate of the theorem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from analysis import common
from lightsam import store as files

PANELS_PER_ROW = 4
TARGET = "steps_to_1e-2"


def read(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """``cells.csv``, ``curves.csv`` and ``meta.json`` of the experiment's directory."""
    cells = pd.read_csv(directory / files.THEOREM_CELLS)
    curves = pd.read_csv(directory / files.THEOREM_CURVES)
    meta = json.loads((directory / files.THEOREM_META).read_text())
    return cells, curves, meta


def per_cell(cells: pd.DataFrame, target: str = TARGET) -> pd.DataFrame:
    """One row per (arm, lr, rho): the median steps to ``target`` over the seeds that reached
    it, how many did, and how many diverged."""
    grouped = cells.groupby(["arm", "lr", "rho"], dropna=False)
    return grouped.agg(
        steps=(target, "median"),
        reached=(target, "count"),
        diverged=("diverged", "sum"),
        seeds=("seed", "count"),
    ).reset_index()


def cell_grid(
    cells: pd.DataFrame,
) -> tuple[list[float], list[float], np.ndarray, np.ndarray, np.ndarray]:
    rhos = sorted(cells["rho"].dropna().unique()) or [math.nan]
    lrs = sorted(cells["lr"].unique())
    values, marks, texts = common.empty_grid(len(rhos), len(lrs))
    for row in cells.itertuples():
        i = 0 if math.isnan(row.rho) else rhos.index(row.rho)
        j = lrs.index(row.lr)
        if row.diverged == row.seeds:
            marks[i, j] = "diverged"
        elif row.reached:
            values[i, j] = row.steps
            marks[i, j] = "" if row.reached == row.seeds else "partial"
            texts[i, j] = f"{row.steps:.0f}" if row.steps < 1000 else f"{row.steps / 1000:.0f}k"
    return rhos, lrs, values, marks, texts


def stability_bound(ax: Axes, lrs: Sequence[float], smoothness: float) -> None:
    """A dashed line at lr = 2/L, placed on the decade grid by log interpolation."""
    x = np.interp(np.log10(2 / smoothness), np.log10(lrs), np.arange(len(lrs)))
    ax.axvline(x, color="white", linestyle="--", linewidth=2.5)
    ax.axvline(x, color="black", linestyle="--", linewidth=1.2, label="η = 2/L")


def panels(count: int, height: float) -> tuple[Figure, np.ndarray]:
    rows = -(-count // PANELS_PER_ROW)
    fig = Figure(figsize=(4.6 * PANELS_PER_ROW, height * rows), layout="constrained")
    axes = fig.subplots(rows, PANELS_PER_ROW, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes


def steps(cells: pd.DataFrame, meta: dict[str, Any]) -> Figure:
    """``theorem_steps`` of the stored ``cells`` (see the module docstring)."""
    table = per_cell(cells)
    arms = common.ordered(table["arm"].unique())
    horizon = meta["settings"]["steps"]
    norm = LogNorm(vmin=meta["settings"]["record_every"], vmax=horizon)
    fig, axes = panels(len(arms), 4.2)
    for ax, arm in zip(axes, arms, strict=False):
        rhos, lrs, values, marks, texts = cell_grid(table[table["arm"].eq(arm)])
        image = common.heatmap(ax, values, marks, texts, norm, common.GRADIENT_CMAP)
        common.category_ticks(ax, "x", lrs)
        if math.isnan(rhos[0]):
            ax.set_yticks([])
        else:
            common.category_ticks(ax, "y", rhos)
            ax.set_ylabel(common.rho_label(arm))
        stability_bound(ax, lrs, meta["smoothness"])
        ax.set_xlabel("learning rate η")
        ax.set_title(common.label(arm), fontweight="bold")
    fig.colorbar(image, ax=axes, label=f"steps until ‖∇f‖² ≤ 0.01 ‖∇f(x₀)‖² (of T = {horizon})",
                 shrink=0.8, aspect=40)  # fmt: skip
    handles = common.heatmap_legend(
        partial=True,
        blank=True,
        partial_label="some seeds did not get there (outlined)",
        blank_label="no seed got there within T",
    )
    handles += axes[0].get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False)
    fig.suptitle(title(meta, "Steps to a hundredth of the initial squared gradient norm"))
    return fig


def rates(curves: pd.DataFrame, meta: dict[str, Any]) -> Figure:
    """``theorem_rates`` of the stored ``curves`` (see the module docstring)."""
    arms = common.ordered(curves["arm"].unique())
    lrs = sorted(curves["lr"].unique())
    colors = colormaps["viridis"](np.linspace(0, 0.9, len(lrs)))
    fig, axes = panels(len(arms), 3.8)
    for ax, arm in zip(axes, arms, strict=False):
        own = curves[curves["arm"].eq(arm)]
        rhos = sorted(own["rho"].dropna().unique())
        rho = rhos[len(rhos) // 2] if rhos else math.nan
        if rhos:
            own = own[own["rho"].eq(rho)]
        for lr, color in zip(lrs, colors, strict=True):
            line = own[own["lr"].eq(lr)].groupby("T")["avg_sq_grad"].median()
            ax.plot(
                line.index,
                line.values,
                color=color,
                linewidth=1.8,
                label=f"η = {common.decade(lr)}",
            )
        guide = np.array([line.index.min(), line.index.max()]) if len(line) else np.array([1, 1])
        ax.plot(guide, (guide / guide[0]) ** -0.5, color="black", linestyle="--", linewidth=1.2,
                label="T^(-1/2)")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("steps T")
        ax.set_ylabel("mean ‖∇f‖² up to T (relative)")
        at = "" if math.isnan(rho) else f", ρ = {common.decade(rho)}"
        ax.set_title(f"{common.label(arm)}{at}", fontweight="bold")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
    fig.suptitle(title(meta, "Mean squared gradient norm up to T, median over seeds"))
    return fig


def title(meta: dict[str, Any], what: str) -> str:
    s = meta["settings"]
    return (
        f"{what}: stochastic non-convex problem, n = {s['n']}, d = {s['dim']}, "
        f"L ≤ {meta['smoothness']:.2g}, batch {s['batch']}, D0 = {s['d0']:g}, D1 = {s['d1']:g}, "
        f"{len(s['seeds'])} seeds"
    )


@common.styled
def make(directory: Path, out: Path) -> list[Path]:
    cells, curves, meta = read(directory)
    figures = {"theorem_steps": steps(cells, meta), "theorem_rates": rates(curves, meta)}
    return [path for name, fig in figures.items() for path in common.save(fig, out, name)]


def main(argv: Sequence[str] | None = None) -> None:
    args = common.parse(__doc__.splitlines()[0], argv, source="experiment")
    common.report(make(args.experiment, args.out))


if __name__ == "__main__":
    main()
