"""Figure 5: the parameter-agnostic experiment, final gradient norm over (lr, rho).

On a quadratic of known smoothness L (lightsam.agnostic), each cell is log10 of the gradient norm
after the run relative to the initial one: below 0 the method made progress, far below 0 it
converged. The paper's claim is a whole panel of progress for LightSAM-I/II whatever lr and rho,
while SGD-SAM diverges for lr > 2/L (the dashed line).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis import common
from lightsam import store as files

PANELS_PER_ROW = 2
# log10 of a relative norm that underflowed to 0 is shown as this floor.
FLOOR = -300.0


def read(directory: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``cells.csv`` with ``log_grad`` (log10 of the relative gradient norm), and the problem
    from ``meta.json``."""
    cells = pd.read_csv(directory / files.AGNOSTIC_CELLS)
    with np.errstate(divide="ignore"):
        log_grad = np.log10(cells["grad_norm"].astype(float)).clip(lower=FLOOR)
    meta = json.loads((directory / files.AGNOSTIC_META).read_text())
    return cells.assign(log_grad=log_grad), meta.get("problem", meta)


def cell_grid(
    cells: pd.DataFrame,
) -> tuple[list[float], list[float], np.ndarray, np.ndarray, np.ndarray]:
    """(rhos, lrs, log_grad, marks, texts) as (rho, lr) matrices."""
    rhos, lrs = sorted(cells["rho"].unique()), sorted(cells["lr"].unique())
    values, marks, texts = common.empty_grid(len(rhos), len(lrs))
    for row in cells.itertuples():
        i, j = rhos.index(row.rho), lrs.index(row.lr)
        if row.diverged:
            marks[i, j] = "diverged"
        elif np.isfinite(row.log_grad):
            values[i, j], marks[i, j], texts[i, j] = row.log_grad, "", str(round(row.log_grad))
    return rhos, lrs, values, marks, texts


def stability_bound(ax: Axes, lrs: Sequence[float], smoothness: float) -> None:
    """A dashed line at lr = 2/L, placed on the decade grid by log interpolation."""
    x = np.interp(np.log10(2 / smoothness), np.log10(lrs), np.arange(len(lrs)))
    ax.axvline(x, color="white", linestyle="--", linewidth=2.5)
    ax.axvline(x, color="black", linestyle="--", linewidth=1.2, label="η = 2/L")


@common.styled
def make(directory: Path, out: Path) -> list[Path]:
    cells, problem = read(directory)
    norm = common.value_range(cells.loc[~cells["diverged"].astype(bool), "log_grad"], (-1, 1))
    optimizers = common.ordered(cells["optimizer"].unique())
    rows = -(-len(optimizers) // PANELS_PER_ROW)
    fig = Figure(figsize=(14, 5.6 * rows), layout="constrained")
    axes = fig.subplots(rows, PANELS_PER_ROW, squeeze=False).ravel()
    for ax, optimizer in zip(axes, optimizers, strict=False):
        rhos, lrs, values, marks, texts = cell_grid(cells[cells["optimizer"].eq(optimizer)])
        image = common.heatmap(ax, values, marks, texts, norm, common.GRADIENT_CMAP)
        common.category_ticks(ax, "x", lrs)
        common.category_ticks(ax, "y", rhos)
        if "smoothness" in problem:
            stability_bound(ax, lrs, problem["smoothness"])
        ax.set_xlabel("learning rate η")
        ax.set_ylabel(common.rho_label(optimizer))
        ax.set_title(common.label(optimizer), fontweight="bold")
    for ax in axes[len(optimizers) :]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes, label="log10 ‖∇f(x_T)‖ / ‖∇f(x_0)‖", shrink=0.8, aspect=40)
    handles = common.heatmap_legend(partial=False, blank=False)
    handles += axes[0].get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    fig.suptitle(title(problem))
    return common.save(fig, out, "agnostic")


def title(problem: dict[str, Any]) -> str:
    """What the problem was, from meta.json: smoothness, steps, dimension."""
    facts = [
        f"L = {problem['smoothness']:g}" if "smoothness" in problem else None,
        f"{problem['steps']} steps" if "steps" in problem else None,
        f"d = {problem['dim']}" if "dim" in problem else None,
    ]
    return (
        "Relative gradient norm after training on a quadratic, exact gradients ("
        + ", ".join(f for f in facts if f)
        + ")"
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = common.parse(__doc__.splitlines()[0], argv, source="agnostic")
    common.report(make(args.agnostic, args.out))


if __name__ == "__main__":
    main()
