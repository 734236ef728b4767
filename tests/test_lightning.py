"""The README's PyTorch Lightning recipe, as written: it trains, and a run resumed from a
Lightning checkpoint ends with exactly the weights of an uninterrupted one."""

from __future__ import annotations

import logging

import lightning.pytorch as pl
import pytest
import torch
from readme_code import python_blocks
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EPOCHS = 4


@pytest.fixture(scope="module")
def module_class():
    namespace: dict = {}
    (code,) = python_blocks("### PyTorch Lightning")
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["SharpnessAwareModule"]


@pytest.fixture(autouse=True)
def quiet_lightning():
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def loader() -> DataLoader:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 10, generator=gen)
    y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 1).long()
    return DataLoader(TensorDataset(x, y), batch_size=16)


def network(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))


def trainer(max_epochs: int) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def state(module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_the_readme_lightning_module_trains_and_resumes_exactly(module_class, tmp_path):
    data = loader()
    straight = module_class(network(seed=0))
    before = state(straight)
    trainer(EPOCHS).fit(straight, data)
    optimizer = straight.optimizers().optimizer
    assert optimizer.state and optimizer.perturbation_norm > 0
    steps = EPOCHS * len(data)
    assert straight.trainer.global_step == steps  # one optimizer step per batch, not two
    bn = straight.model[1]
    assert bn.num_batches_tracked.item() == steps  # updated by the first pass only
    assert straight.lr_schedulers().last_epoch == steps
    assert any(not torch.equal(before[k], v) for k, v in state(straight).items())

    interrupted = module_class(network(seed=0))
    first = trainer(EPOCHS // 2)
    first.fit(interrupted, data)
    checkpoint = tmp_path / "half.ckpt"
    first.save_checkpoint(checkpoint)

    resumed = module_class(network(seed=1))  # other weights: everything comes from the file
    trainer(EPOCHS).fit(resumed, data, ckpt_path=checkpoint)
    assert resumed.trainer.global_step == steps
    expected = state(straight)
    for key, value in state(resumed).items():
        assert torch.equal(value, expected[key]), key
    torch.testing.assert_close(
        resumed.optimizers().optimizer.state_dict()["state"],
        optimizer.state_dict()["state"],
        rtol=0,
        atol=0,
    )
