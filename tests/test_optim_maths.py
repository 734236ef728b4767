"""The optimizers against float64 hand computations, and the properties ALGORITHMS.md states."""

from __future__ import annotations

import pytest
import torch
from optim_reference import run

import lightsam
from lightsam import create_optimizer

STEPS = 6
N_W, N_B = 12, 3  # a 4x3 weight and a bias of 3: the norms of LightSAM-I span both tensors


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    return x, y


X, Y = _data()


def loss_of(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((torch.tanh(X @ w + b) - Y) ** 2).mean()


def flat_grad(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_of(x[:N_W].view(4, 3), x[N_W:]), x)
    return grad


def initial_point() -> torch.Tensor:
    return torch.randn(N_W + N_B, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def train(name: str, groups: list[dict], steps: int = STEPS, **hp) -> torch.Tensor:
    """Run ``steps`` closure steps of the registered optimizer on the test problem; the first
    group holds the weight, the second the bias. Returns the flat weights."""
    x0 = initial_point()
    w = x0[:N_W].view(4, 3).clone().requires_grad_(True)
    b = x0[N_W:].clone().requires_grad_(True)
    opt = create_optimizer(name, [{"params": [w], **groups[0]}, {"params": [b], **groups[1]}], **hp)

    def closure():
        opt.zero_grad()
        loss = loss_of(w, b)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    return torch.cat([w.detach().flatten(), b.detach()])


def per_coordinate(groups: list[dict], key: str) -> torch.Tensor:
    return torch.cat(
        [
            torch.full((N_W,), groups[0][key], dtype=torch.float64),
            torch.full((N_B,), groups[1][key], dtype=torch.float64),
        ]
    )


# The optimizer-wide lr and rho are overridden by both groups; they must not leak into either.
TWO_GROUPS = [{"lr": 0.05, "rho": 0.03}, {"lr": 0.02, "rho": 0.01}]
OVERRIDDEN = {"lr": 7.0, "rho": 9.0}

CASES = [
    ("sgd_sam", {}),
    ("sgd_sam", {"momentum": 0.9, "weight_decay": 0.01}),
    ("sgd_sam", {"momentum": 0.9, "nesterov": True}),
    ("asam", {"momentum": 0.9, "asam_eta": 0.01}),
    ("lightsam_i", {}),
    ("lightsam_i", {"weight_decay": 0.01}),
    ("lightsam_i", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("lightsam_ii", {}),
    ("lightsam_ii", {"weight_decay": 0.01, "eps": 1e-6}),
    ("lightsam_ii", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("lightsam_iii", {}),
    ("lightsam_iii", {"bias_correction": True, "betas": (0.8, 0.99)}),
    ("lightsam_iii", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("lightsam_iii", {"weight_decay": 0.1}),
    ("adasam", {}),
    ("adasam", {"weight_decay": 0.01, "betas": (0.5, 0.9)}),
]


@pytest.mark.parametrize("foreach", [False, True], ids=["per_tensor", "foreach"])
@pytest.mark.parametrize(("name", "hp"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_hand_computation(name, hp, foreach):
    got = train(name, TWO_GROUPS, foreach=foreach, **OVERRIDDEN, **hp)
    want = run(
        name,
        flat_grad,
        initial_point(),
        STEPS,
        lr=per_coordinate(TWO_GROUPS, "lr"),
        rho=per_coordinate(TWO_GROUPS, "rho"),
        **hp,
    )
    assert not torch.equal(want, initial_point())
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "hp", [{}, {"weight_decay": 0.05}, {"weight_decay": 0.05, "decoupled_weight_decay": True}]
)
def test_adagrad_norm_matches_hand_computation(hp):
    groups = [{"lr": 0.3}, {"lr": 0.1}]
    got = train("adagrad_norm", groups, lr=7.0, **hp)
    lrs = per_coordinate(groups, "lr")
    want = run("adagrad_norm", flat_grad, initial_point(), STEPS, lr=lrs, **hp)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("name", "hp"),
    [("lightsam_ii", {}), ("lightsam_iii", {"bias_correction": True}), ("asam", {"momentum": 0.9})]
    + [(n, {"weight_decay": 0.01}) for n in ("sgd_sam", "lightsam_i", "adasam")],
)
def test_foreach_follows_per_tensor_path(name, hp):
    groups = [{"lr": 0.1, "rho": 0.05}, {"lr": 0.01, "rho": 0.2}]
    torch.testing.assert_close(
        train(name, groups, steps=20, foreach=True, **OVERRIDDEN, **hp),
        train(name, groups, steps=20, foreach=False, **OVERRIDDEN, **hp),
        rtol=1e-13,
        atol=1e-15,
    )


# -- properties --------------------------------------------------------------------------------


def _ascents(name: str, steps: int, **hp) -> list[torch.Tensor]:
    """The perturbations e_t = w_t - x_t of ``steps`` steps, flat."""
    x0 = initial_point()
    w = x0[:N_W].view(4, 3).clone().requires_grad_(True)
    b = x0[N_W:].clone().requires_grad_(True)
    opt = create_optimizer(name, [w, b], **hp)
    ascents = []
    for _ in range(steps):
        loss_of(w, b).backward()
        before = torch.cat([w.detach().flatten(), b.detach()])
        opt.first_step(zero_grad=True)
        ascents.append(torch.cat([w.detach().flatten(), b.detach()]) - before)
        loss_of(w, b).backward()
        opt.second_step(zero_grad=True)
    return ascents


def test_lightsam_i_radius_never_exceeds_rho_and_shrinks():
    rho = 0.5
    norms = [e.norm().item() for e in _ascents("lightsam_i", 30, lr=0.5, rho=rho)]
    assert all(n <= rho * (1 + 1e-12) for n in norms)
    assert norms[-1] < 0.5 * norms[0]


def test_lightsam_i_first_ascent_is_sams():
    rho = 0.1
    (first_light,) = _ascents("lightsam_i", 1, lr=0.1, rho=rho)
    (first_sam,) = _ascents("sgd_sam", 1, lr=0.1, rho=rho)
    s = flat_grad(initial_point())
    torch.testing.assert_close(first_light, rho * s / s.norm(), rtol=1e-10, atol=0)
    torch.testing.assert_close(first_light, first_sam, rtol=1e-10, atol=0)


def test_lightsam_ii_moves_each_coordinate_at_most_rho():
    rho = 0.01
    for e in _ascents("lightsam_ii", 10, lr=0.1, rho=rho):
        assert e.abs().max() <= rho * (1 + 1e-12)
    # ... so the first perturbation has norm rho * sqrt(d), not rho.
    first = _ascents("lightsam_ii", 1, lr=0.1, rho=rho)[0]
    torch.testing.assert_close(first.norm().item(), rho * (N_W + N_B) ** 0.5, rtol=1e-6, atol=0)


RHO_ZERO = [
    (
        "sgd_sam",
        {"momentum": 0.9, "weight_decay": 1e-3},
        torch.optim.SGD,
        {"momentum": 0.9, "weight_decay": 1e-3},
    ),
    (  # the screens train ASAM's rho = 0 once, as SGD-SAM's
        "asam",
        {"momentum": 0.9, "weight_decay": 1e-3},
        torch.optim.SGD,
        {"momentum": 0.9, "weight_decay": 1e-3},
    ),
    ("lightsam_i", {"weight_decay": 1e-3}, lightsam.AdaGradNorm, {"weight_decay": 1e-3}),
    (
        "lightsam_ii",
        {"eps": 1e-3},
        torch.optim.Adagrad,
        {"initial_accumulator_value": 1e-6, "eps": 0.0},
    ),
    ("lightsam_iii", {"bias_correction": True, "eps": 1e-30}, torch.optim.Adam, {"eps": 0.0}),
]


@pytest.mark.parametrize(("name", "hp", "base", "base_hp"), RHO_ZERO, ids=[c[0] for c in RHO_ZERO])
def test_rho_zero_is_the_base_optimizer(name, hp, base, base_hp):
    lr = 0.05
    got = train(name, [{}, {}], steps=10, lr=lr, rho=0.0, **hp)
    x0 = initial_point()
    w = x0[:N_W].view(4, 3).clone().requires_grad_(True)
    b = x0[N_W:].clone().requires_grad_(True)
    opt = base([w, b], lr=lr, **base_hp)
    for _ in range(10):
        opt.zero_grad()
        loss_of(w, b).backward()
        opt.step()
    torch.testing.assert_close(
        got, torch.cat([w.detach().flatten(), b.detach()]), rtol=1e-12, atol=0
    )


def test_lightsam_iii_with_rho_zero_is_adam_without_bias_correction():
    got = train("lightsam_iii", [{}, {}], steps=10, lr=0.05, rho=0.0)
    want = run("lightsam_iii", flat_grad, initial_point(), 10, lr=0.05, rho=0.0)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_sgd_sam_is_sgd_fed_the_gradient_at_the_perturbed_point_bit_for_bit():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    twin = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(10, 6), torch.randn(10, 2)
    sam = lightsam.SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, momentum=0.9)
    sgd = torch.optim.SGD(twin, lr=0.1, momentum=0.9)
    for _ in range(5):
        torch.nn.functional.mse_loss(model(x), y).backward()
        s = [p.grad.clone() for p in model.parameters()]
        sam.first_step(zero_grad=True)
        perturbed = [p.detach().clone() for p in model.parameters()]
        torch.nn.functional.mse_loss(model(x), y).backward()
        g = [p.grad.clone() for p in model.parameters()]
        sam.second_step(zero_grad=True)

        norm = torch.linalg.vector_norm(torch.stack([t.norm() for t in s]))
        for w, q, t in zip(perturbed, twin, s, strict=True):
            torch.testing.assert_close(w, q + 0.1 * t / norm)
        for q, grad in zip(twin, g, strict=True):
            q.grad = grad
        sgd.step()
        # Equal bits: the update started from exactly x_t, restored by copy, not by subtraction.
        for p, q in zip(model.parameters(), twin, strict=True):
            assert torch.equal(p, q)
