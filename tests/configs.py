"""The small LeNet-5-on-mnist5k run config that the training tests start from."""

from __future__ import annotations

from lightsam.config import Config, from_dict

BASE = {
    "dataset": "mnist5k",
    "model": "lenet5",
    "epochs": 1,
    "batch_size": 64,
    "val_size": 500,
    "optimizer": {"name": "lightsam_i", "lr": 1.0, "rho": 0.05},
}


def mnist5k_config(**changes) -> Config:
    """One epoch of LightSAM-I on mnist5k, with ``changes`` to its top-level fields."""
    return from_dict({**BASE, **changes})
