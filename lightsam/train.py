"""``train(config, run_dir)``: one run, from data to a stored result.

The loop reads top to bottom: data, model, optimizer, schedule, resume, epochs, the test set
once at the end, the result. Each epoch ends with an atomic checkpoint, so rerunning the same
config resumes where an interrupted run stopped and ends with exactly the metrics an
uninterrupted run would have (the batches of epoch e depend only on the seed and e, and the
checkpoint carries the RNG states). A non-finite training loss, or one above
``config.divergence_loss``, ends the run with status ``diverged``: a result, not a failure.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from lightsam import store
from lightsam.config import Config
from lightsam.data import TensorLoader, load_imagefolder, load_splits, make_imagefolder_loader
from lightsam.models import create_model
from lightsam.optim import create_optimizer
from lightsam.step import TrainStep

# How often (in steps) the loop reads the loss back from the device: to test for divergence and
# refresh the progress bar. Reading it every step would stall a GPU.
SYNC_EVERY = 20


@dataclass(frozen=True)
class Runtime:
    """Where a run reads its data and what it reports to; none of it changes the results."""

    data_dir: Path = Path("data")
    download: bool = False
    wandb: bool = False
    progress: bool | None = None  # None: a progress bar only on a terminal


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_loaders(config: Config, runtime: Runtime, device: torch.device):
    """(dataset info, train / val / test loaders). Small datasets live on ``device`` whole."""
    if config.dataset == "imagenet":
        info, datasets = load_imagefolder(
            runtime.data_dir, val_size=config.val_size, split_seed=config.split_seed,
            image_size=224,
        )  # fmt: skip
        loaders = {
            split: make_imagefolder_loader(
                dataset,
                batch_size=config.batch_size,
                shuffle=split == "train",
                seed=config.seed,
                num_workers=config.num_workers,
            )
            for split, dataset in datasets.items()
        }
        return info, loaders
    info, splits = load_splits(
        config.dataset,
        data_dir=runtime.data_dir,
        val_size=config.val_size,
        split_seed=config.split_seed,
        download=runtime.download,
    )
    loaders = {
        split: TensorLoader(
            data,
            info,
            batch_size=config.batch_size,
            shuffle=split == "train",
            augment=config.augment if split == "train" else "none",
            drop_last=split == "train",
            device=device,
            seed=config.seed,
        )
        for split, data in splits.items()
    }
    return info, loaders


def set_epoch(loader: Any, epoch: int) -> None:
    (loader if isinstance(loader, TensorLoader) else loader.sampler).set_epoch(epoch)


def lr_factor(config: Config, steps_per_epoch: int):
    """The learning-rate multiplier as a function of the global step."""
    total = config.epochs * steps_per_epoch
    if config.lr_schedule == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * step / total))
    if config.lr_schedule == "step":
        return lambda step: (
            config.lr_gamma ** sum(step >= m * steps_per_epoch for m in config.lr_milestones)
        )
    return lambda step: 1.0


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, loss_fn, device, autocast_dtype) -> dict[str, float]:
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    count = 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(x)
            loss_sum += loss_fn(logits, y).double() * len(y)
        correct += (logits.argmax(1) == y).sum()
        count += len(y)
    return {"loss": loss_sum.item() / count, "acc": correct.item() / count}


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


def train(config: Config, run_dir: Path, runtime: Runtime = Runtime()) -> dict[str, Any]:
    """Train ``config`` into ``run_dir`` (resuming from its checkpoint if any); returns the
    result that is also written to ``run_dir/result.json``."""
    device = resolve_device(config.device)
    store.write_json(run_dir / store.CONFIG, config.to_dict())
    store.write_json(run_dir / store.ENVIRONMENT, store.environment(device))
    torch.manual_seed(config.seed)

    info, loaders = make_loaders(config, runtime, device)
    model = create_model(
        config.model,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        image_size=info.image_size,
    ).to(device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = create_optimizer(
        config.optimizer.name, model.parameters(), **config.optimizer.kwargs()
    )
    steps_per_epoch = len(loaders["train"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps_per_epoch))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    autocast_dtype = torch.bfloat16 if config.precision == "bf16" else None
    step = TrainStep(
        model, optimizer, loss_fn, autocast_dtype=autocast_dtype, grad_clip=config.grad_clip
    )

    history: list[dict[str, Any]] = []
    start_epoch, wall_s, wandb_id = 0, 0.0, None
    checkpoint = store.load_checkpoint(run_dir / store.CHECKPOINT)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        torch.set_rng_state(checkpoint["rng_cpu"])
        if device.type == "cuda" and checkpoint["rng_cuda"] is not None:
            torch.cuda.set_rng_state(checkpoint["rng_cuda"], device)
        history, start_epoch = checkpoint["history"], checkpoint["epoch"]
        wall_s, wandb_id = checkpoint["wall_s"], checkpoint["wandb_id"]
        store.write_jsonl(run_dir / store.METRICS, history)
    tracker = start_wandb(config, run_dir, wandb_id) if runtime.wandb else None

    status, diverged_epoch = "ok", None
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        set_epoch(loaders["train"], epoch)
        model.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        loss_max = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        seen = 0
        bar = tqdm(
            loaders["train"],
            desc=f"epoch {epoch + 1}/{config.epochs}",
            leave=False,
            disable=not (sys.stderr.isatty() if runtime.progress is None else runtime.progress),
        )
        for i, (x, y) in enumerate(bar):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            x = x.contiguous(memory_format=memory_format)
            loss, logits = step(x, y)
            scheduler.step()
            loss_sum += loss.double() * len(y)
            loss_max = torch.maximum(loss_max, loss.float().nan_to_num(math.inf))
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if (i + 1) % SYNC_EVERY == 0 or i + 1 == steps_per_epoch:
                if not loss_max.item() <= config.divergence_loss:
                    status, diverged_epoch = "diverged", epoch + 1
                    break
                elapsed = time.perf_counter() - started
                bar.set_postfix(
                    loss=f"{loss_sum.item() / seen:.4f}",
                    acc=f"{correct.item() / seen:.4f}",
                    img_s=f"{seen / elapsed:.0f}",
                )
        bar.close()
        if status == "diverged":
            break

        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum.item() / seen,
            "train_acc": correct.item() / seen,
            "lr": optimizer.param_groups[0]["lr"],
        }
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            val = evaluate(model, loaders["val"], loss_fn, device, autocast_dtype)
            row.update(val_loss=val["loss"], val_acc=val["acc"])
        wall_s += time.perf_counter() - started
        row["wall_s"] = wall_s
        history.append(row)
        if tracker is not None:
            tracker.log(row, step=epoch + 1)
        store.save_checkpoint(
            run_dir / store.CHECKPOINT,
            {
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "history": history,
                "wall_s": wall_s,
                "wandb_id": tracker.id if tracker is not None else wandb_id,
            },
        )
        store.write_jsonl(run_dir / store.METRICS, history)

    last = history[-1] if history else {}
    result = {
        **result_header(config, status),
        "num_classes": info.num_classes,
        "epochs_completed": len(history),
        "diverged_epoch": diverged_epoch,
        "val_acc": last.get("val_acc") if status == "ok" else None,
        "best_val_acc": max((r["val_acc"] for r in history if "val_acc" in r), default=None),
        "test_acc": None,
        "test_loss": None,
        "final_train_loss": last.get("train_loss"),
        "wall_s": wall_s,
    }
    if status == "ok":
        # The test set is read once, here, at the end.
        test = evaluate(model, loaders["test"], loss_fn, device, autocast_dtype)
        result.update(test_acc=test["acc"], test_loss=test["loss"])
    if tracker is not None:
        tracker.summary.update(result)
        tracker.finish()
    store.write_json(run_dir / store.RESULT, result)
    return result


def run(config: Config, out: Path, runtime: Runtime = Runtime()) -> dict[str, Any]:
    """Train ``config`` into ``out/<run_id>``, unless that run is already complete; raises
    ``store.RunLocked`` if another process is training it. A run that raises leaves its
    traceback in ``error.txt`` and a ``failed`` result, then re-raises."""
    run_dir = out / config.run_id()
    with store.exclusive(run_dir):
        if store.is_complete(run_dir):
            return store.read_result(run_dir)
        (run_dir / store.ERROR).unlink(missing_ok=True)
        try:
            return train(config, run_dir, runtime)
        except Exception as error:
            store.write_text(run_dir / store.ERROR, traceback.format_exc())
            failure = f"{type(error).__name__}: {error}"
            store.write_json(
                run_dir / store.RESULT, {**result_header(config, "failed"), "error": failure}
            )
            raise
