"""The nine-settings table on a synthetic store with known answers: every setting a row, the
paper's summary computed from them, a diverged seed counted as chance."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from analysis import table_nine
from analysis.results import collect
from lightsam import store
from lightsam.config import from_dict
from lightsam.plan import Plan

LRS, RHOS = (0.3, 1.0, 3.0), (0.01, 0.03, 0.1)


def accuracy(i: int, j: int, seed: int) -> float:
    return 0.90 + 0.01 * i - 0.02 * j + 0.001 * seed


def write_block(path: Path) -> None:
    configs = []
    for (i, lr), (j, rho), seed in itertools.product(enumerate(LRS), enumerate(RHOS), range(3)):
        config = from_dict({
            "dataset": "mnist5k", "model": "lenet5", "epochs": 1, "batch_size": 64,
            "val_size": 500, "seed": seed,
            "optimizer": {"name": "lightsam_i", "lr": lr, "rho": rho},
        })  # fmt: skip
        configs.append(config)
        diverged = (i, j, seed) == (2, 2, 0)  # one seed of the largest lr and rho
        acc = accuracy(i, j, seed)
        store.write_config(path / config.run_id(), config.to_dict())
        store.write_result(path / config.run_id(), {
            "run_id": config.run_id(), "status": "diverged" if diverged else "ok",
            "num_classes": 10, "val_acc": None if diverged else acc,
            "test_acc": None if diverged else acc,
        })  # fmt: skip
    store.write_plan(path, Plan("nine", "n.yaml", "0", {c.run_id(): c.to_dict() for c in configs}))


def test_every_setting_is_a_row_and_the_summary_is_over_their_means(tmp_path):
    write_block(tmp_path / "store")
    paths = table_nine.make(collect(tmp_path / "store"), tmp_path / "out")
    table = table_nine.settings(collect(tmp_path / "store"))
    assert len(table) == 9
    means = {}
    for (i, lr), (j, rho) in itertools.product(enumerate(LRS), enumerate(RHOS)):
        seeds = [accuracy(i, j, s) for s in range(3)]
        if (i, j) == (2, 2):
            seeds[0] = 0.1  # chance, 10 classes
        means[(lr, rho)] = np.mean(seeds)
        row = table[(table["lr"] == lr) & (table["rho"] == rho)].iloc[0]
        assert row["test_mean"] == pytest.approx(means[(lr, rho)])
    (summary,) = table_nine.summaries(table).to_dict("records")
    assert summary["settings"] == 9
    assert summary["mean"] == pytest.approx(np.mean(list(means.values())))
    assert summary["std"] == pytest.approx(np.std(list(means.values()), ddof=1))
    assert (summary["worst_lr"], summary["worst_rho"]) == (3.0, 0.1)
    text = (tmp_path / "out" / "nine_settings.md").read_text()
    assert text.count("| LightSAM-I | ") == 9 and "(1 diverged, at chance)" in text
    assert f"**{100 * summary['mean']:.2f} ± {100 * summary['std']:.2f}**" in text
    assert {p.name for p in paths} == {
        "nine_settings.csv", "nine_settings_summary.csv", "nine_settings.md"
    }  # fmt: skip
