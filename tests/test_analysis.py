"""The analysis: reading a partial store, the per-cell statistics, the best settings, the tuning
cost curve, and every figure and table script, on a synthetic store with hand-computed numbers.

The store: SGD-SAM on a 2 x 2 (lr, rho) grid and SGD on 2 learning rates, 3 seeds, 10 classes.

    SGD-SAM lr=0.01 rho=0.01  ok ok ok                    test .90 .92 .94  val .91 .93 .95
    SGD-SAM lr=0.01 rho=0.1   ok ok incomplete            test .91 .93      val .82 .86
    SGD-SAM lr=0.1  rho=0.01  ok ok diverged              test .95 .97      val .96 .98
    SGD-SAM lr=0.1  rho=0.1   diverged x 3
    SGD     lr=0.01           ok ok failed                test .85 .87      val .86 .88
    SGD     lr=0.1            ok, not started, corrupt    test .845         val .83
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis import fig_theorem, report, results
from lightsam.plan import Plan
from lightsam.theorem import Problem, run_theorem

ROOT = Path(__file__).parents[1]
CHANCE = 0.1
T_975 = {1: 12.706204736174707, 2: 4.302652729749464}  # Student t quantiles, from tables

# (optimizer, lr, rho, seed): (status, val_acc, test_acc); "incomplete", "corrupt" and
# "absent" runs are in the plan but have no readable result.
RUNS = {
    ("sgd_sam", 0.01, 0.01, 0): ("ok", 0.91, 0.90),
    ("sgd_sam", 0.01, 0.01, 1): ("ok", 0.93, 0.92),
    ("sgd_sam", 0.01, 0.01, 2): ("ok", 0.95, 0.94),
    ("sgd_sam", 0.01, 0.1, 0): ("ok", 0.82, 0.91),
    ("sgd_sam", 0.01, 0.1, 1): ("ok", 0.86, 0.93),
    ("sgd_sam", 0.01, 0.1, 2): ("incomplete", None, None),
    ("sgd_sam", 0.1, 0.01, 0): ("ok", 0.96, 0.95),
    ("sgd_sam", 0.1, 0.01, 1): ("ok", 0.98, 0.97),
    ("sgd_sam", 0.1, 0.01, 2): ("diverged", None, None),
    ("sgd_sam", 0.1, 0.1, 0): ("diverged", None, None),
    ("sgd_sam", 0.1, 0.1, 1): ("diverged", None, None),
    ("sgd_sam", 0.1, 0.1, 2): ("diverged", None, None),
    ("sgd", 0.01, None, 0): ("ok", 0.86, 0.85),
    ("sgd", 0.01, None, 1): ("ok", 0.88, 0.87),
    ("sgd", 0.01, None, 2): ("failed", None, None),
    ("sgd", 0.1, None, 0): ("ok", 0.83, 0.845),
    ("sgd", 0.1, None, 1): ("absent", None, None),
    ("sgd", 0.1, None, 2): ("corrupt", None, None),
}


def run_id(optimizer: str, lr: float, rho: float | None, seed: int) -> str:
    return f"{optimizer}-lr{lr}-rho{rho}-s{seed}"


def write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data))


def config_of(key: tuple, epochs: int = 3) -> dict[str, Any]:
    """A stored config: the analysis reads it as JSON, whatever the schema's fields."""
    optimizer, lr, rho, seed = key
    return {
        "schema": 2,
        "dataset": "mnist5k",
        "model": "lenet5",
        "epochs": epochs,
        "seed": seed,
        "optimizer": {"name": optimizer, "lr": lr, "rho": rho, "hparams": {}},
    }


def write_plan(store: Path, configs: dict[str, dict]) -> None:
    plan = Plan(sweep="synthetic", source="synthetic.yaml", source_sha256="-", runs=configs)
    write(store / "plan.json", plan.to_json())


def write_run(
    store: Path,
    key: tuple,
    status: str,
    val: float | None,
    test: float | None,
    name: str | None = None,
    epochs: int = 3,
) -> None:
    optimizer, lr, rho, seed = key
    run_dir = store / (name or run_id(*key))
    run_dir.mkdir()
    identity = {
        "run_id": run_dir.name,
        "optimizer": optimizer,
        "lr": lr,
        "rho": rho,
        "seed": seed,
        "dataset": "mnist5k",
        "model": "lenet5",
        "epochs": epochs,
    }
    write(run_dir / "config.json", config_of(key, epochs))
    segment = {"git_commit": "abc", "git_dirty": False, "start_epoch": 0}
    write(run_dir / "environment.json", {"segments": [segment]})
    if status == "incomplete":
        return
    if status == "corrupt":
        (run_dir / "result.json").write_text('{"status": "ok", "val_')
        return
    if status == "failed":
        write(run_dir / "result.json", {**identity, "status": "failed", "error": "boom"})
        return
    epochs = 3 if status == "ok" else 1
    metrics = [
        {
            "epoch": e,
            "train_loss": 2.0 / e,
            "train_acc": 0.3 * e,
            "lr": lr,
            "val_loss": 1.0 / e,
            "val_acc": (val or 0.5) - 0.1 * (3 - e),
            "wall_s": float(e),
        }
        for e in range(1, epochs + 1)
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    write(
        run_dir / "result.json",
        {
            **identity,
            "status": status,
            "num_classes": 10,
            "epochs_completed": epochs,
            "diverged_epoch": None if status == "ok" else 2,
            "val_acc": val,
            "best_val_acc": val,
            "test_acc": test,
            "test_loss": None if test is None else 0.3,
            "final_train_loss": 0.5,
            "wall_s": 1.0,
        },
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("store")
    write_plan(store, {run_id(*key): config_of(key) for key in RUNS})
    for key, (status, val, test) in RUNS.items():
        if status != "absent":
            write_run(store, key, status, val, test)
    (store / ".submitit").mkdir()
    (store / ".submitit" / "config.json").write_text("{}")
    return store


@pytest.fixture(scope="module")
def collection(store) -> results.Collection:
    return results.collect(store)


@pytest.fixture(scope="module")
def agg(collection) -> pd.DataFrame:
    return results.aggregate(collection.runs, collection.missing)


def cell(agg: pd.DataFrame, optimizer: str, lr: float, rho: float | None) -> pd.Series:
    same_rho = agg["rho"].isna() if rho is None else agg["rho"].eq(rho)
    (index,) = agg.index[agg["optimizer"].eq(optimizer) & agg["lr"].eq(lr) & same_rho]
    return agg.loc[index]


def test_collect_reads_results_and_reports_what_is_missing(collection):
    assert len(collection.runs) == 15  # 18 planned: one absent, one incomplete, one corrupt
    assert collection.expected == 18
    assert dict(collection.runs["status"].value_counts()) == {"ok": 10, "diverged": 4, "failed": 1}
    problems = dict(collection.problems)
    assert set(problems) == {run_id("sgd_sam", 0.01, 0.1, 2), run_id("sgd", 0.1, None, 2)}
    assert problems[run_id("sgd_sam", 0.01, 0.1, 2)].startswith("incomplete")
    assert problems[run_id("sgd", 0.1, None, 2)].startswith("corrupt")
    missing = dict(zip(collection.missing["run_id"], collection.missing["reason"], strict=True))
    assert missing == {
        run_id("sgd_sam", 0.01, 0.1, 2): "incomplete",
        run_id("sgd", 0.1, None, 1): "not started",
        run_id("sgd", 0.1, None, 2): "corrupt",
    }
    assert ".submitit" not in set(collection.runs["run_id"])
    assert "3 of 18 planned runs missing" in collection.summary()


def test_a_store_without_a_plan_reports_only_what_is_present(tmp_path):
    write_run(tmp_path, ("sgd", 0.1, None, 0), "ok", 0.9, 0.8)
    (tmp_path / "half").mkdir()
    write(tmp_path / "half" / "config.json", config_of(("sgd", 0.2, None, 0)))
    found = results.collect(tmp_path)
    assert found.expected is None and found.missing.empty
    assert list(found.runs["test_acc"]) == [0.8]
    assert found.problems == [("half", "incomplete: no result.json (running or killed)")]


def test_an_unreadable_plan_is_reported_not_fatal(tmp_path):
    write_run(tmp_path, ("sgd", 0.1, None, 0), "ok", 0.9, 0.8)
    (tmp_path / "plan.json").write_text('{"sweep": "x", "ru')
    found = results.collect(tmp_path)
    assert found.expected is None and len(found.runs) == 1
    assert [run_id for run_id, _ in found.problems] == ["plan.json"]


def test_t_critical_matches_the_tables():
    for dof, value in T_975.items():
        assert results.t_critical(dof) == pytest.approx(value, rel=1e-9)
    assert results.t_critical(1000) == pytest.approx(1.962339, rel=1e-6)


def test_aggregate_counts_means_and_confidence_intervals(agg):
    full = cell(agg, "sgd_sam", 0.01, 0.01)
    assert (full["n"], full["n_ok"], full["status"]) == (3, 3, "ok")
    assert full["test_acc_mean"] == pytest.approx(0.92)
    assert full["test_acc_std"] == pytest.approx(0.02)
    assert full["test_acc_ci95"] == pytest.approx(T_975[2] * 0.02 / math.sqrt(3))
    assert full["val_acc_mean"] == pytest.approx(0.93)

    two = cell(agg, "sgd_sam", 0.01, 0.1)  # the third seed is incomplete
    assert (two["n"], two["n_ok"], two["n_missing"]) == (2, 2, 1)
    assert two["test_acc_std"] == pytest.approx(0.02 / math.sqrt(2))
    assert two["test_acc_ci95"] == pytest.approx(T_975[1] * 0.02 / 2)

    partial = cell(agg, "sgd_sam", 0.1, 0.01)
    assert (partial["status"], partial["n_ok"], partial["n_diverged"]) == ("partial", 2, 1)
    assert partial["val_acc_mean"] == pytest.approx(0.97)  # over the ok seeds
    assert partial["val_score"] == pytest.approx((0.96 + 0.98 + CHANCE) / 3)  # diverged = chance

    diverged = cell(agg, "sgd_sam", 0.1, 0.1)
    assert (diverged["status"], diverged["n_diverged"]) == ("diverged", 3)
    assert np.isnan(diverged["test_acc_mean"]) and diverged["test_score"] == pytest.approx(CHANCE)

    failed_one = cell(agg, "sgd", 0.01, None)
    assert (failed_one["n"], failed_one["n_ok"], failed_one["n_failed"]) == (3, 2, 1)
    assert failed_one["status"] == "ok" and failed_one["test_score"] == pytest.approx(0.86)

    single = cell(agg, "sgd", 0.1, None)
    assert (single["n"], single["n_missing"]) == (1, 2)
    assert single["test_acc_mean"] == pytest.approx(0.845)
    assert np.isnan(single["test_acc_std"]) and np.isnan(single["test_acc_ci95"])


def test_best_settings_select_on_validation_and_count_divergence_as_chance(agg):
    best = results.best_settings(agg).set_index("optimizer")
    sam = best.loc["sgd_sam"]
    # lr=0.1, rho=0.01 has the best ok-seed validation mean (0.97) but diverged once: its score
    # (0.68) loses to lr=0.01, rho=0.01 (0.93).
    assert (sam["lr"], sam["rho"]) == (0.01, 0.01)
    assert (sam["test_acc_mean"], sam["test_acc_std"]) == pytest.approx((0.92, 0.02))
    assert sam["n_seeds"] == 3 and sam["grid_cells"] == 4
    scores = [0.92, 0.92, (0.95 + 0.97 + CHANCE) / 3, CHANCE]
    assert sam["median_test"] == pytest.approx(np.median(scores))
    assert sam["worst_test"] == pytest.approx(CHANCE)
    # Near best by the seed noise pooled over the cells with two ok seeds or more (std 0.02 on
    # 2 dof, 0.02√2 and 0.01√2 on 1 each): only the best cell's validation score (0.93) is
    # within 2√2σ = 0.06 of it; the next is 0.84.
    sigma = np.sqrt((2 * 0.02**2 + 0.0008 + 0.0002) / 4)
    assert results.pooled_seed_noise(agg)["sgd_sam"] == pytest.approx(sigma)
    assert (sam["seed_noise"], sam["near_threshold"]) == pytest.approx((sigma, 0.06))
    assert sam["frac_near_best"] == pytest.approx(0.25)
    assert (sam["n_diverged"], sam["n_failed"], sam["n_missing"]) == (4, 0, 1)

    sgd = best.loc["sgd"]
    assert sgd["lr"] == 0.01 and np.isnan(sgd["rho"])
    assert (sgd["test_acc_mean"], sgd["n_seeds"]) == (pytest.approx(0.86), 2)
    assert (sgd["median_test"], sgd["worst_test"]) == pytest.approx((0.8525, 0.845))
    assert (sgd["n_diverged"], sgd["n_failed"], sgd["n_missing"]) == (0, 1, 2)
    # A given noise: the other cell's validation 0.83 is 4 points below the best's 0.87, outside
    # 2√2 x 1 point, inside 2√2 x 2; an arm it does not name has none.
    for noise, share in ((0.01, 0.5), (0.02, 1.0)):
        given = results.best_settings(agg, {"sgd": noise}).set_index("optimizer")
        assert given.loc["sgd", "frac_near_best"] == pytest.approx(share)
        assert np.isnan(given.loc["sgd_sam", "frac_near_best"])


def test_a_plain_sweeps_findings_judge_near_best_by_its_pooled_seed_noise(collection, tmp_path):
    near, share, rho, lr, breaks = report.findings(collection)
    # SGD-SAM's σ is the pooled 2.12 points above: a cell is near best within 6 points of its best
    # validation score 0.93. At the best lr its other radius scores 0.84 (not near, same test
    # score); at the best radius lr 0.1 scores (0.96 + 0.98 + chance) / 3 = 0.68 on validation.
    assert "within 2.83σ" in near and "pooled over the arm's cells with two seeds" in near
    assert "SGD-SAM 25% of 4 cells (σ = 2.12 points)" in share
    assert (
        rho == "At each method's best learning rate, the radii near its best: SGD-SAM 1/2 "
        "(largest test drop 0.0 points)."
    )
    assert (
        lr == "At each method's best radius, the learning rates near its best: SGD-SAM 1/2 "
        f"(largest test drop {100 * (0.92 - (0.95 + 0.97 + CHANCE) / 3):.1f} points)."
    )
    assert breaks.startswith("Where each breaks: SGD-SAM first diverged at lr = 1e-1;")

    # One seed a cell: no noise to calibrate by, so no share and no count is given.
    single = {key: run for key, run in RUNS.items() if key[3] == 0}
    write_plan(tmp_path, {run_id(*key): config_of(key) for key in single})
    for key, (status, val, test) in single.items():
        write_run(tmp_path, key, status, val, test)
    found = report.findings(results.collect(tmp_path))
    assert (
        found[1] == "Share of each grid near its best: SGD-SAM: no seed noise (one seed a "
        "cell); SGD: no seed noise (one seed a cell)."
    )
    assert found[2].startswith("Where each breaks:") and len(found) == 3


def test_expected_best_of_k_is_exact_at_both_ends(collection):
    curve = results.expected_best_of_k(collection.runs, n_boot=200, seed=0)
    sam = curve[curve["arm"] == "sgd_sam"].set_index("k")
    scores = [0.92, 0.92, (0.95 + 0.97 + CHANCE) / 3, CHANCE]  # in validation order
    assert list(sam.index) == [1, 2, 3, 4]
    assert sam.loc[1, "expected"] == pytest.approx(np.mean(scores))  # one random cell
    # Two of four cells: the i-th best on validation is picked with probability (3, 2, 1, 0) / 6.
    assert sam.loc[2, "expected"] == pytest.approx((3 * 0.92 + 2 * 0.92 + scores[2]) / 6)
    assert sam.loc[4, "expected"] == pytest.approx(0.92)  # the whole grid: the chosen cell
    assert (sam["low"] <= sam["expected"] + 1e-12).all()
    assert (sam["expected"] <= sam["high"] + 1e-12).all()
    again = results.expected_best_of_k(collection.runs, n_boot=200, seed=0)
    pd.testing.assert_frame_equal(curve, again)  # a fixed seed, a fixed answer


def test_ties_on_validation_are_broken_at_random():
    # Two cells tie on validation: a random search picks either, so k = 2 expects their mean.
    val, test = np.array([[0.5, 0.5]]), np.array([[0.2, 0.4]])
    assert results.expected_best(val, test, [1, 2]) == pytest.approx(np.array([[0.3, 0.3]]))


# -- the scripts ----------------------------------------------------------------------------------


# A grid of the theorem's problem small enough for a test: seconds.
TINY = Problem(n=100, dim=5, steps=300, seeds=(0, 1), lr_decades=(-1, 1), rho_decades=(-2, -1))


OUTPUTS = [
    *(
        f"{name}.{ext}"
        for name in (
            "heatmaps",
            "sensitivity",
            "robustness",
            "training_curves",
            "theorem_steps",
            "theorem_rates",
        )
        for ext in ("png", "pdf")
    ),
    "best.md",
    "best.tex",
    "runs.csv",
    "aggregate.csv",
]


def test_every_script_writes_its_outputs_and_the_table_matches(store, collection, agg, tmp_path):
    run_theorem(tmp_path / "theorem", TINY)
    out = tmp_path / "out"
    for script in report.STORE_FIGURES:
        script.make(collection, out)
    fig_theorem.make(tmp_path / "theorem", out)
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name

    rows = {}
    for line in (out / "best.md").read_text().splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells
    best = results.best_settings(agg).set_index("arm")
    sam, sgd = rows["SGD-SAM"], rows["SGD"]
    b = best.loc["sgd_sam"]
    assert sam[1:3] == ["1e-2", "1e-2"]
    assert sam[3] == f"{100 * b['test_acc_mean']:.2f} ± {100 * b['test_acc_std']:.2f} (3)"
    assert sam[4:7] == [f"{100 * b['median_test']:.2f}", f"{100 * b['worst_test']:.2f}", "25%"]
    assert sam[7:] == ["4", "0", "1"]
    assert sgd[1:3] == ["1e-2", "–"]
    assert re.fullmatch(r"86\.00 ± 1\.41 \(2\)", sgd[3])
    assert sgd[6:] == [f"{100 * best.loc['sgd', 'frac_near_best']:.0f}%", "0", "1", "2"]
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 15 and set(runs["status"]) == {"ok", "diverged", "failed"}


def test_a_script_runs_on_its_own_from_any_directory(store, tmp_path):
    command = [sys.executable, "-m", "analysis.table_best", "--store", str(store), "--out", "t"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote t/best.md" in done.stdout and "3 of 18 planned runs missing" in done.stdout
    assert (tmp_path / "t" / "best.md").stat().st_size > 0


def test_the_theorem_findings_agree_with_the_stored_cells(tmp_path):
    meta = run_theorem(tmp_path, TINY)
    cells = pd.read_csv(tmp_path / "cells.csv")
    assert meta["cells"] == len(cells) == 14 * 3 * 2 * 2 - 4 * 3 * 1 * 2  # arms x lr x rho x seeds
    found = report.theorem_findings(tmp_path)
    findings = found.all()
    assert "T = 300 steps" in found.problem and "2 seeds" in found.problem
    assert f"with every seed; 0 of the {len(cells)} runs ever came to 1e-4" in found.problem
    # No run of this small problem comes that close: two that did are counted.
    cells.loc[[0, 5], "min_sq_grad"] = [1e-4, 3e-5]
    cells.to_csv(tmp_path / "cells.csv", index=False)
    again = report.theorem_findings(tmp_path).problem
    assert f"with every seed; 2 of the {len(cells)} runs ever came to 1e-4" in again
    for arm in ("sgd_sam", "lightsam_i", "adagrad_norm"):
        sentence = next(f for f in findings if f.startswith(f"{report.common.label(arm)}:"))
        for target in ("1e-2", "1e-3"):
            own = fig_theorem.per_cell(cells[cells["arm"].eq(arm)], f"steps_to_{target}")
            every = int(own["reached"].eq(own["seeds"]).sum())
            assert f"{target}: {every} of {len(own)} cells" in sentence
    contrast = next(f for f in found.contrasts if f.startswith("LightSAM-I against AdaGrad-Norm"))
    mine, base = (
        report.theorem_shares(cells, "lightsam_i"),
        report.theorem_shares(cells, "adagrad_norm"),
    )
    assert f"({mine['1e-2'][0]}/{mine['1e-2'][1]} against {base['1e-2'][0]}/3)" in contrast


def test_the_theorem_counts_cells_that_end_above_their_start_without_diverging(tmp_path):
    run_theorem(tmp_path, TINY)
    cells = pd.read_csv(tmp_path / "cells.csv")
    own = cells[cells["arm"].eq("adam")].sort_values(["lr", "seed"])
    lrs = sorted(own["lr"].unique())
    # Every seed of Adam's smallest lr ends above the start; at the next lr one seed does, and
    # at the largest one seed also diverges: only the first cell counts.
    cells.loc[own.index[own["lr"].eq(lrs[0])], ["diverged", "final_sq_grad"]] = [0, 5.0]
    at_next = own.index[own["lr"].eq(lrs[1])]
    cells.loc[at_next, "diverged"] = 0
    cells.loc[at_next[:1], "final_sq_grad"], cells.loc[at_next[1:], "final_sq_grad"] = 5.0, 0.5
    at_last = own.index[own["lr"].eq(lrs[-1])]
    cells.loc[at_last, "final_sq_grad"] = 5.0
    cells.loc[at_last[:1], "diverged"] = 1
    cells.to_csv(tmp_path / "cells.csv", index=False)
    sentence = next(f for f in report.theorem_findings(tmp_path).arms if f.startswith("Adam:"))
    assert "; every seed ended above its start without diverging in 1;" in sentence


def test_a_share_is_wider_or_narrower_only_beyond_one_cell_of_the_bases_grid():
    assert report.compare_shares((20, 49), (3, 7)) == "about the same as"  # 41% vs 43%
    assert report.compare_shares((40, 49), (3, 7)) == "wider than"
    assert report.compare_shares((5, 49), (3, 7)) == "narrower than"


# -- identity: what is pooled, what is not ---------------------------------------------------------


def small_store(path: Path) -> dict[str, dict]:
    """Two seeds of one SGD cell, planned and present."""
    path.mkdir()
    keys = [("sgd", 0.1, None, seed) for seed in (0, 1)]
    write_plan(path, {run_id(*key): config_of(key) for key in keys})
    for key, test in zip(keys, (0.8, 0.9), strict=True):
        write_run(path, key, "ok", test, test)
    return {run_id(*key): config_of(key) for key in keys}


def test_runs_outside_the_plan_and_copies_are_listed_and_never_pooled(tmp_path):
    store = tmp_path / "store"
    planned = small_store(store)
    # A run of an earlier version of the sweep (other epochs), and a copy of a planned run.
    write_run(store, ("sgd", 0.1, None, 2), "ok", 0.1, 0.1, name="old-run", epochs=10)
    first = next(iter(planned))
    shutil.copytree(store / first, store / f"{first}.bak")
    collection = results.collect(store)
    assert sorted(collection.outside["run_id"]) == sorted(["old-run", f"{first}.bak"])
    agg = results.aggregate(collection.runs, collection.missing)
    assert len(agg) == 1 and agg.loc[0, "n"] == 2
    assert agg.loc[0, "test_acc_mean"] == pytest.approx(0.85)
    assert "2 run(s) outside the plan, not pooled" in collection.summary()
    text = "\n".join(report.what_was_run(collection))
    assert "Outside the plan: 2 run directories" in text and "`old-run`" in text


def test_a_copy_in_a_store_without_a_plan_counts_once(tmp_path):
    store = tmp_path / "store"
    planned = small_store(store)
    (store / "plan.json").unlink()
    first = next(iter(planned))
    shutil.copytree(store / first, store / f"{first}.bak")
    collection = results.collect(store)
    assert len(collection.runs) == 2
    assert (f"{first}.bak", f"a copy of run {first}: counted once") in collection.problems


def test_a_malformed_value_is_reported_and_every_figure_is_still_written(tmp_path):
    store = tmp_path / "store"
    planned = small_store(store)
    first = next(iter(planned))
    result = json.loads((store / first / "result.json").read_text())
    write(store / first / "result.json", {**result, "val_acc": "0.9x"})
    collection = results.collect(store)
    assert list(collection.missing["reason"]) == ["corrupt"]
    assert dict(collection.problems)[first] == "corrupt: malformed value val_acc='0.9x'"
    out = tmp_path / "out"
    for script in report.STORE_FIGURES:
        script.make(collection, out)
    assert all((out / f"{name}.png").stat().st_size > 0 for name in ("heatmaps", "robustness"))


def test_cells_that_share_optimizer_lr_and_rho_but_not_epochs_stay_apart(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    configs = {}
    for epochs in (3, 10):
        for seed in (0, 1):
            key = ("sgd", 0.1, None, seed)
            name = f"sgd-e{epochs}-s{seed}"
            configs[name] = config_of(key, epochs)
            write_run(store, key, "ok", 0.5 + epochs / 100, 0.5 + epochs / 100, name, epochs)
    write_plan(store, configs)
    collection = results.collect(store)
    agg = results.aggregate(collection.runs, collection.missing)
    assert sorted(agg["arm"]) == ["sgd (epochs=10)", "sgd (epochs=3)"]
    assert list(agg.sort_values("arm")["test_acc_mean"]) == pytest.approx([0.6, 0.53])
    best = results.best_settings(agg)
    assert len(best) == 2 and set(best["optimizer"]) == {"sgd"}


def test_the_report_counts_runs_trained_across_commits_or_from_a_changed_tree(tmp_path):
    store = tmp_path / "store"
    planned = small_store(store)
    first, second = planned
    segments = [
        {"git_commit": "abc", "git_dirty": False, "start_epoch": 0},
        {"git_commit": "def", "git_dirty": True, "git_diff": "git-1.diff", "start_epoch": 2},
    ]
    write(store / first / "environment.json", {"segments": segments})
    collection = results.collect(store)
    runs = collection.runs.set_index("run_id")
    assert runs.loc[first, "commits"] == 2 and runs.loc[first, "git_commit"] == "def"
    assert runs.loc[second, "commits"] == 1 and not runs.loc[second, "git_dirty"]
    assert report.provenance(collection.runs) == (
        "1 of 2 runs trained across more than one git commit, 1 from a tree with uncommitted "
        "changes (its `git diff` kept in the run directory), 1 resumed at least once"
    )
