"""Table 1: each method's best setting and how its whole grid fares, as Markdown and LaTeX.

Per arm: the (lr, rho) chosen on mean validation accuracy, its test accuracy mean ± std
over the seeds that finished (n), the grid median and worst test accuracy and the fraction of
the grid near the best by the seed noise (``analysis.results.best_settings``; diverged runs at
chance), and the diverged, failed and missing run counts. Also writes the tidy tables behind
every figure: ``runs.csv`` (one row per run) and ``aggregate.csv`` (one row per cell).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import common
from analysis.results import Collection, aggregate, best_settings, write_csv
from lightsam import store as files

HEADER = ["optimizer", "lr", "rho", "test acc. (%) (n)", "median (%)", "worst (%)",
          "near best", "diverged", "failed", "missing"]  # fmt: skip
TEX_HEADER = {"lr": r"$\eta$", "rho": r"$\rho$"}
NOTE = (
    "Best setting chosen on mean validation accuracy; test accuracy mean ± std over the seeds that"
    " finished (n). Median and worst range over the grid; near best: the fraction of its cells"
    " whose validation accuracy is within 2√2σ (two standard errors of a two-run difference) of"
    " the best cell's, σ the seed noise of one run (in a budget study, over the confirmation"
    " seeds that trained; else pooled over the grid's cells with two seeds or more; – where there"
    " is none); a diverged run counts as chance. Diverged, failed, missing: runs."
)


def percent(value: float) -> str:
    return "–" if np.isnan(value) else f"{100 * value:.2f}"


def rows(best: pd.DataFrame) -> list[list[str]]:
    """The table's cells as text, in the study's order of arms."""
    table = []
    for row in best.set_index("arm").loc[common.ordered(best["arm"])].itertuples():
        if not row.grid_cells:
            accuracy = median = worst = near = "–"
        else:
            std = "–" if np.isnan(row.test_acc_std) else percent(row.test_acc_std)
            accuracy = f"{percent(row.test_acc_mean)} ± {std} ({row.n_seeds})"
            median, worst = percent(row.median_test), percent(row.worst_test)
            near = "–" if np.isnan(row.frac_near_best) else f"{100 * row.frac_near_best:.0f}%"
        table.append(
            [
                common.label(row.Index),
                common.decade(row.lr),
                common.decade(row.rho),
                accuracy,
                median,
                worst,
                near,
                str(row.n_diverged),
                str(row.n_failed),
                str(row.n_missing),
            ]
        )
    return table


def markdown(best: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows(best)]
    return "\n".join([*lines, "", NOTE]) + "\n"


def tex(text: str) -> str:
    """A cell in LaTeX: decades as powers of ten, math signs, escaped percent."""
    text = re.sub(r"^1e(-?\d+)$", r"$10^{\1}$", text)
    for old, new in {"%": r"\%", "±": r"$\pm$", "–": "--"}.items():
        text = text.replace(old, new)
    return text


def latex(best: pd.DataFrame) -> str:
    lines = [
        r"% " + NOTE,
        r"\begin{tabular}{l" + "r" * (len(HEADER) - 1) + "}",
        r"\toprule",
        " & ".join(TEX_HEADER.get(h, tex(h)) for h in HEADER) + r" \\",
        r"\midrule",
        *(" & ".join(tex(c) for c in cells) + r" \\" for cells in rows(best)),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def make(collection: Collection, out: Path, noise: Mapping[str, float] | None = None) -> list[Path]:
    """The table with near best by ``noise`` (see ``analysis.results.best_settings``)."""
    agg = aggregate(collection.runs, collection.missing)
    best = best_settings(agg, noise)
    files.write_text(out / "best.md", markdown(best))
    files.write_text(out / "best.tex", latex(best))
    return [
        out / "best.md",
        out / "best.tex",
        write_csv(collection.runs, out, "runs"),
        write_csv(agg, out, "aggregate"),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    common.store_main(make, __doc__, argv)


if __name__ == "__main__":
    main()
