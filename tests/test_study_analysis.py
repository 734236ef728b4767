"""The budget study (analysis.study, analysis.fig_budget) on synthetic stores written with
lightsam.store, every number checked against a hand computation.

The grid: 6 decades of lr (1e-4 .. 1e1, grid index i = 0..5), E = 4 epochs for the
sharpness-aware arms (SGD-SAM and the LightSAM variants over 3 radii, realised ||e_1|| 0.01,
0.1, 1; SAM + AdaGrad-Norm at one radius), 2E = 8 for the four bases, one seed. A cell's
probe loss is 0.2 x 4^d, d its distance in grid steps from the arm's range of good lrs at that
epoch, so the window's threshold (2 x 0.2) is crossed half-way to a neighbour: a range [lo, hi]
with neighbours on both sides is hi - lo + 1 decades wide.

Two versions. *Favour*: the variants and the ablation good over [1, 4], SGD-SAM over [2, 3],
both ranges starting one step higher up to epoch E / 2 = 2 (under-training); the bases good over
[2, 3] up to epoch 4 and [2, 4] after. *Disfavour*: SGD-SAM, LightSAM-III, the ablation and the
bases over [1, 4], LightSAM-I and -II over [2, 3], at every epoch. In both:

    SGD-SAM      level 2, i = 2    loss x 4 at every epoch
    SGD-SAM      level 2, i = 4    diverged in epoch 3 (metrics for epochs 1-2)
    SGD-SAM      level 0, i = 0    losses 3.2, 3.2, 1.6, 0.8 (still improving)
    SGD          i = 5             diverged in epoch 5
    LightSAM-II  level 1, i = 5    diverged in epoch 1 (no metrics)

Validation accuracy 0.98 - 0.03 d (d of the final loss), test 0.01 lower.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from analysis import results, study
from lightsam import store as files
from lightsam.plan import Plan

E = 4
LRS = [1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1]
RHOS = {
    "sgd_sam": [0.01, 0.1, 1.0],
    "lightsam_i": [0.01, 0.1, 1.0],
    "lightsam_ii": [1e-5, 1e-4, 1e-3],
    "lightsam_iii": [1e-4, 1e-3, 1e-2],
    "adagrad_norm_sam": [0.1],
}
BASES = ["sgd", "adagrad_norm", "adagrad", "adam"]
NORMS = [0.01, 0.1, 1.0]
BEST, INITIAL = 0.2, 2.3
T_975_4 = 2.7764451051977987  # Student t, 4 degrees of freedom, from tables
VARIANTS = ["lightsam_i", "lightsam_ii", "lightsam_iii"]
STOP = "divergence_loss"


def config(
    optimizer: str,
    lr: float,
    rho: float | None,
    seed: int = 0,
    epochs: int = E,
    stop: float | None = 1000.0,
) -> dict[str, Any]:
    return {
        "schema": 2,
        "dataset": "mnist5k",
        "model": "lenet5",
        "epochs": epochs,
        "seed": seed,
        "divergence_loss": stop,
        "lr_schedule": "constant",
        "optimizer": {"name": optimizer, "lr": lr, "rho": rho, "hparams": {}},
    }


def run_id(c: dict[str, Any]) -> str:
    o = c["optimizer"]
    return f"{o['name']}-lr{o['lr']:g}-rho{o['rho']}-s{c['seed']}-e{c['epochs']}-{c[STOP]}"


def write_store(path: Path, runs: list[dict[str, Any]]) -> Path:
    """``runs``: dicts of config, status, losses (one per completed epoch), val, test, norm."""
    configs = {run_id(r["config"]): r["config"] for r in runs}
    files.write_plan(path, Plan(sweep=path.name, source="s.yaml", source_sha256="-", runs=configs))
    for r in runs:
        run_dir = path / run_id(r["config"])
        files.write_config(run_dir, r["config"])
        losses, status = r.get("losses", []), r.get("status", "ok")
        files.write_metrics(
            run_dir,
            [
                {"epoch": e, "probe_loss": loss, "train_loss": loss}
                for e, loss in enumerate(losses, 1)
            ],
        )
        ok = status == "ok"
        files.write_result(
            run_dir,
            {
                "run_id": run_dir.name,
                "status": status,
                "num_classes": 10,
                "epochs": r["config"]["epochs"],
                "epochs_completed": len(losses),
                "diverged_epoch": len(losses) + 1 if status == "diverged" else None,
                "stopping_loss": r.get("stopping", 2e3) if status == "diverged" else None,
                "val_acc": r.get("val") if ok else None,
                "test_acc": r.get("test") if ok else None,
                "probe_loss_initial": INITIAL,
                "probe_grad_norm_initial": 1.0,
                "perturbation_norm_first": r.get("norm"),
                # Half a second an epoch a pass: two passes for a sharpness-aware arm.
                "wall_s": 0.5 * len(losses) * (1 if r["config"]["optimizer"]["rho"] is None else 2),
            },
        )
    return path


def good_lrs(favour: bool, optimizer: str, epoch: int) -> tuple[int, int]:
    if optimizer in BASES:
        return ((2, 3) if epoch <= E else (2, 4)) if favour else (1, 4)
    wide = (
        {"lightsam_i", "lightsam_ii", "lightsam_iii", "adagrad_norm_sam"}
        if favour
        else {"sgd_sam", "lightsam_iii", "adagrad_norm_sam"}
    )
    low, high = (1, 4) if optimizer in wide else (2, 3)
    return low + (favour and epoch <= E // 2), high


def loss(favour: bool, optimizer: str, i: int, epoch: int) -> float:
    low, high = good_lrs(favour, optimizer, epoch)
    return BEST * 4.0 ** max(low - i, i - high, 0)


def grid_runs(favour: bool) -> list[dict[str, Any]]:
    runs = []

    def add(optimizer: str, i: int, rho: float | None, level: int | None, epochs: int) -> None:
        losses = [loss(favour, optimizer, i, e) for e in range(1, epochs + 1)]
        status = "ok"
        if (optimizer, i, level) == ("sgd_sam", 2, 2):
            losses = [4 * x for x in losses]
        stop = {("sgd_sam", 4, 2): 2, ("sgd", 5, None): 4, ("lightsam_ii", 5, 1): 0}
        if (optimizer, i, level) in stop:
            losses, status = losses[: stop[optimizer, i, level]], "diverged"
        if (optimizer, i, level) == ("sgd_sam", 0, 0):
            losses = [3.2, 3.2, 1.6, 0.8]
        val = 0.98 - 0.03 * round(math.log(losses[-1] / BEST, 4)) if status == "ok" else None
        runs.append(
            {
                "config": config(optimizer, LRS[i], rho, epochs=epochs),
                "losses": losses,
                "status": status,
                "val": val,
                "test": val and val - 0.01,
                "norm": None if level is None else NORMS[level],
            }
        )

    for optimizer, rhos in RHOS.items():
        for rank, rho in enumerate(rhos):
            for i in range(len(LRS)):
                add(optimizer, i, rho, rank if len(rhos) > 1 else 1, E)
    for optimizer in BASES:
        for i in range(len(LRS)):
            add(optimizer, i, None, None, 2 * E)
    return runs


BASE_TEST = [0.950, 0.960, 0.955, 0.965, 0.950]
VAL = [0.90, 0.91, 0.92, 0.93, 0.94]
GAINS = {
    True: {
        "sgd_sam": [0.0, 0.01, -0.01, 0.005, -0.005],
        "adagrad_norm_sam": [0.0] * 5,
        **dict.fromkeys(VARIANTS, (0.02, 0.021, 0.019, 0.02, 0.022)),
    },
    False: {
        "sgd_sam": [-0.02, -0.021, -0.019, -0.02, -0.022],
        "adagrad_norm_sam": [0.03] * 5,
        **dict.fromkeys(VARIANTS, (0.01, -0.01, 0.005, -0.005, 0.0)),
    },
}


def confirm_runs(favour: bool) -> list[dict[str, Any]]:
    """Each method at E epochs, each base at E and 2E (0.005 better), seeds 1..5; AdaGrad at E
    failed on seed 5."""
    runs = []
    for seed, base, val in zip(range(1, 6), BASE_TEST, VAL, strict=True):
        for optimizer, gains in GAINS[favour].items():
            rho = RHOS[optimizer][len(RHOS[optimizer]) // 2]
            runs.append(
                {
                    "config": config(optimizer, 1e-2, rho, seed),
                    "val": val,
                    "test": base + gains[seed - 1],
                    "losses": [BEST] * E,
                }
            )
        for optimizer in BASES:
            for epochs, extra in ((E, 0.0), (2 * E, 0.005)):
                failed = (optimizer, epochs, seed) == ("adagrad", E, 5)
                runs.append(
                    {
                        "config": config(optimizer, 1e-2, None, seed, epochs),
                        "val": val,
                        "test": base + extra,
                        "losses": [BEST] * epochs,
                        "status": "failed" if failed else "ok",
                    }
                )
    return runs


def recovery_runs() -> list[dict[str, Any]]:
    """The three diverged grid runs without the stop rule, one rerun of no grid run, one failed."""
    return [
        {"config": config("sgd_sam", 1e0, 1.0, stop=None), "losses": [0.8, 0.6, 0.5, 0.5]},
        {"config": config("sgd", 1e1, None, epochs=2 * E, stop=None), "losses": [2.2] * 8},
        {"config": config("lightsam_ii", 1e1, 1e-4, stop=None), "status": "diverged"},
        {"config": config("sgd_sam", 3e0, 1.0, stop=None), "losses": [0.1] * 4},
        {"config": config("adam", 1e1, None, epochs=2 * E, stop=None), "status": "failed"},
    ]


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[bool, tuple[Path, Path, Path]]:
    made = {}
    for favour in (True, False):
        root = tmp_path_factory.mktemp("favour" if favour else "disfavour")
        made[favour] = (
            write_store(root / "grid", grid_runs(favour)),
            write_store(root / "confirm", confirm_runs(favour)),
            write_store(root / "recovery", recovery_runs()),
        )
    return made


@pytest.fixture(scope="module")
def tables(stores) -> dict[bool, study.StudyTables]:
    return {favour: study.read_tables(*paths) for favour, paths in stores.items()}


def row(frame: pd.DataFrame, **where: Any) -> pd.Series:
    mask = np.ones(len(frame), bool)
    for key, value in where.items():
        mask &= frame[key].isna() if value is None else frame[key].eq(value)
    (index,) = frame.index[mask]
    return frame.loc[index]


# -- the pure functions ---------------------------------------------------------------------------


def test_the_window_interpolates_log_loss_and_stops_at_diverged_or_missing_points():
    x = [-4, -3, -2, -1, 0, 1]
    width, points, low, high = study.window(x, [2.0, 0.8, 0.3, 0.2, 0.5, math.inf], 0.2)
    # 0.8 -> 0.3 crosses 0.4 at log(0.8/0.4) / log(0.8/0.3) of the way; 0.2 -> 0.5 at
    # log(2) / log(2.5); the segment to the diverged point adds nothing.
    left, right = 1 - math.log(2) / math.log(8 / 3), math.log(2) / math.log(2.5)
    assert width == pytest.approx(left + 1 + right)
    assert (points, low, high) == (2, pytest.approx(-2 - left), pytest.approx(-1 + right))
    # Between a diverged and a missing neighbour a point is isolated: no measure, one point;
    # towards a finite loss it reaches the crossing (1 -> 5 crosses 2 at log 2 / log 5).
    assert study.window(x[:3], [math.inf, 1.0, math.nan], 1.0) == (0.0, 1, -3, -3)
    assert study.window(x[:3], [math.nan, 1.0, 1.5], 1.0) == (1.0, 2, -3, -2)
    assert study.window(x[:3], [5.0, 1.0, math.inf], 1.0)[:2] == (
        pytest.approx(math.log(2) / math.log(5)),
        1,
    )
    assert study.window([1, 0], [1.0, 4.0], 1.0)[0] == pytest.approx(0.5)  # unsorted grid
    assert study.window(x[:2], [math.inf, math.inf], math.nan) == (
        0.0,
        0,
        *[pytest.approx(math.nan, nan_ok=True)] * 2,
    )
    with pytest.raises(ValueError, match="factor"):
        study.window(x, [1.0] * 6, 1.0, factor=0.5)
    with pytest.raises(ValueError, match="x and loss"):
        study.window(x, [1.0] * 5, 1.0)


def test_a_run_is_diverged_stalled_still_improving_or_trained():
    assert study.failure("diverged", INITIAL, [1.0]) == "diverged"
    assert study.failure("ok", 2.0, [1.9, 1.8]) == "stalled"  # 1.8 = 0.9 x 2.0 exactly
    assert study.failure("ok", 2.0, [1.0, 0.8]) == "still improving"  # 0.8 < 0.9 x 1.0
    assert study.failure("ok", 2.0, [1.0, 0.95]) == "trained"
    assert study.failure("ok", 2.0, [1.5]) == "still improving"  # from the initial loss
    # Ten epochs look back two (a fifth): 0.89 < 0.9 x 0.99; nine epochs look back one.
    assert study.failure("ok", 2.0, [1.0] * 7 + [0.99, 0.95, 0.89]) == "still improving"
    assert study.failure("ok", 2.0, [1.0] * 6 + [0.99, 0.95, 0.89]) == "trained"
    assert study.failure("ok", math.nan, [1.0]) is None
    assert study.failure("ok", 2.0, []) is None
    assert study.recovered("diverged", INITIAL, math.nan) == "diverged"
    assert study.recovered("ok", 2.0, 0.99) == "trained"
    assert study.recovered("ok", 2.0, 1.0) == "stalled"
    assert study.recovered("ok", math.nan, 1.0) is None


def test_paired_differences_give_the_t_and_bootstrap_intervals_and_a_verdict():
    d = np.array([0.02, 0.021, 0.019, 0.02, 0.022])
    found = study.paired_difference(d)
    half = T_975_4 * d.std(ddof=1) / math.sqrt(5)
    assert found["mean"] == pytest.approx(0.0204)
    assert (found["t_low"], found["t_high"]) == pytest.approx((0.0204 - half, 0.0204 + half))
    assert d.min() <= found["boot_low"] < 0.0204 < found["boot_high"] <= d.max()
    assert found["verdict"] == "higher" and found["pairs"] == 5
    assert study.paired_difference(d) == found  # a fixed generator
    assert study.paired_difference(-d)["verdict"] == "lower"
    # Two pairs (0, 1): resampled means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4.
    two = study.paired_difference([0.0, 1.0])
    assert (two["boot_low"], two["boot_high"]) == (0.0, 1.0)
    assert two["verdict"] == "no difference resolved"
    assert study.paired_difference([0.01] * 4)["verdict"] == "higher"  # no spread at all
    assert study.paired_difference([0.01] * 4)["p"] == 0.0
    assert study.paired_difference([0.0] * 3)["p"] == 1.0
    assert math.isnan(study.paired_difference([0.01])["p"])
    # Against scipy's Student t (installed with mlxtend), an independent implementation.
    t_stat = 0.0204 / (d.std(ddof=1) / math.sqrt(5))
    assert found["p"] == pytest.approx(2 * scipy.stats.t.sf(t_stat, 4), rel=1e-6)
    # The bootstrap alone would resolve this one (t = 2.60 < 2.78): both intervals must.
    narrow_d = [0.02, -0.002, 0.01, 0.016, 0.006]
    narrow = study.paired_difference(narrow_d)
    assert narrow["boot_low"] > 0 > narrow["t_low"]
    assert narrow["verdict"] == "no difference resolved"
    assert narrow["p"] == pytest.approx(scipy.stats.ttest_1samp(narrow_d, 0).pvalue, rel=1e-6)
    with pytest.raises(ValueError, match="n_boot"):
        study.paired_difference(d, n_boot=0)


def test_compare_needs_a_grid_step():
    assert study.compare(3.0, 2.0, 1.0) == "wider than"
    assert study.compare(2.9, 2.0, 1.0) == "about the same as"
    assert study.compare(1.0, 2.0, 1.0) == "narrower than"
    assert study.compare(2.5, 2.0, 0.5) == "wider than"  # a half-decade grid
    assert study.compare(1.6, 2.0, 0.5) == "about the same as"


def test_the_grid_step_is_the_median_gap_between_lrs():
    runs = pd.DataFrame({"lr": [1e-2, 10**-1.5, 1e-1, 1e-1, 10**-0.5, 1.0, 1e2]})
    assert study.grid_step(runs) == pytest.approx(0.5)
    assert study.grid_step(pd.DataFrame({"lr": LRS})) == pytest.approx(1.0)
    assert study.grid_step(pd.DataFrame({"lr": [0.1]})) == 1.0


def test_holm_adjusts_in_step_down_order_and_keeps_nan_out():
    adjusted = study.holm([0.01, 0.04, math.nan, 0.03, 0.5])
    # Sorted 0.01, 0.03, 0.04, 0.5 over m = 4: 0.04, 0.09, max(0.09, 0.08), max(., 0.5).
    assert adjusted[0] == pytest.approx(0.04) and adjusted[3] == pytest.approx(0.09)
    assert adjusted[1] == pytest.approx(0.09) and adjusted[4] == pytest.approx(0.5)
    assert math.isnan(adjusted[2])
    assert study.holm([0.6, 0.9]) == [1.0, 1.0]


# -- the grid -------------------------------------------------------------------------------------


def test_levels_rank_each_arms_rho_and_carry_the_realised_radius(tables):
    levels = tables[True].levels
    assert row(levels, arm="lightsam_ii", rho=1e-3)["level"] == 2
    assert row(levels, arm="adagrad_norm_sam", rho=0.1)["level"] == 1  # one rho: the middle
    radius = levels.drop_duplicates("level").set_index("level")["radius"]
    assert radius.to_dict() == {0: 0.01, 1: 0.1, 2: 1.0}


def test_a_diverged_run_has_an_infinite_loss_from_the_epoch_it_diverged_in(stores):
    grid = results.collect(stores[True][0])
    runs = grid.runs[
        grid.runs["status"].eq("diverged") | grid.runs["run_id"].str.startswith("adam-")
    ]
    losses = study.probe_losses(runs, results.read_metrics(grid.store, runs["run_id"]))
    curves = losses.groupby(["optimizer", "lr"])["probe_loss"].apply(list)
    assert curves["sgd_sam", 1e0] == [0.8, 0.8, math.inf, math.inf]  # metrics for epochs 1-2
    assert curves["lightsam_ii", 1e1] == [math.inf] * 4  # diverged in epoch 1, no metrics
    assert curves["sgd", 1e1][4:] == [math.inf] * 4
    assert curves["adam", 1e-2] == [BEST] * 8  # an ok run: its logged losses


def test_lr_windows_by_hand(tables):
    w = tables[True].windows
    sam = row(w, arm="sgd_sam", level=1, epoch=4)  # losses 3.2 .8 .2 .2 .8 3.2
    assert (sam["width"], sam["points"], sam["grid_lrs"]) == (2.0, 2, 6)
    assert math.log10(sam["lr_low"]) == pytest.approx(-2.5)
    assert math.log10(sam["lr_high"]) == pytest.approx(-0.5)
    assert sam["gradient_epochs"] == 8 and sam["best_loss"] == BEST
    early = row(w, arm="sgd_sam", level=1, epoch=2)  # one step higher: 12.8 3.2 .8 .2 .8 3.2
    assert (early["width"], early["points"]) == (1.0, 1)
    # Level 2: 3.2 .8 3.2 .2 .8 3.2 at epoch 2 (the x4 cell crossed a quarter of the way), and
    # at epoch 4 the run at i = 4 has diverged: the window ends at i = 3.
    assert row(w, arm="sgd_sam", level=2, epoch=2)["width"] == pytest.approx(0.75)
    late = row(w, arm="sgd_sam", level=2, epoch=4)
    assert late["width"] == pytest.approx(0.5) and math.log10(late["lr_high"]) == -1
    # LightSAM-II's i = 5 diverged in epoch 1, without a metrics row: [1, 4], right side lost.
    assert row(w, arm="lightsam_ii", level=1, epoch=1)["width"] == pytest.approx(2.5)
    assert row(w, arm="lightsam_ii", level=1, epoch=4)["width"] == pytest.approx(3.5)
    assert row(w, arm="lightsam_i", level=1, epoch=4)["width"] == pytest.approx(4.0)
    # A base at 4 epochs and at 8 (SGD's i = 5 diverged in epoch 5: no half decade there).
    base = {e: row(w, arm="adagrad_norm", level=None, epoch=e) for e in (4, 8)}
    assert (base[4]["width"], base[8]["width"], base[8]["gradient_epochs"]) == (2.0, 3.0, 8)
    assert row(w, arm="sgd", level=None, epoch=8)["width"] == pytest.approx(2.5)
    assert row(w, arm="adagrad_norm_sam", level=1, epoch=4)["width"] == pytest.approx(4.0)


def test_radius_windows_measure_realised_radius_against_the_arms_best(tables):
    rw = tables[True].radius_windows
    # At lr 1e-2 the levels' losses are .2 .2 .8 at radii 0.01, 0.1, 1: 1 + 1/2 decade.
    assert row(rw, arm="sgd_sam", epoch=4, lr=1e-2)["width"] == pytest.approx(1.5)
    assert row(rw, arm="sgd_sam", epoch=4, lr=1e-1)["width"] == pytest.approx(2.0)
    assert row(rw, arm="sgd_sam", epoch=4, lr=1e1)[["width", "points"]].tolist() == [0.0, 0]
    assert "adagrad_norm_sam" not in set(rw["arm"])  # one radius: no range


def test_failure_taxonomy_counts_by_hand(tables):
    counts = tables[True].failure_counts.set_index("arm")
    assert counts.loc["sgd_sam", list(study.FAILURES)].tolist() == [1, 5, 1, 11]
    assert counts.loc["sgd", list(study.FAILURES)].tolist() == [1, 1, 0, 4]
    assert counts.loc["sgd_sam", "runs"] == 18
    assert list(counts.index[:2]) == ["sgd_sam", "lightsam_i"]  # the study's order


def test_the_theorems_measure_is_the_smallest_squared_probe_gradient_over_the_epochs():
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d", "e"],
            "status": ["ok", "ok", "diverged", "ok", "ok"],
            "epochs": [3, 2, 3, 3, 1],
            "probe_grad_norm_initial": [2.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    metrics = pd.DataFrame(
        {
            "run_id": ["a", "a", "a", "b", "b", "b", "c", "e", "e"],
            "epoch": [1, 2, 3, 1, 2, 2, 1, 1, 2],
            # b's epoch 2 was rewritten on resume (the last row holds); e logged an epoch past
            # its own, which is not its run's.
            "probe_grad_norm": [3.0, 1.0, 1.5, 2.0, 0.1, 1.5, 0.01, 0.5, 0.01],
        }
    )
    got = study.min_sq_grads(runs, metrics)
    assert got["a"] == 0.25 and got["b"] == 2.25 and got["e"] == 0.25
    assert np.isnan(got["c"]) and np.isnan(got["d"])  # diverged; logged none
    assert list(got.index) == list(runs["run_id"])


def test_realised_radii_are_each_levels_median_ascent_epoch_by_epoch():
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d", "e"],
            "arm": ["lightsam_i", "lightsam_i", "lightsam_i", "sgd", "sgd_sam"],
            "optimizer": ["lightsam_i", "lightsam_i", "lightsam_i", "sgd", "sgd_sam"],
            "status": ["ok", "ok", "diverged", "ok", "ok"],
            "rho": [0.1, 0.1, 0.1, math.nan, 0.1],
            "epochs": [2, 2, 2, 4, 1],
            "perturbation_norm_first": [0.1, 0.3, 0.1, math.nan, 0.1],
        }
    )
    levels = pd.DataFrame({"arm": ["lightsam_i", "sgd_sam"], "rho": [0.1, 0.1], "level": [1, 1]})
    metrics = pd.DataFrame(
        {
            "run_id": ["a", "a", "b", "b", "b", "c", "d", "e", "e"],
            "epoch": [1, 2, 1, 2, 2, 1, 1, 1, 2],
            # b's epoch 2 was rewritten on resume (the last row holds); e logged an epoch past
            # its own; c diverged and d is a base: neither counts.
            "perturbation_norm": [0.02, 0.01, 0.04, 0.5, 0.03, 9.0, 9.0, 0.1, 9.0],
        }
    )
    got = study.realised_radii(runs, metrics, levels).set_index(["arm", "epoch"])
    assert set(got.index) == {("lightsam_i", 0), ("lightsam_i", 1), ("lightsam_i", 2),
                              ("sgd_sam", 0), ("sgd_sam", 1)}  # fmt: skip
    assert got.loc[("lightsam_i", 0), ["radius", "low", "high", "runs"]].tolist() == pytest.approx(
        [0.2, 0.1, 0.3, 2]
    )
    assert got.loc[("lightsam_i", 2), ["radius", "low", "high"]].tolist() == pytest.approx(
        [0.02, 0.01, 0.03]
    )
    assert got.loc[("sgd_sam", 1), "radius"] == 0.1 and set(got["level"]) == {1}
    assert study.realised_radii(runs, metrics.drop(columns="perturbation_norm"), levels).empty


def drift(tables: dict[bool, study.StudyTables], radii: dict[str, float]) -> tuple[str, str]:
    """The realised-radius sentence and the statement's of the synthetic grid with, at the
    middle level (‖e₁‖ 0.1), each arm's median radius in epoch E set by hand, its runs from
    half to twice that."""
    rows = [(arm, arm, 1, epoch, 0.1 if epoch == 0 else last, 0.5 * last, 2 * last, 6)
            for arm, last in radii.items() for epoch in (0, E)]  # fmt: skip
    radius = pd.DataFrame(rows, columns=study.RADIUS_COLUMNS)
    found = study.findings(replace(tables[True], realised_radii=radius))
    (said,) = (f for f in found.windows if f.startswith("Realised radius"))
    (stated,) = (f for f in found.statement if f.startswith("The radius levels"))
    return said, stated


def test_the_report_says_how_far_training_moves_the_matched_radii(tables):
    said, stated = drift(tables, {"sgd_sam": 0.1, "lightsam_i": 0.005, "lightsam_ii": 0.02})
    assert said == (
        "Realised radius through training (the mean ‖e_t‖ over an epoch's ascents, the median "
        "over a level's runs that did not diverge; the levels match the arms at the first "
        "ascent): at the middle level (‖e₁‖ ≈ 0.1) in epoch 4, SGD-SAM 0.1 (1x its median "
        "first ascent; its runs 0.05 to 0.2); LightSAM-I 0.005 (0.05x its median first ascent; "
        "its runs 0.0025 to 0.01); LightSAM-II 0.02 (0.2x its median first ascent; its runs 0.01 "
        "to 0.04). The arms' medians end 1.3 decades apart (the largest over the smallest), a "
        "level step or more (1 decade)."
    )
    assert stated == (
        "The radius levels match the arms at their first ascent: by epoch 4 the realised radius "
        "of LightSAM-I has moved a level step or more from it (0.05x at the middle level), and "
        "the arms' medians end 1.3 decades apart, a level step or more, so a radius window "
        "compares them at their first ascent, not at the radius they end at."
    )
    # Exactly a level step apart counts as one.
    said, _ = drift(tables, {"sgd_sam": 0.1, "lightsam_i": 0.01})
    assert said.endswith("end 1.0 decades apart (the largest over the smallest), a level step "
                         "or more (1 decade).")  # fmt: skip
    _, stated = drift(tables, {"sgd_sam": 0.1, "lightsam_i": 0.02})
    assert stated.endswith(
        "by epoch 4 no arm's realised radius has moved a level step from it, and the arms' "
        "medians end within a level step of each other (0.7 decades), so the levels still match "
        "them."
    )
    _, stated = drift(tables, {"sgd_sam": 0.005, "lightsam_i": 0.005})
    assert stated.endswith(
        "of SGD-SAM, LightSAM-I has moved a level step or more from it (0.05x, 0.05x at the "
        "middle level), and the arms' medians end within a level step of each other (0.0 "
        "decades), so the levels still match them."
    )
    # One arm at the level, with both its epochs, or a second without its last: no comparison.
    radius = pd.DataFrame([("sgd_sam", "sgd_sam", 1, e, 0.1, 0.1, 0.1, 6) for e in (0, E)]
                          + [("lightsam_i", "lightsam_i", 1, 0, 0.1, 0.1, 0.1, 6)],
                          columns=study.RADIUS_COLUMNS)  # fmt: skip
    alone = study.findings(replace(tables[True], realised_radii=radius))
    assert not [f for f in alone.all() if f.startswith(("Realised radius", "The radius levels"))]


def stationarity(stalled: list[float], learned: list[float]) -> str:
    kinds = ["stalled"] * len(stalled) + [("trained", "still improving")[i % 2]
                                          for i in range(len(learned))]  # fmt: skip
    failures = pd.DataFrame(
        {"failure": [*kinds, "diverged"], "min_sq_grad": [*stalled, *learned, math.nan]}
    )
    t = study.StudyTables(factor=2.0, failure_meanings=study.FAILURES, failures=failures)
    (sentence,) = study.stationarity_sentences(t)
    return sentence


def test_the_theorems_measure_is_judged_by_how_it_orders_stalled_and_learned_runs():
    # Stalled 0.5 and 0.2 against learned 0.1, 0.3, 0.5: 0.5 ties one (half a pair) and 0.2 is
    # below two, so 2.5 of 6 pairs, 42%, have the stalled run smaller.
    said = stationarity([0.5, 0.2], [0.1, 0.3, 0.5])
    assert said == (
        "The theorem's measure, a run's smallest squared gradient norm of the training-subset "
        "loss over its epochs relative to its value at initialisation (the start itself left "
        "out): the grid's 2 stalled runs reach a median 0.35 (0.2 to 0.5), its 3 that trained or "
        "are still improving a median 0.3 (0.1 to 0.5); in 42% of the pairs of a stalled run "
        "and one that learned the stalled run has the smaller (0% for a measure that tells them "
        "apart, 50% for one that cannot), so a small gradient along the way, what the theorem "
        "bounds, does not mark a run that learned, and the windows are read on the loss."
    )
    # One stalled run of five below one of two learned values: 1 of 10 pairs.
    assert said_end(stationarity([1.0, 0.15, 2.0, 3.0, 4.0], [0.1, 0.2])) == (
        "so the measure tells them apart in all but 10% of the pairs."
    )
    assert said_end(stationarity([1.0, 2.0], [0.1, 0.2])) == (
        "so the measure tells them apart on this grid."
    )
    nothing_learned = pd.DataFrame({"failure": ["stalled"], "min_sq_grad": [0.5]})
    t = study.StudyTables(factor=2.0, failure_meanings=study.FAILURES, failures=nothing_learned)
    assert study.stationarity_sentences(t) == []


def said_end(sentence: str) -> str:
    return sentence[sentence.index("cannot), ") + len("cannot), ") :]


def test_tuning_cost_counts_two_gradients_a_sharpness_aware_step(tables):
    tuning = tables[True].tuning
    assert row(tuning, arm="sgd_sam", k=1)["epoch_equivalents"] == 8
    assert row(tuning, arm="sgd", k=3)["epoch_equivalents"] == 24
    # k = 1: the grid's mean test score, a diverged run at chance (0.1).
    sgd = [0.91, 0.94, 0.97, 0.97, 0.97, 0.1]
    assert row(tuning, arm="sgd", k=1)["expected"] == pytest.approx(np.mean(sgd))


# -- the confirmation and the recovery ------------------------------------------------------------


def test_selected_cells_and_paired_contrasts_by_hand(tables):
    t = tables[True]
    base = row(t.selected, arm="adagrad_norm (epochs=4)")
    assert base["test_mean"] == pytest.approx(np.mean(BASE_TEST))
    assert base["test_ci"] == pytest.approx(T_975_4 * np.std(BASE_TEST, ddof=1) / math.sqrt(5))
    assert base["val_std"] == pytest.approx(0.01 * math.sqrt(2.5))  # std of .90 .. .94
    c = t.contrasts
    equal = row(c, method="lightsam_i", comparison=study.EQUAL)
    assert equal["base"] == "adagrad_norm (epochs=4)"
    assert (equal["mean"], equal["verdict"]) == (pytest.approx(0.0204), "higher")
    matched = row(c, method="lightsam_i", comparison=study.MATCHED)
    assert (matched["base_epochs"], matched["mean"]) == (8, pytest.approx(0.0154))
    assert row(c, method="lightsam_ii", comparison=study.EQUAL)["pairs"] == 4  # seed 5 failed
    assert row(c, method="sgd_sam", comparison=study.EQUAL)["verdict"] == "no difference resolved"
    lower = row(tables[False].contrasts, method="sgd_sam", comparison=study.EQUAL)
    assert (lower["mean"], lower["verdict"]) == (pytest.approx(-0.0204), "lower")


def test_near_best_is_calibrated_by_the_seed_noise(tables):
    near = tables[True].near_best.set_index("arm")
    sigma = 0.01 * math.sqrt(2.5)
    assert near.loc["sgd_sam", "threshold"] == pytest.approx(2 * math.sqrt(2) * sigma)
    # Within 4.5 points of 0.98: d <= 1 (0.95), not d = 2 (0.92) nor a diverged cell (0.1).
    assert near.loc["sgd_sam", ["near", "cells"]].tolist() == [12, 18]
    assert near.loc["sgd", ["near", "cells"]].tolist() == [4, 6]  # sigma of sgd at 8 epochs
    adagrad = near.loc["adagrad_norm_sam", "sigma"]
    assert adagrad == pytest.approx(sigma)


def test_recovery_pairs_reruns_by_config_but_the_stop_rule(tables):
    r = tables[True].recovery.set_index("run_id")
    outcomes = r.dropna(subset=["grid_run_id"]).set_index("arm")["outcome"].to_dict()
    assert outcomes == {"sgd_sam": "trained", "sgd": "stalled", "lightsam_ii": "diverged"}
    assert r["grid_run_id"].isna().sum() == 1 and len(r) == 4  # the failed rerun is left out


# -- the sentences and the outputs ----------------------------------------------------------------


def test_the_statement_favours_lightsam_when_the_numbers_do(tables):
    text = " ".join(study.findings(tables[True]).statement)
    assert (
        "4.0 decades for LightSAM-I, wider than SGD-SAM's (2.0), wider than AdaGrad-Norm's at "
        "4 epochs (2.0) and wider than at 8 (3.0);" in text
    )
    assert "3.5 decades for LightSAM-II" in text
    assert (
        "for every method (SGD-SAM, LightSAM-I, LightSAM-II, LightSAM-III), so the failures at "
        "small learning rates are under-training" in text
    )
    assert (
        "Beyond seed noise (both the paired t and the bootstrap 95% interval clear of 0), in test "
        "accuracy at the selected cells, LightSAM-I scores higher than AdaGrad-Norm at 4 epochs "
        "(+2.04 points, 95% CI [+1.90, +2.18] (t), [+1.96, +2.12] (bootstrap)) and higher than "
        "AdaGrad-Norm at 8 epochs (+1.54 points" in text
    )
    assert "the variants' other" not in text  # every variant's contrast is resolved
    assert (
        "At equal gradient evaluations (each base trained twice the epochs), of the 5 "
        "sharpness-aware arms 1 scores lower (SAM + AdaGrad-Norm -0.50 points) than their base "
        "beyond seed noise and 3 score higher (LightSAM-I +1.54, LightSAM-II +1.54, "
        "LightSAM-III +1.54 points)" in text
    )
    assert (
        "Tested together, 8 of the 8 resolved contrasts keep a family-wise 5% level (Holm over "
        "all 11 paired t-tests): LightSAM-I against AdaGrad-Norm at 4 epochs (Holm p < 0.001)"
        in text
    )
    assert "for none of the 9 arms." in text  # no best run still improving
    assert "cannot tell" not in text
    assert (
        "In short, at 4 epochs on this grid (LightSAM-I, LightSAM-II, LightSAM-III at the middle "
        "radius): the learning-rate window of LightSAM-I, LightSAM-II, LightSAM-III is wider than "
        "both SGD-SAM's and its base's by a grid step or more, as the claim of insensitivity "
        "predicts; and LightSAM-I, LightSAM-II, LightSAM-III generalise better than their base "
        "beyond seed noise." in text
    )


def test_the_statement_says_so_when_the_numbers_disfavour_lightsam(tables):
    found = study.findings(tables[False])
    text = " ".join(found.statement)
    assert "2.0 decades for LightSAM-I, narrower than SGD-SAM's (4.0)" in text
    assert (
        "4.0 decades for LightSAM-III, about the same as SGD-SAM's (4.0), about the same as "
        "Adam's at 4 epochs (4.0) and about the same as at 8 (4.0)." in text
    )
    assert (
        "for none of the methods (SGD-SAM, LightSAM-I, LightSAM-II, LightSAM-III); but were "
        "progress a matter of lr x steps, 2x the epochs would move it by 0.3 decade, under the "
        "grid step, so these two budgets alone cannot tell failure at small learning rates "
        "from under-training." in text
    )
    assert (
        "No LightSAM variant's test accuracy at its selected cell differs from its base's beyond "
        "seed noise (both the paired t and the bootstrap 95% interval clear of 0): differences "
        "-0.50 to +0.00 points, 5 seed pairs." in text
    )
    assert "The bootstrap interval alone" not in text  # [-1.10, +0.10] holds 0
    assert (
        "no LightSAM variant's learning-rate window exceeds both SGD-SAM's and its base's by a "
        "grid step, as the claim of insensitivity would predict; and no variant generalises "
        "better than its base beyond seed noise." in text
    )
    assert "wider than" not in text and "higher than" not in text
    general = " ".join(found.generalisation)
    assert "SAM + AdaGrad-Norm (98.60%) has the highest test accuracy" in general


def test_the_findings_state_the_numbers(tables):
    found = study.findings(tables[True])
    text = " ".join(found.all())
    assert (
        "SGD-SAM (18 runs, 4 epochs): 1 diverged, 5 stalled, 1 still improving, 11 trained; "
        "diverged at lr 1e0; stalled at lr 1e-4, 1e1; still improving at lr 1e-4." in found.failures
    )
    assert (
        "SGD-SAM: 12 of 18 grid cells (67%) within 4.47 points of its best (σ = 1.58 points "
        "from 5 seeds)." in found.near_best
    )
    assert (
        "Of the 3 grid runs that diverged, 3 were stopped by a loss above 1000 (the others by a "
        "non-finite loss, which cannot recover); of those, 3 were rerun without the limit" in text
    )
    assert "So the stop rule cut short 1 run(s) that would have trained" in text
    assert "SGD-SAM 1.0 → 2.0 decades (lower end 3e-2 → 3e-3)" in text
    assert (
        "No sharpness-aware arm leads: the highest mean is LightSAM-I (97.64%); SGD-SAM, "
        "LightSAM-II, LightSAM-III tie with it (95% intervals overlapping its), and SAM + "
        "AdaGrad-Norm is below it (intervals clear of its)." in text
    )
    assert "Radius level 1 (realised ‖e₁‖ ≈ 0.1), after 4 epochs: SGD-SAM 2.0 decades" in text


def test_the_statement_names_the_arms_whose_best_run_still_improved(tables):
    f = tables[True].failures
    best = f[f["failure"].ne("diverged")].groupby("arm")["final_loss"].idxmin()
    improving = f.assign(failure=f["failure"].mask(f.index.isin(best[["sgd_sam", "adam"]]),
                                                   "still improving"))  # fmt: skip
    text = " ".join(study.findings(replace(tables[True], failures=improving)).statement)
    assert (
        "was still improving at its last epoch (a loss drop of more than 10% over the last "
        "fifth) for 2 of the 9 arms (SGD-SAM, Adam), so their budgets stop short of "
        "convergence" in text
    )


def radius_rows(widths: dict[str, float]) -> pd.DataFrame:
    """Radius windows after E epochs, each arm's ``widths`` at lr 1e-1 and none elsewhere, over
    3 levels (2 decades: a window of 2.0 takes in every level)."""
    rows = [(arm, E, lr, w, 1 + (w > 0) + (w >= 2), 3) if lr == 1e-1 else (arm, E, lr, 0.0, 0, 3)
            for arm, w in widths.items() for lr in LRS]  # fmt: skip
    return pd.DataFrame(rows, columns=["arm", "epoch", "lr", "width", "points", "levels"])


def test_the_statement_says_whether_lightsams_ascent_widens_the_radius_window(tables):
    # The synthetic grid's radius windows are all 2 decades; here each arm's widest after E
    # epochs is set by hand, with SAM + AdaGrad-Norm over the radii too, and a wider window
    # after epoch 2 that must not count.
    widths = {"sgd_sam": 2.0, "lightsam_i": 1.6, "lightsam_ii": 0.5, "lightsam_iii": 1.2,
              "adagrad_norm_sam": 0.5}  # fmt: skip
    windows = radius_rows(widths)
    windows.loc[len(windows)] = ["lightsam_ii", 2, 1e-1, 2.0, 3, 3]
    statement = study.findings(replace(tables[True], radius_windows=windows)).statement
    text = " ".join(statement)
    assert (
        "Radius windows after 4 epochs (decades of realised radius, 0.01 to 1 over 3 levels, "
        "where the training loss is within 2x of the arm's best; the widest over the lrs; a "
        "difference under a level step, 1 decade, is read as none): LightSAM-I 1.6, about the "
        "same as SGD-SAM's (2.0) and wider than SAM + AdaGrad-Norm's (0.5), the same descent "
        "with SAM's ascent; LightSAM-II 0.5, narrower than SGD-SAM's (2.0); LightSAM-III 1.2, "
        "about the same as SGD-SAM's (2.0). So LightSAM's ascent in place of SAM's, the descent "
        "unchanged, widens the radius window by a level step or more in 1 of the 1 pairs "
        "(LightSAM-I)." in text
    )
    assert statement[-1].startswith("In short") and (
        "predicts; LightSAM's ascent in place of SAM's, the descent unchanged, widens the radius "
        "window by a level step or more in 1 of the 1 pairs (LightSAM-I); and" in statement[-1]
    )
    # A window within a level step of its control's is no wider; one at the grid's whole span
    # may be wider than the grid can show.
    capped_said = ("in none of the 1 pairs, though with it LightSAM-I trains at every radius "
                   "tried, so this grid cannot show how much wider.")  # fmt: skip
    for lightsam_i, said in ((1.0, "in none of the 1 pairs."), (2.0, capped_said)):
        capped = radius_rows(widths | {"lightsam_i": lightsam_i, "adagrad_norm_sam": 1.5})
        text = " ".join(study.findings(replace(tables[True], radius_windows=capped)).statement)
        assert "about the same as SAM + AdaGrad-Norm's (1.5)" in text and said in text, lightsam_i
    assert "LightSAM-I 2.0 (every level), about the same" in text


def test_a_control_with_a_radius_schedule_has_its_own_sentence_not_the_window_verdict(tables):
    # LightSAM-I's ascent around SGD against SGD-SAM and against SGD-SAM at rho / sqrt(t): only
    # the first is LightSAM's ascent in place of SAM's; the second asks whether the accumulator
    # does more than the schedule, which the window verdict does not count.
    sgd_sam = tables[True].grid_runs[lambda r: r["arm"].eq("sgd_sam")]
    extra = [sgd_sam.assign(arm=name, optimizer=name) for name in ("lightsam_i_sgd",
                                                                   "sgd_sam_decay")]  # fmt: skip
    grid = pd.concat([tables[True].grid_runs, *extra], ignore_index=True)
    widths = {"sgd_sam": 2.0, "lightsam_i": 1.6, "lightsam_ii": 0.5, "lightsam_iii": 1.2,
              "adagrad_norm_sam": 0.5, "lightsam_i_sgd": 1.6, "sgd_sam_decay": 0.5}  # fmt: skip
    t = replace(tables[True], grid_runs=grid, radius_windows=radius_rows(widths))
    text = " ".join(study.findings(t).statement)
    assert (
        "LightSAM-I ascent + SGD 1.6, about the same as SGD-SAM's (2.0), the same descent with "
        "SAM's ascent. So LightSAM's ascent in place of SAM's, the descent unchanged, widens the "
        "radius window by a level step or more in 1 of the 2 pairs (LightSAM-I)." in text
    )
    assert "SGD-SAM ρ/√t's" not in text
    # The schedule pair has a sentence of its own: 1.6 against 0.5 decades is a level step wider.
    (said,) = (f for f in study.findings(t).statement if f.startswith("Against SGD-SAM ρ/√t"))
    assert said == (
        "Against SGD-SAM ρ/√t, SAM's ascent shrunk as ρ/√t around the same descent (the schedule "
        "without the accumulator), LightSAM-I ascent + SGD's widest radius window after 4 epochs "
        "is 1.6 decades against 0.5: wider by a level step or more."
    )
    # Both at every level, and a test-accuracy contrast within noise: the accumulator adds
    # nothing here, as far as the grid can show.
    both = radius_rows(widths | {"lightsam_i_sgd": 2.0, "sgd_sam_decay": 2.0})
    contrast = pd.DataFrame([{"method": "lightsam_i_sgd", "base": "sgd_sam_decay",
                              "comparison": study.ASCENT, "mean": 0.0048, "t_low": -0.0008,
                              "t_high": 0.0104, "verdict": "no difference resolved"}],
                            columns=study.CONTRAST_COLUMNS)  # fmt: skip
    found = study.findings(replace(t, radius_windows=both, contrasts=contrast)).statement
    (said,) = (f for f in found if f.startswith("Against SGD-SAM ρ/√t"))
    assert said.endswith(
        "is 2.0 decades (every level) against 2.0 (every level): about the same; its test "
        "accuracy at its selected cell differs by +0.48 points (95% CI [-0.08, +1.04]): no "
        "difference resolved; so on this grid the accumulator does nothing the ρ/√t schedule "
        "alone does not, though both train at every radius tried, so the grid cannot show "
        "whether either is wider."
    )
    matches = ("SAM's ascent shrunk as ρ/√t (SGD-SAM ρ/√t) matches LightSAM-I ascent + SGD's "
               "accumulated ascent in radius window and test accuracy; and")  # fmt: skip
    assert found[-1].startswith("In short") and matches in found[-1]
    resolved = contrast.assign(verdict="higher", t_low=0.001)
    found = study.findings(replace(t, radius_windows=both, contrasts=resolved)).statement
    (said,) = (f for f in found if f.startswith("Against SGD-SAM ρ/√t"))
    assert said.endswith("(95% CI [+0.10, +1.04]): higher.")
    assert "matches" not in found[-1]
    assert not [f for f in study.findings(tables[True]).statement if f.startswith("Against")]


def test_the_statement_reports_a_bootstrap_only_exclusion_as_a_hint():
    narrow = study.paired_difference([0.02, -0.002, 0.01, 0.016, 0.006])
    contrast = {"method": "lightsam_i", "base": "adagrad_norm (epochs=8)", "epochs": 4,
                "comparison": study.MATCHED, "base_epochs": 8, "untrained_pairs": 0,
                **narrow}  # fmt: skip
    contrasts = pd.DataFrame([contrast]).assign(holm_p=[narrow["p"]])
    t = study.StudyTables(factor=2.0, failure_meanings=study.FAILURES, contrasts=contrasts)
    text = " ".join(study.findings(t).statement)
    assert "No LightSAM variant's test accuracy at its selected cell differs" in text
    assert (
        "The bootstrap interval alone, too narrow with 5 pairs, excludes 0 for LightSAM-I "
        "against AdaGrad-Norm at 8 epochs (+1.00 points, 95% CI [-0.07, +2.07] (t)" in text
    )
    assert "Tested together" not in text  # nothing resolved to correct for


def test_confirmation_seeds_that_diverged_or_stalled_are_counted_and_named_in_the_contrasts():
    # LightSAM-III, SAM + Adam (only the ascent differs) and Adam on seeds 1-5, 4 epochs. SAM +
    # Adam diverged on seed 3 (scored at chance, 0.1) and stalled on seed 4 (its loss at its
    # initial value, accuracy 0.1 as trained): an interval wide from those two pairs alone.
    def ending(optimizer: str, seed: int) -> str:
        failed = {3: "diverged", 4: "stalled"} if optimizer == "adam_sam" else {}
        return failed.get(seed, "trained")

    runs = pd.DataFrame(
        [
            {"arm": optimizer, "optimizer": optimizer, "epochs": 4, "lr": 1e-2, "rho": rho,
             "seed": seed, "dataset": "mnist5k", "num_classes": 10,
             "val_acc": None if ending(optimizer, seed) == "diverged" else val,
             "test_acc": None if ending(optimizer, seed) == "diverged" else val,
             "status": "diverged" if ending(optimizer, seed) == "diverged" else "ok",
             "ending": ending(optimizer, seed), "perturbation_norm": math.nan,
             "relative_perturbation": math.nan}
            for seed in range(1, 6)
            for optimizer, rho, val in (
                ("lightsam_iii", 1e-3, 0.96 + 0.001 * seed),
                ("adam_sam", 0.1, 0.1 if seed == 4 else 0.95 + 0.001 * seed),
                ("adam", math.nan, 0.96 + 0.001 * seed),
            )
        ]
    )  # fmt: skip
    selected = study.selected_cells(runs).set_index("arm")
    assert selected.loc["adam_sam", ["diverged", "stalled"]].tolist() == [1, 1]
    assert selected.loc["adam", ["diverged", "stalled"]].tolist() == [0, 0]
    # The seed noise is that of the seeds that trained: the stalled seed's 0.1 is left out.
    assert selected.loc["adam_sam", "val_seeds"] == 3
    assert selected.loc["adam_sam", "val_std"] == pytest.approx(
        np.std([0.951, 0.952, 0.955], ddof=1)
    )
    sigma = selected["val_std"]
    near = pd.DataFrame({"arm": ["adam_sam", "adam"], "sigma": sigma[["adam_sam", "adam"]],
                         "threshold": study.NEAR_SE * sigma[["adam_sam", "adam"]],
                         "near": [3, 1], "cells": [18, 6], "share": [3 / 18, 1 / 6]})  # fmt: skip
    said_near = study.near_best_sentences(
        study.StudyTables(factor=2.0, failure_meanings=study.FAILURES, grid_runs=runs,
                          selected=selected.reset_index(), near_best=near)
    )  # fmt: skip
    assert "that neither diverged nor stalled (a seed that did is a failure" in said_near[0]
    assert said_near[1:] == [
        f"SAM + Adam: 3 of 18 grid cells (17%) within {200 * math.sqrt(2) * sigma['adam_sam']:.2f} "
        f"points of its best (σ = {100 * sigma['adam_sam']:.2f} points from 3 seeds, its 1 "
        "diverged and 1 stalled seeds left out).",
        f"Adam: 1 of 6 grid cells (17%) within {200 * math.sqrt(2) * sigma['adam']:.2f} points of "
        f"its best (σ = {100 * sigma['adam']:.2f} points from 5 seeds).",
    ]
    # Seeds 2 to 4: SAM + Adam trained on one, so it has no seed noise and no near-best count
    # (here the confirmation runs stand in for a grid of one cell an arm).
    few = study.selected_cells(runs[runs["seed"].between(2, 4)])
    assert few.set_index("arm").loc["adam_sam", "val_seeds"] == 1
    near_few = study.near_best(runs, few).set_index("arm")
    assert near_few.loc["adam_sam", ["sigma", "threshold", "near", "share"]].isna().all()
    assert near_few.loc["adam", "sigma"] == pytest.approx(np.std([0.962, 0.963, 0.964], ddof=1))
    assert near_few.loc["adam", ["near", "cells", "share"]].tolist() == [1, 1, 1.0]
    said_few = study.near_best_sentences(
        study.StudyTables(factor=2.0, failure_meanings=study.FAILURES, grid_runs=runs,
                          selected=few, near_best=near_few.reset_index())
    )  # fmt: skip
    assert said_few[1:] == [
        "LightSAM-III: 1 of 1 grid cells (100%) within "
        f"{200 * math.sqrt(2) * near_few.loc['lightsam_iii', 'sigma']:.2f} points of its best "
        f"(σ = {100 * near_few.loc['lightsam_iii', 'sigma']:.2f} points from 3 seeds).",
        "SAM + Adam: no seed noise to calibrate by (1 seed of 3 trained, its 1 diverged and 1 "
        "stalled seeds left out).",
        "Adam: 1 of 1 grid cells (100%) within "
        f"{200 * math.sqrt(2) * near_few.loc['adam', 'sigma']:.2f} points of its best "
        f"(σ = {100 * near_few.loc['adam', 'sigma']:.2f} points from 3 seeds).",
    ]
    contrasts = study.contrasts(runs)
    ascent = row(contrasts, method="lightsam_iii", comparison=study.ASCENT)
    assert (ascent["untrained_pairs"], ascent["verdict"]) == (2, "no difference resolved")
    assert row(contrasts, method="lightsam_iii", comparison=study.EQUAL)["untrained_pairs"] == 0
    t = study.StudyTables(
        factor=2.0, failure_meanings=study.FAILURES, selected=selected.reset_index(),
        contrasts=contrasts,
    )  # fmt: skip
    found = study.findings(t)
    said = " ".join(found.generalisation)
    assert (
        "5 fresh seeds, 1 diverged (scored as chance) and 1 stalled (final training-subset loss "
        "at least 0.9x its initial))" in said
    )
    assert "5 fresh seeds, none diverged or stalled)" in said
    assert (
        "5 seed pairs (2 pairs with a run that diverged or stalled): no difference resolved" in said
    )
    text = " ".join(found.statement)
    assert "each arm at its own cell selected on validation (so each is tuned over" in text
    assert (
        "so no change of the ascent or the descent alone moves test accuracy beyond seed noise, "
        "though in 1 unresolved contrast (LightSAM-III against SAM + Adam at 4 epochs) a run "
        "that diverged or stalled, not the seed noise of trained runs, keeps the interval wide."
        in text
    )


def test_the_tuning_sentences_give_k_and_the_measured_cost(tables):
    tuning = tables[True].tuning
    # SGD: five runs of 8 epochs at 0.5 s an epoch, one diverged in epoch 5 (4 epochs, 2 s).
    assert row(tuning, arm="sgd", k=3)["measured_s"] == pytest.approx(3 * 22 / 6)
    found = study.findings(tables[True]).tuning
    expected = [100 * row(tuning, arm="sgd", k=k)["expected"] for k in (1, 3, 6)]
    assert [s for s in found if s.startswith("SGD:")] == [
        f"SGD: {expected[0]:.1f}% at k = 1, {expected[1]:.1f}% at k = 3, {expected[2]:.1f}% at "
        "k = 6 (all 6 cells); a trial costs 8 epochs of gradients, 0.06 min measured."
    ]
    assert "one seed a cell" in found[0]


def test_make_all_writes_the_figures_and_tables(stores, tables, tmp_path):
    found, paths = study.make_all(tables[True], tmp_path)
    names = {p.name for p in paths}
    for stem in ("budget_windows", "budget_failures", "budget_contrasts", "budget_tuning"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
        assert (tmp_path / f"{stem}.png").stat().st_size > 0
    windows = pd.read_csv(tmp_path / "budget_windows.csv")
    assert row(windows, arm="sgd_sam", level=2.0, epoch=2)["width"] == pytest.approx(0.75)
    assert {"budget_near_best.csv", "budget_recovery.csv", "budget_contrasts.csv"} <= names
    assert found == study.findings(tables[True])


def test_absent_stores_skip_what_needs_them(stores, tmp_path):
    grid, confirm, _ = stores[True]
    alone = study.study_findings(grid, None, tmp_path / "absent")
    assert alone.windows and not alone.generalisation and not alone.near_best
    assert not alone.recovery and "was not measured" in alone.statement[-1]
    no_grid = study.study_findings(tmp_path / "absent", confirm, None)
    assert not no_grid.windows and no_grid.generalisation and not no_grid.near_best


def test_a_radius_where_nothing_trains_has_no_window():
    """Each level's window is measured against the arm's best over all its radii: at a radius
    where every lr stalls near the initial loss, nothing is within the factor."""
    lrs = [1e-3, 1e-2, 1e-1]
    cells = pd.DataFrame(
        [{"arm": "sgd_sam", "optimizer": "sgd_sam", "lr": lr, "rho": rho, "epochs": 2,
          "epoch": 2, "level": level, "probe_loss": loss}
         for level, rho, losses in ((0, 0.01, [1.0, 0.1, 1.0]), (1, 1.0, [2.3, 2.2, 2.3]))
         for lr, loss in zip(lrs, losses, strict=True)]
    )  # fmt: skip
    w = study.lr_windows(cells)
    trains, stalls = (w[w["level"].eq(level)].iloc[0] for level in (0, 1))
    assert trains["points"] == 1 and trains["best_loss"] == stalls["best_loss"] == 0.1
    assert stalls["points"] == 0 and stalls["width"] == 0.0


def test_one_change_contrasts_pair_each_arm_with_its_control(tables):
    ascent = row(tables[True].contrasts, method="lightsam_i", comparison=study.ASCENT)
    assert ascent["base"] == "adagrad_norm_sam" and ascent["epochs"] == ascent["base_epochs"] == E
    assert (ascent["mean"], ascent["verdict"]) == (pytest.approx(0.0204), "higher")
    worse = row(tables[False].contrasts, method="lightsam_i", comparison=study.ASCENT)
    assert (worse["mean"], worse["verdict"]) == (pytest.approx(-0.03), "lower")
    statement = " ".join(study.findings(tables[False]).statement)
    assert (
        "LightSAM-I minus SAM + AdaGrad-Norm (only the ascent differs): -3.00 points" in statement
    )
    assert "so 1 of the 1 single changes move it beyond seed noise" in statement
    # The comparisons with the bases are not confused with the one-change ones.
    assert "LightSAM-I scores lower than" not in statement
