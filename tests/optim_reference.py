"""Float64 hand computations of every method, written straight from ALGORITHMS.md.

They work on one flat vector of all parameters, so "global over all parameters" is just the
vector norm, and per-group ``lr`` / ``rho`` are vectors with one entry per coordinate. Nothing
here shares code with the package.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Grad = Callable[[Tensor], Tensor]


def run(method: str, grad: Grad, x0: Tensor, steps: int, **hp) -> Tensor:
    """The weights after ``steps`` steps of ``method`` from ``x0``."""
    return REFERENCES[method](grad, x0.clone(), steps, **hp)


def _sam_ascent(x: Tensor, s: Tensor, rho, adaptive=False, asam_eta=0.01) -> Tensor:
    t = x.abs() + asam_eta if adaptive else torch.ones_like(x)
    return rho * t * t * s / ((t * s).norm() + 1e-12)


def sgd_sam(grad, x, steps, lr, rho, momentum=0.0, weight_decay=0.0, nesterov=False, **asam):
    buf = None
    for _ in range(steps):
        s = grad(x)
        g = grad(x + _sam_ascent(x, s, rho, **asam)) + weight_decay * x
        if momentum:
            buf = g.clone() if buf is None else momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        x = x - lr * g
    return x


def asam(grad, x, steps, lr, rho, **hp):
    return sgd_sam(grad, x, steps, lr, rho, adaptive=True, **hp)


def _decay(x, g, lr, weight_decay, decoupled):
    """(weights, gradient) after weight decay: L2 into the gradient, or decoupled shrinking."""
    if decoupled:
        return x - lr * weight_decay * x, g
    return x, g + weight_decay * x


def lightsam_i(grad, x, steps, lr, rho, eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False):
    u = v = eps**2
    for _ in range(steps):
        s = grad(x)
        u = u + s @ s
        x, g = _decay(x, grad(x + rho * s / u**0.5), lr, weight_decay, decoupled_weight_decay)
        v = v + g @ g
        x = x - lr * g / v**0.5
    return x


def lightsam_ii(grad, x, steps, lr, rho, eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False):
    u = torch.full_like(x, eps**2)
    v = torch.full_like(x, eps**2)
    for _ in range(steps):
        s = grad(x)
        u = u + s * s
        x, g = _decay(x, grad(x + rho * s / u.sqrt()), lr, weight_decay, decoupled_weight_decay)
        v = v + g * g
        x = x - lr * g / v.sqrt()
    return x


def lightsam_iii(
    grad,
    x,
    steps,
    lr,
    rho,
    eps=1e-8,
    betas=(0.9, 0.999),
    bias_correction=False,
    weight_decay=0.0,
    decoupled_weight_decay=False,
):
    b1, b2 = betas
    r, m = torch.zeros_like(x), torch.zeros_like(x)
    u, v = torch.full_like(x, eps**2), torch.full_like(x, eps**2)
    for t in range(1, steps + 1):
        c1, c2 = (1 - b1**t, 1 - b2**t) if bias_correction else (1.0, 1.0)
        s = grad(x)
        r = b1 * r + (1 - b1) * s
        u = b2 * u + (1 - b2) * s * s
        g = grad(x + rho * (r / c1) / (u / c2).sqrt())
        if decoupled_weight_decay:
            x = x - lr * weight_decay * x
        else:
            g = g + weight_decay * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / c1) / (v / c2).sqrt()
    return x


def adasam(grad, x, steps, lr, rho, eps=1e-8, betas=(0.9, 0.999), weight_decay=0.0):
    b1, b2 = betas
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    v_hat = torch.full_like(x, eps**2)
    for _ in range(steps):
        s = grad(x)
        g = grad(x + _sam_ascent(x, s, rho)) + weight_decay * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_hat = torch.maximum(v_hat, v)
        x = x - lr * m / v_hat.sqrt()
    return x


def adagrad_norm(grad, x, steps, lr, eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False):
    v = eps**2
    for _ in range(steps):
        x, g = _decay(x, grad(x), lr, weight_decay, decoupled_weight_decay)
        v = v + g @ g
        x = x - lr * g / v**0.5
    return x


REFERENCES = {
    "sgd_sam": sgd_sam,
    "asam": asam,
    "lightsam_i": lightsam_i,
    "lightsam_ii": lightsam_ii,
    "lightsam_iii": lightsam_iii,
    "adasam": adasam,
    "adagrad_norm": adagrad_norm,
}
