"""Transfer scoring on synthetic stores with known answers: targets, time to target in one-pass
epochs, medians over seeds, performance profiles."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from analysis import transfer
from lightsam import store
from lightsam.config import from_dict
from lightsam.plan import Plan

# Per workload and method, each seed's validation accuracy per epoch (None: the run diverged
# after the epochs listed).
CURVES = {
    "w1": {
        "sgd": [[0.5, 0.8, 0.96, 0.96], [0.5, 0.8, 0.96, 0.96]],
        "lightsam_i": [[0.6, 0.96, 0.96, 0.96], [0.6, 0.96, 0.96, 0.96]],
    },
    "w2": {
        "sgd": [[0.2, 0.4, 0.6, 0.7], [0.2, None]],
        "lightsam_i": [[0.5, 0.8, 0.9, 0.9], [0.5, 0.7, 0.9, 0.9]],
    },
}


def write_store(path: Path, curves: dict[str, list[list[float | None]]]) -> None:
    configs = []
    for name, seeds in curves.items():
        rho = {"rho": 0.05} if name == "lightsam_i" else {}
        for seed, curve in enumerate(seeds):
            config = from_dict({
                "dataset": "mnist5k", "model": "lenet5", "epochs": 4, "batch_size": 64,
                "val_size": 500, "seed": seed, "optimizer": {"name": name, "lr": 0.1, **rho},
            })  # fmt: skip
            configs.append(config)
            run_dir = path / config.run_id()
            accs = [a for a in curve if a is not None]
            diverged = None in curve
            store.write_config(run_dir, config.to_dict())
            store.write_metrics(
                run_dir, [{"epoch": e + 1, "val_acc": a} for e, a in enumerate(accs)]
            )
            store.write_result(
                run_dir,
                {
                    "run_id": config.run_id(), "status": "diverged" if diverged else "ok",
                    "num_classes": 10, "val_acc": None if diverged else accs[-1],
                    "test_acc": None if diverged else accs[-1], "epochs_completed": len(accs),
                },
            )  # fmt: skip
    plan = Plan("t", "t.yaml", "0", {c.run_id(): c.to_dict() for c in configs})
    store.write_plan(path, plan)


@pytest.fixture
def stores(tmp_path):
    paths = {}
    for workload, curves in CURVES.items():
        paths[workload] = tmp_path / workload
        write_store(paths[workload], curves)
    return paths


def test_targets_and_times_to_target_are_the_known_ones(stores):
    table = transfer.curves(stores)
    target = transfer.targets(table)
    # The best median final validation accuracy, less half a point.
    assert target.to_dict() == pytest.approx({"w1": 0.955, "w2": 0.895})
    times = transfer.method_times(transfer.seed_times(table, target))
    # SGD: one pass per step; LightSAM-I: two. The diverged SGD seed never arrives, nor does
    # the other on w2, so SGD's median there is infinite.
    assert times.loc["w1", "sgd"] == 3 and times.loc["w1", "lightsam_i"] == 2 * 2
    assert times.loc["w2", "lightsam_i"] == 2 * 3 and math.isinf(times.loc["w2", "sgd"])


def test_performance_profiles_count_wins_then_workloads_within_tau(stores):
    table = transfer.curves(stores)
    times = transfer.method_times(transfer.seed_times(table, transfer.targets(table)))
    profile = transfer.performance_profile(times, [1.0, 4 / 3, 100.0])
    assert profile["sgd"].tolist() == [0.5, 0.5, 0.5]  # wins w1, never solves w2
    assert profile["lightsam_i"].tolist() == [0.5, 1.0, 1.0]  # w1 at 4/3 of SGD's time


def test_a_workload_no_method_solves_counts_for_none():
    times = pd.DataFrame({"a": [1.0, math.inf], "b": [2.0, math.inf]}, index=["w1", "w2"])
    profile = transfer.performance_profile(times, [1.0, 2.0])
    assert profile["a"].tolist() == [0.5, 0.5] and profile["b"].tolist() == [0.0, 0.5]


def test_the_transfer_figure_and_tables_are_written(stores, tmp_path):
    paths = transfer.make(stores, tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert names == sorted(
        ["transfer_times.csv", "transfer_profile.csv", "transfer_profile.png",
         "transfer_profile.pdf"]
    )  # fmt: skip
    seeds = pd.read_csv(tmp_path / "out" / "transfer_times.csv")
    assert len(seeds) == 8 and set(seeds["target"].round(3)) == {0.955, 0.895}
