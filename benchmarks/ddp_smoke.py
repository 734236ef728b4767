"""A one-process DistributedDataParallel smoke run: NCCL on CUDA (gloo on CPU), world size 1.

It joins a process group of one (an in-process store: no port, no launcher), wraps the model in
DDP and takes sharpness-aware steps through ``lightsam.step.TrainStep`` with each perturbation,
and checks what must hold with one process: the losses are finite, the weights are those of the
same steps without DDP (averaging over one process changes nothing), and the collectives of
``lightsam.distributed`` give back their input.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from benchmarks import cli, report
from benchmarks.train_step import CASES, HPARAMS
from lightsam import create_optimizer
from lightsam.distributed import DistributedEnv, all_reduce_mean, from_main, sum_over_processes
from lightsam.models import create_model
from lightsam.step import PERTURBATIONS, TrainStep

# Both runs take the same kernels in the same order (deterministic cuDNN), and DDP with one
# process copies the gradients through its buckets unchanged: the weights agree bit for bit,
# up to a kernel that is not deterministic (then by far less than this).
TOLERANCE = 1e-5


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = cli.parser(__doc__.splitlines()[0], timed=False)
    parser.add_argument("--model", choices=CASES, default="resnet18")
    parser.add_argument("--method", choices=HPARAMS, default="sgd_sam")
    parser.add_argument("--steps", type=cli.positive_int, default=5)
    parser.add_argument("--batch", type=cli.positive_int, default=32)
    return parser.parse_args(argv)


def train(step: TrainStep, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    return torch.stack([step(x, y)[0] for x, y in batches])


def run(args: argparse.Namespace) -> list[dict]:
    device = cli.setup(args)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    try:
        env = DistributedEnv(rank=0, world_size=1, local_rank=device.index or 0, backend=backend)
        channels, size = CASES[args.model]
        torch.manual_seed(0)
        model = create_model(args.model, num_classes=10, in_channels=channels, image_size=size)
        model = model.to(env.device)
        gen = torch.Generator().manual_seed(0)
        batches = [
            (
                torch.randn(args.batch, channels, size, size, generator=gen).to(env.device),
                torch.randint(0, 10, (args.batch,), generator=gen).to(env.device),
            )
            for _ in range(args.steps)
        ]
        checks = [
            {
                "name": "process group",
                "value": f"{dist.get_backend()}, world size {dist.get_world_size()}",
                "expected": f"{backend}, world size 1",
                "passed": dist.get_backend() == backend and dist.get_world_size() == 1,
            }
        ]
        for perturbation in PERTURBATIONS:
            replicas = []
            for wrap in (True, False):
                replica = copy.deepcopy(model).train()
                optimizer = create_optimizer(
                    args.method, replica.parameters(), **HPARAMS[args.method]
                )
                if wrap:
                    ids = [env.device.index] if env.device.type == "cuda" else None
                    replica = DistributedDataParallel(replica, device_ids=ids)
                step = TrainStep(
                    replica, optimizer, nn.CrossEntropyLoss(), perturbation=perturbation
                )
                replicas.append((step, train(step, batches)))
            (ddp, ddp_losses), (plain, _) = replicas
            difference = max(
                (a - b).abs().max().item()
                for a, b in zip(
                    ddp.model.module.parameters(), plain.model.parameters(), strict=True
                )
            )
            checks += [
                {
                    "name": f"DDP {args.method} steps, perturbation {perturbation}: losses",
                    "value": ", ".join(f"{v:.3f}" for v in ddp_losses.tolist()),
                    "expected": "finite",
                    "passed": bool(torch.isfinite(ddp_losses).all()),
                },
                {
                    "name": f"weights against the same steps without DDP ({perturbation})",
                    "value": f"max |difference| {difference:.1e}",
                    "expected": f"<= {TOLERANCE:g}",
                    "passed": difference <= TOLERANCE,
                },
            ]
        loss = ddp_losses[-1]
        collectives = {
            "all_reduce_mean": all_reduce_mean(loss),
            "sum_over_processes": sum_over_processes(loss),
            "from_main": from_main(loss.item()),
        }
        checks.append(
            {
                "name": "collectives of lightsam.distributed on the last loss",
                "value": ", ".join(f"{k} {float(v):.4f}" for k, v in collectives.items()),
                "expected": f"each {loss.item():.4f}",
                "passed": all(
                    abs(float(v) - loss.item()) <= 1e-6 * abs(loss.item())
                    for v in collectives.values()
                ),
            }
        )
    finally:
        dist.destroy_process_group()
    print(f"ddp smoke: {len(checks)} checks", file=sys.stderr)
    settings = {
        "device": device.type,
        "backend": backend,
        "model": args.model,
        "steps": args.steps,
        "batch": args.batch,
    }
    return [
        report.table(
            f"ddp_smoke/{backend}",
            f"One-process DDP ({backend})",
            "check",
            checks,
            settings=settings,
        )
    ]


def main(argv: Sequence[str] | None = None) -> None:
    report.entry(__spec__.name, parse_args, run, argv)


if __name__ == "__main__":
    main()
