"""The screening's windows on a table with known answers (the whole pipeline, from a real
halving, is tested in test_halving.py)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.screening import windows


def row(arm, lr, rho, epoch, loss):
    return {"arm": arm, "lr": lr, "rho": rho, "seed": 0, "epoch": epoch, "train_loss": loss}


def test_a_window_after_the_first_rung_counts_only_the_continued_cells():
    table = pd.DataFrame(
        [row("a", lr, 0.1, 1, 1.0) for lr in (0.01, 0.1, 1.0)]  # all equal: all in
        + [row("a", lr, 0.0, 1, loss) for lr, loss in ((0.01, 1.5), (0.1, 3.0), (1.0, math.inf))]
        + [row("a", 0.1, 0.1, 2, 0.5)]  # the one continued cell
        + [row("b", lr, None, 1, loss) for lr, loss in ((0.01, 2.0), (0.1, 1.0), (1.0, 4.0))]
    )
    w = windows(table).set_index(["arm", "rho", "epoch"], drop=False)
    full = w.loc[("a", 0.1, 1)]
    assert (full["width"], full["points"], full["cells"]) == (pytest.approx(2.0), 3, 3)
    # At rho = 0 against the arm's best (1.0): lr 0.01 is within 2x, 0.1 is not, 1 diverged;
    # log(loss / 2) is linear in log10 lr from log 0.75 to log 1.5, crossing 0 log(4/3) / log 2
    # of the decade above 0.01.
    base = w.loc[("a", 0.0, 1)]
    assert base["points"] == 1 and base["width"] == pytest.approx(math.log(4 / 3) / math.log(2))
    later = w.loc[("a", 0.1, 2)]
    assert (later["width"], later["points"], later["cells"], later["grid_lrs"]) == (0, 1, 1, 3)
    # A base optimizer's arm (no rho) is one group, reported with rho NaN.
    b = w[w["arm"].eq("b")]
    assert len(b) == 1 and b["rho"].isna().all() and b["points"].item() == 2
