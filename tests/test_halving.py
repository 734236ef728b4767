"""Successive halving: the rungs, the promotion, and a continued run that is exactly the run
trained to its length directly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.report import write_report
from analysis.study import FAILURES
from lightsam import store
from lightsam.config import ConfigError, Runtime, from_dict
from lightsam.cost import sweep_cost
from lightsam.halving import Halving, rung_store
from lightsam.launch import launch_local, launch_sweep
from lightsam.sweep import load_sweep
from lightsam.train import run

ROOT = Path(__file__).parents[1]
LOCAL = Runtime(device="cpu", progress=False)


def write_sweep(path: Path, halving: str = "{rungs: [1, 2], keep: 0.5}", extra: str = "") -> Path:
    path.write_text(
        f"base: {ROOT / 'experiments' / 'mnist5k_lenet.yaml'}\n"
        "set: {epochs: 2, batch_size: 128}\n"
        "seeds: [0]\n"
        f"halving: {halving}\n"
        "optimizers:\n"
        "  sgd: {lr: [1.0e-4, 0.05], hparams: {momentum: 0.9}}\n"
        "  lightsam_i: {lr: [1.0e-4, 1.0], rho: [0.05]}\n" + extra
    )
    return path


def without_times(rows):
    return [{k: v for k, v in row.items() if k != "wall_s"} for row in rows]


def test_the_grid_runs_the_first_rung_and_halving_is_checked(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path / "h.yaml"))
    assert {config.epochs for config in sweep.runs} == {1}
    assert sweep.halving == Halving(rungs=(1, 2), keep=0.5)
    # Per epoch, 0.5 GPU-hours for SGD and twice that for LightSAM-I's two passes.
    lines = sweep_cost(sweep, {"mnist5k/lenet5": 0.5})
    assert [(line.stage, line.runs, line.run_epochs, line.gpu_hours) for line in lines] == [
        ("rung 0", 4, 4, 2 * 0.5 + 2 * 1.0),
        ("rung 1", 2, 2, 0.5 + 1.0),  # one cell per arm, one more epoch each
    ]
    (unknown, _) = sweep_cost(sweep, {})
    assert unknown.gpu_hours is None and unknown.missing == ("mnist5k/lenet5",)


@pytest.mark.parametrize(
    ("halving", "extra", "message"),
    [
        ("{rungs: [1], keep: 0.5}", "", "two or more increasing"),
        ("{rungs: [2, 1], keep: 0.5}", "", "two or more increasing"),
        ("{rungs: [1, 2], keep: 1.0}", "", r"keep must be a fraction in \(0, 1\)"),
        ("{rungs: [1, 2], keep: 0.5, eta: 3}", "", "unknown key.*eta"),
        ("{rungs: [1, 3], keep: 0.5}", "", "the last rung is the full budget"),
        ("[1, 2]", "", "halving must be a mapping"),
        ("{rungs: [1, 2], keep: 0.5}", "  adam: {lr: [0.001], set: {epochs: 4}}\n", "set.epochs"),
    ],
)
def test_bad_halving_is_refused_naming_the_field(tmp_path, halving, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(tmp_path / "h.yaml", halving, extra))


def test_halving_needs_a_schedule_that_does_not_depend_on_the_runs_length(tmp_path):
    path = write_sweep(tmp_path / "h.yaml")
    path.write_text(
        path.read_text().replace("batch_size: 128}", "batch_size: 128, lr_schedule: cosine}")
    )
    with pytest.raises(ConfigError, match="only at a constant learning rate"):
        load_sweep(path)


def test_the_best_cells_continue_exactly_and_the_pruned_are_recorded(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path / "h.yaml"))
    out = tmp_path / "store"
    launch_sweep(sweep, out, LOCAL, executor="local", max_parallel=2)

    promotion = store.read_json(rung_store(out, 1) / store.PROMOTION)
    decisions = {(c["arm"], c["lr"]): c["decision"] for c in promotion["cells"]}
    # lr = 1e-4 leaves both at chance after one epoch; the trained cell of each arm goes on.
    assert decisions == {
        ("sgd", 1e-4): "pruned", ("sgd", 0.05): "kept",
        ("lightsam_i", 1e-4): "pruned", ("lightsam_i", 1.0): "kept",
    }  # fmt: skip
    assert promotion["selected_at_epochs"] == 1 and promotion["continued_to_epochs"] == 2
    pruned = [r for c in promotion["cells"] if c["decision"] == "pruned" for r in c["runs"]]
    assert all(store.read_result(out / r)["epochs_completed"] == 1 for r in pruned)

    rung1 = store.read_plan(rung_store(out, 1))
    assert rung1.stage == "rung1" and len(rung1.runs) == 2
    for run_id, stored in rung1.runs.items():
        continued = rung_store(out, 1) / run_id
        assert store.read_continued(continued)["store"] == str(out)
        segments = store.read_environment(continued)
        assert [s["start_epoch"] for s in segments] == [1]  # only the new epoch was trained
        # The run trained to 2 epochs directly, from scratch, elsewhere, with as many threads.
        launch_local([from_dict(dict(stored))], tmp_path / "direct", LOCAL, max_parallel=2)
        direct = tmp_path / "direct" / run_id
        assert without_times(store.read_metrics(continued)) == without_times(
            store.read_metrics(direct)
        )
        assert store.read_result(continued)["test_acc"] == store.read_result(direct)["test_acc"]


def test_a_second_launch_trains_nothing_and_a_rung_waits_for_the_one_before(tmp_path, capsys):
    sweep = load_sweep(write_sweep(tmp_path / "h.yaml"))
    out = tmp_path / "store"
    launch_sweep(sweep, out, LOCAL, executor="local", max_parallel=2)
    capsys.readouterr()
    launch_sweep(sweep, out, LOCAL, executor="local", max_parallel=2)
    said = capsys.readouterr().out
    assert "sweep h: 0 of 4 runs to launch" in said and "sweep h (rung1): 0 of 2 runs" in said

    # A grid run that failed holds the next rung back, saying so; nothing of it is created.
    held = tmp_path / "held"
    first, *others = sweep.runs
    for config in others:
        run(config, held, LOCAL)
    store.write_result(held / first.run_id(), {"status": "failed"})
    launch_sweep(sweep, held, LOCAL, executor="local", max_parallel=2)
    said = capsys.readouterr().out
    assert "rung 1 (2 epochs) waits for rung 0: 1 of 4 runs of the grid" in said
    assert not rung_store(held, 1).exists()


def test_the_report_shows_every_cells_curve_to_the_rung_it_reached(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path / "h.yaml"))
    runs = tmp_path / "runs"
    launch_sweep(sweep, runs / "h", LOCAL, executor="local", max_parallel=2)
    write_report(runs, tmp_path / "figures", tmp_path / "REPORT.md")

    table = pd.read_csv(tmp_path / "figures" / "h" / "halving.csv")
    promotion = store.read_json(rung_store(runs / "h", 1) / store.PROMOTION)
    kept = {r for c in promotion["cells"] if c["decision"] == "kept" for r in c["runs"]}
    assert set(table.loc[table["ending"].eq("complete"), "grid_run_id"]) == kept
    assert (table.loc[table["ending"].eq("complete"), "epochs_reached"] == 2).all()
    assert (table.loc[table["ending"].eq("pruned at 1"), "epochs_reached"] == 1).all()
    assert len(table) == 4 and (tmp_path / "figures" / "h" / "halving.png").exists()
    report = (tmp_path / "REPORT.md").read_text()
    assert "### Successive halving" in report
    assert "continued to 2: SGD 1 of 2, LightSAM-I 1 of 2 cells (keep 0.5 per arm)" in report

    # The screening's windows: at epoch 1 both cells of an arm have a loss, at 2 only the kept.
    figures = tmp_path / "figures" / "h"
    windows = pd.read_csv(figures / "screening_windows.csv")
    assert set(windows["epoch"]) == {1, 2} and (windows["grid_lrs"] == 2).all()
    assert windows.set_index(["arm", "epoch"])["cells"].to_dict() == {
        ("sgd", 1): 2, ("sgd", 2): 1, ("lightsam_i", 1): 2, ("lightsam_i", 2): 1,
    }  # fmt: skip
    # The halving spent every run's wall time; its pick is the kept cell.
    outcome = pd.read_csv(figures / "screening_halving.csv").set_index("arm")
    assert outcome.loc["sgd", "lr"] == 0.05 and outcome.loc["lightsam_i", "lr"] == 1.0
    rung1 = rung_store(runs / "h", 1)
    walls = [store.read_result(rung1 / r)["wall_s"] for r in store.read_plan(rung1).runs]
    walls += [store.read_result(runs / "h" / r)["wall_s"] for c in promotion["cells"]
              if c["decision"] == "pruned" for r in c["runs"]]  # fmt: skip
    assert outcome["device_hours"].sum() == pytest.approx(sum(walls) / 3600)
    # Every grid run's ending: the lr = 1e-4 cells stall at chance and are pruned at rung 1.
    ended = pd.read_csv(figures / "screening_failures.csv")
    assert len(ended) == 4 and set(ended["failure"]) <= set(FAILURES)
    stalled = ended[ended["lr"].eq(1e-4)]
    assert (stalled["failure"] == "stalled").all() and (stalled["ending"] == "pruned at 1").all()
    assert (figures / "screening.png").exists() and (figures / "screening_failures.png").exists()
    assert "### The screening: windows against epochs" in report
    assert "SGD: lr window" in report and "the halving spent" in report
    assert "LightSAM-I, how its 2 runs ended" in report
