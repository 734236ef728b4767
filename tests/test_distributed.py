"""TrainStep under DistributedDataParallel: two CPU processes (gloo) against one-process
references.

Starting processes is the slow part, so one spawn runs every distributed scenario and saves what
each rank ends with (weights, optimizer state, losses, all-reduces per step, BatchNorm buffers);
the tests compare those with references computed here, in one process, in float64.
"""

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
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from lightsam import create_optimizer
from lightsam.distributed import (
    DistributedEnv,
    all_reduce_mean,
    convert_sync_batchnorm,
    init_from_env,
    is_main,
    shard,
)
from lightsam.step import TrainStep

WORLD = 2
STEPS = 3
BATCH = 16  # global; 8 per rank, which accumulation=3 splits unequally (3, 3, 2)
HPARAMS = {
    "sgd": {"lr": 0.1, "momentum": 0.9},
    "sgd_sam": {"lr": 0.1, "rho": 0.05, "momentum": 0.9},
    "lightsam_i": {"lr": 0.1, "rho": 0.05},
    "lightsam_ii": {"lr": 0.01, "rho": 0.01},
    "lightsam_iii": {"lr": 0.01, "rho": 0.01},
}
SAM_FAMILY = [name for name in HPARAMS if name != "sgd"]
RHO0 = {"lr": 0.1, "rho": 0.0}  # LightSAM-I at rho = 0: one pass per step
LOSS = nn.CrossEntropyLoss()


def model(batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(0)
    norm = [nn.BatchNorm1d(8)] if batchnorm else []
    return nn.Sequential(nn.Linear(6, 8), *norm, nn.Tanh(), nn.Linear(8, 3)).double()


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(BATCH, 6, generator=gen, dtype=torch.float64),
            torch.randint(0, 3, (BATCH,), generator=gen),
        )
        for _ in range(STEPS)
    ]


def weights(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


# -- the two processes -----------------------------------------------------------------------


def counted_allreduce(calls, bucket):
    """DDP's own all-reduce, counted. (Not annotated: DDP checks the annotations against the
    classes, which ``from __future__ import annotations`` turns into strings.)"""
    calls[0] += 1
    return allreduce_hook(None, bucket)


def train_ddp(
    name: str,
    rank: int,
    *,
    perturbation: str = "global",
    accumulation: int = 1,
    batchnorm: bool = False,
    hparams: dict | None = None,
) -> dict:
    ddp = DistributedDataParallel(model(batchnorm))
    calls = [0]
    ddp.register_comm_hook(calls, counted_allreduce)
    optimizer = create_optimizer(name, ddp.parameters(), **(hparams or HPARAMS[name]))
    step = TrainStep(ddp, optimizer, LOSS, perturbation=perturbation, accumulation=accumulation)
    losses, all_reduces = [], []
    for x, y in batches():
        mine = shard(torch.arange(BATCH), rank, WORLD)
        before = calls[0]
        loss, _ = step(x[mine], y[mine])
        all_reduces.append(calls[0] - before)
        losses.append(all_reduce_mean(loss))
    return {
        "weights": weights(ddp.module),
        "state": optimizer.state_dict()["state"],
        "losses": torch.stack(losses),
        "all_reduces": all_reduces,
        "buffers": {k: v.clone() for k, v in ddp.module.named_buffers()},
    }


def backward_only_no_sync(rank: int) -> list[int]:
    """All-reduces of one backward pass with ``no_sync`` around the backward only, then around
    forward and backward."""
    ddp = DistributedDataParallel(model())
    calls = [0]
    ddp.register_comm_hook(calls, counted_allreduce)
    x, y = batches()[0]
    mine = shard(torch.arange(BATCH), rank, WORLD)
    counts = []
    output = ddp(x[mine])
    with ddp.no_sync():
        LOSS(output, y[mine]).backward()
    counts.append(calls[0])
    with ddp.no_sync():
        LOSS(ddp(x[mine]), y[mine]).backward()
    counts.append(calls[0] - counts[0])
    return counts


def worker(rank: int, port: int, out: Path) -> None:
    torch.set_num_threads(1)
    # A two-task SLURM job as submitit starts it, on CPU (gloo even where there are GPUs).
    os.environ.update(
        CUDA_VISIBLE_DEVICES="",
        SUBMITIT_EXECUTOR="slurm",
        SLURM_JOB_ID="1",
        SLURM_NTASKS=str(WORLD),
        SLURM_JOB_NUM_NODES="1",
        SLURM_JOB_NODELIST="localhost",
        SLURM_PROCID=str(rank),
        SLURM_LOCALID=str(rank),
        MASTER_PORT=str(port),
    )
    env = init_from_env()
    try:
        results = {
            "env": env,
            "is_main": is_main(),
            "mean_rank": all_reduce_mean(torch.tensor(rank)),
            "backward_only_no_sync": backward_only_no_sync(rank),
        }
        for name in HPARAMS:
            for perturbation in ("global", "local") if name in SAM_FAMILY else ("global",):
                for accumulation in (1, 3):
                    results[name, perturbation, accumulation] = train_ddp(
                        name, rank, perturbation=perturbation, accumulation=accumulation
                    )
        for perturbation in ("global", "local"):
            results["batchnorm", perturbation] = train_ddp(
                "sgd_sam", rank, perturbation=perturbation, batchnorm=True
            )
            results["rho0", perturbation] = train_ddp(
                "lightsam_i", rank, perturbation=perturbation, hparams=RHO0
            )
        torch.save(results, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """What each rank of the two-process run ended with."""
    out = tmp_path_factory.mktemp("ddp")
    context = mp.spawn(worker, args=(free_port(), out), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 120  # a collective that waits forever fails the test
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the distributed workers did not finish in 120 s")
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]


# -- one-process references ------------------------------------------------------------------


def train_alone(name: str, hparams: dict | None = None) -> dict:
    """One process on the global batch."""
    net = model()
    optimizer = create_optimizer(name, net.parameters(), **(hparams or HPARAMS[name]))
    step = TrainStep(net, optimizer, LOSS)
    losses = torch.stack([step(x, y)[0] for x, y in batches()])
    return {"weights": weights(net), "state": optimizer.state_dict()["state"], "losses": losses}


def train_local_by_hand(name: str) -> list[dict]:
    """Each rank's model and optimizer, perturbed along the rank's own gradient and updated with
    the average over ranks of the gradients at the perturbed weights."""
    nets = [model() for _ in range(WORLD)]
    optimizers = [create_optimizer(name, n.parameters(), **HPARAMS[name]) for n in nets]
    for x, y in batches():
        descent = []
        for rank, (net, optimizer) in enumerate(zip(nets, optimizers, strict=True)):
            mine = shard(torch.arange(BATCH), rank, WORLD)
            optimizer.zero_grad()
            LOSS(net(x[mine]), y[mine]).backward()
            optimizer.first_step(zero_grad=True)
            LOSS(net(x[mine]), y[mine]).backward()
            descent.append([p.grad for p in net.parameters()])
        mean = [torch.stack(grads).mean(0) for grads in zip(*descent, strict=True)]
        for net, optimizer in zip(nets, optimizers, strict=True):
            for p, g in zip(net.parameters(), mean, strict=True):
                p.grad = g.clone()
            optimizer.second_step(zero_grad=True)
    return [
        {"weights": weights(n), "state": o.state_dict()["state"]}
        for n, o in zip(nets, optimizers, strict=True)
    ]


# -- the tests -------------------------------------------------------------------------------


def test_helpers_in_a_two_task_slurm_job(ranks):
    for rank, result in enumerate(ranks):
        assert result["env"] == DistributedEnv(rank, WORLD, rank, "gloo")
        assert result["is_main"] == (rank == 0)
        assert result["mean_rank"].item() == 0.5


@pytest.mark.parametrize("name", list(HPARAMS))
def test_global_perturbation_is_one_process_on_the_global_batch(ranks, name):
    expected = train_alone(name)
    for result in ranks:
        got = result[name, "global", 1]
        torch.testing.assert_close(got["weights"], expected["weights"])
        torch.testing.assert_close(got["state"], expected["state"])
        torch.testing.assert_close(got["losses"], expected["losses"])


@pytest.mark.parametrize("name", SAM_FAMILY)
def test_local_perturbation_uses_each_rank_own_ascent_gradient(ranks, name):
    expected = train_local_by_hand(name)
    for result, by_hand in zip(ranks, expected, strict=True):
        got = result[name, "local", 1]
        torch.testing.assert_close(got["weights"], by_hand["weights"])
        torch.testing.assert_close(got["state"], by_hand["state"])
        assert (got["weights"] - result[name, "global", 1]["weights"]).abs().max() > 1e-4


@pytest.mark.parametrize(
    ("name", "perturbation"),
    [(name, "global") for name in HPARAMS] + [(name, "local") for name in SAM_FAMILY],
)
def test_accumulation_under_ddp_equals_one_large_batch(ranks, name, perturbation):
    for result in ranks:
        accumulated, whole = result[name, perturbation, 3], result[name, perturbation, 1]
        torch.testing.assert_close(accumulated["weights"], whole["weights"])
        torch.testing.assert_close(accumulated["state"], whole["state"])


@pytest.mark.parametrize("accumulation", [1, 3])
@pytest.mark.parametrize("name", list(HPARAMS))
def test_optimizer_state_is_identical_across_ranks_in_global_mode(ranks, name, accumulation):
    first, second = (result[name, "global", accumulation] for result in ranks)
    assert first["state"], "no state to compare"
    if name == "lightsam_i":  # the global norms, in the first parameter's state
        assert {"ascent_sq_norm", "descent_sq_norm"} <= first["state"][0].keys()
    torch.testing.assert_close(first["state"], second["state"], rtol=0, atol=0)
    torch.testing.assert_close(first["weights"], second["weights"], rtol=0, atol=0)


@pytest.mark.parametrize("accumulation", [1, 3])
@pytest.mark.parametrize("name", list(HPARAMS))
def test_one_all_reduce_per_synchronised_pass(ranks, name, accumulation):
    for result in ranks:
        assert (
            result[name, "global", accumulation]["all_reduces"]
            == [2 if name in SAM_FAMILY else 1] * STEPS
        )
        if name in SAM_FAMILY:
            assert result[name, "local", accumulation]["all_reduces"] == [1] * STEPS


def test_no_sync_must_wrap_the_forward_pass(ranks):
    # Around the backward only, DDP still all-reduces: the forward pass had armed it.
    for result in ranks:
        assert result["backward_only_no_sync"] == [1, 0]


@pytest.mark.parametrize("perturbation", ["global", "local"])
def test_batchnorm_statistics_are_updated_once_per_step_under_ddp(ranks, perturbation):
    for result in ranks:
        buffers = result["batchnorm", perturbation]["buffers"]
        assert buffers["1.num_batches_tracked"].item() == STEPS
    if perturbation == "global":  # the second pass's forward broadcasts rank 0's buffers
        torch.testing.assert_close(
            ranks[0]["batchnorm", "global"]["buffers"], ranks[1]["batchnorm", "global"]["buffers"]
        )


# -- in this process -------------------------------------------------------------------------


def test_shards_are_equal_disjoint_and_together_the_global_batches():
    order = torch.randperm(35, generator=torch.Generator().manual_seed(0))
    shards = [shard(order, rank, 4) for rank in range(4)]
    assert [len(s) for s in shards] == [8] * 4  # 35 % 4 = 3 samples dropped
    for i in range(4):  # per-rank batches of 2 make up the global batches of 8
        together = torch.cat([s[2 * i : 2 * i + 2] for s in shards])
        assert sorted(together.tolist()) == sorted(order[8 * i : 8 * i + 8].tolist())
    assert shard(list(range(5)), 1, 2) == [1, 3]


@pytest.mark.parametrize(
    ("rank", "world_size", "argument"), [(2, 2, "rank"), (-1, 2, "rank"), (0, 0, "world_size")]
)
def test_shard_rejects_a_rank_outside_the_world(rank, world_size, argument):
    with pytest.raises(ValueError, match=f"^{argument} must"):
        shard(list(range(4)), rank, world_size)


def test_init_from_env_without_a_launcher_is_one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    env = init_from_env()
    assert (env.rank, env.world_size, env.local_rank) == (0, 1, 0)
    assert not dist.is_initialized() and is_main()
    torch.testing.assert_close(all_reduce_mean(torch.tensor(3)), torch.tensor(3.0))


def test_frozen_statistics_apply_to_sync_batchnorm():
    # Without a process group SyncBatchNorm computes as BatchNorm, so the two must agree.
    plain, synced = model(batchnorm=True), convert_sync_batchnorm(model(batchnorm=True))
    assert isinstance(synced[1], nn.SyncBatchNorm)
    x, y = batches()[0]
    for net in (plain, synced):
        optimizer = create_optimizer("sgd_sam", net.parameters(), **HPARAMS["sgd_sam"])
        TrainStep(net, optimizer, LOSS)(x, y)
    assert synced[1].num_batches_tracked.item() == 1 and synced[1].track_running_stats
    torch.testing.assert_close(dict(synced.named_buffers()), dict(plain.named_buffers()))
    torch.testing.assert_close(weights(synced), weights(plain))


@pytest.mark.parametrize("perturbation", ["global", "local"])
def test_at_rho_zero_one_synchronised_pass_is_one_process_on_the_global_batch(ranks, perturbation):
    # A local perturbation too: the one pass carries the descent gradient, which is averaged.
    expected = train_alone("lightsam_i", RHO0)
    for result in ranks:
        got = result["rho0", perturbation]
        assert got["all_reduces"] == [1] * STEPS
        torch.testing.assert_close(got["weights"], expected["weights"])
        torch.testing.assert_close(got["state"], expected["state"])
