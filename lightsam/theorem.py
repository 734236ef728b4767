"""The theorem's own problem: stochastic, non-convex, smooth, with affine-variance noise and one
sample per step shared by the ascent and the descent, over a wide grid of ``lr`` and ``rho``.

LightSAM's claim (Cheng et al., arXiv:2505.24399) is a convergence theorem: on an ``L``-smooth
non-convex objective whose stochastic gradients have affine variance, LightSAM-I/II/III reach
small gradient norms at the ``O(log T / sqrt T)`` rate for *any* ``lr > 0`` and ``rho > 0``,
without knowing ``L`` or the noise. This module tests that claim where it is stated, against
the base optimizers (AdaGrad-Norm's robustness to ``lr`` is known: LightSAM must be credited
only with what it adds) and the ablation arms.

The problem: non-convex-regularised least squares on ``n`` synthetic points in ``d``
dimensions,

    f(x) = (1/2n) sum_i (a_i . x - y_i)^2 + reg * sum_j x_j^2 / (1 + x_j^2),

``L <= lambda_max(A^T A) / n + 2 reg`` (the regulariser's second derivative lies in
``[-reg / 2, 2 reg]``; the weakest directions of ``A^T A / n`` are below ``reg / 2``, so ``f`` is
not convex). Its gradients grow without bound away from the minimum, so gradient descent
diverges above ``lr = 2 / L``: the step-size bound that a parameter-agnostic method is claimed
not to need. The oracle draws a
minibatch ``B`` of ``batch`` points and Gaussian ``z1, z2`` and returns

    g(x) = grad f_B(x) + sqrt(d0 / d) z1 + sqrt(d1 / d) ||grad f_B(x)|| z2,

noise of variance ``d0 + d1 ||grad f_B(x)||^2`` on top of the minibatch's own (affine variance
with stated ``d0``, ``d1``). One draw serves a whole step: the ascent gradient at ``x_t`` and the
descent gradient at ``x_t + e_t`` use the same ``B``, ``z1``, ``z2``, as SAM does in practice
(the point a reviewer of the paper disputed).

Every cell (arm, ``lr``, ``rho``, seed) runs at once: the parameters of all cells are one
``(cells, d)`` tensor, each arm's update is vectorised over its cells with per-cell ``lr`` and
``rho`` and norms taken per cell, and cells of one seed see the same oracle draws (common random
numbers, so that arms are compared on the same noise). ``tests/test_theorem.py`` holds these
updates equal to lightsam's optimizers, in float64, to 1e-10.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lightsam import store

NORM_EPS = 1e-12  # SAM's, as lightsam.optim.rules
EPS = 1e-8  # the eps of AdaGrad-Norm, LightSAM, Adam (their defaults)
ADAGRAD_EPS = 1e-10  # torch.optim.Adagrad's default
BETAS = (0.9, 0.999)
ADAMW_DECAY = 1e-2  # torch.optim.AdamW's default weight decay


@dataclass(frozen=True)
class Problem:
    """The objective, the oracle and the grids. ``lr_decades`` and ``rho_decades`` give grids
    ``10**k`` for ``k`` in the closed range; ``steps`` is the horizon ``T``, the full gradient
    norm is recorded every ``record_every`` steps."""

    n: int = 1000
    dim: int = 50
    reg: float = 0.1
    batch: int = 1
    d0: float = 0.1
    d1: float = 0.5
    data_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 10_000
    record_every: int = 10
    lr_decades: tuple[int, int] = (-3, 3)
    rho_decades: tuple[int, int] = (-4, 2)
    # float32 for the study (five times faster on CPU; relative squared gradient norms down to
    # 1e-8 are well inside its range), float64 where the tests compare with lightsam.
    dtype: torch.dtype = field(default=torch.float32, repr=False)

    @property
    def lrs(self) -> list[float]:
        return [10.0**k for k in range(self.lr_decades[0], self.lr_decades[1] + 1)]

    @property
    def rhos(self) -> list[float]:
        return [10.0**k for k in range(self.rho_decades[0], self.rho_decades[1] + 1)]


@dataclass(frozen=True)
class Data:
    """The points ``a`` (n, d), the labels ``y`` in {-1, 1}, the start ``x0`` and the bound
    ``smoothness`` on L."""

    a: Tensor
    y: Tensor
    x0: Tensor
    smoothness: float


def make_data(problem: Problem) -> Data:
    """Gaussian points with columns scaled over a decade (curvatures from about 0.01 to 1.5, so
    that ``reg / 2`` makes the weakest directions concave near the start), targets from a
    planted solution plus noise, a start away from it."""
    gen = torch.Generator().manual_seed(problem.data_seed)
    scales = torch.logspace(-1, 0, problem.dim, dtype=problem.dtype)
    a = torch.randn(problem.n, problem.dim, generator=gen, dtype=problem.dtype) * scales
    planted = torch.randn(problem.dim, generator=gen, dtype=problem.dtype)
    y = a @ planted + 0.5 * torch.randn(problem.n, generator=gen, dtype=problem.dtype)
    x0 = planted + 2.0 * torch.randn(problem.dim, generator=gen, dtype=problem.dtype)
    top = torch.linalg.eigvalsh(a.T @ a)[-1].item()
    return Data(a=a, y=y, x0=x0, smoothness=top / problem.n + 2 * problem.reg)


def gradient(x: Tensor, a: Tensor, y: Tensor, reg: float) -> Tensor:
    """The gradient of f over the points ``a`` (targets ``y``) at each cell's ``x``
    (``(cells, d)``): ``a`` is ``(cells, k, d)``, each cell's own minibatch, or ``(k, d)``,
    points shared by all cells."""
    # Per-cell minibatches elementwise: many tiny matrix products are slower than a broadcast.
    residuals = ((a * x.unsqueeze(-2)).sum(-1) if a.dim() == 3 else x @ a.T) - y
    weights = residuals / residuals.shape[-1]
    data = (weights.unsqueeze(-1) * a).sum(-2) if a.dim() == 3 else weights @ a
    return data + (2 * reg) * x / (1 + x * x).square()


def objective(x: Tensor, data: Data, reg: float) -> Tensor:
    residuals = x @ data.a.T - data.y
    return 0.5 * residuals.square().mean(-1) + reg * (x * x / (1 + x * x)).sum(-1)


def _norm(t: Tensor) -> Tensor:
    return torch.linalg.vector_norm(t, dim=-1, keepdim=True)


class Oracle:
    """The stochastic gradient of one step for every cell, from one draw per seed."""

    def __init__(self, problem: Problem, data: Data, cell_seeds: Tensor) -> None:
        self.problem, self.data, self.cell_seeds = problem, data, cell_seeds
        self.generators = [torch.Generator().manual_seed(1000 + s) for s in problem.seeds]

    def draw(self) -> tuple[Tensor, Tensor, Tensor]:
        """This step's minibatch indices and noise, per seed, then per cell."""
        p = self.problem
        index, z1, z2 = [], [], []
        for gen in self.generators:
            index.append(torch.randint(0, p.n, (p.batch,), generator=gen))
            z1.append(torch.randn(p.dim, generator=gen, dtype=p.dtype))
            z2.append(torch.randn(p.dim, generator=gen, dtype=p.dtype))
        pick = self.cell_seeds
        return torch.stack(index)[pick], torch.stack(z1)[pick], torch.stack(z2)[pick]

    def __call__(self, x: Tensor, draw: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        index, z1, z2 = draw
        p = self.problem
        batch = gradient(x, self.data.a[index], self.data.y[index], p.reg)
        scale = math.sqrt(p.d1 / p.dim) * _norm(batch)
        return batch + math.sqrt(p.d0 / p.dim) * z1 + scale * z2


# -- the arms, vectorised over cells ---------------------------------------------------------------
#
# An arm is an ascent (None for a base optimizer) and a descent, as in lightsam.optim: each is a
# small stateful object whose step works on all of the arm's cells at once. ``lr`` and ``rho``
# are (cells, 1) columns; norms are per cell (over the last dimension).


class Normalized:
    """SAM's ascent, ``rho s / (||s|| + 1e-12)``; with ``decay`` the radius ``rho / sqrt(t)``."""

    def __init__(self, decay: bool = False) -> None:
        self.decay, self.t = decay, 0

    def __call__(self, s: Tensor, rho: Tensor) -> Tensor:
        self.t += 1
        radius = rho / math.sqrt(self.t) if self.decay else rho
        return s * (radius / (_norm(s) + NORM_EPS))


class AccumulatedNorm:
    """LightSAM-I's ascent: ``u += ||s||^2``, ``e = rho s / sqrt(u)``, ``u_0 = eps^2``."""

    def __init__(self) -> None:
        self.u: Tensor | None = None

    def __call__(self, s: Tensor, rho: Tensor) -> Tensor:
        self.u = (EPS**2 if self.u is None else self.u) + (s * s).sum(-1, keepdim=True)
        return rho * s / self.u.sqrt()


class AccumulatedSquares:
    """LightSAM-II's ascent: ``u += s * s`` elementwise, ``e = rho s / sqrt(u)``."""

    def __init__(self) -> None:
        self.u: Tensor | None = None

    def __call__(self, s: Tensor, rho: Tensor) -> Tensor:
        self.u = (EPS**2 if self.u is None else self.u) + s * s
        return rho * s / self.u.sqrt()


class Moments:
    """LightSAM-III's ascent: ``r, u`` EMAs of ``s`` and ``s * s``, ``e = rho r / sqrt(u)``,
    ``r_0 = 0``, ``u_0 = eps^2``, no bias correction."""

    def __init__(self) -> None:
        self.r: Tensor | None = None
        self.u: Tensor | None = None

    def __call__(self, s: Tensor, rho: Tensor) -> Tensor:
        b1, b2 = BETAS
        self.r = (1 - b1) * s if self.r is None else b1 * self.r + (1 - b1) * s
        self.u = b2 * (EPS**2 if self.u is None else self.u) + (1 - b2) * s * s
        return rho * self.r / self.u.sqrt()


class SGD:
    def step(self, x: Tensor, g: Tensor, lr: Tensor) -> Tensor:
        return x - lr * g


class AdaGradNorm:
    """``v += ||g||^2``, ``x -= lr g / sqrt(v)``, ``v_0 = eps^2`` (lightsam.AdaGradNorm)."""

    def __init__(self) -> None:
        self.v: Tensor | None = None

    def step(self, x: Tensor, g: Tensor, lr: Tensor) -> Tensor:
        self.v = (EPS**2 if self.v is None else self.v) + (g * g).sum(-1, keepdim=True)
        return x - lr * g / self.v.sqrt()


class AdaGrad:
    """torch.optim.Adagrad: ``v += g * g``, ``x -= lr g / (sqrt(v) + 1e-10)``, ``v_0 = 0``."""

    def __init__(self) -> None:
        self.v: Tensor | None = None

    def step(self, x: Tensor, g: Tensor, lr: Tensor) -> Tensor:
        self.v = g * g if self.v is None else self.v + g * g
        return x - lr * g / (self.v.sqrt() + ADAGRAD_EPS)


class LightAdaGrad:
    """LightSAM-II's descent: ``v += g * g``, ``x -= lr g / sqrt(v)``, ``v_0 = eps^2``."""

    def __init__(self) -> None:
        self.v: Tensor | None = None

    def step(self, x: Tensor, g: Tensor, lr: Tensor) -> Tensor:
        self.v = (EPS**2 if self.v is None else self.v) + g * g
        return x - lr * g / self.v.sqrt()


class Adam:
    """torch.optim.Adam (bias-corrected, ``eps`` outside the root); with ``decay`` AdamW's
    decoupled weight decay."""

    def __init__(self, decay: float = 0.0) -> None:
        self.decay, self.t = decay, 0
        self.m: Tensor | None = None
        self.v: Tensor | None = None

    def step(self, x: Tensor, g: Tensor, lr: Tensor) -> Tensor:
        b1, b2 = BETAS
        self.t += 1
        if self.decay:
            x = x * (1 - lr * self.decay)
        self.m = (1 - b1) * g if self.m is None else b1 * self.m + (1 - b1) * g
        self.v = (1 - b2) * g * g if self.v is None else b2 * self.v + (1 - b2) * g * g
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        return x - lr * (self.m / c1) / ((self.v / c2).sqrt() + EPS)


class LightAdam:
    """LightSAM-III's descent: ``m, v`` EMAs, ``x -= lr m / sqrt(v)``, ``v_0 = eps^2``."""

    def __init__(self) -> None:
        self.m: Tensor | None = None
        self.v: Tensor | None = None

    def step(self, x: Tensor, g: Tensor, lr: Tensor) -> Tensor:
        b1, b2 = BETAS
        self.m = (1 - b1) * g if self.m is None else b1 * self.m + (1 - b1) * g
        self.v = b2 * (EPS**2 if self.v is None else self.v) + (1 - b2) * g * g
        return x - lr * self.m / self.v.sqrt()


# Each arm by its lightsam registry name: (ascent, descent), made fresh for every run. The
# descent of a LightSAM variant is its own rule (eps^2 in the statistic), of a base optimizer or
# an ablation arm torch's or lightsam's optimizer of that name.
ARMS: dict[str, tuple[Callable[[], Callable] | None, Callable[[], object]]] = {
    "sgd": (None, SGD),
    "sgd_sam": (Normalized, SGD),
    "adagrad_norm": (None, AdaGradNorm),
    "lightsam_i": (AccumulatedNorm, AdaGradNorm),
    "adagrad": (None, AdaGrad),
    "lightsam_ii": (AccumulatedSquares, LightAdaGrad),
    "adam": (None, Adam),
    "lightsam_iii": (Moments, LightAdam),
    "adagrad_norm_sam": (Normalized, AdaGradNorm),
    "adagrad_sam": (Normalized, AdaGrad),
    "adam_sam": (Normalized, Adam),
    "adamw_sam": (Normalized, lambda: Adam(decay=ADAMW_DECAY)),
    "lightsam_i_sgd": (AccumulatedNorm, SGD),
    "sgd_sam_decay": (lambda: Normalized(decay=True), SGD),
}


@dataclass(frozen=True)
class Cells:
    """The grid, one row per cell: ``arm`` names, and ``lr``, ``rho`` (NaN for a base
    optimizer; float64, the grid's own values) and ``seed`` (an index into the problem's seeds)
    as tensors of length ``cells``."""

    arm: list[str]
    lr: Tensor
    rho: Tensor
    seed: Tensor


def make_cells(problem: Problem, arms: list[str]) -> Cells:
    rows = []
    for arm in arms:
        rhos = [math.nan] if ARMS[arm][0] is None else problem.rhos
        rows += [
            (arm, lr, rho, s)
            for lr, rho, s in itertools.product(problem.lrs, rhos, range(len(problem.seeds)))
        ]
    return Cells(
        arm=[r[0] for r in rows],
        lr=torch.tensor([r[1] for r in rows], dtype=torch.float64),
        rho=torch.tensor([r[2] for r in rows], dtype=torch.float64),
        seed=torch.tensor([r[3] for r in rows]),
    )


# -- a run of the whole grid ---------------------------------------------------------------------

# A cell has diverged once its gradient norm is non-finite or this many times its start.
DIVERGED = 1e6


# The horizons T the results are kept at: every decade's 1, 2, 5.
def horizons(steps: int, record_every: int) -> list[int]:
    marks = sorted({m * 10**k for k in range(8) for m in (1, 2, 5)})
    return [t for t in marks if record_every <= t <= steps and t % record_every == 0]


@dataclass(frozen=True)
class Trajectories:
    """``sq_grad[r, c]``: ``||grad f(x_t)||^2 / ||grad f(x_0)||^2`` of cell ``c`` at step
    ``t = (r + 1) * record_every``; the cells; their weights ``x`` after the last step."""

    cells: Cells
    record_every: int
    sq_grad: Tensor
    x: Tensor


def run_grid(problem: Problem, arms: list[str], data: Data | None = None) -> Trajectories:
    """Every cell of ``arms`` for ``problem.steps`` steps, all at once: one oracle call for the
    ascent gradients of every cell and one for the descent gradients, each arm's rules on its
    slice of the cells."""
    data = data or make_data(problem)
    cells = make_cells(problem, arms)
    slices, start = {}, 0
    for arm in arms:
        count = cells.arm.count(arm)
        slices[arm] = slice(start, start + count)
        start += count
    states = {arm: (ARMS[arm][0]() if ARMS[arm][0] else None, ARMS[arm][1]()) for arm in arms}
    lr, rho = (v.to(problem.dtype).unsqueeze(-1) for v in (cells.lr, cells.rho))
    x = data.x0.expand(len(cells.arm), -1).clone()
    oracle = Oracle(problem, data, cells.seed)
    initial = gradient(data.x0.unsqueeze(0), data.a, data.y, problem.reg).square().sum()
    records = []
    for t in range(1, problem.steps + 1):
        draw = oracle.draw()  # one draw per seed: every arm, and both passes, see it
        s = oracle(x, draw)
        e = torch.zeros_like(x)
        for arm, part in slices.items():
            ascent = states[arm][0]
            if ascent is not None:
                e[part] = ascent(s[part], rho[part])
        g = oracle(x + e, draw)
        x = torch.cat(
            [states[arm][1].step(x[part], g[part], lr[part]) for arm, part in slices.items()]
        )
        if t % problem.record_every == 0:
            full = gradient(x, data.a, data.y, problem.reg).square().sum(-1)
            records.append(full / initial)
    sq_grad = torch.stack(records) if records else torch.empty(0, len(cells.arm))
    return Trajectories(cells, problem.record_every, sq_grad, x)


# -- what a run of the grid shows ------------------------------------------------------------------

# Targets for ||grad f||^2 / ||grad f(x_0)||^2. With one sample a step, a few cells of each
# arm reach 1e-3 within 1e4 steps and none 1e-4 (the noise floor of a constant step, the slow
# 1/sqrt(T) decay of an adaptive one): a smaller target would only say "never" everywhere.
EPSILONS = (1e-2, 1e-3)
CELL_COLUMNS = (
    "arm", "lr", "rho", "seed", "diverged", "diverged_step", "final_sq_grad", "min_sq_grad",
    "avg_sq_grad", "steps_to_1e-2", "steps_to_1e-3", "slope",
)  # fmt: skip
CURVE_COLUMNS = ("arm", "lr", "rho", "seed", "T", "min_sq_grad", "avg_sq_grad")


def summarise(tr: Trajectories, problem: Problem) -> tuple[list[dict], list[dict]]:
    """Per cell: whether and when it diverged, the final, minimum and average relative squared
    gradient norm up to ``T`` (over the recorded steps), the steps to reach each of
    ``EPSILONS``, and the slope of log(average) against log(T) over the last two decades of
    horizons (-1/2 is the rate of the theorem); and per cell and horizon ``T``, the minimum and
    the average up to ``T``. After a cell diverges its values are NaN."""
    sq = tr.sq_grad.double()
    steps = (torch.arange(len(sq)) + 1) * tr.record_every
    bad = ~torch.isfinite(sq) | (sq > DIVERGED**2)
    gone = bad.cumsum(0) > 0
    clean = sq.masked_fill(gone, math.nan)
    running_min = clean.masked_fill(gone, math.inf).cummin(0).values.masked_fill(gone, math.nan)
    running_avg = clean.nan_to_num(0.0).cumsum(0) / torch.arange(1, len(sq) + 1).unsqueeze(-1)
    running_avg = running_avg.masked_fill(gone, math.nan)
    marks = horizons(problem.steps, tr.record_every)
    rows_at = torch.tensor([t // tr.record_every - 1 for t in marks])
    late = torch.tensor([t >= problem.steps / 100 for t in marks])
    log_t = torch.log(torch.tensor(marks, dtype=torch.float64))[late]
    cells, curves = [], []
    for c, arm in enumerate(tr.cells.arm):
        key = {
            "arm": arm,
            "lr": tr.cells.lr[c].item(),
            "rho": tr.cells.rho[c].item(),
            "seed": problem.seeds[tr.cells.seed[c].item()],
        }
        diverged = bool(gone[-1, c])
        row = {
            **key,
            "diverged": int(diverged),
            "diverged_step": int(steps[gone[:, c]][0]) if diverged else None,
            "final_sq_grad": clean[-1, c].item(),
            "min_sq_grad": running_min[-1, c].item(),
            "avg_sq_grad": running_avg[-1, c].item(),
        }
        for eps in EPSILONS:
            reached = steps[clean[:, c] <= eps]
            row[f"steps_to_{eps:.0e}".replace("e-0", "e-")] = (
                int(reached[0]) if len(reached) else None
            )
        averages = torch.log(running_avg[rows_at, c][late])
        fit = torch.isfinite(averages).all() and len(averages) > 1
        row["slope"] = _slope(log_t, averages) if fit else math.nan
        cells.append(row)
        for t, r in zip(marks, rows_at.tolist(), strict=True):
            curves.append(
                {**key, "T": t, "min_sq_grad": running_min[r, c].item(),
                 "avg_sq_grad": running_avg[r, c].item()}
            )  # fmt: skip
    return cells, curves


def _slope(x: Tensor, y: Tensor) -> float:
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x * x).sum())


# -- the experiment's directory -------------------------------------------------------------------


def settings(problem: Problem, arms: Sequence[str]) -> dict[str, Any]:
    """What defines a run of the experiment, as ``meta.json`` holds it."""
    values = {k: v for k, v in dataclasses.asdict(problem).items() if k != "dtype"}
    return json.loads(json.dumps({**values, "dtype": str(problem.dtype), "arms": list(arms)}))


def _csv(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def run_theorem(out: Path, problem: Problem = Problem(), arms: Sequence[str] = tuple(ARMS)) -> dict:
    """Run every cell of ``arms`` on ``problem`` into ``out`` (``cells.csv``, ``curves.csv``,
    ``meta.json``), or reuse what ``out`` holds for the same settings; returns the meta."""
    wanted = settings(problem, arms)
    meta = store.read_json(out / store.THEOREM_META)
    if meta is not None and meta.get("settings") == wanted and (out / store.THEOREM_CELLS).exists():
        return meta
    started, threads = time.perf_counter(), torch.get_num_threads()
    data = make_data(problem)
    # Tensors of a few thousand elements: a second thread costs more than it saves.
    torch.set_num_threads(1)
    try:
        trajectories = run_grid(problem, list(arms), data)
    finally:
        torch.set_num_threads(threads)
    cells, curves = summarise(trajectories, problem)
    store.write_text(out / store.THEOREM_CELLS, _csv(cells, CELL_COLUMNS))
    store.write_text(out / store.THEOREM_CURVES, _csv(curves, CURVE_COLUMNS))
    meta = {
        "settings": wanted,
        "smoothness": data.smoothness,
        "description": (
            "non-convex-regularised least squares on synthetic data; stochastic gradients of one "
            "minibatch per step, shared by the ascent and the descent, with added noise of "
            "variance d0 + d1 ||g_B||^2"
        ),
        "cells": len(cells),
        "wall_s": time.perf_counter() - started,
        "environment": store.environment(torch.device("cpu")),
    }
    store.write_json(out / store.THEOREM_META, meta)
    return meta
