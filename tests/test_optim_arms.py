"""The ablation arms (ALGORITHMS.md, "Ablation arms") against float64 hand computations, and the
realised perturbation of every sharpness-aware optimizer against ``||w_t - x_t||`` by hand."""

from __future__ import annotations

import io

import pytest
import torch
from optim_reference import run
from test_optim_maths import (
    N_W,
    OVERRIDDEN,
    TWO_GROUPS,
    flat_grad,
    initial_point,
    loss_of,
    per_coordinate,
    train,
)

import lightsam
from lightsam import OPTIMIZERS, create_optimizer
from lightsam.cli import main

STEPS = 25
ARMS = [
    "adam_sam", "adamw_sam", "adagrad_sam", "adagrad_norm_sam", "lightsam_i_sgd", "sgd_sam_decay",
]  # fmt: skip
CASES = [
    ("adam_sam", {}),
    ("adam_sam", {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01}),
    ("adamw_sam", {}),
    ("adamw_sam", {"weight_decay": 0.1}),
    ("adagrad_sam", {}),
    ("adagrad_sam", {"lr_decay": 0.01, "weight_decay": 0.01, "initial_accumulator_value": 0.1}),
    ("adagrad_norm_sam", {}),
    ("adagrad_norm_sam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("lightsam_i_sgd", {}),
    ("lightsam_i_sgd", {"momentum": 0.9, "weight_decay": 0.01, "ascent_eps": 1e-3}),
    ("lightsam_i_sgd", {"momentum": 0.9, "nesterov": True}),
    ("sgd_sam_decay", {}),
    ("sgd_sam_decay", {"momentum": 0.9, "weight_decay": 0.01}),
]
# Learning rates each arm's descent trains this problem with.
LRS = {"adam_sam": 0.05, "adamw_sam": 0.05, "adagrad_sam": 0.1, "adagrad_norm_sam": 0.3}
DESCENTS = {
    "adam_sam": (torch.optim.Adam, {}),
    "adamw_sam": (torch.optim.AdamW, {}),
    "adagrad_sam": (torch.optim.Adagrad, {}),
    "adagrad_norm_sam": (lightsam.AdaGradNorm, {}),
    "lightsam_i_sgd": (torch.optim.SGD, {"momentum": 0.9}),
    "sgd_sam_decay": (torch.optim.SGD, {"momentum": 0.9}),
}


def groups_for(name: str) -> list[dict]:
    scale = LRS.get(name, 0.05) / 0.05
    return [{**g, "lr": g["lr"] * scale} for g in TWO_GROUPS]


def test_every_arm_is_registered_and_listed(capsys):
    assert set(ARMS) <= set(OPTIMIZERS)
    assert all(OPTIMIZERS[name].sharpness_aware for name in ARMS)
    main(["optimizers"])
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "ascent_eps" in listed["lightsam_i_sgd"] and "momentum" in listed["lightsam_i_sgd"]
    assert "betas" in listed["adam_sam"] and "ascent_eps" not in listed["adam_sam"]


@pytest.mark.parametrize("foreach", [False, True], ids=["per_tensor", "foreach"])
@pytest.mark.parametrize(("name", "hp"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_arm_matches_hand_computation(name, hp, foreach):
    groups = groups_for(name)
    got = train(name, groups, steps=STEPS, foreach=foreach, **OVERRIDDEN, **hp)
    want = run(
        name,
        flat_grad,
        initial_point(),
        STEPS,
        lr=per_coordinate(groups, "lr"),
        rho=per_coordinate(groups, "rho"),
        **hp,
    )
    assert not torch.allclose(want, initial_point())
    torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("name", ARMS)
def test_foreach_follows_per_tensor_path(name):
    groups = groups_for(name)
    torch.testing.assert_close(
        train(name, groups, steps=STEPS, foreach=True, **OVERRIDDEN),
        train(name, groups, steps=STEPS, foreach=False, **OVERRIDDEN),
        rtol=1e-13,
        atol=1e-15,
    )


@pytest.mark.parametrize("name", ARMS)
def test_rho_zero_is_the_descent_optimizer_alone_bit_for_bit(name):
    descent, hp = DESCENTS[name]
    lr = LRS.get(name, 0.05)
    got = train(name, [{}, {}], steps=STEPS, lr=lr, rho=0.0, **hp)
    x0 = initial_point()
    w = x0[:N_W].view(4, 3).clone().requires_grad_(True)
    b = x0[N_W:].clone().requires_grad_(True)
    opt = descent([w, b], lr=lr, **hp)
    for _ in range(STEPS):
        opt.zero_grad()
        loss_of(w, b).backward()
        opt.step()
    assert torch.equal(got, torch.cat([w.detach().flatten(), b.detach()]))


def two_step(opt, w, b) -> None:
    opt.zero_grad()
    loss_of(w, b).backward()
    opt.first_step(zero_grad=True)
    loss_of(w, b).backward()
    opt.second_step(zero_grad=True)


def fresh(name: str, **hp):
    x0 = initial_point()
    w = x0[:N_W].view(4, 3).clone().requires_grad_(True)
    b = x0[N_W:].clone().requires_grad_(True)
    return w, b, create_optimizer(name, [w, b], lr=LRS.get(name, 0.05), rho=0.05, **hp)


@pytest.mark.parametrize("name", ARMS)
def test_a_state_dict_round_trip_continues_bit_for_bit(name):
    w, b, opt = fresh(name, **DESCENTS[name][1])
    for _ in range(5):
        two_step(opt, w, b)
    buffer = io.BytesIO()
    torch.save({"w": w.detach(), "b": b.detach(), "opt": opt.state_dict()}, buffer)
    for _ in range(5):
        two_step(opt, w, b)

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    w2, b2, resumed = fresh(name, **DESCENTS[name][1])
    with torch.no_grad():
        w2.copy_(saved["w"])
        b2.copy_(saved["b"])
    resumed.load_state_dict(saved["opt"])
    for _ in range(5):
        two_step(resumed, w2, b2)
    assert torch.equal(w, w2) and torch.equal(b, b2)


def test_the_accumulated_ascent_is_kept_apart_from_the_descents_state():
    # Adam initialises a parameter's state only while it is empty; an accumulating ascent
    # around it must not fill that state first.
    w, b, opt = fresh("lightsam_i_sgd", momentum=0.9)
    two_step(opt, w, b)
    assert set(opt.state[w]) == {"momentum_buffer"}
    assert set(opt.state_dict()["ascent_state"][0]) == {"ascent_sq_norm"}
    x0 = initial_point()
    p = x0[:N_W].clone().requires_grad_(True)
    q = x0[N_W:].clone().requires_grad_(True)
    pairing = lightsam.SharpnessAware(
        [p, q], descent=torch.optim.Adam, ascent="adagrad", rho=0.01, lr=0.01
    )
    for _ in range(3):
        pairing.zero_grad()
        ((p.sum() - 1) ** 2 + (q * q).sum()).backward()
        pairing.first_step(zero_grad=True)
        ((p.sum() - 1) ** 2 + (q * q).sum()).backward()
        pairing.second_step()
    assert set(pairing.state[p]) == {"step", "exp_avg", "exp_avg_sq"}
    assert set(pairing.ascent_state[p]) == {"ascent_sq"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ascent": "sign"}, "ascent must be one of normalized, asam"),
        ({"descent": lightsam.LightSAM}, "descent must be a plain optimizer"),
        ({"descent": "sgd"}, "descent must be a torch.optim.Optimizer subclass"),
        ({"ascent": "adagrad_norm", "ascent_eps": 0.0}, "ascent_eps must be > 0"),
        ({"ascent": "adam", "ascent_betas": (0.9, 1.0)}, "betas must be two numbers in"),
        ({"rho": -1.0}, "rho must be >= 0"),
    ],
)
def test_a_bad_pairing_is_refused_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lightsam.SharpnessAware([torch.zeros(2, requires_grad=True)], **{"lr": 0.1, **kwargs})


# -- the realised perturbation ---------------------------------------------------------------------

SHARPNESS_AWARE = [name for name, entry in OPTIMIZERS.items() if entry.sharpness_aware]
RADII = {"lightsam_ii": 1e-3, "lightsam_iii": 1e-3}


@pytest.mark.parametrize("groups", ["one rho", "two rhos"])
@pytest.mark.parametrize("name", SHARPNESS_AWARE)
def test_the_realised_perturbation_is_the_distance_moved(name, groups):
    x0 = initial_point()
    w = x0[:N_W].view(4, 3).clone().requires_grad_(True)
    b = x0[N_W:].clone().requires_grad_(True)
    rho = RADII.get(name, 0.05)
    params = [{"params": [w]}, {"params": [b], "rho": 3 * rho}] if groups == "two rhos" else [w, b]
    opt = create_optimizer(name, params, lr=LRS.get(name, 0.05), rho=rho)
    assert opt.perturbation_norm is None  # before the first step
    for _ in range(8):
        opt.zero_grad()
        loss_of(w, b).backward()
        x = torch.cat([w.detach().flatten(), b.detach()])
        opt.first_step(zero_grad=True)
        moved = torch.cat([w.detach().flatten(), b.detach()]) - x
        loss_of(w, b).backward()
        opt.second_step(zero_grad=True)
        assert moved.norm() > 0
        assert opt.perturbation_norm.shape == () and opt.perturbation_norm.dtype == torch.float64
        torch.testing.assert_close(opt.perturbation_norm, moved.norm(), rtol=1e-12, atol=0)
        torch.testing.assert_close(
            opt.relative_perturbation, moved.norm() / x.norm(), rtol=1e-12, atol=0
        )
