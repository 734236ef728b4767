"""``run(config, out)``: one run, from data to a stored result, on one process or several.

The loop in :func:`train` reads top to bottom: data, model, optimizer, schedule, resume, epochs,
the test set once at the end, the result. Each epoch ends with an atomic checkpoint, so rerunning
the same config resumes where an interrupted run stopped and ends with exactly the metrics an
uninterrupted run would have (the batches of epoch e depend only on the seed and e, and the
checkpoint carries the RNG states). A non-finite training loss, or one above
``config.divergence_loss`` (unless it is None), ends the run with status ``diverged``: a result,
not a failure. With ``config.probe_size``, the loss and full-gradient norm on a fixed subset of
the training split are measured before the first step and after every epoch (:func:`probe`),
and after each of ``config.probe_steps``'s step counts (``result.json``'s ``probes``, which keep
the probes a diverged run took before it stopped).

Data-parallel: launched as several processes (torchrun, or a SLURM job with one task per GPU),
every process calls :func:`run` and the same loop runs in each. The model is wrapped in
``DistributedDataParallel``, each process trains on its shard of every global batch (so a run on
N processes sees the batches of one process on the global batch), the epoch's metrics are summed
over the processes, and all of them take every decision together (train or not, divergence).
Only the main process takes the run's lock and writes (:class:`Recorder`); every process reads
the checkpoint on resume. With ``perturbation: global`` a run computes what one process on the
global batch would (BatchNorm aside, unless ``sync_batchnorm``) and resumes exactly. With
``local``, each process's ascent statistics (LightSAM's ``u``, ``r``) and BatchNorm running
statistics differ; the main process's are saved, so a resumed local-mode run continues with
those on every process and does not end exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from lightsam import store
from lightsam.config import Config, ConfigError, Runtime, check_fits_the_data, check_warmup
from lightsam.data import (
    DatasetInfo,
    ImageSplit,
    TensorLoader,
    load_imagefolder,
    load_splits,
    make_imagefolder_loader,
    shard_loader,
)
from lightsam.distributed import (
    DistributedEnv,
    all_reduce_mean,
    data_parallel,
    from_main,
    is_main,
    process_group,
    sum_over_processes,
    unwrap,
)
from lightsam.models import create_model
from lightsam.optim import SharpnessAwareOptimizer, create_optimizer
from lightsam.step import TrainStep

# How often (in steps) the loop reads the loss back from the device: to test for divergence and
# refresh the progress bar. Reading it every step would stall a GPU.
SYNC_EVERY = 20
# The forward passes' autocast dtype of each ``Config.precision``; fp16 also scales the loss.
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# The realised size of each ascent (SharpnessAwareOptimizer): epoch means in metrics.jsonl, the
# run's mean in result.json.
PERTURBATION = ("perturbation_norm", "relative_perturbation")


@contextlib.contextmanager
def exclusive_on_main(run_dir: Path) -> Iterator[None]:
    """``store.exclusive`` for a run that all processes train: the main process holds the lock,
    and every process raises ``store.RunLocked`` when it cannot (a process that returned alone
    would leave the others waiting in their first collective)."""
    with contextlib.ExitStack() as stack:
        locked = None
        if is_main():
            try:
                stack.enter_context(store.exclusive(run_dir))
            except store.RunLocked as error:
                locked = str(error)
        locked = from_main(locked)
        if locked is not None:
            raise store.RunLocked(locked)
        yield


def resolve_device(name: str, env: DistributedEnv) -> torch.device:
    """The device ``name`` says; with several processes each uses its own (``env.device``), and
    ``name`` may only be ``auto`` or that device's type."""
    if env.world_size > 1:
        if name not in ("auto", env.device.type):
            raise ValueError(
                f"device {name!r}: each of the {env.world_size} processes uses its own device "
                f"({env.device} here); set device: auto"
            )
        return env.device
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# -- data ---------------------------------------------------------------------------------------


def per_process_batch(config: Config, env: DistributedEnv) -> int:
    """Each process's share of the global batch. It must divide evenly: DDP averages the
    processes' gradients with equal weights, right only for equal shares."""
    if config.batch_size % env.world_size:
        raise ValueError(
            f"batch_size {config.batch_size} (the global batch) must be divisible by the number "
            f"of processes, {env.world_size}"
        )
    return config.batch_size // env.world_size


def make_loaders(config: Config, runtime: Runtime, device: torch.device, env: DistributedEnv):
    """(dataset info, train / val / test loaders). The train loader yields this process's share
    of each global batch. The val and test loaders are whole, in global batches, as one process
    would read them: every process evaluates (the main process's results are written), which
    needs no collective and keeps the processes in step, where others waiting for the main
    process to evaluate alone could time out in their next collective. Small datasets live on
    ``device`` whole."""
    train_batch = per_process_batch(config, env)
    if config.dataset == "imagenet":
        info, datasets = load_imagefolder(
            runtime.data_dir, val_size=config.val_size, split_seed=config.split_seed,
            image_size=224,
        )  # fmt: skip
        loaders = {
            split: make_imagefolder_loader(
                dataset,
                batch_size=train_batch if split == "train" else config.batch_size,
                shuffle=split == "train",
                seed=config.seed,
                num_workers=config.num_workers,
            )
            for split, dataset in datasets.items()
        }
        if env.world_size > 1:
            loaders["train"] = shard_loader(loaders["train"], env.rank, env.world_size)
        return info, loaders  # Config refuses a probe on ImageFolder datasets
    info, splits = load_splits(
        config.dataset,
        data_dir=runtime.data_dir,
        val_size=config.val_size,
        split_seed=config.split_seed,
        download=runtime.download,
    )

    def loader(split: str, data: ImageSplit) -> TensorLoader:
        train = split == "train"
        return TensorLoader(
            data,
            info,
            batch_size=train_batch if train else config.batch_size,
            shuffle=train,
            augment=config.augment if train else "none",
            drop_last=train,
            device=device,
            seed=config.seed,
            shard=(env.rank, env.world_size) if train else (0, 1),
        )

    loaders = {split: loader(split, data) for split, data in splits.items()}
    if config.probe_size:
        train = splits["train"]
        if config.probe_size > len(train):
            raise ValueError(
                f"probe_size {config.probe_size} is larger than the training split "
                f"({len(train)} images)"
            )
        # The first images of the split, unshuffled and unaugmented: the same in every epoch.
        loaders["probe"] = loader("probe", train.subset(torch.arange(config.probe_size)))
    return info, loaders


def set_epoch(loader: Any, epoch: int) -> None:
    (loader if isinstance(loader, TensorLoader) else loader.sampler).set_epoch(epoch)


# -- the loop's parts ---------------------------------------------------------------------------


def lr_factor(config: Config, steps_per_epoch: int):
    """The learning-rate multiplier as a function of the global step (``LambdaLR`` counts the
    steps taken): the linear warm-up, then the schedule (see ``Config``)."""
    check_warmup(config, steps_per_epoch)  # checked before the run for in-memory datasets
    total = config.epochs * steps_per_epoch
    warm = config.warmup_length(steps_per_epoch)

    def schedule(step: int) -> float:
        if config.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * max(step - warm, 0) / (total - warm)))
        if config.lr_schedule == "step":
            return config.lr_gamma ** sum(step >= m * steps_per_epoch for m in config.lr_milestones)
        return 1.0

    return lambda step: min(1.0, (step + 1) / warm) * schedule(step) if warm else schedule(step)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, loss_fn, device, autocast_dtype) -> dict[str, float]:
    """``loss``: the training objective (``loss_fn``, with the spec's label smoothing); ``ce``:
    plain cross-entropy, comparable across specs; ``acc``: top-1 accuracy."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    ce_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    count = 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(x)
            loss_sum += loss_fn(logits, y).double() * len(y)
        ce_sum += nn.functional.cross_entropy(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
        count += len(y)
    return {
        "loss": loss_sum.item() / count,
        "ce": ce_sum.item() / count,
        "acc": correct.item() / count,
    }


def probe(model: nn.Module, loader: Any, loss_fn, device, autocast_dtype) -> dict[str, float]:
    """``probe_loss``, the mean loss over ``loader``'s images, and ``probe_grad_norm``, the L2
    norm of its gradient with respect to every trainable parameter: the optimisation objective
    on a fixed set, where the epoch's training loss averages over moving weights. In eval mode
    (BatchNorm with its running statistics, no dropout), so that the probe changes nothing: the
    gradients are returned by autograd, never accumulated into ``.grad``."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    count = 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            batch_loss = loss_fn(model(x), y).float() * len(y)
        for total, g in zip(grads, torch.autograd.grad(batch_loss, params), strict=True):
            total += g
        loss_sum += batch_loss.detach().double()
        count += len(y)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    return {"probe_loss": loss_sum.item() / count, "probe_grad_norm": norm.item() / count}


def check_resumable(checkpoint: dict[str, Any], config: Config, env: DistributedEnv) -> None:
    """Refuse to resume a local-perturbation run on another number of processes: that number
    sets m, the batch each ascent is computed on, which would change mid-run. (A global-mode run
    may resume on any number: it sees the same global batches.)"""
    saved = checkpoint.get("world_size", 1)
    if config.perturbation == "local" and saved != env.world_size:
        raise ValueError(
            f"a perturbation: local run trained on {saved} processes cannot resume on "
            f"{env.world_size}, which would change m, the batch of each ascent, mid-run: "
            f"resume it on {saved}"
        )


def start_wandb(config: Config, run_dir: Path, wandb_id: str | None):
    """A W&B run continuing ``wandb_id`` if given. ``WANDB_MODE=offline`` works with no network;
    the local store stays the source of truth either way."""
    import wandb

    return wandb.init(
        project=os.environ.get("WANDB_PROJECT", "lightsam"),
        id=wandb_id,
        resume="allow",
        dir=run_dir,
        name=run_dir.name,
        config=config.to_dict(),
    )


class Recorder:
    """Everything a run writes: its directory and, if asked, W&B. Only the main process writes;
    on the others every method does nothing, so that the loop reads the same on one process or
    many and a run directory has a single writer."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.active = is_main()
        self.tracker: Any = None
        self.wandb_id: str | None = None

    def begin(self, config: Config, segment: dict[str, Any]) -> None:
        """The config and this start's environment segment, first: even a run that fails at
        once has them, and a resumed run keeps the segments of its earlier starts."""
        if self.active:
            store.write_config(self.run_dir, config.to_dict())
            store.begin_segment(self.run_dir, segment)

    def start(
        self, config: Config, history: list[dict[str, Any]], wandb_id: str | None, wandb: bool
    ) -> None:
        """The metrics of the epochs already done (none for a new run), and with ``wandb`` the
        W&B run, continuing ``wandb_id`` if a checkpoint had one."""
        self.wandb_id = wandb_id
        if not self.active:
            return
        if history:
            store.write_metrics(self.run_dir, history)
        if wandb:
            self.tracker = start_wandb(config, self.run_dir, wandb_id)
            self.wandb_id = self.tracker.id

    def epoch(self, history: list[dict[str, Any]], checkpoint: dict[str, Any]) -> None:
        """The last epoch's metrics and the checkpoint after it."""
        if not self.active:
            return
        if self.tracker is not None:
            self.tracker.log(history[-1], step=history[-1]["epoch"])
        store.save_checkpoint(self.run_dir, checkpoint)
        store.write_metrics(self.run_dir, history)

    def end(self, result: dict[str, Any]) -> None:
        """The result, written last: its presence marks the run complete."""
        if not self.active:
            return
        if self.tracker is not None:
            self.tracker.summary.update(result)
            self.tracker.finish()
        store.write_result(self.run_dir, result)


def show_progress(runtime: Runtime) -> bool:
    """A progress bar on the main process alone; by default, only on a terminal."""
    wanted = sys.stderr.isatty() if runtime.progress is None else runtime.progress
    return is_main() and wanted


def run_mean(history: list[dict[str, Any]], key: str) -> float | None:
    """The mean of an epoch mean over the run's epochs (each as many steps), None if no epoch
    has it."""
    values = [row[key] for row in history if key in row]
    return sum(values) / len(values) if values else None


def result_header(config: Config, status: str) -> dict[str, Any]:
    """The keys every result starts with: what ran, and how it ended."""
    return {
        "status": status,
        "run_id": config.run_id(),
        "optimizer": config.optimizer.name,
        "lr": config.optimizer.lr,
        "rho": config.optimizer.rho,
        "seed": config.seed,
        "dataset": config.dataset,
        "model": config.model,
        "epochs": config.epochs,
    }


@dataclass
class Parts:
    """What :func:`build` makes of a config: the data, the model (``model``, wrapped for
    data-parallel training if it is; ``module``, the model itself), the optimizer and its
    schedule, the loss and the two-pass step."""

    info: DatasetInfo
    loaders: dict[str, Any]
    model: nn.Module
    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: nn.Module
    autocast_dtype: torch.dtype | None
    step: TrainStep
    memory_format: torch.memory_format
    steps_per_epoch: int


def build(config: Config, runtime: Runtime, env: DistributedEnv, device: torch.device) -> Parts:
    """A fresh run's parts, from the seed on: the initial weights of ``config.seed``."""
    # The same seed in every process: the same initial weights, and the same random stream, so
    # that the main process's RNG state, which is checkpointed, is every process's.
    torch.manual_seed(config.seed)

    info, loaders = make_loaders(config, runtime, device, env)
    model = create_model(
        config.model,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        image_size=info.image_size,
    ).to(device)
    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model = data_parallel(
        model.to(memory_format=memory_format), env, device, sync_batchnorm=config.sync_batchnorm
    )
    module = unwrap(model)
    optimizer = create_optimizer(
        config.optimizer.name, model.parameters(), **config.optimizer.kwargs()
    )
    steps_per_epoch = len(loaders["train"])  # the same in every process
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps_per_epoch))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    autocast_dtype = AUTOCAST_DTYPES[config.precision]
    step = TrainStep(
        model,
        optimizer,
        loss_fn,
        autocast_dtype=autocast_dtype,
        scaler=torch.amp.GradScaler(device.type) if config.precision == "fp16" else None,
        grad_clip=config.grad_clip,
        accumulation=config.accumulation,
        perturbation=config.perturbation,
    )
    return Parts(
        info, loaders, model, module, optimizer, scheduler, loss_fn, autocast_dtype, step,
        memory_format, steps_per_epoch,
    )  # fmt: skip


def first_ascent_radius(config: Config, runtime: Runtime = Runtime()) -> float:
    """``‖e_1‖``, the size of the first ascent of ``config``'s run (its seed's weights, its first
    training batch), as the run records it (``perturbation_norm_first``), on one process. The
    nominal ``rho`` means a norm for some ascents and a per-coordinate bound for others; the
    study matches its methods' grids by this."""
    env = DistributedEnv(rank=0, world_size=1, local_rank=0, backend="gloo")
    device = resolve_device(runtime.device, env)
    parts = build(config, runtime, env, device)
    if not isinstance(parts.optimizer, SharpnessAwareOptimizer):
        raise ValueError(f"{config.optimizer.name} is not sharpness-aware: it has no ascent")
    set_epoch(parts.loaders["train"], 0)
    x, y = next(iter(parts.loaders["train"]))
    parts.step(x.to(device).contiguous(memory_format=parts.memory_format), y.to(device))
    if parts.step.skipped:
        raise RuntimeError(
            "the first step's gradient overflowed the fp16 loss scale, so no ascent was taken: "
            "measure the first ascent with precision fp32 or bf16"
        )
    return parts.optimizer.perturbation_norm.item()


def peak_memory(device: torch.device) -> dict[str, Any]:
    """``peak_memory_bytes`` and what it measures, ``peak_memory_kind``: on CUDA the peak of
    tensor memory allocated on ``device`` since this start of the run
    (``cuda_max_memory_allocated``), else the peak resident memory of the whole process so far
    (``cpu_max_rss``: model, data, optimizer and interpreter; in a process that ran other runs
    before, the largest of them)."""
    if device.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(device), "cuda_max_memory_allocated"
    else:
        # Linux reports ru_maxrss in kilobytes, macOS in bytes.
        unit = 1 if sys.platform == "darwin" else 1024
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit, "cpu_max_rss"
    return {"peak_memory_bytes": peak, "peak_memory_kind": kind}


# -- the run ------------------------------------------------------------------------------------


def train(config: Config, run_dir: Path, runtime: Runtime, env: DistributedEnv) -> dict[str, Any]:
    """Train ``config`` into ``run_dir`` (resuming from its checkpoint if any) as process
    ``env.rank`` of ``env.world_size``; returns the result, which the main process also writes
    to ``run_dir/result.json``."""
    device = resolve_device(runtime.device, env)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # result.json's peak_memory_bytes
    checkpoint = store.load_checkpoint(run_dir)  # read by every process
    start_epoch = checkpoint["epoch"] if checkpoint is not None else 0
    record = Recorder(run_dir)
    record.begin(
        config,
        {**store.environment(device), "world_size": env.world_size, "start_epoch": start_epoch},
    )
    parts = build(config, runtime, env, device)
    loaders, model, module, optimizer = parts.loaders, parts.model, parts.module, parts.optimizer
    scheduler, loss_fn, autocast_dtype = parts.scheduler, parts.loss_fn, parts.autocast_dtype
    step, memory_format, steps_per_epoch = parts.step, parts.memory_format, parts.steps_per_epoch

    history: list[dict[str, Any]] = []
    wall_s, wandb_id = 0.0, None
    initial: dict[str, float] = {}  # the probe before the first step, and the first ascent's size
    probes: list[dict[str, float]] = []  # the probes at config.probe_steps, in step order
    probe_at = set(config.probe_steps)
    if checkpoint is not None:
        check_resumable(checkpoint, config, env)
        module.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if step.scaler is not None:
            step.scaler.load_state_dict(checkpoint["scaler"])
        torch.set_rng_state(checkpoint["rng_cpu"])
        if device.type == "cuda" and checkpoint["rng_cuda"] is not None:
            torch.cuda.set_rng_state(checkpoint["rng_cuda"], device)
        history = checkpoint["history"]
        wall_s, wandb_id = checkpoint["wall_s"], checkpoint["wandb_id"]
        initial = checkpoint.get("initial", {})
        probes = checkpoint.get("probes", [])
    elif "probe" in loaders:
        initial = {
            f"{key}_initial": value
            for key, value in probe(
                module, loaders["probe"], loss_fn, device, autocast_dtype
            ).items()
        }
    record.start(config, history, wandb_id, runtime.wandb)
    stop_above = math.inf if config.divergence_loss is None else config.divergence_loss

    sharpness_aware = isinstance(optimizer, SharpnessAwareOptimizer)
    status, diverged_epoch, stopping_loss = "ok", None, None
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        set_epoch(loaders["train"], epoch)
        model.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        recent = torch.zeros(SYNC_EVERY, device=device)  # losses since the last sync
        correct = torch.zeros((), device=device, dtype=torch.int64)
        perturbation = torch.zeros(len(PERTURBATION), device=device, dtype=torch.float64)
        seen = ascents = 0
        bar = tqdm(
            loaders["train"],
            desc=f"epoch {epoch + 1}/{config.epochs}",
            leave=False,
            disable=not show_progress(runtime),
        )
        for i, (x, y) in enumerate(bar):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            x = x.contiguous(memory_format=memory_format)
            loss, logits = step(x, y)
            scheduler.step()
            loss_sum += loss.double() * len(y)
            recent[i % SYNC_EVERY] = loss.float().nan_to_num(math.inf)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if sharpness_aware and not step.skipped:  # a loss scaler skips overflowing steps
                sizes = (optimizer.perturbation_norm, optimizer.relative_perturbation)
                perturbation += torch.stack(sizes).to(perturbation)
                ascents += 1
                # The radius the study's rho grids are matched by: the first step taken.
                if epoch == 0 and "perturbation_norm_first" not in initial:
                    initial["perturbation_norm_first"] = optimizer.perturbation_norm.item()
            if (i + 1) % SYNC_EVERY == 0 or i + 1 == steps_per_epoch:
                # Decided on the global batch's losses, which every process shares (a
                # non-finite loss anywhere makes them infinite): what one process on the global
                # batch would decide, and no process stops alone to wait forever in a collective.
                worst = all_reduce_mean(recent[: i % SYNC_EVERY + 1]).max().item()
                recent.zero_()
                if not (math.isfinite(worst) and worst <= stop_above):
                    status, diverged_epoch = "diverged", epoch + 1
                    stopping_loss = worst if math.isfinite(worst) else None  # None: non-finite
                    break
                elapsed = time.perf_counter() - started
                bar.set_postfix(  # this process's shard
                    loss=f"{loss_sum.item() / seen:.4f}",
                    acc=f"{correct.item() / seen:.4f}",
                    img_s=f"{seen / elapsed:.0f}",
                )
            taken = epoch * steps_per_epoch + i + 1  # steps of the run so far
            if taken in probe_at:
                measured = probe(module, loaders["probe"], loss_fn, device, autocast_dtype)
                probes.append({"step": taken, **measured})
                model.train()  # the probe left it in eval mode
        bar.close()
        if status == "diverged":
            break

        # The epoch's totals over all processes, which all saw as many examples.
        loss_sum, correct = sum_over_processes(loss_sum), sum_over_processes(correct)
        seen *= env.world_size
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum.item() / seen,
            "train_acc": correct.item() / seen,
            "lr": optimizer.param_groups[0]["lr"],
        }
        if ascents:  # this process's ascents (every process's, in global mode), skipped ones out
            row.update(zip(PERTURBATION, (perturbation / ascents).tolist(), strict=True))
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            val = evaluate(module, loaders["val"], loss_fn, device, autocast_dtype)
            row.update(val_loss=val["loss"], val_ce=val["ce"], val_acc=val["acc"])
        if "probe" in loaders:
            row.update(probe(module, loaders["probe"], loss_fn, device, autocast_dtype))
        wall_s += time.perf_counter() - started
        row["wall_s"] = wall_s
        history.append(row)
        record.epoch(
            history,
            {
                "epoch": epoch + 1,
                "model": module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": step.scaler.state_dict() if step.scaler is not None else None,
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "history": history,
                "wall_s": wall_s,
                "wandb_id": record.wandb_id,
                "world_size": env.world_size,
                "initial": initial,
                "probes": probes,
            },
        )

    last = history[-1] if history else {}
    result = {
        **result_header(config, status),
        "num_classes": parts.info.num_classes,
        "epochs_completed": len(history),
        "diverged_epoch": diverged_epoch,
        "stopping_loss": stopping_loss,
        "val_acc": last.get("val_acc") if status == "ok" else None,
        "best_val_acc": max((r["val_acc"] for r in history if "val_acc" in r), default=None),
        "test_acc": None,
        "test_loss": None,
        "test_ce": None,
        "final_train_loss": last.get("train_loss"),
        "wall_s": wall_s,
        "world_size": env.world_size,
        "steps_per_epoch": steps_per_epoch,
        **peak_memory(device),
        **{key: run_mean(history, key) for key in PERTURBATION},
        **initial,
        **({"probes": probes} if config.probe_steps else {}),
    }
    if status == "ok":
        # The test set is read once, here, at the end.
        test = evaluate(module, loaders["test"], loss_fn, device, autocast_dtype)
        result.update(test_acc=test["acc"], test_loss=test["loss"], test_ce=test["ce"])
    record.end(result)
    return result


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Deterministic kernels while a run trains (``Config.deterministic``), the process's own
    setting restored after. cuBLAS reads its workspace setting when it first starts, so it is
    set before any CUDA work; a process that already used cuBLAS keeps its own, and torch then
    raises at the first cuBLAS call that is not deterministic, which says what to do."""
    if not enabled:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark = previous[1]


def preflight(config: Config, runtime: Runtime) -> None:
    """What would fail a run at once, checked before its directory exists: the data
    (``check_fits_the_data``) and a CUDA device asked for where there is none."""
    check_fits_the_data(config)
    if runtime.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {runtime.device!r}: torch sees no CUDA device here; use --device cpu or auto"
        )


def run(config: Config, out: Path, runtime: Runtime = Runtime()) -> dict[str, Any]:
    """Train ``config`` into ``out/<run_id>``, unless that run is already complete; raises
    ``store.RunLocked`` if another process is training it. A run that raises leaves its
    traceback in ``error.txt`` and a ``failed`` result, then re-raises.

    Under a launcher of several processes (torchrun, a SLURM job with several tasks) every
    process calls ``run``: the processes train together, the main one alone locks and writes
    the run directory, and each returns the main process's result.
    """
    run_dir = out / config.run_id()
    preflight(config, runtime)
    with process_group() as env, exclusive_on_main(run_dir):
        complete = store.read_result(run_dir) if is_main() and store.is_complete(run_dir) else None
        complete = from_main(complete)
        if complete is not None:
            return complete
        if is_main():
            store.clear_error(run_dir)
            store.remove_interrupted_writes(run_dir)
        try:
            with deterministic_algorithms(config.deterministic):
                result = train(config, run_dir, runtime, env)
        except Exception as error:
            if is_main():
                # On a full disk these fail too; the error being raised is the one to report.
                with contextlib.suppress(store.WriteFailed):
                    store.write_error(run_dir, traceback.format_exc())
                    failure = f"{type(error).__name__}: {error}"
                    result = {**result_header(config, "failed"), "error": failure}
                    store.write_result(run_dir, result)
            raise
        return from_main(result)
