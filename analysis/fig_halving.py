"""Successive halving: every cell's validation accuracy per epoch, up to the rung it reached.

Read from the grid's store and its rung stores (``<store>_rung1``, ...; ``lightsam.halving``):
each run of the grid is followed through the rungs it was continued to, by the promotion record
of each rung, and drawn up to the last epoch it trained. A cell pruned at a rung ends there,
marked; the vertical lines are the rungs. ``halving.csv`` lists every run of the grid with the
epochs it reached, its last validation accuracy and how it ended.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis import common
from analysis.results import write_csv
from lightsam import store as files
from lightsam.config import from_dict
from lightsam.halving import rung_store
from lightsam.plan import arm_key, arm_labels


def promotions(grid: Path) -> list[dict[str, Any]]:
    """The promotion record of each rung after the first, in order (none: not a halving)."""
    records, rung = [], 1
    while (record := files.read_json(rung_store(grid, rung) / files.PROMOTION)) is not None:
        records.append(record)
        rung += 1
    return records


def follow(grid: Path, records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run of the grid: where it ended (the store and run id of its last rung),
    its cell and how it ended there."""
    plan = files.read_plan(grid)
    labels = arm_labels(plan.runs.values())
    rows = []
    for run_id, stored in plan.runs.items():
        config = from_dict(dict(stored))
        where, current, ending = grid, run_id, "complete"
        for rung, record in enumerate(records, start=1):
            decisions = {r: cell["decision"] for cell in record["cells"] for r in cell["runs"]}
            decision = decisions.get(current)
            if decision != "kept":
                ending = f"pruned at {record['selected_at_epochs']}"
                break
            current = config.replace(epochs=record["continued_to_epochs"]).run_id()
            where = rung_store(grid, rung)
        result = files.read_result(where / current) or {}
        if result.get("status") in ("diverged", "failed"):
            ending = result["status"]
        rows.append(
            {
                "arm": labels[arm_key(stored)],
                "lr": config.optimizer.lr,
                "rho": config.optimizer.rho,
                "seed": config.seed,
                "grid_run_id": run_id,
                "run_id": current,
                "store": str(where),
                "epochs_reached": result.get("epochs_completed"),
                "val_acc": result.get("val_acc"),
                "ending": ending,
            }
        )
    return pd.DataFrame(rows)


@common.styled
def make(grid: Path, out: Path) -> list[Path]:
    """The figure and ``halving.csv`` of the halving whose grid is stored in ``grid``; none if
    the grid has no later rung."""
    records = promotions(grid)
    if not records:
        return []
    runs = follow(grid, records)
    csv = write_csv(runs.drop(columns=["store"]), out, "halving")
    rungs = [records[0]["selected_at_epochs"], *(r["continued_to_epochs"] for r in records)]
    arms = common.ordered(dict.fromkeys(runs["arm"]))
    columns = min(3, len(arms))
    rows = math.ceil(len(arms) / columns)
    fig = Figure(figsize=(5 * columns + 1, 3.6 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, sharey=True, squeeze=False)).ravel()
    norm = LogNorm(runs["lr"].min(), max(runs["lr"].max(), runs["lr"].min() * 10))
    cmap = mpl.colormaps["viridis"]
    for ax, arm in zip(axes, arms, strict=False):
        for row in runs[runs["arm"].eq(arm)].itertuples():
            metrics = pd.DataFrame(files.read_metrics(Path(row.store) / row.run_id))
            if metrics.empty or "val_acc" not in metrics:
                continue
            curve = metrics.dropna(subset=["val_acc"])
            kept = row.ending == "complete"
            style = {"color": cmap(norm(row.lr)), "linewidth": 1.6} if kept else {
                "color": "0.6", "linewidth": 0.8}  # fmt: skip
            ax.plot(curve["epoch"], 100 * curve["val_acc"], **style)
            if row.ending.startswith("pruned"):
                ax.plot(curve["epoch"].iloc[-1], 100 * curve["val_acc"].iloc[-1], "x",
                        color="0.45", markersize=5)  # fmt: skip
        for epochs in rungs[:-1]:
            ax.axvline(epochs, color="0.3", linestyle=":", linewidth=1)
        ax.set_title(common.label(arm))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(arms) :]:
        ax.set_visible(False)
    for ax in axes[::columns]:
        ax.set_ylabel("validation accuracy (%)")
    mappable = ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(mappable, ax=list(axes[: len(arms)]), label="learning rate (continued cells)")
    kept = (runs["ending"] == "complete").sum()
    fig.suptitle(
        f"Successive halving at {', '.join(map(str, rungs))} epochs: {kept} of {len(runs)} runs "
        "reach the full budget; grey × = pruned at a rung (dotted)"
    )
    return [*common.save(fig, out, "halving"), csv]


def summary(grid: Path) -> list[str]:
    """One sentence per rung: how many of each arm's cells went on."""
    said = []
    for record in promotions(grid):
        cells = pd.DataFrame(record["cells"])
        kept = cells[cells["decision"].eq("kept")].groupby("arm").size()
        total = cells.groupby("arm").size()
        parts = ", ".join(
            f"{common.label(arm)} {kept.get(arm, 0)} of {total[arm]}"
            for arm in dict.fromkeys(cells["arm"])  # the sweep's order
        )
        said.append(
            f"Rung {record['rung']}: selected on validation accuracy after "
            f"{record['selected_at_epochs']} epochs, continued to "
            f"{record['continued_to_epochs']}: {parts} cells (keep {record['keep']:g} per arm)."
        )
    return said


def main(argv: Sequence[str] | None = None) -> None:
    parser = common.parse(__doc__, argv)
    common.report(make(parser.store, parser.out))
