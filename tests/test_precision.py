"""``precision: fp16`` in the training loop: a loss scaler, saved in the checkpoint so that a
resumed run continues exactly; and the peak memory in result.json."""

from __future__ import annotations

import torch
from configs import mnist5k_config
from interrupted import killed_after_the_first_epoch

from lightsam import store
from lightsam.train import run


def config(**changes):
    fp16 = {
        "epochs": 2,
        "val_size": 3000,  # 1,000 training images: fp16 on a CPU is slow
        "eval_every": 2,
        "precision": "fp16",
        "optimizer": {"name": "lightsam_iii", "lr": 1e-3, "rho": 1e-4},
    }
    return mnist5k_config(**{**fp16, **changes})


def test_an_fp16_run_trains_and_resumes_with_its_loss_scaler(tmp_path, monkeypatch):
    cfg = config()
    straight = run(cfg, tmp_path / "straight")
    assert straight["status"] == "ok" and straight["test_acc"] > 0.3, straight
    saved = torch.load(tmp_path / "straight" / cfg.run_id() / "checkpoint.pt", weights_only=False)
    steps = 2 * (1000 // 64)
    assert saved["scaler"]["scale"] > 0
    assert saved["scaler"]["_growth_tracker"] <= steps

    killed_after_the_first_epoch(monkeypatch, lambda: run(cfg, tmp_path / "resumed"))
    resumed = run(cfg, tmp_path / "resumed")

    rows = [store.read_metrics(tmp_path / d / cfg.run_id()) for d in ("straight", "resumed")]
    assert [{k: v for k, v in r.items() if k != "wall_s"} for r in rows[0]] == [
        {k: v for k, v in r.items() if k != "wall_s"} for r in rows[1]
    ]
    assert resumed["test_acc"] == straight["test_acc"]
    again = torch.load(tmp_path / "resumed" / cfg.run_id() / "checkpoint.pt", weights_only=False)
    assert again["scaler"] == saved["scaler"]  # the growth tracker counted on from the checkpoint


def test_the_result_records_the_peak_memory(tmp_path):
    result = run(config(precision="fp32", epochs=1), tmp_path)
    assert result["peak_memory_kind"] == "cpu_max_rss"
    # More than the model and the 5,000 images it trains on, less than this machine holds.
    assert 50e6 < result["peak_memory_bytes"] < 1e12
    assert (
        store.read_result(tmp_path / result["run_id"])["peak_memory_bytes"]
        == (result["peak_memory_bytes"])
    )
