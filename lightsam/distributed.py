"""Data-parallel training helpers: joining the process group, the main process, sharding an
epoch's sample order, averaging metrics, SyncBatchNorm.

The step itself, and how SAM's two passes meet DDP's all-reduce, is in ``lightsam.step``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from submitit.helpers import TorchDistributedEnvironment
from torch import Tensor, nn

Indices = TypeVar("Indices", Tensor, Sequence[int])


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
