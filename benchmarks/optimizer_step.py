"""Optimizer-only time per step of every method, as a ratio to ``torch.optim.Adam(foreach=True)``.

A sharpness-aware step is ``first_step()`` + ``second_step()`` (the two forward/backward passes
are the training loop's cost, not the optimizer's). Ratios are measured in one run on the same
parameters, which makes them far more stable than absolute times on a shared machine.

Goals: SGD-SAM, LightSAM-I and -II at most 1.5x Adam's step, LightSAM-III at most 2.2x (each
optimizer on its default path); the foreach path at least 2x faster than the per-tensor path on
the many-small-tensors model. On CPU the foreach goal is out of reach by construction: torch's
CPU foreach kernels loop over per-tensor kernels, so only the Python overhead is saved (torch's
own Adam gains about 1.5x); it is a CUDA goal, measured with ``--device cuda``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torchvision

from benchmarks.timing import median_seconds
from lightsam import SharpnessAwareOptimizer, create_optimizer

HPARAMS = {
    "sgd": {"lr": 0.1, "momentum": 0.9},
    "adam": {"lr": 1e-3},
    "adamw": {"lr": 1e-3},
    "adagrad_norm": {"lr": 0.1},
    "sgd_sam": {"lr": 0.1, "rho": 0.05, "momentum": 0.9},
    "asam": {"lr": 0.1, "rho": 0.5, "momentum": 0.9},
    "adasam": {"lr": 1e-3, "rho": 0.05},
    "lightsam_i": {"lr": 0.1, "rho": 0.05},
    "lightsam_ii": {"lr": 1e-2, "rho": 1e-3},
    "lightsam_iii": {"lr": 1e-3, "rho": 1e-3},
    "adam_sam": {"lr": 1e-3, "rho": 0.05},
    "adamw_sam": {"lr": 1e-3, "rho": 0.05},
    "adagrad_sam": {"lr": 1e-2, "rho": 0.05},
    "adagrad_norm_sam": {"lr": 0.1, "rho": 0.05},
    "lightsam_i_sgd": {"lr": 0.1, "rho": 0.05, "momentum": 0.9},
    "sgd_sam_decay": {"lr": 0.1, "rho": 0.05, "momentum": 0.9},
}
GOALS = {"sgd_sam": 1.5, "lightsam_i": 1.5, "lightsam_ii": 1.5, "lightsam_iii": 2.2}
FOREACH_GOAL = 2.0


def resnet18_shapes() -> list[torch.Size]:
    """The parameter shapes of ResNet-18 with 10 classes: 62 tensors, 11.2M parameters."""
    return [p.shape for p in torchvision.models.resnet18(num_classes=10).parameters()]


def many_small_shapes() -> list[torch.Size]:
    """400 small tensors (biases, norms, small projections), 1.1M parameters: the regime where
    per-tensor Python overhead dominates."""
    return [torch.Size([256])] * 200 + [torch.Size([32, 32])] * 100 + [torch.Size([64, 128])] * 100


def make_params(shapes: list[torch.Size], device: torch.device) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=gen).to(device).requires_grad_(True)
        p.grad = torch.randn(shape, generator=gen).to(device)
        params.append(p)
    return params


def step_fn(name: str, params: list[torch.Tensor], foreach: bool | None) -> Callable[[], None]:
    """One optimizer step of ``name``; ``foreach=None`` is the optimizer's default path."""
    hp = dict(HPARAMS[name], foreach=foreach)
    opt = create_optimizer(name, params, **hp)
    if isinstance(opt, SharpnessAwareOptimizer):

        def step() -> None:
            opt.first_step()
            opt.second_step()

        return step
    return opt.step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"optimizer step, {device} ({torch.get_num_threads()} threads), torch {torch.__version__}"
    )

    for model, shapes in (("resnet18", resnet18_shapes()), ("many_small", many_small_shapes())):
        params = make_params(shapes, device)
        n = sum(p.numel() for p in params)
        print(f"\n{model}: {len(params)} tensors, {n / 1e6:.2f}M parameters")

        def timed(name: str, foreach: bool | None, params: list[torch.Tensor] = params) -> float:
            step = step_fn(name, params, foreach)
            return median_seconds(step, device, calls=args.steps, repeats=args.repeats)

        adam = timed("adam", True)
        print(f"  Adam(foreach=True): {adam * 1e3:.2f} ms/step")
        print(
            f"  {'method':<16} {'default ms':>10} {'/ Adam':>7} {'goal':>8}"
            f" {'foreach ms':>11} {'per-tensor ms':>14} {'foreach speed-up':>17}"
        )
        for name in HPARAMS:
            default, fast, slow = (timed(name, foreach) for foreach in (None, True, False))
            ratio = default / adam
            goal = GOALS.get(name)
            verdict = "" if goal is None else f"{'ok' if ratio <= goal else 'MISS'} {goal:.1f}"
            speedup = slow / fast
            mark = "" if model != "many_small" else ("ok" if speedup >= FOREACH_GOAL else "MISS")
            print(
                f"  {name:<16} {default * 1e3:>10.2f} {ratio:>6.2f}x {verdict:>8}"
                f" {fast * 1e3:>11.2f} {slow * 1e3:>14.2f} {speedup:>12.2f}x {mark}"
            )


if __name__ == "__main__":
    main()
