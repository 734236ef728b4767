"""lightsam in your own loop: the public step helper, the README's examples as written, fp16 with
a loss scaler (an overflow in either pass skips the whole step), abandoning an ascent."""

from __future__ import annotations

import copy

import pytest
import torch
from readme_code import python_blocks
from torch import Tensor, nn

import lightsam
import lightsam.step
import lightsam.train
from lightsam import TrainStep, create_optimizer, frozen_batchnorm_statistics

# One of each kind of statistic: none in the ascent (SAM), a global scalar (LightSAM-I), per
# coordinate (II), moments and python step counts (III with bias correction), a pairing's
# ascent state apart from torch's Adam, a decaying radius's step count; and a plain optimizer.
OPTIMIZERS = {
    "sgd": {"lr": 0.1, "momentum": 0.9},
    "sgd_sam": {"lr": 0.1, "rho": 0.05, "momentum": 0.9},
    "lightsam_i": {"lr": 0.1, "rho": 0.05},
    "lightsam_ii": {"lr": 0.01, "rho": 1e-3},
    "lightsam_iii": {"lr": 0.01, "rho": 1e-3, "bias_correction": True},
    "adasam": {"lr": 0.01, "rho": 0.05},
    "adam_sam": {"lr": 0.01, "rho": 0.05},
    "lightsam_i_sgd": {"lr": 0.1, "rho": 0.05},
    "sgd_sam_decay": {"lr": 0.1, "rho": 0.05},
}
SHARPNESS_AWARE = [name for name in OPTIMIZERS if name != "sgd"]


def test_the_step_helper_is_public_and_is_the_one_the_training_loop_uses():
    assert lightsam.TrainStep is lightsam.step.TrainStep is lightsam.train.TrainStep
    assert lightsam.frozen_batchnorm_statistics is lightsam.step.frozen_batchnorm_statistics
    for name in ("TrainStep", "frozen_batchnorm_statistics", "method_memory", "optimizer_memory"):
        assert name in lightsam.__all__
        assert getattr(lightsam, name).__doc__


def test_the_readme_examples_run_as_written(capsys):
    namespace: dict = {}
    for code in python_blocks("## In your own loop") + python_blocks("### fp16 with a loss scaler"):
        exec(compile(code, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == ["epoch 1", "epoch 2", "epoch 3"]
    model, data = namespace["model"], namespace["data"]
    # The fp16 loop: BatchNorm updated once per step, by the first pass only.
    assert model[1].num_batches_tracked.item() == len(data)
    assert namespace["checkpoint"]["scaler"]["scale"] > 0
    assert namespace["checkpoint"]["optimizer"]["state"]


# -- fp16 with a loss scaler ------------------------------------------------------------------


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


def batches(n: int = 4) -> list[tuple[Tensor, Tensor]]:
    gen = torch.Generator().manual_seed(3)
    return [
        (torch.randn(12, 6, generator=gen), torch.randint(0, 3, (12,), generator=gen))
        for _ in range(n)
    ]


class OverflowOn:
    """Cross-entropy, multiplied on the given calls (1, 2, ...) by a factor that a loss scaler's
    scale takes past float32's range: a finite loss whose scaled gradient overflows."""

    def __init__(self, *calls: int) -> None:
        self.calls, self.count = set(calls), 0

    def __call__(self, logits: Tensor, y: Tensor) -> Tensor:
        self.count += 1
        loss = nn.functional.cross_entropy(logits, y)
        return loss * 1e36 if self.count in self.calls else loss


def trained(name, data, *, scaler=None, loss_fn=None, rho=None, **kwargs):
    model = mlp()
    hparams = OPTIMIZERS[name] | ({} if rho is None else {"rho": rho})
    optimizer = create_optimizer(name, model.parameters(), **hparams)
    step = TrainStep(model, optimizer, loss_fn or nn.CrossEntropyLoss(), scaler=scaler, **kwargs)
    skipped = []
    for x, y in data:
        step(x, y)
        skipped.append(step.skipped)
    return model, optimizer, skipped


def assert_same_state(a, b):
    """Two optimizer state dicts hold the same statistics, bit for bit."""
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_state(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_state(x, y)
    elif isinstance(a, Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    else:
        assert a == b


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_scaled_step_without_overflow_is_the_unscaled_one_exactly(name):
    # Scaling by a power of two and back is exact: the trajectory is float32's, bit for bit.
    data = batches()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    scaled, scaled_opt, skipped = trained(name, data, scaler=scaler, grad_clip=1.0)
    plain, plain_opt, _ = trained(name, data, grad_clip=1.0)
    assert not any(skipped)
    assert_same_weights(scaled, plain)
    assert_same_state(scaled_opt.state_dict(), plain_opt.state_dict())
    # The scale is updated once per step, not once per pass.
    assert scaler.get_scale() == 2.0 ** (10 + len(data))


@pytest.mark.parametrize("overflowing_pass", [1, 2])
@pytest.mark.parametrize("name", SHARPNESS_AWARE)
def test_an_overflow_in_either_pass_skips_the_whole_step(name, overflowing_pass):
    data = batches(3)
    calls = 2 * 1 + overflowing_pass  # the second step's first or second pass
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=100)
    model = mlp()
    optimizer = create_optimizer(name, model.parameters(), **OPTIMIZERS[name])
    step = TrainStep(model, optimizer, OverflowOn(calls), scaler=scaler)
    step(*data[0])
    weights, state = copy.deepcopy(model), copy.deepcopy(optimizer.state_dict())
    norm = optimizer.perturbation_norm.clone()
    scale, tracker = scaler.get_scale(), scaler.state_dict()["_growth_tracker"]
    assert tracker == 1

    step(*data[1])
    assert step.skipped and not optimizer.is_perturbed
    assert_same_weights(model, weights)
    assert_same_state(optimizer.state_dict(), state)  # no statistic touched, the ascent's neither
    assert torch.equal(optimizer.perturbation_norm, norm)
    assert scaler.get_scale() == scale / 2  # lowered once
    assert scaler.state_dict()["_growth_tracker"] == 0
    assert all(p.grad is None for p in model.parameters())

    step(*data[2])
    assert not step.skipped
    # The skipped step left no trace: the run is the one without that batch.
    reference, reference_opt, _ = trained(name, [data[0], data[2]])
    assert_same_weights(model, reference)
    assert_same_state(optimizer.state_dict(), reference_opt.state_dict())


@pytest.mark.parametrize("name", SHARPNESS_AWARE)
def test_a_scaled_step_at_rho_zero_takes_one_pass_and_skips_on_its_overflow(name):
    data = batches(3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    scaled, scaled_opt, skipped = trained(name, data, scaler=scaler, rho=0.0)
    plain, plain_opt, _ = trained(name, data, rho=0.0)
    assert not any(skipped)
    assert_same_weights(scaled, plain)
    assert_same_state(scaled_opt.state_dict(), plain_opt.state_dict())
    # Loss call 2 is the second step's one pass (with two passes it would be the first step's).
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=100)
    model, optimizer, skipped = trained(name, data, scaler=scaler, rho=0.0, loss_fn=OverflowOn(2))
    assert skipped == [False, True, False] and scaler.get_scale() == 2.0**9
    reference, reference_opt, _ = trained(name, [data[0], data[2]], rho=0.0)
    assert_same_weights(model, reference)
    assert_same_state(optimizer.state_dict(), reference_opt.state_dict())


def test_an_overflow_skips_a_plain_optimizers_step_too():
    data = batches(2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    model, optimizer, skipped = trained("sgd", data, scaler=scaler, loss_fn=OverflowOn(2))
    assert skipped == [False, True] and scaler.get_scale() == 2.0**9
    reference, reference_opt, _ = trained("sgd", data[:1])
    assert_same_weights(model, reference)
    assert_same_state(optimizer.state_dict(), reference_opt.state_dict())


def test_fp16_autocast_with_a_scaler_trains(tmp_path):
    data = batches()
    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = create_optimizer("lightsam_iii", model.parameters(), lr=0.01, rho=1e-3)
    step = TrainStep(
        model,
        optimizer,
        nn.CrossEntropyLoss(),
        autocast_dtype=torch.float16,
        scaler=torch.amp.GradScaler("cpu"),
    )
    first = [step(x, y)[0].item() for x, y in data]
    later = [step(x, y)[0].item() for x, y in data for _ in range(5)]
    assert later[-1] < first[0]
    assert step(*data[0])[1].dtype == torch.float16  # the logits, as the forward computed them
    assert model[1].num_batches_tracked.item() == 1 + len(data) * 6


# -- abandoning an ascent -----------------------------------------------------------------------


@pytest.mark.parametrize("name", SHARPNESS_AWARE)
def test_undo_first_step_restores_the_weights_and_the_ascents_statistics(name):
    model = mlp()
    optimizer = create_optimizer(name, model.parameters(), **OPTIMIZERS[name])
    (x, y), loss_fn = batches(1)[0], nn.CrossEntropyLoss()
    for first in (True, False):  # before any statistic exists, then with them
        weights, state = copy.deepcopy(model), copy.deepcopy(optimizer.state_dict())
        loss_fn(model(x), y).backward()
        optimizer.first_step(zero_grad=True, revertible=True)
        assert not all(
            torch.equal(p, q) for p, q in zip(model.parameters(), weights.parameters(), strict=True)
        )
        optimizer.undo_first_step(zero_grad=True)
        assert_same_weights(model, weights)
        assert_same_state(optimizer.state_dict(), state)
        if first:  # now take a step, so the second round starts with statistics
            optimizer.step(lambda: (optimizer.zero_grad(), loss_fn(model(x), y).backward()))


def test_undo_first_step_says_what_it_needs():
    model = mlp()
    optimizer = create_optimizer("lightsam_ii", model.parameters(), lr=0.01, rho=1e-3)
    x, y = batches(1)[0]
    with pytest.raises(RuntimeError, match="needs a preceding first_step"):
        optimizer.undo_first_step()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.first_step(zero_grad=True)
    with pytest.raises(RuntimeError, match=r"first_step\(revertible=True\)"):
        optimizer.undo_first_step()


# -- errors that say what to do ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"autocast_dtype": torch.float16},
            r"needs a loss scaler.*pass scaler=torch.amp.GradScaler",
        ),
        ({"autocast_dtype": torch.float64}, "autocast_dtype must be one of None, torch.float16"),
        ({"scaler": "dynamic"}, "scaler must be a torch.amp.GradScaler"),
        ({"grad_clip": 0.0}, "grad_clip must be > 0"),
    ],
)
def test_unsupported_settings_are_refused_saying_what_to_do(kwargs, message):
    model = mlp()
    optimizer = create_optimizer("sgd_sam", model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=message):
        TrainStep(model, optimizer, nn.CrossEntropyLoss(), **kwargs)


def test_a_step_in_the_middle_of_a_manual_step_is_refused():
    model = mlp()
    optimizer = create_optimizer("sgd_sam", model.parameters(), lr=0.1)
    step = TrainStep(model, optimizer, nn.CrossEntropyLoss())
    x, y = batches(1)[0]
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.first_step()
    with pytest.raises(RuntimeError, match=r"finish the step you began with second_step\(\)"):
        step(x, y)


def test_frozen_batchnorm_statistics_restores_the_flag_after_an_error():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    with pytest.raises(ZeroDivisionError), frozen_batchnorm_statistics(model):
        assert not model[1].track_running_stats
        _ = 1 / 0
    assert model[1].track_running_stats
