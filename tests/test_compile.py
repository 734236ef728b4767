"""A ``torch.compile``-d model in the two-pass step: the eager trajectory, and one graph per
BatchNorm mode (with and without the running-statistics update), each compiled once."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend

from lightsam import TrainStep, create_optimizer

STEPS = 4


def network(batchnorm: bool) -> nn.Module:
    torch.manual_seed(0)
    norm = [nn.BatchNorm1d(16)] if batchnorm else []
    return nn.Sequential(nn.Linear(6, 16), *norm, nn.ReLU(), nn.Linear(16, 3))


def train(model: nn.Module, name: str, counter=None) -> list[int]:
    """``STEPS`` steps; the number of compiled graphs after each."""
    hp = {"lr": 0.01} | ({"rho": 1e-3} if name != "sgd" else {})
    step = TrainStep(model, create_optimizer(name, model.parameters(), **hp), nn.CrossEntropyLoss())
    gen = torch.Generator().manual_seed(1)
    graphs = []
    for _ in range(STEPS):
        step(torch.randn(12, 6, generator=gen), torch.randint(0, 3, (12,), generator=gen))
        graphs.append(counter.frame_count if counter is not None else 0)
    return graphs


@pytest.mark.parametrize(("batchnorm", "graphs"), [(True, 2), (False, 1)])
@pytest.mark.parametrize("name", ["lightsam_iii", "sgd_sam", "sgd"])
def test_a_compiled_model_follows_the_eager_trajectory_without_recompiling(name, batchnorm, graphs):
    if name == "sgd":
        graphs = 1  # one pass: BatchNorm is never frozen
    torch._dynamo.reset()
    # aot_eager compiles forward and backward through AOTAutograd and needs no C++ compiler.
    counter = CompileCounterWithBackend("aot_eager")
    eager, compiled = network(batchnorm), network(batchnorm)
    train(eager, name)
    assert train(torch.compile(compiled, backend=counter), name, counter) == [graphs] * STEPS
    for key, value in compiled.state_dict().items():
        torch.testing.assert_close(value, eager.state_dict()[key], rtol=1e-6, atol=1e-7)
