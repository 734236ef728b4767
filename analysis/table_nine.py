"""The nine-settings table: each method at a 3 x 3 block of (lr, rho) around its default, every
setting shown, then the paper's summary over the nine, mean +/- std.

LightSAM's paper reports one "mean +/- std over nine settings" number per method; that number
hides which settings fail. Here each setting is a row (test accuracy, mean +/- std over its
seeds, a diverged seed counted as chance and said so), and the summary line is computed from the
rows above it: the mean and standard deviation over the nine settings' means, and the worst
setting. Read from any store whose arms hold such blocks (the confirmation preset's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis import common
from analysis.results import Collection, aggregate, scored, write_csv
from lightsam import store as files


def settings(collection: Collection) -> pd.DataFrame:
    """One row per (arm, lr, rho): seeds, diverged seeds, test score mean and std (over the
    complete seeds, a diverged one at chance)."""
    agg = aggregate(collection.runs, collection.missing)
    runs = scored(collection.runs)
    complete = runs[runs["status"].isin(files.COMPLETE)]
    spread = complete.groupby(["arm", "lr", "rho"], dropna=False)["test_score"].std(ddof=1)
    table = agg[["arm", "lr", "rho", "n_ok", "n_diverged", "test_score"]].merge(
        spread.rename("test_std").reset_index(), on=["arm", "lr", "rho"], how="left"
    )
    return table.rename(columns={"test_score": "test_mean"})


def summaries(table: pd.DataFrame) -> pd.DataFrame:
    """Per arm: how many settings, the mean and std over their means, the worst setting."""
    rows = []
    for arm, block in table.groupby("arm", sort=False):
        means = block["test_mean"].to_numpy(dtype=float)
        worst = block.loc[block["test_mean"].idxmin()]
        rows.append(
            {
                "arm": arm,
                "settings": len(block),
                "mean": float(np.mean(means)),
                "std": float(np.std(means, ddof=1)) if len(means) > 1 else float("nan"),
                "worst": float(worst["test_mean"]),
                "worst_lr": worst["lr"],
                "worst_rho": worst["rho"],
            }
        )
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, summary: pd.DataFrame) -> str:
    lines = ["| method | lr | rho | seeds | test accuracy (%) |", "|---|---:|---:|---:|---|"]
    for arm in common.ordered(summary["arm"]):
        block = table[table["arm"].eq(arm)].sort_values(["lr", "rho"])
        for row in block.itertuples():
            diverged = f" ({row.n_diverged} diverged, at chance)" if row.n_diverged else ""
            std = "" if np.isnan(row.test_std) else f" ± {100 * row.test_std:.2f}"
            rho = "" if np.isnan(row.rho) else f"{row.rho:g}"
            lines.append(
                f"| {common.label(arm)} | {row.lr:g} | {rho} | {row.n_ok + row.n_diverged} | "
                f"{100 * row.test_mean:.2f}{std}{diverged} |"
            )
        s = summary.set_index("arm").loc[arm]
        lines.append(
            f"| **{common.label(arm)}: {int(s.settings)} settings** | | | | **{100 * s['mean']:.2f}"
            f" ± {100 * s['std']:.2f}** (worst {100 * s.worst:.2f}, at lr {s.worst_lr:g}, rho "
            f"{s.worst_rho:g}) |"
        )
    return "\n".join(lines) + "\n"


def make(collection: Collection, out: Path) -> list[Path]:
    """The table of every arm with a block of settings (a base run at one setting is not)."""
    table = settings(collection)
    table = table[table.groupby("arm")["lr"].transform("size") > 1]
    summary = summaries(table)
    files.write_text(out / "nine_settings.md", markdown(table, summary))
    return [
        write_csv(table, out, "nine_settings"),
        write_csv(summary, out, "nine_settings_summary"),
        out / "nine_settings.md",
    ]
