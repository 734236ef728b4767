"""The two-pass step: BatchNorm statistics updated once per step, clipping of the descent."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lightsam import create_optimizer
from lightsam.step import TrainStep, frozen_batchnorm_statistics


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def batch():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(16, 6, generator=gen), torch.randint(0, 3, (16,), generator=gen)


@pytest.mark.parametrize("name", ["sgd_sam", "lightsam_i", "lightsam_iii", "sgd"])
def test_batchnorm_statistics_are_updated_once_per_step_from_the_first_pass(name):
    model = bn_model()
    reference = copy.deepcopy(model)
    hp = {"lr": 0.5} | ({"rho": 0.5} if name != "sgd" else {})
    step = TrainStep(model, create_optimizer(name, model.parameters(), **hp), nn.CrossEntropyLoss())
    x, y = batch()
    reference(x)  # one training-mode forward at the current weights
    step(x, y)
    bn, expected = model[1], reference[1]
    assert bn.num_batches_tracked.item() == 1
    torch.testing.assert_close(bn.running_mean, expected.running_mean, rtol=0, atol=0)
    torch.testing.assert_close(bn.running_var, expected.running_var, rtol=0, atol=0)
    assert bn.track_running_stats  # restored after the second pass


def test_frozen_batchnorm_still_normalises_with_batch_statistics():
    model = bn_model().train()
    x, _ = batch()
    before = model[1].running_mean.clone()
    with frozen_batchnorm_statistics(model):
        frozen = model(x)
    assert torch.equal(model[1].running_mean, before)
    torch.testing.assert_close(frozen, model(x))  # same batch statistics as a normal pass


def test_clipping_applies_to_the_descent_gradient():
    model = bn_model()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    optimizer = create_optimizer("sgd_sam", model.parameters(), lr=1.0, rho=0.05)
    TrainStep(model, optimizer, nn.CrossEntropyLoss(), grad_clip=1e-3)(*batch())
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    # Plain SGD with lr 1 moves the weights by exactly the clipped descent gradient.
    torch.testing.assert_close((after - before).norm().item(), 1e-3, rtol=1e-4, atol=0)


def test_step_returns_the_loss_at_the_current_weights():
    model = bn_model()
    x, y = batch()
    expected = nn.functional.cross_entropy(copy.deepcopy(model)(x), y)
    optimizer = create_optimizer("lightsam_ii", model.parameters(), lr=0.1, rho=0.01)
    loss, logits = TrainStep(model, optimizer, nn.CrossEntropyLoss())(x, y)
    torch.testing.assert_close(loss, expected.detach())
    assert logits.shape == (16, 3) and not loss.requires_grad


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()


@pytest.mark.parametrize("accumulation", [3, 40])  # 16 samples as (6, 5, 5), or 16 of one
@pytest.mark.parametrize("name", ["sgd", "sgd_sam", "lightsam_i", "lightsam_ii", "lightsam_iii"])
def test_accumulation_equals_one_large_batch(name, accumulation):
    hp = {"lr": 0.1} | ({"rho": 0.01} if name != "sgd" else {})
    gen = torch.Generator().manual_seed(2)
    data = [
        (torch.randn(16, 6, generator=gen, dtype=torch.float64), torch.randint(0, 3, (16,)))
        for _ in range(3)
    ]
    runs = []
    for k in (1, accumulation):
        model = mlp()
        optimizer = create_optimizer(name, model.parameters(), **hp)
        step = TrainStep(model, optimizer, nn.CrossEntropyLoss(), accumulation=k)
        outputs = [step(x, y) for x, y in data]
        runs.append((outputs, [p.detach() for p in model.parameters()], optimizer.state_dict()))
    (whole, whole_weights, whole_opt), (split, split_weights, split_opt) = runs
    torch.testing.assert_close(split, whole)  # losses and logits at the current weights
    torch.testing.assert_close(split_weights, whole_weights)
    torch.testing.assert_close(split_opt["state"], whole_opt["state"])


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"accumulation": 0}, "accumulation"),
        ({"accumulation": 2.0}, "accumulation"),
        ({"perturbation": "none"}, "perturbation"),
    ],
)
def test_bad_arguments_are_named(kwargs, argument):
    model = mlp()
    optimizer = create_optimizer("sgd_sam", model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=f"^{argument} must"):
        TrainStep(model, optimizer, nn.CrossEntropyLoss(), **kwargs)


SHARPNESS_AWARE = [
    "sgd_sam", "asam", "adasam", "lightsam_i", "lightsam_ii", "lightsam_iii", "adam_sam",
    "adagrad_sam", "adagrad_norm_sam", "lightsam_i_sgd",
]  # fmt: skip


@pytest.mark.parametrize("name", SHARPNESS_AWARE)
def test_at_rho_zero_the_step_takes_one_pass_and_is_the_two_pass_step(name):
    """The second pass at x_t + 0 would recompute s_t: the step descends along it instead, and
    leaves weights, optimizer state and BatchNorm statistics exactly as two passes do."""
    gen = torch.Generator().manual_seed(3)
    data = [(torch.randn(16, 6, generator=gen), torch.randint(0, 3, (16,))) for _ in range(4)]
    loss_fn = nn.CrossEntropyLoss()
    models, optimizers = [bn_model(), bn_model()], []
    for model in models:
        optimizers.append(create_optimizer(name, model.parameters(), lr=0.05, rho=0.0))
    passes = []
    models[0].register_forward_hook(lambda *_: passes.append(1))
    step = TrainStep(models[0], optimizers[0], loss_fn)
    two_pass, reference = [], optimizers[1]
    for x, y in data:
        step(x, y)
        reference.zero_grad()
        loss_fn(models[1](x), y).backward()
        reference.first_step(zero_grad=True)
        with frozen_batchnorm_statistics(models[1]):
            loss_fn(models[1](x), y).backward()
        reference.second_step(zero_grad=True)
        two_pass.append(reference.perturbation_norm)
    assert len(passes) == len(data)
    assert not optimizers[0].perturbs and not reference.perturbs
    assert all(norm.item() == 0 for norm in two_pass)
    torch.testing.assert_close(models[0].state_dict(), models[1].state_dict(), rtol=0, atol=0)
    torch.testing.assert_close(
        optimizers[0].state_dict()["state"], reference.state_dict()["state"], rtol=0, atol=0
    )


def test_a_radius_in_any_group_takes_two_passes():
    model = bn_model()
    groups = [{"params": model[0].parameters(), "rho": 0.0}, {"params": model[3].parameters()}]
    optimizer = create_optimizer("lightsam_i", groups, lr=0.05, rho=0.1)
    passes = []
    model.register_forward_hook(lambda *_: passes.append(1))
    TrainStep(model, optimizer, nn.CrossEntropyLoss())(*batch())
    assert optimizer.perturbs and len(passes) == 2
