"""The parameter-agnostic experiment: every method over many orders of magnitude of lr and rho on
a problem whose smoothness L is known, where SGD-SAM's step-size bound is known too.

The problem is ``f(x) = x^T A x / 2`` in ``dim`` dimensions, ``A`` a randomly rotated diagonal
with eigenvalues log-spaced from ``L / condition`` to ``L``, started from ``x_0 = 1``, with exact
gradients. Gradient descent, and SGD-SAM without momentum, diverge for ``lr > 2 / L``; the paper
proves LightSAM-I and -II converge for any ``lr > 0`` and ``rho > 0``.

Each (optimizer, lr, rho) cell runs ``steps`` steps through the package's optimizers and records
the final gradient norm and loss relative to the initial ones, and whether it diverged (a
non-finite gradient norm, or one ``DIVERGED`` times the initial one). Results go to
``<out>/cells.csv`` and ``<out>/meta.json``; a second call with the same settings reuses them.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from lightsam import store
from lightsam.optim import create_optimizer

OPTIMIZERS = ("sgd_sam", "lightsam_i", "lightsam_ii", "lightsam_iii")
DIVERGED = 1e6
COLUMNS = ("optimizer", "lr", "rho", "grad_norm", "loss", "diverged", "steps")
TYPES = {"optimizer": str, "lr": float, "rho": float, "grad_norm": float, "loss": float,
         "diverged": int, "steps": int}  # fmt: skip


@dataclass(frozen=True)
class Problem:
    """The quadratic and the grids; ``lrs`` and ``rhos`` are decades ``10**k``."""

    dim: int = 10
    smoothness: float = 1.0
    condition: float = 10.0
    seed: int = 0
    steps: int = 1000
    lr_decades: tuple[int, int] = (-3, 3)
    rho_decades: tuple[int, int] = (-4, 2)

    @property
    def lrs(self) -> list[float]:
        return [10.0**k for k in range(self.lr_decades[0], self.lr_decades[1] + 1)]

    @property
    def rhos(self) -> list[float]:
        return [10.0**k for k in range(self.rho_decades[0], self.rho_decades[1] + 1)]

    def hessian(self) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        q, _ = torch.linalg.qr(torch.randn(self.dim, self.dim, generator=gen, dtype=torch.float64))
        low = torch.log10(torch.tensor(self.smoothness / self.condition)).item()
        high = torch.log10(torch.tensor(self.smoothness)).item()
        eigenvalues = torch.logspace(low, high, self.dim, dtype=torch.float64)
        return q @ torch.diag(eigenvalues) @ q.T


def run_cell(problem: Problem, hessian: torch.Tensor, name: str, lr: float, rho: float) -> dict:
    """One optimizer at one (lr, rho) for ``problem.steps`` steps."""
    x = torch.ones(problem.dim, dtype=torch.float64, requires_grad=True)
    hparams = {"momentum": 0.0} if name == "sgd_sam" else {}
    optimizer = create_optimizer(name, [x], lr=lr, rho=rho, **hparams)

    def grad_norm() -> float:
        return (hessian @ x.detach()).norm().item()

    def loss() -> float:
        return 0.5 * (x.detach() @ hessian @ x.detach()).item()

    grad0, loss0 = grad_norm(), loss()
    steps, diverged = 0, False
    while steps < problem.steps and not diverged:
        x.grad = hessian @ x.detach()
        optimizer.first_step()
        x.grad = hessian @ x.detach()
        optimizer.second_step()
        steps += 1
        diverged = not grad_norm() <= DIVERGED * grad0
    return {
        "optimizer": name,
        "lr": lr,
        "rho": rho,
        "grad_norm": grad_norm() / grad0,
        "loss": loss() / loss0,
        "diverged": int(diverged),
        "steps": steps,
    }


def run_agnostic(out: Path, problem: Problem = Problem()) -> list[dict[str, Any]]:
    """Run every cell (or reuse ``out``'s results for the same ``problem``); returns the rows."""
    meta_path, cells_path = out / store.AGNOSTIC_META, out / store.AGNOSTIC_CELLS
    meta = store.read_json(meta_path)
    settings = json.loads(json.dumps(asdict(problem)))  # as meta.json holds them (lists)
    if meta is not None and meta.get("problem") == settings and cells_path.exists():
        with cells_path.open() as handle:
            return [
                {column: TYPES[column](row[column]) for column in COLUMNS}
                for row in csv.DictReader(handle)
            ]
    started = time.perf_counter()
    hessian = problem.hessian()
    rows = [
        run_cell(problem, hessian, name, lr, rho)
        for name, lr, rho in itertools.product(OPTIMIZERS, problem.lrs, problem.rhos)
    ]
    lines = [",".join(COLUMNS)] + [",".join(str(row[c]) for c in COLUMNS) for row in rows]
    store.write_text(cells_path, "\n".join(lines) + "\n")
    store.write_json(
        meta_path,
        {
            "problem": settings,
            "description": "f(x) = x^T A x / 2, A a rotated diagonal, exact gradients, x_0 = 1",
            "divergence": f"non-finite gradient norm or more than {DIVERGED:g} x the initial",
            "environment": store.environment(torch.device("cpu")),
            "wall_s": time.perf_counter() - started,
        },
    )
    return rows
