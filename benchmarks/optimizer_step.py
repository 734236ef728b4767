"""Optimizer-only time per step of every method and arm, as a ratio to ``torch.optim.Adam``.

A sharpness-aware step is ``first_step()`` + ``second_step()`` (the two forward/backward passes
are the training loop's cost, not the optimizer's). Each method runs interleaved with Adam on
the same parameters (``benchmarks.timing``): Adam with ``foreach=True`` on CPU, ``fused=True`` on
CUDA, each the fastest torch offers there. The methods of a model take their rounds in turn,
each round with new optimizers, so new state tensors. Two tables: each method on its default
path against Adam, and its per-tensor path against its foreach path. With ``--crossover``, a
third: both paths of LightSAM-III and SGD-SAM over tensors of 2^k elements (as many as make
2^21), the measurement behind the CPU default (``lightsam.optim.base.CPU_FOREACH_MAX_NUMEL``).

Goals: SGD-SAM, LightSAM-I and -II at most 1.5x Adam's step, LightSAM-III at most 2.2x (each
optimizer on its default path); the foreach path at least 2x faster than the per-tensor path on
the many-small-tensors model. On CPU the foreach goal is out of reach by construction: torch's
CPU foreach kernels loop over per-tensor kernels, so only the Python overhead is saved (torch's
own Adam gains about 1.5x); it is a CUDA goal, measured with ``--device cuda``.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence

import torch
import torchvision

from benchmarks import cli, report
from benchmarks.compare import Comparison, Goal
from benchmarks.timing import interleaved_suite
from lightsam import SharpnessAwareOptimizer, create_optimizer
from lightsam.optim.base import CPU_FOREACH_MAX_NUMEL, resolve_foreach

HPARAMS = {
    "sgd": {"lr": 0.1, "momentum": 0.9},
    "adam": {"lr": 1e-3},
    "adamw": {"lr": 1e-3},
    "adagrad": {"lr": 1e-2},
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
GOALS = {
    "sgd_sam": Goal(1.5),
    "lightsam_i": Goal(1.5),
    "lightsam_ii": Goal(1.5),
    "lightsam_iii": Goal(2.2),
}
FOREACH_GOAL = Goal(2.0, at_most=False, device="cuda")
FOREACH_GOAL_MODEL = "many_small"
# On CUDA the per-tensor steps of the many-small-tensors model dominate: sized so that both
# precisions fit benchmarks/gpu.sh's 8 minutes.
# On CPU, rounds of five calls each: a round's ratio is then an average, not one call's luck.
SIZES = {"cpu": cli.Sizes(rounds=8, calls=5), "cuda": cli.Sizes(rounds=8, calls=2, warmup=3)}


def resnet18_shapes() -> list[torch.Size]:
    """The parameter shapes of ResNet-18 with 10 classes: 62 tensors, 11.2M parameters."""
    return [p.shape for p in torchvision.models.resnet18(num_classes=10).parameters()]


def many_small_shapes() -> list[torch.Size]:
    """400 small tensors (biases, norms, small projections), 1.1M parameters: the regime where
    per-tensor Python overhead dominates."""
    return [torch.Size([256])] * 200 + [torch.Size([32, 32])] * 100 + [torch.Size([64, 128])] * 100


MODELS = {"resnet18": resnet18_shapes, "many_small": many_small_shapes}

# The crossover table: LightSAM-III, the costliest step of the table against Adam, and SGD-SAM,
# the reference, over tensors of 2^k elements, 2^CROSSOVER_TOTAL in all (2048 tensors of 2^10 to
# 8 of 2^18 in make bench).
CROSSOVER_METHODS = ("lightsam_iii", "sgd_sam")
CROSSOVER_TOTAL = 21


def crossover_exponents(text: str) -> list[int]:
    """``--crossover``: comma-separated k of 2^k elements a tensor, each in 0..CROSSOVER_TOTAL."""
    try:
        exponents = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated integers: {text!r}") from None
    bad = [k for k in exponents if not 0 <= k <= CROSSOVER_TOTAL]
    if bad or not exponents:
        raise argparse.ArgumentTypeError(f"each k must be in 0..{CROSSOVER_TOTAL}, got {text!r}")
    return exponents


def make_params(
    shapes: list[torch.Size], device: torch.device, dtype: torch.dtype
) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=gen).to(device, dtype).requires_grad_(True)
        p.grad = torch.randn(shape, generator=gen).to(device, dtype)
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


def adam_label(device: torch.device) -> str:
    return "Adam(fused)" if device.type == "cuda" else "Adam(foreach)"


def adam_baseline(params: list[torch.Tensor], device: torch.device) -> Callable[[], object]:
    """The step of a new ``torch.optim.Adam`` on ``params``, fused on CUDA, foreach on CPU."""
    if device.type == "cuda":
        return torch.optim.Adam(params, lr=1e-3, fused=True).step
    return torch.optim.Adam(params, lr=1e-3, foreach=True).step


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__.splitlines()[0])
    cli.add_precision(parser, channels_last=False)
    parser.add_argument(
        "--models",
        type=lambda text: cli.choices(text, MODELS),
        default=list(MODELS),
        help=f"comma-separated, of {', '.join(MODELS)} (default: all)",
    )
    parser.add_argument(
        "--methods",
        type=lambda text: cli.choices(text, HPARAMS),
        default=list(HPARAMS),
        help="comma-separated registry names (default: every method and arm)",
    )
    parser.add_argument(
        "--crossover",
        type=crossover_exponents,
        default=[],
        help="comma-separated k: time both paths over tensors of 2^k elements (default: none)",
    )
    return parser.parse_args(argv)


def crossover(
    exponents: list[int], device: torch.device, dtype: torch.dtype, size: cli.Sizes
) -> list[Comparison]:
    """Per 2^k and method of ``CROSSOVER_METHODS``: its per-tensor step against its foreach
    step over 2^(CROSSOVER_TOTAL - k) tensors of 2^k elements."""
    suite = {}
    for k in exponents:
        shapes = [torch.Size([2**k])] * 2 ** (CROSSOVER_TOTAL - k)
        params = make_params(shapes, device, dtype)
        for name in CROSSOVER_METHODS:

            def arms(name: str = name, params: list[torch.Tensor] = params) -> dict:
                return {path: step_fn(name, params, path == "foreach")
                        for path in ("foreach", "per-tensor")}  # fmt: skip

            suite[k, name] = arms
    measured = interleaved_suite(
        suite, device, rounds=size.rounds, calls=size.calls, warmup=size.warmup
    )
    return [
        Comparison(f"2^{k} x {2 ** (CROSSOVER_TOTAL - k)}", f"{name} per-tensor",
                   f"{name} foreach", times["per-tensor"], times["foreach"], None)
        for (k, name), times in measured.items()
    ]  # fmt: skip


def run(args: argparse.Namespace) -> list[dict]:
    """The tables: each method against Adam, its per-tensor path against its foreach path, and
    with ``--crossover`` both paths by tensor size."""
    device = cli.setup(args)
    size = cli.sizes(args, SIZES[device.type])
    vs_adam, foreach, defaults = [], [], {}
    for model in args.models:
        params = make_params(MODELS[model](), device, cli.PRECISIONS[args.precision])
        label = adam_label(device)
        # The path lightsam's optimizers take when not told (resolve_foreach: by device and size).
        default = defaults[model] = "foreach" if resolve_foreach(None, params) else "per-tensor"

        def arms(name: str, params: list[torch.Tensor] = params) -> dict[str, Callable[[], None]]:
            """Adam and both paths of ``name``, new optimizers (and state) on the model's
            tensors."""
            return {
                "adam": adam_baseline(params, device),
                "foreach": step_fn(name, params, True),
                "per-tensor": step_fn(name, params, False),
            }

        suite = {name: functools.partial(arms, name) for name in args.methods}
        measured = interleaved_suite(
            suite, device, rounds=size.rounds, calls=size.calls, warmup=size.warmup
        )
        for name, times in measured.items():
            vs_adam.append(
                Comparison(model, name, label, times[default], times["adam"], GOALS.get(name))
            )
            goal = FOREACH_GOAL if model == FOREACH_GOAL_MODEL else None
            foreach.append(
                Comparison(
                    model,
                    f"{name} per-tensor",
                    f"{name} foreach",
                    times["per-tensor"],
                    times["foreach"],
                    goal,
                )
            )
        print(f"optimizer step: {model} measured", file=sys.stderr)
    settings = {
        "device": device.type,
        "threads": torch.get_num_threads(),
        "precision": args.precision,
        "timing": str(size),
    }
    models = ", ".join(f"{m} ({len(MODELS[m]())} tensors, {defaults[m]})" for m in args.models)
    tables = []
    if args.crossover:
        dtype = cli.PRECISIONS[args.precision]
        largest = CPU_FOREACH_MAX_NUMEL.bit_length() - 1
        limit = ("every tensor is on CUDA" if device.type == "cuda"
                 else f"no tensor has more than 2^{largest} elements")  # fmt: skip
        tables.append(
            report.table(
                f"optimizer_step/{args.precision}/crossover",
                f"Optimizer step by tensor size, per-tensor path / foreach path ({args.precision})",
                "ratio",
                [c.record(device.type) for c in crossover(args.crossover, device, dtype, size)],
                notes=[
                    f"2^{CROSSOVER_TOTAL} elements in tensors of 2^k (model: 2^k x tensors); "
                    "above 1 the foreach path is the faster. lightsam's default on "
                    f"{device.type} is the foreach path when {limit} "
                    "(lightsam.optim.base.CPU_FOREACH_MAX_NUMEL on CPU)."
                ],
                settings=settings,
            )
        )
    return [
        report.table(
            f"optimizer_step/{args.precision}/vs_adam",
            f"Optimizer step / {adam_label(device)} ({args.precision})",
            "ratio",
            [c.record(device.type) for c in vs_adam],
            notes=[
                f"Each method on its default path on {device.type}; models (and that path): "
                f"{models}. "
                "Goals: SGD-SAM, LightSAM-I and -II at most 1.5x Adam's step, LightSAM-III at "
                "most 2.2x."
            ],
            settings=settings,
        ),
        report.table(
            f"optimizer_step/{args.precision}/foreach",
            f"Optimizer step, per-tensor path / foreach path ({args.precision})",
            "ratio",
            [c.record(device.type) for c in foreach],
            notes=[
                f"The speed-up of the foreach path; goal at least 2x on {FOREACH_GOAL_MODEL}, on "
                "CUDA. On CPU it is out of reach by construction: torch's CPU foreach kernels "
                "loop over per-tensor kernels, so only the Python overhead is saved (torch's own "
                "Adam gains about 1.5x)."
            ],
            settings=settings,
        ),
        *tables,
    ]


def main(argv: Sequence[str] | None = None) -> None:
    report.entry(__spec__.name, parse_args, run, argv)


if __name__ == "__main__":
    main()
