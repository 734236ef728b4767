"""The confirm stage's analysis on a synthetic store with known answers: the selected cell is
the one on the most seeds, its base the same optimizer at rho = 0 with twice the epochs, every
contrast paired by seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis import confirm
from analysis.results import collect
from lightsam import store
from lightsam.config import from_dict
from lightsam.plan import Plan

SEEDS = (1, 2, 3, 4, 5)


def config(name: str, lr: float, rho: float, epochs: int, seed: int):
    return from_dict({
        "dataset": "mnist5k", "model": "lenet5", "epochs": epochs, "batch_size": 64,
        "val_size": 500, "seed": seed, "optimizer": {"name": name, "lr": lr, "rho": rho},
    })  # fmt: skip


def write_confirm(path: Path) -> None:
    runs = []
    for seed in SEEDS:
        runs += [
            (config("lightsam_i", 1.0, 0.05, 2, seed), 0.90 + 0.001 * seed),  # selected
            (config("lightsam_i", 1.0, 0.0, 4, seed), 0.89 + 0.001 * seed),  # its base
            (config("adagrad_norm_sam", 1.0, 0.05, 2, seed), 0.90 + 0.002 * seed),
        ]
    runs += [(config("lightsam_i", 0.3, 0.05, 2, seed), 0.5) for seed in SEEDS[:3]]  # the block
    for cfg, acc in runs:
        store.write_config(path / cfg.run_id(), cfg.to_dict())
        store.write_result(path / cfg.run_id(), {
            "run_id": cfg.run_id(), "status": "ok", "num_classes": 10, "val_acc": acc,
            "test_acc": acc,
        })  # fmt: skip
    plan = Plan("c", "c.yaml", "0", {c.run_id(): c.to_dict() for c, _ in runs}, stage="confirm")
    store.write_plan(path, plan)


def test_each_method_is_compared_with_its_base_and_one_change_at_a_time(tmp_path):
    write_confirm(tmp_path / "store")
    runs = collect(tmp_path / "store").runs
    cells = confirm.selected_cells(runs).set_index("optimizer", drop=False)
    chosen = cells[cells["rho"].gt(0)].loc["lightsam_i"]
    assert (chosen["lr"], chosen["seeds"]) == (1.0, 5)  # not the block's 3-seed cell
    assert chosen["test_mean"] == pytest.approx(0.903)

    table = confirm.contrasts(runs).set_index("comparison")
    matched = table.loc[confirm.MATCHED]
    # +0.01 on every seed: no spread, both intervals at +0.01, higher.
    assert matched["pairs"] == 5 and matched["mean"] == pytest.approx(0.01)
    assert matched["t_low"] == pytest.approx(0.01) and matched["verdict"] == "higher"
    ascent = table.loc[confirm.ASCENT]
    # -0.001 x seed: mean -0.003, std 0.00158, t-interval -0.003 +- 2.776 x 0.00158 / sqrt 5.
    assert ascent["mean"] == pytest.approx(-0.003)
    assert ascent["t_high"] == pytest.approx(-0.003 + 2.7764 * 0.0015811 / 5**0.5, abs=1e-6)
    assert ascent["verdict"] == "lower"

    confirm.make(collect(tmp_path / "store"), tmp_path / "out")
    said = confirm.summary(tmp_path / "out")
    selected = "LightSAM-I (epochs=2) at lr 1, rho 0.05, 2 epochs: test accuracy 90.30%"
    assert any(s.startswith(selected) for s in said)
    assert any("(its base (rho = 0) at twice the epochs): +1.00 points" in s for s in said)
    assert any("(only the ascent differs): -0.30 points" in s and s.endswith("lower.")
               for s in said)  # fmt: skip
