from __future__ import annotations

import csv
import json

from lightsam.agnostic import Problem, run_agnostic

SMALL = Problem(steps=300, lr_decades=(-1, 2), rho_decades=(-2, 0))


def cells(rows):
    return {(r["optimizer"], float(r["lr"]), float(r["rho"])): r for r in rows}


def test_sgd_sam_diverges_above_two_over_l_and_lightsam_does_not(tmp_path):
    rows = cells(run_agnostic(tmp_path, SMALL))
    assert len(rows) == 4 * 4 * 3
    for rho in (0.01, 0.1, 1.0):
        assert rows[("sgd_sam", 10.0, rho)]["diverged"] == 1
        assert rows[("sgd_sam", 100.0, rho)]["diverged"] == 1
        assert rows[("sgd_sam", 0.1, rho)]["diverged"] == 0
        for name in ("lightsam_i", "lightsam_ii"):
            for lr in (0.1, 1.0, 10.0, 100.0):
                row = rows[(name, lr, rho)]
                assert row["diverged"] == 0 and row["grad_norm"] < 1.0, row
    assert rows[("sgd_sam", 10.0, 0.01)]["steps"] < SMALL.steps  # stopped when it blew up


def test_results_are_stored_and_reused(tmp_path):
    rows = run_agnostic(tmp_path, SMALL)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["problem"]["steps"] == 300 and meta["environment"]["torch"]
    with (tmp_path / "cells.csv").open() as handle:
        stored = list(csv.DictReader(handle))
    assert [float(r["grad_norm"]) for r in stored] == [r["grad_norm"] for r in rows]
    mtime = (tmp_path / "cells.csv").stat().st_mtime_ns
    again = run_agnostic(tmp_path, SMALL)
    assert (tmp_path / "cells.csv").stat().st_mtime_ns == mtime
    assert again == rows
    run_agnostic(tmp_path, Problem(steps=10, lr_decades=(0, 0), rho_decades=(0, 0)))
    assert len(list(csv.DictReader((tmp_path / "cells.csv").open()))) == 4
