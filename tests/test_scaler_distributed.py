"""A loss scaler under DDP with the local ascent: an overflow in one process's unsynchronised
first pass skips the step on every process (two CPU processes, gloo)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lightsam import TrainStep, create_optimizer

WORLD = 2


class OverflowOnRank1:
    """Cross-entropy; on rank 1's first call, large enough that the scaled gradient overflows."""

    def __init__(self, rank: int) -> None:
        self.rank, self.calls = rank, 0

    def __call__(self, logits, y):
        self.calls += 1
        loss = nn.functional.cross_entropy(logits, y)
        return loss * 1e36 if self.rank == 1 and self.calls == 1 else loss


def worker(rank: int, port: int, out: Path) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)
        model = DistributedDataParallel(nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)))
        optimizer = create_optimizer("lightsam_ii", model.parameters(), lr=0.01, rho=1e-3)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
        step = TrainStep(
            model, optimizer, OverflowOnRank1(rank), scaler=scaler, perturbation="local"
        )
        before = [p.detach().clone() for p in model.parameters()]
        gen = torch.Generator().manual_seed(rank)
        skipped, unchanged = [], []
        for _ in range(2):
            step(torch.randn(8, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen))
            skipped.append(step.skipped)
            unchanged.append(
                all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
            )
        torch.save(
            {
                "skipped": skipped,
                "unchanged": unchanged,
                "scale": scaler.get_scale(),
                "weights": [p.detach() for p in model.parameters()],
            },
            out / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_overflow_on_one_process_skips_the_step_on_all(tmp_path):
    context = mp.spawn(worker, args=(free_port(), tmp_path), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 120  # a process left waiting in a collective fails the test
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the processes did not finish in 120 s: they disagreed on the skip")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for rank in ranks:
        assert rank["skipped"] == [True, False]
        assert rank["unchanged"] == [True, False]
        assert rank["scale"] == 2.0**9
    for p, q in zip(ranks[0]["weights"], ranks[1]["weights"], strict=True):
        assert torch.equal(p, q)  # still one model: the descent gradient is averaged
