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


# -- the ablation arms: one ascent, one descent, each written out ---------------------------------


def _adam_step(x, g, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """torch.optim.Adam's (AdamW's with ``decoupled``) update of ``x`` from ``g``."""
    b1, b2 = betas
    if decoupled:
        x = x * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * x
    t = state["t"] = state.get("t", 0) + 1
    m = state["m"] = b1 * state.get("m", torch.zeros_like(x)) + (1 - b1) * g
    v = state["v"] = b2 * state.get("v", torch.zeros_like(x)) + (1 - b2) * g * g
    return x - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)


def _sgd_step(x, g, state, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    """torch.optim.SGD's update of ``x`` from ``g``."""
    g = g + weight_decay * x
    if momentum:
        buf = state["buf"] = g.clone() if "buf" not in state else momentum * state["buf"] + g
        g = g + momentum * buf if nesterov else buf
    return x - lr * g


def adam_sam(grad, x, steps, lr, rho, **adam):
    state = {}
    for _ in range(steps):
        s = grad(x)
        x = _adam_step(x, grad(x + _sam_ascent(x, s, rho)), state, lr, **adam)
    return x


def adamw_sam(grad, x, steps, lr, rho, weight_decay=1e-2, **adam):
    state = {}
    for _ in range(steps):
        s = grad(x)
        g = grad(x + _sam_ascent(x, s, rho))
        x = _adam_step(x, g, state, lr, weight_decay=weight_decay, decoupled=True, **adam)
    return x


def adagrad_sam(grad, x, steps, lr, rho, eps=1e-10, lr_decay=0.0, weight_decay=0.0,
                initial_accumulator_value=0.0):  # fmt: skip
    acc = torch.full_like(x, initial_accumulator_value)
    for t in range(1, steps + 1):
        s = grad(x)
        g = grad(x + _sam_ascent(x, s, rho)) + weight_decay * x
        acc = acc + g * g
        x = x - lr / (1 + (t - 1) * lr_decay) * g / (acc.sqrt() + eps)
    return x


def adagrad_norm_sam(grad, x, steps, lr, rho, eps=1e-8, weight_decay=0.0,
                     decoupled_weight_decay=False):  # fmt: skip
    v = eps**2
    for _ in range(steps):
        s = grad(x)
        x, g = _decay(x, grad(x + _sam_ascent(x, s, rho)), lr, weight_decay, decoupled_weight_decay)
        v = v + g @ g
        x = x - lr * g / v**0.5
    return x


def lightsam_i_sgd(grad, x, steps, lr, rho, ascent_eps=1e-8, **sgd):
    u, state = ascent_eps**2, {}
    for _ in range(steps):
        s = grad(x)
        u = u + s @ s
        x = _sgd_step(x, grad(x + rho * s / u**0.5), state, lr, **sgd)
    return x


def sgd_sam_decay(grad, x, steps, lr, rho, **sgd):
    state = {}
    for t in range(1, steps + 1):
        s = grad(x)
        x = _sgd_step(x, grad(x + _sam_ascent(x, s, rho / t**0.5)), state, lr, **sgd)
    return x


REFERENCES = {
    "sgd_sam": sgd_sam,
    "asam": asam,
    "lightsam_i": lightsam_i,
    "lightsam_ii": lightsam_ii,
    "lightsam_iii": lightsam_iii,
    "adasam": adasam,
    "adagrad_norm": adagrad_norm,
    "adam_sam": adam_sam,
    "adamw_sam": adamw_sam,
    "adagrad_sam": adagrad_sam,
    "adagrad_norm_sam": adagrad_norm_sam,
    "lightsam_i_sgd": lightsam_i_sgd,
    "sgd_sam_decay": sgd_sam_decay,
}
