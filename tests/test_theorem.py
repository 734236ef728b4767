"""The theorem's problem: the vectorised arms equal lightsam's optimizers on the same oracle draws,
the oracle is what its docstring states, and the grid runs and records what it says."""

from __future__ import annotations

import math

import pytest
import torch

from lightsam import create_optimizer
from lightsam.theorem import ARMS, Oracle, Problem, gradient, make_data, objective, run_grid

SMALL = Problem(
    n=200, dim=8, steps=40, record_every=1, seeds=(0, 1), lr_decades=(-2, 0),
    rho_decades=(-2, -1), dtype=torch.float64,
)  # fmt: skip


def reference(arm: str, lr: float, rho: float, seed_index: int, problem: Problem) -> torch.Tensor:
    """The weights after ``problem.steps`` steps of lightsam's optimizer ``arm``, fed the oracle
    draws of seed ``seed_index`` (one draw for both passes of a step)."""
    data = make_data(problem)
    oracle = Oracle(problem, data, torch.tensor([seed_index]))
    x = data.x0.clone().requires_grad_(True)
    hp = {} if math.isnan(rho) else {"rho": rho}
    opt = create_optimizer(arm, [x], lr=lr, **hp)
    for _ in range(problem.steps):
        draw = oracle.draw()
        x.grad = oracle(x.detach().unsqueeze(0), draw)[0]
        if math.isnan(rho):
            opt.step()
            continue
        opt.first_step()
        x.grad = oracle(x.detach().unsqueeze(0), draw)[0]
        opt.second_step()
    return x.detach()


@pytest.fixture(scope="module")
def grid():
    return run_grid(SMALL, list(ARMS))


@pytest.mark.parametrize("arm", list(ARMS))
def test_each_vectorised_arm_is_lightsams_optimizer(grid, arm):
    cells = grid.cells
    rows = [i for i, a in enumerate(cells.arm) if a == arm]
    assert rows
    for i in rows[:: max(1, len(rows) // 4)]:  # a few cells of every arm, both seeds
        lr, rho, seed = cells.lr[i].item(), cells.rho[i].item(), cells.seed[i].item()
        want = reference(arm, lr, rho, seed, SMALL)
        assert not torch.allclose(want, make_data(SMALL).x0)
        torch.testing.assert_close(grid.x[i], want, rtol=1e-10, atol=1e-12)


def test_the_oracle_adds_noise_of_the_stated_affine_variance_to_the_minibatchs():
    problem = Problem(dim=20, batch=4, d0=0.3, d1=0.7, seeds=tuple(range(4000)),
                      dtype=torch.float64)  # fmt: skip
    data = make_data(problem)
    oracle = Oracle(problem, data, torch.arange(len(problem.seeds)))
    x = data.x0.expand(len(problem.seeds), -1)
    draw = oracle.draw()
    batch = gradient(x, data.a[draw[0]], data.y[draw[0]], problem.reg)
    noise = (oracle(x, draw) - batch).square().sum(-1)
    want = problem.d0 + problem.d1 * batch.square().sum(-1)
    assert noise.mean().item() == pytest.approx(want.mean().item(), rel=0.05)
    # One draw, two points: the same minibatch and the same noise directions.
    again = oracle(x + 1e-3, draw) - gradient(
        x + 1e-3, data.a[draw[0]], data.y[draw[0]], problem.reg
    )
    assert (
        torch.corrcoef(torch.stack([again.flatten(), (oracle(x, draw) - batch).flatten()]))[0, 1]
        > 0.99
    )


def test_the_smoothness_bound_holds():
    problem = Problem(dtype=torch.float64)
    data = make_data(problem)
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        x, y = (torch.randn(problem.dim, generator=gen, dtype=torch.float64) for _ in range(2))
        gx, gy = (gradient(v.unsqueeze(0), data.a, data.y, problem.reg)[0] for v in (x, y))
        assert (gx - gy).norm() <= data.smoothness * (x - y).norm() * (1 + 1e-9)
    # ... and is not loose by orders of magnitude: the logistic part's curvature at the origin.
    hessian = torch.autograd.functional.hessian(
        lambda v: objective(v, data, problem.reg), torch.zeros(problem.dim, dtype=torch.float64)
    )
    assert torch.linalg.eigvalsh(hessian)[-1] > data.smoothness / 2


def test_the_grid_records_every_cell_at_every_recorded_step(grid):
    n_cells = len(grid.cells.arm)
    base = sum(ARMS[a][0] is None for a in ARMS)
    assert n_cells == (base + (len(ARMS) - base) * 2) * 3 * 2  # lr x rho x seed
    assert grid.sq_grad.shape == (SMALL.steps, n_cells)
    assert torch.isfinite(grid.sq_grad).all() and (grid.sq_grad > 0).all()
