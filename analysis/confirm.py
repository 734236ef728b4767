"""The confirm stage of a screening (``lightsam.paper``): each method at its selected cell on
fresh seeds, against its base optimizer at twice the epochs, and one change at a time.

In the stage's store, a method's *selected cell* is the cell of its ``rho > 0`` arm that ran on
the most seeds (the 3 x 3 block around it ran on fewer); its *base* is the arm of the same
optimizer at ``rho = 0`` (the base optimizer exactly) with twice the epochs: the same number of
gradient evaluations, the compute-matched comparison. Every contrast is paired by seed
(``analysis.study.paired_difference``: t and bootstrap intervals, a verdict only when both
exclude 0); a diverged seed counts as chance, as everywhere in the analysis.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import common
from analysis.results import ARM, COMPLETE, Collection, mean_std_ci, scored, write_csv
from analysis.study import ASCENT, DESCENT, MATCHED, ONE_CHANGE, paired_difference

CELL_COLUMNS = [ARM, "optimizer", "epochs", "lr", "rho", "seeds", "test_mean", "test_std",
                "test_ci"]  # fmt: skip
CONTRAST_COLUMNS = ["method", "base", "comparison", "pairs", "mean", "t_low", "t_high",
                    "boot_low", "boot_high", "verdict"]  # fmt: skip


def selected_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Per arm: the cell that ran on the most seeds (its selected cell; a base arm's only one;
    among cells on as many seeds, the middle one by lr, then rho: a 3 x 3 block's centre), with
    its test accuracy over those seeds."""
    complete = scored(runs)[runs["status"].isin(COMPLETE)].dropna(subset=["test_score"])
    rows = []
    for arm, own in complete.groupby(ARM):
        size = own.groupby(["lr", "rho"], dropna=False).size()
        tied = sorted(size[size.eq(size.max())].index)
        lr, rho = tied[len(tied) // 2]  # among equals (a block alone), its centre
        cell = own[own["lr"].eq(lr) & (own["rho"].eq(rho) if pd.notna(rho) else own["rho"].isna())]
        rows.append([arm, cell["optimizer"].iloc[0], cell["epochs"].iloc[0], lr, rho, len(cell),
                     *mean_std_ci(cell["test_score"])])  # fmt: skip
    table = pd.DataFrame(rows, columns=CELL_COLUMNS)
    return table.set_index(ARM).loc[common.ordered(table[ARM])].reset_index()


def _scores(runs: pd.DataFrame, cell: pd.Series) -> pd.Series:
    """The test scores of ``cell``'s runs, by seed."""
    own = runs[runs[ARM].eq(cell[ARM]) & runs["lr"].eq(cell["lr"])]
    own = own[own["rho"].eq(cell["rho"])] if pd.notna(cell["rho"]) else own[own["rho"].isna()]
    return own.set_index("seed")["test_score"]


def contrasts(runs: pd.DataFrame) -> pd.DataFrame:
    """Each method's selected cell minus its base (``MATCHED``), and each one-change pair of
    ``analysis.study.ONE_CHANGE`` at the same epochs (``ASCENT``, ``DESCENT``), paired by seed."""
    complete = scored(runs)[runs["status"].isin(COMPLETE)].dropna(subset=["test_score"])
    cells = selected_cells(runs).set_index(ARM, drop=False)
    methods = cells[cells["rho"].gt(0)]
    bases = cells[cells["rho"].eq(0)]
    rows = []

    def add(method: pd.Series, other: pd.Series, comparison: str) -> None:
        d = (_scores(complete, method) - _scores(complete, other)).dropna()
        rows.append({"method": method[ARM], "base": other[ARM], "comparison": comparison,
                     **paired_difference(d.to_numpy())})  # fmt: skip

    for method in methods.itertuples(index=False):
        method = pd.Series(method._asdict())
        base = bases[bases["optimizer"].eq(method["optimizer"])
                     & bases["epochs"].eq(2 * method["epochs"])]  # fmt: skip
        if len(base) == 1:
            add(method, base.iloc[0], MATCHED)
    for optimizer, control, comparison in ONE_CHANGE:
        ours = methods[methods["optimizer"].eq(optimizer)]
        theirs = methods[methods["optimizer"].eq(control)]
        for _, a in ours.iterrows():
            for _, b in theirs[theirs["epochs"].eq(a["epochs"])].iterrows():
                add(a, b, comparison)
    return pd.DataFrame(rows, columns=CONTRAST_COLUMNS)


def make(collection: Collection, out: Path) -> list[Path]:
    """``confirm_cells.csv`` and ``confirm_contrasts.csv``."""
    return [
        write_csv(selected_cells(collection.runs), out, "confirm_cells"),
        write_csv(contrasts(collection.runs), out, "confirm_contrasts"),
    ]


def _cell(row: pd.Series) -> str:
    rho = f", rho {row['rho']:g}" if pd.notna(row["rho"]) else ""
    return f"lr {row['lr']:g}{rho}, {int(row['epochs'])} epochs"


def summary(out: Path) -> list[str]:
    """Sentences from ``make``'s tables in ``out``; none if it wrote none."""
    if not (out / "confirm_cells.csv").exists():
        return []
    cells = pd.read_csv(out / "confirm_cells.csv").set_index(ARM, drop=False)
    said = [
        f"{common.label(row[ARM])} at {_cell(row)}: test accuracy {100 * row['test_mean']:.2f}% "
        f"(95% CI ±{100 * row['test_ci']:.2f} points, {int(row['seeds'])} seeds)."
        for _, row in cells.iterrows()
    ]
    what = {MATCHED: "its base (rho = 0) at twice the epochs", ASCENT: "only the ascent differs",
            DESCENT: "only the descent differs"}  # fmt: skip
    for row in pd.read_csv(out / "confirm_contrasts.csv").itertuples():
        said.append(
            f"{common.label(row.method)} minus {common.label(row.base)} ({what[row.comparison]}"
            f"): {100 * row.mean:+.2f} points, 95% CI [{100 * row.t_low:+.2f}, "
            f"{100 * row.t_high:+.2f}] (paired t) and [{100 * row.boot_low:+.2f}, "
            f"{100 * row.boot_high:+.2f}] (bootstrap), {row.pairs} seed pairs: {row.verdict}."
        )
    return said
