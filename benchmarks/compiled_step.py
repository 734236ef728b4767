"""A sharpness-aware training step on a ``torch.compile``d model, against the eager one.

The model is compiled, the step is ``lightsam.step.TrainStep`` as in training: its second pass
runs with BatchNorm's running statistics frozen, a second graph, so the first step compiles
two graphs and later steps reuse them. Four arms interleaved: the method on the eager model,
the method, its base and the pass alone on the compiled model; and two checks: the first
compiled step runs (its time is mostly compiling), and its loss equals the eager model's first
loss (same weights, same batch) to rounding.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Sequence

import torch

from benchmarks import cli, report
from benchmarks.compare import Comparison, two_pass_floor
from benchmarks.timing import interleaved_seconds
from benchmarks.train_step import BATCH, CASES, GOAL, HPARAMS, Case, base_arm

SIZES = {"cpu": cli.Sizes(rounds=4, calls=1), "cuda": cli.Sizes(rounds=8, calls=3, warmup=3)}
# The loss of the compiled model's first step against the eager one's, relative: kernels fused
# differently round differently, in bf16 far more.
LOSS_TOLERANCE = {"fp32": 1e-3, "bf16": 3e-2}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__.splitlines()[0])
    cli.add_precision(parser)
    parser.add_argument("--model", choices=CASES, default="resnet18")
    parser.add_argument("--method", choices=HPARAMS, default="sgd_sam")
    parser.add_argument("--batch", type=cli.positive_int, help="default: the training step's")
    parser.add_argument(
        "--backend",
        default="inductor",
        help="torch.compile backend (default inductor; eager or aot_eager trace without codegen)",
    )
    parser.add_argument("--mode", help="torch.compile mode (default: torch's)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[dict]:
    device = cli.setup(args)
    size = cli.sizes(args, SIZES[device.type])
    batch = args.batch or BATCH[device.type][args.model]
    case = Case(
        args.model, batch, device, precision=args.precision, channels_last=args.channels_last
    )
    base_label, base, base_hp = base_arm(args.method)
    eager = case.step(args.method, HPARAMS[args.method])
    # The method and its base share one compiled model, and so its graphs: compiling is most
    # of this piece's time. Each optimizer steps the same weights, which timing does not mind.
    model = torch.compile(copy.deepcopy(case.model), backend=args.backend, mode=args.mode)
    compiled = case.step(args.method, HPARAMS[args.method], model)
    compiled_base = case.step(base, base_hp, model)

    eager_loss = eager(case.x, case.y)[0].item()
    start = time.perf_counter()
    compiled_loss = compiled(case.x, case.y)[0].item()
    compile_seconds = time.perf_counter() - start
    print(f"compiled {args.model} in {compile_seconds:.1f} s", file=sys.stderr)
    seconds = interleaved_seconds(
        {
            "eager": case.call(eager),
            "compiled": case.call(compiled),
            "compiled base": case.call(compiled_base),
            "compiled passes": case.passes(model),
        },
        device,
        rounds=size.rounds,
        calls=size.calls,
        warmup=size.warmup,
    )
    name = args.method
    comparisons = [
        Comparison(
            args.model, f"{name} compiled", f"{name} eager", seconds["compiled"], seconds["eager"]
        ),
        Comparison(
            args.model,
            f"{name} compiled",
            f"{base_label} compiled",
            seconds["compiled"],
            seconds["compiled base"],
            goal=GOAL,
            floor=two_pass_floor(seconds["compiled passes"], seconds["compiled base"]),
        ),
    ]
    difference = abs(compiled_loss - eager_loss) / abs(eager_loss)
    tolerance = LOSS_TOLERANCE[args.precision]
    settings = {
        "device": device.type,
        "precision": args.precision,
        "memory format": "channels_last" if args.channels_last else "contiguous",
        "batch": batch,
        "backend": args.backend,
        "mode": args.mode or "default",
        "timing": str(size),
    }
    return [
        report.table(
            f"compiled_step/{args.precision}/time",
            f"Compiled training step ({args.precision})",
            "ratio",
            [c.record(device.type) for c in comparisons],
            notes=[
                f"The method against its base on the compiled model: goal {GOAL}, floor 1 + pass / "
                "base (benchmarks.train_step)."
            ],
            settings=settings,
        ),
        report.table(
            f"compiled_step/{args.precision}/checks",
            f"Compiled training step: checks ({args.precision})",
            "check",
            [
                {
                    "name": "first compiled step (compiles both passes)",
                    "value": f"{compile_seconds:.1f} s",
                    "expected": "runs",
                    "passed": True,
                },
                {
                    "name": "first-step loss, compiled against eager",
                    "value": f"{compiled_loss:.5f} vs {eager_loss:.5f} ({difference:.1e} rel.)",
                    "expected": f"<= {tolerance:g} rel.",
                    "passed": difference <= tolerance,
                },
            ],
        ),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    report.entry(__spec__.name, parse_args, run, argv)


if __name__ == "__main__":
    main()
