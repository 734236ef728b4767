"""A short sharpness-aware training run on synthetic CIFAR-shaped data: does the loss fall?

Each of ten classes is a fixed random image; a sample is its class's image plus Gaussian noise,
so the classes are separable and a working step drives the loss well below its start (ln 10
for ten classes). The run draws batches from a fixed set of samples on the device, through
``lightsam.step.TrainStep``, and checks that the loss is finite throughout and that its mean
over the last tenth of the steps is at most ``--fall`` times its mean over the first tenth.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence

import torch
from torch import nn

from benchmarks import cli, report
from benchmarks.train_step import HPARAMS
from lightsam import create_optimizer
from lightsam.models import create_model
from lightsam.step import TrainStep

CLASSES, CHANNELS, SIZE = 10, 3, 32  # CIFAR-10's shapes
MODELS = ("resnet18", "lenet5")


def synthetic_data(
    samples: int, channels: int, size: int, noise: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    prototypes = torch.randn(CLASSES, channels, size, size, generator=gen)
    y = torch.randint(0, CLASSES, (samples,), generator=gen)
    x = prototypes[y] + noise * torch.randn(samples, channels, size, size, generator=gen)
    return x.to(device), y.to(device)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__.splitlines()[0], timed=False)
    cli.add_precision(parser)
    parser.add_argument("--model", choices=MODELS, default="resnet18")
    parser.add_argument("--method", choices=HPARAMS, default="sgd_sam")
    parser.add_argument("--steps", type=cli.positive_int, default=150)
    parser.add_argument("--batch", type=cli.positive_int, default=128)
    parser.add_argument("--samples", type=cli.positive_int, default=4096)
    parser.add_argument("--noise", type=float, default=1.0, help="noise around each class image")
    parser.add_argument(
        "--lr", type=float, default=None, help="the method's lr (default: the benchmarks' own)"
    )
    parser.add_argument(
        "--fall",
        type=float,
        default=0.5,
        help="the last tenth's mean loss must be at most this times the first tenth's",
    )
    args = parser.parse_args(argv)
    if args.steps < 10:
        parser.error(
            f"--steps must be >= 10 (a tenth of the run at least one step), got {args.steps}"
        )
    if not 0.0 < args.fall < 1.0:
        parser.error(f"--fall must be in (0, 1), got {args.fall}")
    if not args.noise >= 0.0:
        parser.error(f"--noise must be >= 0, got {args.noise}")
    if args.lr is not None and not args.lr > 0.0:
        parser.error(f"--lr must be > 0, got {args.lr}")
    return args


def run(args: argparse.Namespace) -> list[dict]:
    device = cli.setup(args)
    x, y = synthetic_data(args.samples, CHANNELS, SIZE, args.noise, device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=CLASSES, in_channels=CHANNELS, image_size=SIZE)
    model = model.to(device, memory_format=memory_format).train()
    hparams = HPARAMS[args.method] | ({} if args.lr is None else {"lr": args.lr})
    step = TrainStep(
        model,
        create_optimizer(args.method, model.parameters(), **hparams),
        nn.CrossEntropyLoss(),
        autocast_dtype=None if args.precision == "fp32" else cli.PRECISIONS[args.precision],
    )
    order = torch.Generator().manual_seed(1)
    losses = []
    start = time.perf_counter()
    for _ in range(args.steps):
        batch = torch.randint(0, args.samples, (args.batch,), generator=order).to(device)
        losses.append(step(x[batch].contiguous(memory_format=memory_format), y[batch])[0])
    curve = torch.stack(losses).float().cpu()  # the run's only read-back, after the last step
    seconds = time.perf_counter() - start
    tenth = args.steps // 10
    first, last = curve[:tenth].mean().item(), curve[-tenth:].mean().item()
    finite = int(torch.isfinite(curve).sum())
    print(f"train check: {args.steps} steps in {seconds:.1f} s", file=sys.stderr)
    checks = [
        {
            "name": "loss finite at every step",
            "value": f"{finite} of {args.steps} steps",
            "expected": "all",
            "passed": finite == args.steps,
        },
        {
            "name": "mean loss, first tenth -> last tenth",
            "value": f"{first:.3f} -> {last:.3f} ({last / first:.2f}x)",
            "expected": f"<= {args.fall:g}x (start about ln 10 = {math.log(CLASSES):.2f})",
            "passed": math.isfinite(last) and last <= args.fall * first,
        },
    ]
    settings = {
        "device": device.type,
        "model": args.model,
        "method": args.method,
        "lr": hparams["lr"],
        "precision": "fp32" if args.precision == "fp32" else f"{args.precision} autocast",
        "memory format": "channels_last" if args.channels_last else "contiguous",
        "steps": args.steps,
        "batch": args.batch,
        "samples": args.samples,
    }
    return [
        report.table(
            f"train_check/{args.model}/{args.method}/{args.precision}",
            f"Training on synthetic CIFAR-shaped data: {args.method}, {args.model}",
            "check",
            checks,
            notes=[f"{args.steps} steps in {seconds:.1f} s ({args.steps / seconds:.1f} steps/s)."],
            settings=settings,
        )
    ]


def main(argv: Sequence[str] | None = None) -> None:
    report.entry(__spec__.name, parse_args, run, argv)


if __name__ == "__main__":
    main()
