"""Data-parallel training helpers: joining the process group, the main process, sharding an
epoch's sample order, averaging metrics, SyncBatchNorm.

The step itself, and how SAM's two passes meet DDP's all-reduce, is in ``lightsam.step``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from submitit.helpers import TorchDistributedEnvironment
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

Indices = TypeVar("Indices", Tensor, Sequence[int])
T = TypeVar("T")


@dataclass(frozen=True)
class DistributedEnv:
    """Who this process is among the ``world_size`` processes of a run."""

    rank: int
    world_size: int
    local_rank: int
    backend: str  # "nccl" on CUDA, "gloo" on CPU

    @property
    def device(self) -> torch.device:
        """This process's device: under NCCL its own GPU, ``local_rank`` modulo the visible GPUs
        (right whether the launcher shows each process all of a node's GPUs or only its own)."""
        if self.backend != "nccl":
            return torch.device("cpu")
        return torch.device("cuda", self.local_rank % torch.cuda.device_count())


def init_from_env() -> DistributedEnv:
    """Read the launcher's environment and, with more than one process, join the default
    process group (``env://``).

    torchrun exports ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT``. A SLURM task started by submitit has ``SLURM_*`` variables instead, which
    submitit's ``TorchDistributedEnvironment`` translates (the master is the job's first node, the
    port ``MASTER_PORT`` or one derived from the job id, so all tasks agree); it is told not to
    set ``CUDA_VISIBLE_DEVICES``, which is too late once CUDA is up and wrong where SLURM already
    gives each task its own GPU: ``device`` handles both. With neither, one process and no
    process group. Under NCCL the process's GPU becomes the current device.
    """
    if "RANK" not in os.environ and os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    env = DistributedEnv(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        backend="nccl" if torch.cuda.is_available() else "gloo",
    )
    if env.world_size > 1 and not dist.is_initialized():
        if env.backend == "nccl":
            torch.cuda.set_device(env.device)
        dist.init_process_group(env.backend, rank=env.rank, world_size=env.world_size)
    return env


def is_main() -> bool:
    """Whether this is the process that writes (checkpoints, results, logs): rank 0, or the only
    process."""
    return not dist.is_initialized() or dist.get_rank() == 0


def shard(indices: Indices, rank: int, world_size: int) -> Indices:
    """Process ``rank``'s share of an epoch's sample order: every ``world_size``-th index from
    position ``rank``, after dropping the last ``len(indices) % world_size``.

    Strided, so that with a per-process batch of ``B`` the processes' ``i``-th batches together
    are the ``i``-th batch of ``world_size * B`` of the unsharded order: the run sees the batches
    of a one-process run on the global batch. Equal-sized, so every process takes the same number
    of steps (one with a step more would wait forever in its all-reduce). The remainder, fewer
    than ``world_size`` samples, is dropped rather than padded with repeats, which would count
    some samples twice; with an order reshuffled every epoch a different few are left out each
    time. Not for evaluation, where every sample must count exactly once.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size!r}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank!r}")
    return indices[rank : len(indices) - len(indices) % world_size : world_size]


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """The mean of ``tensor`` over all processes, as a new floating-point tensor (``tensor``
    itself is untouched). For metrics: with equal-sized shards the mean of the processes' mean
    losses is the global batch's. A collective: every process must call it."""
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    total = tensor.clone()
    if world_size > 1:
        dist.all_reduce(total)
    return total / world_size


def convert_sync_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with its BatchNorm layers replaced by SyncBatchNorm; call it before wrapping the
    model in DDP.

    SyncBatchNorm normalises with the statistics of the global batch, not of each process's
    shard, so with ``perturbation="global"`` a BatchNorm model also trains as one process on the
    global batch. Its forward and backward passes communicate on their own, inside ``no_sync``
    too (so a ``"local"`` first pass still pools batch statistics). ``TrainStep``'s frozen
    statistics apply unchanged: SyncBatchNorm subclasses ``_BatchNorm`` and updates its running
    statistics only when ``track_running_stats`` is set. torch implements its distributed
    forward on GPUs only: on CPU it raises once a process group is initialised.
    """
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


@contextlib.contextmanager
def process_group() -> Iterator[DistributedEnv]:
    """This process's place among the launcher's (``init_from_env``) for the block. A process
    group joined here is left at the end, so that a worker can run again; one the caller joined
    is kept."""
    joined_here = not dist.is_initialized()
    env = init_from_env()
    try:
        yield env
    finally:
        if joined_here and dist.is_initialized():
            dist.destroy_process_group()


def from_main(value: T) -> T:
    """The main process's ``value``, on every process: how the processes agree on what only the
    main one looks at (the lock, the store). A collective: every process must call it."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_processes(tensor: Tensor) -> Tensor:
    """``tensor`` summed over all processes (a copy of it with one): an epoch's totals from each
    process's shard. A collective."""
    total = tensor.clone()
    if dist.is_initialized():
        dist.all_reduce(total)
    return total


def data_parallel(
    model: nn.Module, env: DistributedEnv, device: torch.device, *, sync_batchnorm: bool
) -> nn.Module:
    """``model`` itself with one process; with several, in DDP, its BatchNorm layers first made
    SyncBatchNorm if ``sync_batchnorm`` (with one process BatchNorm already sees the whole
    batch)."""
    if env.world_size == 1:
        return model
    if sync_batchnorm:
        if device.type != "cuda":
            raise ValueError(
                "sync_batchnorm needs CUDA: torch implements SyncBatchNorm across processes on "
                "GPUs only; set sync_batchnorm: false to train on CPUs"
            )
        model = convert_sync_batchnorm(model)
    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP: what is evaluated (DDP's own forward broadcasts buffers, a
    collective) and saved (without DDP's ``module.`` prefix)."""
    return model.module if isinstance(model, DistributedDataParallel) else model
