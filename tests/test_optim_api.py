"""What users of a torch.optim optimizer rely on: checkpoints, schedulers, errors, the two-step
protocol's restore, half precision."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch import nn

import lightsam
from lightsam import OPTIMIZERS, create_optimizer
from lightsam.optim import optimizer_entry

HPARAMS = {
    "sgd": {"lr": 0.05, "momentum": 0.9},
    "adam": {"lr": 1e-2},
    "adamw": {"lr": 1e-2},
    "adagrad": {"lr": 0.1},
    "adagrad_norm": {"lr": 0.1},
    "sgd_sam": {"lr": 0.05, "rho": 0.05, "momentum": 0.9, "weight_decay": 1e-3},
    "asam": {"lr": 0.05, "rho": 0.5, "momentum": 0.9},
    "adasam": {"lr": 1e-2, "rho": 0.05},
    "lightsam_i": {"lr": 0.1, "rho": 0.05},
    "lightsam_ii": {"lr": 1e-2, "rho": 1e-3},
    "lightsam_iii": {"lr": 1e-2, "rho": 1e-3, "bias_correction": True},
    "adam_sam": {"lr": 1e-2, "rho": 0.05},
    "adamw_sam": {"lr": 1e-2, "rho": 0.05},
    "adagrad_sam": {"lr": 0.1, "rho": 0.05},
    "adagrad_norm_sam": {"lr": 0.1, "rho": 0.05},
    "lightsam_i_sgd": {"lr": 0.05, "rho": 0.05, "momentum": 0.9},
    "sgd_sam_decay": {"lr": 0.05, "rho": 0.05, "momentum": 0.9},
}


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + step)
    return torch.randn(12, 8, generator=gen), torch.randint(0, 3, (12,), generator=gen)


def take_steps(model: nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    for step in steps:
        x, y = batch(step)

        def closure(x=x, y=y):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        opt.step(closure)


def test_registry_covers_the_study():
    assert set(OPTIMIZERS) == set(HPARAMS)


@pytest.mark.parametrize("name", list(HPARAMS))
def test_resumed_optimizer_continues_the_same_trajectory_bit_for_bit(name):
    straight = make_model()
    opt = create_optimizer(name, straight.parameters(), **HPARAMS[name])
    take_steps(straight, opt, range(6))

    first_half = make_model()
    opt = create_optimizer(name, first_half.parameters(), **HPARAMS[name])
    take_steps(first_half, opt, range(3))
    buffer = io.BytesIO()
    torch.save({"model": first_half.state_dict(), "optim": opt.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer)

    resumed = make_model(seed=1)  # different initial weights, overwritten by the checkpoint
    resumed.load_state_dict(checkpoint["model"])
    opt = create_optimizer(name, resumed.parameters(), **HPARAMS[name])
    opt.load_state_dict(checkpoint["optim"])
    take_steps(resumed, opt, range(3, 6))

    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_sam_checkpoint_carries_the_base_optimizers_momentum():
    model = make_model()
    opt = lightsam.SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
    take_steps(model, opt, range(2))
    state = opt.state_dict()["state"]
    assert len(state) == 4 and all("momentum_buffer" in s for s in state.values())
    fresh = lightsam.SAM(make_model().parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
    fresh.load_state_dict(opt.state_dict())
    # After loading, the base optimizer still shares the groups and state it steps with.
    assert fresh.base_optimizer.state is fresh.state
    assert fresh.base_optimizer.param_groups is fresh.param_groups


OURS = [name for name, entry in OPTIMIZERS.items() if entry.cls.__module__.startswith("lightsam")]


def trained_state(name: str) -> dict:
    model = make_model()
    opt = create_optimizer(name, model.parameters(), **HPARAMS[name])
    take_steps(model, opt, range(2))
    return opt.state_dict()


def untagged(state: dict) -> dict:
    return {k: v for k, v in state.items() if k != lightsam.optim.base.IDENTITY_KEY}


@pytest.mark.parametrize("target", OURS)
def test_a_state_dict_of_another_optimizer_or_variant_is_refused_naming_both(target):
    identity = create_optimizer(target, make_model().parameters(), **HPARAMS[target]).identity
    for source in HPARAMS:
        if source == target:
            continue
        opt = create_optimizer(target, make_model().parameters(), **HPARAMS[target])
        with pytest.raises(ValueError, match="cannot be loaded into") as error:
            opt.load_state_dict(trained_state(source))
        assert identity in str(error.value)
        if source in OURS:
            assert trained_state(source)[lightsam.optim.base.IDENTITY_KEY] in str(error.value)


@pytest.mark.parametrize(
    ("source", "target", "named"),
    [
        ("lightsam_iii", "lightsam_ii", "another variant"),
        ("lightsam_ii", "lightsam_i", "another variant"),
        ("lightsam_i", "lightsam_iii", "another variant"),
        ("adam", "lightsam_iii", "torch.optim.Adam"),
        ("sgd", "sgd_sam", "torch.optim.SGD"),
        ("sgd_sam", "lightsam_i", "another optimizer"),
        ("adagrad", "adagrad_norm", "torch.optim.Adagrad"),
    ],
)
def test_an_untagged_state_dict_of_another_optimizer_is_refused_by_its_contents(
    source, target, named
):
    opt = create_optimizer(target, make_model().parameters(), **HPARAMS[target])
    with pytest.raises(ValueError, match=named):
        opt.load_state_dict(untagged(trained_state(source)))


@pytest.mark.parametrize("name", OURS)
def test_an_untagged_state_dict_of_the_same_optimizer_still_resumes_exactly(name):
    """Checkpoints written before state dicts were tagged keep resuming."""
    straight = make_model()
    opt = create_optimizer(name, straight.parameters(), **HPARAMS[name])
    take_steps(straight, opt, range(4))
    resumed = make_model()
    opt = create_optimizer(name, resumed.parameters(), **HPARAMS[name])
    take_steps(resumed, opt, range(2))
    saved = untagged(opt.state_dict())
    opt = create_optimizer(name, resumed.parameters(), **HPARAMS[name])
    opt.load_state_dict(saved)
    take_steps(resumed, opt, range(2, 4))
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def two_step(model: nn.Module, opt: torch.optim.Optimizer, step: int) -> None:
    x, y = batch(step)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.first_step(zero_grad=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.second_step(zero_grad=True)


@pytest.mark.parametrize("name", ["sgd_sam", "lightsam_i", "lightsam_iii"])
def test_lr_scheduler_drives_the_descent(name):
    model = make_model()
    opt = create_optimizer(name, model.parameters(), **HPARAMS[name])
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "lr_scheduler.step() before optimizer.step()"
        two_step(model, opt, 0)
        scheduler.step()
    assert [g["lr"] for g in opt.param_groups] == [0.0]
    # The scheduled lr of 0 reached the update: the weights no longer move.
    before = [p.detach().clone() for p in model.parameters()]
    two_step(model, opt, 1)
    for a, b in zip(before, model.parameters(), strict=True):
        assert torch.equal(a, b)


# -- the restore --------------------------------------------------------------------------------


class Branchy(nn.Module):
    """``skipped`` takes part in the first pass only, as a stochastically dropped block would."""

    def __init__(self) -> None:
        super().__init__()
        self.kept = nn.Linear(4, 2)
        self.skipped = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, use_skipped: bool) -> torch.Tensor:
        out = self.kept(x)
        return out + self.skipped(x) if use_skipped else out


@pytest.mark.parametrize("name", [n for n, e in OPTIMIZERS.items() if e.sharpness_aware])
def test_parameter_without_a_second_gradient_is_restored_exactly(name):
    torch.manual_seed(0)
    model = Branchy()
    opt = create_optimizer(name, model.parameters(), **HPARAMS[name])
    x = torch.randn(5, 4)
    for _ in range(3):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        model(x, use_skipped=True).square().mean().backward()
        opt.first_step(zero_grad=True)
        assert not torch.equal(model.skipped.weight, before["skipped.weight"])  # was perturbed
        model(x, use_skipped=False).square().mean().backward()
        assert model.skipped.weight.grad is None
        opt.second_step(zero_grad=True)
        assert torch.equal(model.skipped.weight, before["skipped.weight"])
        assert torch.equal(model.skipped.bias, before["skipped.bias"])
        assert not torch.equal(model.kept.weight, before["kept.weight"])


# -- errors -------------------------------------------------------------------------------------

BAD_ARGUMENTS = [
    ("lightsam_i", {"lr": 0.0, "rho": 0.1}, "lr"),
    ("lightsam_ii", {"lr": -1.0, "rho": 0.1}, "lr"),
    ("lightsam_iii", {"lr": 0.1, "rho": -0.1}, "rho"),
    ("lightsam_ii", {"lr": 0.1, "rho": 0.1, "eps": 0.0}, "eps"),
    ("lightsam_iii", {"lr": 0.1, "rho": 0.1, "betas": (0.9, 1.0)}, "betas"),
    ("lightsam_iii", {"lr": 0.1, "rho": 0.1, "betas": (-0.1, 0.9)}, "betas"),
    ("lightsam_i", {"lr": 0.1, "rho": 0.1, "weight_decay": -1.0}, "weight_decay"),
    ("sgd_sam", {"lr": 0.1, "rho": -0.05}, "rho"),
    ("asam", {"lr": 0.1, "rho": 0.5, "asam_eta": -1.0}, "asam_eta"),
    ("adasam", {"lr": 0.0, "rho": 0.05}, "lr"),
    ("adasam", {"lr": 0.1, "rho": 0.05, "betas": (1.0, 0.9)}, "betas"),
    ("adagrad_norm", {"lr": -0.1}, "lr"),
    ("adagrad_norm", {"lr": 0.1, "eps": -1.0}, "eps"),
    ("sgd_sam", {"lr": 0.1, "rho": 0.05, "momentun": 0.9}, "momentun"),
]


@pytest.mark.parametrize(("name", "hp", "argument"), BAD_ARGUMENTS)
def test_invalid_argument_is_named(name, hp, argument):
    with pytest.raises(ValueError, match=argument):
        create_optimizer(name, make_model().parameters(), **hp)


def test_invalid_argument_in_a_param_group_is_named():
    model = make_model()
    groups = [{"params": model[0].parameters()}, {"params": model[2].parameters(), "rho": -1.0}]
    with pytest.raises(ValueError, match="rho"):
        lightsam.LightSAM(groups, "adam", lr=0.1, rho=0.1)
    with pytest.raises(ValueError, match="rho"):
        lightsam.SAM(groups, rho=0.1, lr=0.1)


def test_unknown_variant_lists_the_choices():
    with pytest.raises(ValueError, match=r"variant.*adagrad_norm, adagrad, adam"):
        lightsam.LightSAM(make_model().parameters(), "sgd", lr=0.1, rho=0.1)


def test_unknown_optimizer_lists_the_names():
    with pytest.raises(ValueError, match="lightsam_iii") as info:
        create_optimizer("lightsam_iv", make_model().parameters(), lr=0.1)
    assert all(name in str(info.value) for name in OPTIMIZERS)


def test_protocol_errors_say_what_to_call():
    model = make_model()
    opt = create_optimizer("lightsam_ii", model.parameters(), lr=0.1, rho=0.01)
    with pytest.raises(RuntimeError, match="closure"):
        opt.step()
    with pytest.raises(RuntimeError, match="first_step"):
        opt.second_step()
    x, y = batch(0)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.first_step()
    with pytest.raises(RuntimeError, match="second_step"):
        opt.first_step()
    with pytest.raises(RuntimeError, match="second_step"):
        opt.state_dict()
    opt.second_step()
    opt.state_dict()


def test_step_returns_the_loss_at_the_current_weights():
    model = make_model()
    opt = create_optimizer("sgd_sam", model.parameters(), lr=0.1, rho=0.5)
    x, y = batch(0)
    losses = []

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        losses.append(loss.detach())
        return loss

    with torch.no_grad():
        expected = nn.functional.cross_entropy(model(x), y)
    returned = opt.step(closure)
    assert len(losses) == 2 and not torch.equal(losses[0], losses[1])
    assert torch.equal(returned.detach(), expected)


def test_sharpness_aware_flag():
    assert {n for n, e in OPTIMIZERS.items() if e.sharpness_aware} == {
        "sgd_sam",
        "asam",
        "adasam",
        "lightsam_i",
        "lightsam_ii",
        "lightsam_iii",
        "adam_sam",
        "adamw_sam",
        "adagrad_sam",
        "adagrad_norm_sam",
        "lightsam_i_sgd",
        "sgd_sam_decay",
    }
    assert optimizer_entry("asam").hyperparameters >= {"lr", "rho", "momentum", "asam_eta"}


# -- half precision -----------------------------------------------------------------------------


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "per_tensor"])
@pytest.mark.parametrize("name", ["lightsam_i", "lightsam_ii", "lightsam_iii", "adasam"])
def test_statistics_of_half_precision_parameters_are_float32(name, foreach):
    params = [torch.zeros(1000, dtype=torch.float16, requires_grad=True)]
    opt = create_optimizer(name, params, lr=1e-3, rho=1e-3, foreach=foreach)
    for _ in range(2):
        # ||g||^2 = 1000 * 300^2 = 9e7 overflows float16 (max 65504); float32 holds it.
        params[0].grad = torch.full_like(params[0], 300.0)
        opt.first_step()
        params[0].grad = torch.full_like(params[0], 300.0)
        opt.second_step()
    assert torch.isfinite(params[0]).all() and params[0].abs().max() > 0
    tensors = [v for v in opt.state[params[0]].values() if isinstance(v, torch.Tensor)]
    assert tensors and all(t.dtype == torch.float32 for t in tensors)

    fresh = create_optimizer(name, params, lr=1e-3, rho=1e-3, foreach=foreach)
    fresh.load_state_dict(opt.state_dict())  # torch would cast the statistics to float16
    for key, value in opt.state[params[0]].items():
        if isinstance(value, torch.Tensor):
            assert fresh.state[params[0]][key].dtype == torch.float32
            assert torch.equal(fresh.state[params[0]][key], value)


@pytest.mark.parametrize("name", ["lightsam_i", "adagrad_norm"])
def test_an_empty_first_param_group_is_fine(name):
    model = make_model()
    groups = [{"params": []}, {"params": list(model.parameters())}]
    opt = create_optimizer(name, groups, **HPARAMS[name])
    take_steps(model, opt, range(2))
    assert all(torch.isfinite(p).all() for p in model.parameters())


SHARPNESS_AWARE = [name for name in HPARAMS if OPTIMIZERS[name].sharpness_aware]


@pytest.mark.parametrize("name", SHARPNESS_AWARE)
def test_complex_parameters_are_refused_at_construction(name):
    real = nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="takes real parameters; got a complex one of shape"):
        create_optimizer(
            name, [real, nn.Parameter(torch.zeros(2, dtype=torch.cfloat))], **HPARAMS[name]
        )
    opt = create_optimizer(name, [real], **HPARAMS[name])
    with pytest.raises(ValueError, match="complex"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2, dtype=torch.cdouble))]})


@pytest.mark.parametrize("name", SHARPNESS_AWARE)
def test_sparse_gradients_are_refused_naming_the_parameter(name):
    embedding = nn.Embedding(10, 4, sparse=True)
    opt = create_optimizer(name, embedding.parameters(), **HPARAMS[name])
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match=r"sparse gradients \(a parameter of shape \(10, 4\)\)"):
        opt.first_step()


def test_a_closure_that_computes_no_gradient_is_an_error():
    model = make_model()
    opt = create_optimizer("lightsam_i", model.parameters(), lr=0.1, rho=0.05)
    x, y = batch(0)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(RuntimeError, match=r"the closure computed no gradient: .*backward\(\)"):
        opt.step(lambda: nn.functional.cross_entropy(model(x), y))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert not opt.is_perturbed


def test_the_default_path_on_cpu_is_multi_tensor_only_for_groups_of_small_tensors():
    limit = lightsam.optim.base.CPU_FOREACH_MAX_NUMEL
    small, large = torch.zeros(limit), torch.zeros(limit + 1)
    resolve = lightsam.optim.base.resolve_foreach
    assert resolve(None, [small, small]) is True
    assert resolve(None, [small, large]) is False
    assert resolve(None, []) is False
    assert resolve(False, [small]) is False and resolve(True, [large]) is True


@pytest.mark.parametrize("name", sorted(HPARAMS))
def test_on_cpu_both_paths_give_the_same_floats(name):
    """On CPU torch's multi-tensor kernels loop over its per-tensor ones: the default path of a
    group of small tensors (multi-tensor) trains float32 weights bit for bit as the per-tensor
    path does, so the size rule of ``resolve_foreach`` changes no result."""
    assert lightsam.optim.base.resolve_foreach(None, list(make_model().parameters()))
    weights = []
    for foreach in (None, False):
        model = make_model()
        take_steps(model, create_optimizer(name, model.parameters(), foreach=foreach,
                                           **HPARAMS[name]), range(8))  # fmt: skip
        weights.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))
    initial = make_model().parameters()
    assert not all(torch.equal(a, b) for a, b in zip(weights[0], initial, strict=True))
