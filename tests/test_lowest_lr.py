"""The lowest learning rate that trains against the budget in steps (analysis.study), on a
synthetic store whose losses follow a known law, every number checked against a hand
computation.

The store: 10 steps an epoch, probes after steps 1, 3, 15, 25 and 35 as well. SGD-SAM (one radius,
4 epochs) loses a share 3 x lr x b of its initial loss by budget b (an lr x steps law), SGD (8
epochs) 3 x lr x g(b), g(b) = sqrt(b) up to b = 20 and sqrt(20) (b / 20)^0.1 after (an lr x
sqrt(steps) law that levels off), both capped at 0.99; so the lowest lr that trains, where the drop
reaches 1 - 0.9, is 1 / (30 b) and 1 / (30 g(b)), each between two grid lrs at every budget, where
the interpolation on the log of the drop is exact. Adam halves its loss by the end of epoch 1 at
every lr but 1e-4, which does by the end of epoch 2, and lr 10, which diverges before step 3. Three
runs that would otherwise count: SGD-SAM at lr 1e-3 dips to half its initial loss at step 1 only;
SGD at 1e-4 falls to half of it and diverges in epoch 2, before step 15; Adam at 1e-4 dips to half
of it at step 3.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from study_reference import weighted_slope

from analysis import fig_budget, results, study
from lightsam import store as files
from lightsam.plan import Plan

LRS = [1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1]
STEPS_PER_EPOCH, PROBE_STEPS, INITIAL = 10, (1, 3, 15, 25, 35), 2.3
EPOCHS = {"sgd_sam": 4, "sgd": 8, "adam": 8}


def ratio(optimizer: str, lr: float, step: int) -> float:
    """The probe loss over the initial one after ``step`` steps (see the module docstring)."""
    if optimizer == "adam":
        if lr == 1e-4:
            return 0.5 if step == 3 or step >= 20 else 1.0
        return 1.0 if step < STEPS_PER_EPOCH else 0.5
    drop = 3 * lr * (step if optimizer == "sgd_sam" else levelling(step))
    if optimizer == "sgd_sam" and lr == 1e-3 and step == 1:
        return 0.5  # a dip that does not hold
    if optimizer == "sgd" and lr == 1e-4:
        return 0.5  # and diverged in epoch 2
    return 1 - min(drop, 0.99)


def levelling(step: int) -> float:
    return math.sqrt(step) if step <= 20 else math.sqrt(20) * (step / 20) ** 0.1


DIVERGED = {("sgd", 1e-4): 2, ("adam", 10.0): 1}  # the epoch each diverged in


def write_store(path: Path) -> Path:
    configs = {}
    for optimizer, epochs in EPOCHS.items():
        for lr in LRS:
            rho = 0.1 if optimizer == "sgd_sam" else None
            configs[f"{optimizer}-{lr:g}"] = {
                "schema": 2, "dataset": "mnist5k", "model": "lenet5", "epochs": epochs, "seed": 0,
                "divergence_loss": 1000.0, "lr_schedule": "constant",
                "optimizer": {"name": optimizer, "lr": lr, "rho": rho, "hparams": {}},
            }  # fmt: skip
    files.write_plan(path, Plan(sweep=path.name, source="s.yaml", source_sha256="-", runs=configs))
    for run_id, config in configs.items():
        optimizer, lr = config["optimizer"]["name"], config["optimizer"]["lr"]
        diverged = DIVERGED.get((optimizer, lr))
        epochs = diverged - 1 if diverged else config["epochs"]
        # Each diverged run stopped before its probes past the ones kept here.
        probed = {("adam", 10.0): (1,), ("sgd", 1e-4): (1, 3)}.get((optimizer, lr), PROBE_STEPS)
        files.write_config(path / run_id, config)
        files.write_metrics(path / run_id, [
            {"epoch": e, "probe_loss": INITIAL * ratio(optimizer, lr, e * STEPS_PER_EPOCH)}
            for e in range(1, epochs + 1)])  # fmt: skip
        files.write_result(path / run_id, {
            "run_id": run_id, "status": "diverged" if diverged else "ok", "num_classes": 10,
            "epochs": config["epochs"], "epochs_completed": epochs,
            "diverged_epoch": diverged, "probe_loss_initial": INITIAL,
            "perturbation_norm_first": 0.1 if optimizer == "sgd_sam" else None,
            "steps_per_epoch": STEPS_PER_EPOCH,
            "probes": [{"step": s, "probe_loss": INITIAL * ratio(optimizer, lr, s),
                        "probe_grad_norm": 1.0} for s in probed],
        })  # fmt: skip
    return path


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> study.StudyTables:
    return study.read_tables(write_store(tmp_path_factory.mktemp("lowest") / "grid"))


def test_the_lowest_training_lr_interpolates_the_log_drop_between_grid_lrs():
    # Drops 0.03 and 0.3 at lr 1e-2 and 1e-1, a drop of 3 x lr: it reaches 0.1 at lr 1 / 30.
    lr, where = study.lowest_training_lr([1e-1, 1e-2, 1e-3], [0.7, 0.97, 0.997])
    assert where == "inside" and lr == pytest.approx(1 / 30)
    assert study.lowest_training_lr([1e-2, 1e-1], [0.5, 0.1]) == (1e-2, "below")
    # No result, a loss that rose, or a divergence below the first that trains: nothing to
    # interpolate on, so that lr only bounds it from above.
    assert study.lowest_training_lr([1e-3, 1e-2, 1e-1], [0.99, math.nan, 0.5]) == (1e-1, "bound")
    assert study.lowest_training_lr([1e-2, 1e-1], [1.2, 0.5]) == (1e-1, "bound")
    assert study.lowest_training_lr([1e-2, 1e-1], [math.inf, 0.5]) == (1e-1, "bound")
    lr, where = study.lowest_training_lr([1e-2, 1e-1], [0.95, 0.9])  # 0.9 is not below 0.9
    assert math.isnan(lr) and where == "none"
    lr, where = study.lowest_training_lr([1e-2, 1e-1], [math.nan, math.inf])
    assert math.isnan(lr) and where == "none"


def test_budget_losses_put_every_probe_on_the_step_axis_and_hold_the_worst_after(tmp_path):
    store = write_store(tmp_path / "grid")
    runs = results.collect(store).runs
    metrics = results.read_metrics(store, runs["run_id"])
    budgets = study.budget_losses(runs, metrics, results.read_probes(store, runs["run_id"]))
    sam = budgets[budgets["run_id"].eq("sgd_sam-0.01")]
    assert sam["step"].tolist() == [1, 3, 10, 15, 20, 25, 30, 35, 40]
    assert sam["ratio"].tolist() == pytest.approx(
        [0.97, 0.91, 0.7, 0.55, 0.4, 0.25, 0.1, 0.01, 0.01]
    )
    dip = budgets[budgets["run_id"].eq("sgd_sam-0.001")].set_index("step")
    assert dip.at[1, "ratio"] == 0.5 and dip.at[1, "held"] == pytest.approx(0.991)
    # The diverged run: its probes before the stop kept, none at step 15, which it stopped
    # short of, infinite from the epoch it diverged in, so held infinite everywhere.
    gone = budgets[budgets["run_id"].eq("sgd-0.0001")].set_index("step")
    assert gone.loc[[1, 3, 10], "ratio"].tolist() == [0.5, 0.5, 0.5]
    assert math.isnan(gone.at[15, "ratio"]) and np.isinf(gone.loc[[20, 80], "ratio"]).all()
    assert np.isinf(gone["held"]).all()
    short = budgets[budgets["run_id"].eq("adam-10")].set_index("step")
    assert math.isnan(short.at[3, "ratio"]) and np.isinf(short["held"]).all()


def test_the_lowest_training_lr_follows_each_law_and_skips_what_does_not_hold(tables):
    low = tables.lowest_lrs.set_index([results.ARM, "step"])
    for step in (1, 3, 10, 15, 20, 25, 30, 35, 40):
        assert low.at[("sgd_sam", step), "lr"] == pytest.approx(1 / (30 * step))
        assert low.at[("sgd_sam", step), "where"] == "inside"
    for step in (1, 3, 10, 15, 20, 25, 40, 80):
        assert low.at[("sgd", step), "lr"] == pytest.approx(1 / (30 * levelling(step)))
    # Adam: no lr trains by step 3 (lr 1e-4's dip does not hold); at most 1e-3 at steps 10 and
    # 15, as 1e-4 has no drop to interpolate on; the grid's lowest from step 20 on.
    assert low.loc[[("adam", 1), ("adam", 3)], "where"].eq("none").all()
    assert (low.at[("adam", 10), "lr"], low.at[("adam", 10), "where"]) == (1e-3, "bound")
    assert low.loc[[("adam", s) for s in (20, 50, 80)], "where"].eq("below").all()
    assert low.at[("adam", 20), "lr"] == 1e-4 and low["grid_lrs"].eq(6).all()


def test_an_lr_without_a_result_bounds_the_lowest_training_lr_instead_of_being_skipped():
    budgets = pd.DataFrame({results.ARM: "sgd", "optimizer": "sgd", "rho": math.nan, "step": 10,
                            "lr": [1e-3, 1e-1], "held": [0.95, 0.5]})  # fmt: skip
    runs = pd.DataFrame({results.ARM: "sgd", "rho": math.nan, "lr": [1e-3, 1e-2, 1e-1],
                         "status": ["ok", "failed", "ok"]})  # fmt: skip
    levels = pd.DataFrame(columns=[results.ARM, "rho", "level"])
    [row] = study.lowest_training_lrs(budgets, levels, runs).itertuples()
    assert (row.lr, row.where, row.grid_lrs) == (1e-1, "bound", 3)


def test_the_slopes_are_weighted_by_the_steps_and_ranged_by_leaving_one_budget_out(tables):
    slopes = tables.lowest_lr_slopes.set_index(results.ARM)
    sam = slopes.loc["sgd_sam"]
    assert sam[["slope", "slope_low", "slope_high"]].tolist() == pytest.approx([-1.0] * 3)
    assert sam[["late_slope", "late_low", "late_high"]].tolist() == pytest.approx([-1.0] * 3)
    assert sam["late_step"] == 15  # within 0.5 decade of 40, the sharpness-aware arms' last
    sgd = slopes.loc["sgd"]
    steps = [1, 3, 10, 15, 20, 25, 30, 35, 40, 50, 60, 70, 80]
    for columns, used in ((["slope", "slope_low", "slope_high"], steps),
                          (["late_slope", "late_low", "late_high"], steps[3:9])):  # fmt: skip
        lowest = [1 / (30 * levelling(s)) for s in used]
        left_out = [weighted_slope(used[:i] + used[i + 1 :], lowest[:i] + lowest[i + 1 :])
                    for i in range(len(used))]  # fmt: skip
        expected = [weighted_slope(used, lowest), min(left_out), max(left_out)]
        assert sgd[columns].tolist() == pytest.approx(expected)
    # Unweighted, the many late budgets would pull the whole slope towards the late one.
    lowest = [1 / (30 * levelling(s)) for s in steps]
    unweighted = np.polyfit(np.log10(steps), np.log10(lowest), 1)[0]
    assert sgd["slope"] < unweighted - 0.02 and sgd["late_slope"] > -0.25 > sgd["slope_high"]
    assert sgd["late_step"] == 15 and sgd["budgets"] == 13 and sgd["last_step"] == 80
    assert "adam" not in slopes.index  # inside the grid at no budget


def test_a_slope_needs_four_budgets_over_half_a_decade():
    def lowest(steps: list[int]) -> pd.DataFrame:
        return pd.DataFrame({results.ARM: "a", "optimizer": "sgd", "level": math.nan,
                             "step": steps, "lr": [1 / s for s in steps], "where": "inside",
                             "grid_lrs": 6})  # fmt: skip

    assert study.lowest_lr_slopes(lowest([10, 15, 20, 30])).empty  # 0.48 decade
    assert study.lowest_lr_slopes(lowest([10, 20, 40])).empty  # three budgets
    fitted = study.lowest_lr_slopes(lowest([10, 20, 40, 80]), late_end=40)
    assert fitted["slope"].tolist() == pytest.approx([-1.0])
    assert math.isnan(fitted["late_slope"].iloc[0])  # 20 and 40 only from 12.6 to 40


def test_the_sentences_state_each_slope_and_what_it_means(tables):
    [said] = study.lowest_lr_sentences(tables)
    assert said.startswith(
        "The lowest learning rate that trains, against the budget in optimizer steps (13 "
        "budgets from 1 to 80, those below an epoch included). A run trains by a budget when "
        "its training-subset loss stays below 0.9x its initial one from then to its end, so the "
        "lowest lr that trains can only fall as the budget grows."
    )
    sgd = tables.lowest_lr_slopes.set_index(results.ARM).loc["sgd"]
    whole = f"{sgd['slope']:.2f} [{sgd['slope_low']:.2f}, {sgd['slope_high']:.2f}]"
    late = f"{sgd['late_slope']:.2f} [{sgd['late_low']:.2f}, {sgd['late_high']:.2f}]"
    assert said.endswith(
        "At the middle radius (a base at its one): SGD-SAM from 3e-2 after 1 step to 8e-4 after "
        "40: slope -1.00 [-1.00, -1.00], -1.00 [-1.00, -1.00] from step 15 (9 budgets); SGD "
        f"from 3e-2 after 1 step to 6e-3 after 80: slope {whole}, {late} from step 15 (13 "
        "budgets); the lowest lr that trains reaches the grid's lowest, 1e-4, and is at most "
        "that from step 20 on for Adam."
    )
    [statement] = study._lowest_lr_statement(tables)
    assert statement == (
        "The lowest learning rate that trains can only fall as the budget grows (a run that "
        "stays below 0.9x its initial loss from one budget on does so from every later one); "
        "how fast it falls tells a budget effect from a floor. Over each arm's budgets, it "
        "falls by a quarter decade or more a decade of steps (slope -0.25 or steeper at every "
        "radius level with a slope, with any one budget left out) for 2 of the 2 arms with a "
        f"slope: SGD-SAM (-1.00), SGD ({sgd['slope']:.2f}); within these budgets the lowest lr "
        "that trains is the budget's for them, more steps bringing smaller learning rates to "
        "train. From step 15 to the last, it falls by a quarter decade or more a decade for "
        f"SGD-SAM (-1.00); it falls more slowly for SGD ({sgd['late_slope']:.2f}). The lowest lr "
        "that trains reaches the grid's lowest, 1e-4, and is at most that from step 20 on for "
        "Adam. One seed a cell; the slopes by level and budget are in the Optimisation "
        "section, the curves in the lowest-lr figure."
    )
    assert statement in study.statement(tables)
    assert study._small_lr_clause(tables) == (
        "; at the small-lr end, the lowest learning rate that trains falls with the steps to "
        "the end for SGD-SAM"
    )


def with_slopes(t: study.StudyTables, rows: list[tuple[str, float, tuple, tuple]]) -> Any:
    """``t`` with its slopes replaced: (arm, level, (slope, low, high), the same late), each
    over budgets 10 to 100 (the late one from 30)."""
    table = pd.DataFrame(
        [[arm, "sgd", level, *whole, 5, 10, 100, 0.1, 0.01, *late, 30]
         for arm, level, whole, late in rows], columns=study.SLOPE_COLUMNS)  # fmt: skip
    return dataclasses.replace(t, lowest_lr_slopes=table)


def test_the_statement_tells_a_slower_fall_levels_that_differ_and_what_it_cannot_tell(tables):
    t = with_slopes(tables, [("sgd_sam", 0.0, (-0.8, -0.9, -0.7), (-0.1, -0.15, -0.05)),
                             ("sgd", math.nan, (-0.1, -0.2, 0.0), (math.nan,) * 3)])  # fmt: skip
    [statement] = study._lowest_lr_statement(t)
    assert (
        "for 1 of the 2 arms with a slope: SGD-SAM (-0.80); within these budgets the lowest lr "
        "that trains is the budget's for them, more steps bringing smaller learning rates to "
        "train; it falls more slowly for SGD (-0.10). From step 30 to the last, it falls more "
        "slowly for SGD-SAM (-0.10)."
    ) in statement
    assert study._small_lr_clause(t) == (
        "; at the small-lr end, the lowest learning rate that trains falls, then more slowly, "
        "for SGD-SAM"
    )
    # Two levels on either side of -0.25, each decided; and a left-out budget across it.
    t = with_slopes(tables, [("sgd_sam", 0.0, (-0.8, -0.9, -0.7), (-0.6, -0.7, -0.5)),
                             ("sgd_sam", 1.0, (-0.1, -0.2, -0.05), (-0.4, -0.5, -0.2))],
                    )  # fmt: skip
    [statement] = study._lowest_lr_statement(t)
    assert (
        "for 0 of the 1 arms with a slope; it falls so at some radius levels only for SGD-SAM "
        "(by level: -0.80 [-0.90, -0.70], -0.10 [-0.20, -0.05]). From step 30 to the last, a "
        "left-out budget puts its slope on either side of -0.25 for SGD-SAM (by level: -0.60 "
        "[-0.70, -0.50], -0.40 [-0.50, -0.20])."
    ) in statement
    assert "trains falls at some radius levels only for SGD-SAM" in study._small_lr_clause(t)


def test_the_middle_of_three_radius_levels_is_the_one_named(tables):
    levels = pd.DataFrame({results.ARM: "sgd_sam", "rho": [0.01, 0.1, 1.0], "level": [0, 1, 2],
                           "radius": [0.01, 0.1, 1.0]})  # fmt: skip
    rows = [("sgd_sam", float(level), (slope, slope, slope), (slope, slope, slope))
            for level, slope in ((0, -0.3), (1, -0.6), (2, -0.9))]  # fmt: skip
    t = dataclasses.replace(with_slopes(tables, rows), levels=levels)
    [said] = study.lowest_lr_sentences(t)
    assert "SGD-SAM from 1e-1 after 10 steps to 1e-2 after 100: slope -0.60 [-0.60, -0.60]" in said
    assert "(5 budgets; -0.90 to -0.30 over its 3 levels with a slope)" in said


def test_the_lowest_lr_figure_draws_each_law(tables, tmp_path):
    figure = fig_budget.lowest_lr(tables)
    [ax] = [a for a in figure.axes if a.get_title().startswith("radius level")]
    lines = {line.get_label(): line for line in ax.get_lines()}
    sam = lines["SGD-SAM"]
    steps = [1, 3, 10, 15, 20, 25, 30, 35, 40]
    assert sam.get_xdata().tolist() == steps
    assert sam.get_ydata() == pytest.approx([1 / (30 * s) for s in steps])
    assert lines["SGD"].get_ydata()[-1] == pytest.approx(1 / (30 * levelling(80)))
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    # Drawn by make (the store has no test accuracies to weigh a tuning cost by).
    drawn = fig_budget.make(dataclasses.replace(tables, tuning=None), tmp_path)
    assert "budget_lowest_lr.png" in {p.name for p in drawn}


def test_each_arms_lowest_lr_is_set_against_its_bases_at_the_last_budget(tables):
    [said] = study._descent_sets_the_lowest_lr(tables)
    # SGD's by 40 steps: 1 / (30 sqrt(20) 2^0.1), so SGD-SAM's 1 / 1200 is 0.12x it.
    assert said == (
        "The lowest learning rate that trains by 40 steps, the sharpness-aware arms' last "
        "budget, each arm at the middle radius against its base (whose run must stay below the "
        "line to its own end, twice as far): SGD-SAM 8.3e-4, 0.12x SGD's 7.0e-3. 1 of the 1 "
        "arms with both inside the grid are within a grid step (1 decade) of their base, so at "
        "the middle radius these 1 arms' ascents move the lowest lr that trains by less than a "
        "grid step from their descents' alone; one seed a cell."
    )
    assert said in study.statement(tables)
    low = tables.lowest_lrs
    sam = low[results.ARM].eq("sgd_sam")
    apart = dataclasses.replace(
        tables, lowest_lrs=low.assign(lr=low["lr"].mask(sam, low["lr"] / 10))
    )
    [said] = study._descent_sets_the_lowest_lr(apart)
    assert said.endswith("SGD-SAM 8.3e-5, 0.01x SGD's 7.0e-3. 0 of the 1 arms with both inside "
                         "the grid are within a grid step (1 decade) of their base; one seed a "
                         "cell.")  # fmt: skip
    bounded = low.assign(where=low["where"].mask(sam & low["step"].eq(40), "below"))
    assert study._descent_sets_the_lowest_lr(dataclasses.replace(tables, lowest_lrs=bounded)) == []


def test_malformed_probes_leave_their_run_out(tmp_path):
    kept = {"step": 3, "probe_loss": 2.0, "probe_grad_norm": 1.0}
    for run_id, probes in {"good": [kept], "bool": [{**kept, "probe_loss": True}],
                           "float_step": [{**kept, "step": 3.0}], "not_a_list": kept,
                           "text": [kept, {"step": 6, "probe_loss": "2.0"}]}.items():  # fmt: skip
        files.write_result(tmp_path / run_id, {"run_id": run_id, "status": "ok", "probes": probes})
    files.write_result(tmp_path / "none", {"run_id": "none", "status": "ok"})
    ids = ["good", "bool", "float_step", "not_a_list", "text", "none"]
    probes = results.read_probes(tmp_path, ids)
    assert probes.to_dict("records") == [{"run_id": "good", "step": 3, "probe_loss": 2.0}]
