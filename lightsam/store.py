"""The result store: one directory per run, named by the run's stable id.

    <store>/<run_id>/
        config.json      the resolved config (written first)
        environment.json git commit and dirty flag, Python / torch / CUDA versions, device, host
        metrics.jsonl    one JSON line per epoch, rewritten from the checkpoint on resume
        checkpoint.pt    model, optimizer, scheduler and RNG states after the last epoch
        error.txt        the traceback of a failed run
        result.json      written last: its presence with status ok or diverged means complete
        .lock            held (flock) by the process training the run

Every file is written atomically (to a temporary name, then renamed), so a run killed at any
moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

CONFIG, ENVIRONMENT, METRICS = "config.json", "environment.json", "metrics.jsonl"
CHECKPOINT, ERROR, RESULT = "checkpoint.pt", "error.txt", "result.json"
LOCK = ".lock"
STATUSES = ("ok", "diverged", "failed")
COMPLETE = ("ok", "diverged")


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda handle: handle.write(text.encode()))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    _atomic(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    # Our own checkpoints hold RNG states and Python values besides tensors.
    return torch.load(path, map_location="cpu", weights_only=False)


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None if it is missing or unreadable (a run still being written,
    or a store copied half-way)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_result(run_dir: Path) -> dict[str, Any] | None:
    return read_json(run_dir / RESULT)


def is_complete(run_dir: Path) -> bool:
    """A run whose result says ``ok`` or ``diverged``: nothing left to do."""
    result = read_result(run_dir)
    return result is not None and result.get("status") in COMPLETE


def run_dirs(store: Path) -> Iterator[Path]:
    """Every run directory of a store (those holding a config), in name order."""
    if store.is_dir():
        yield from sorted(p.parent for p in store.glob(f"*/{CONFIG}"))


class RunLocked(RuntimeError):
    """Another process is training this run."""


@contextlib.contextmanager
def exclusive(run_dir: Path, wait_s: float = 1.0) -> Iterator[None]:
    """Hold the run's lock for the block, or raise RunLocked if another process holds it: two
    launches of one sweep never train the same run twice. The lock is an ``flock`` on
    ``run_dir/.lock``, released by the kernel when its holder dies (a killed or requeued job
    leaves no stale lock). A holder is waited for up to ``wait_s`` seconds, so that a launcher's
    momentary probe (:func:`is_running`) cannot turn a starting run away."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_CREAT | os.O_RDWR)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise RunLocked(f"run {run_dir.name} is being trained by another process") from None
            time.sleep(0.05)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_running(run_dir: Path) -> bool:
    """Whether another process holds the run's lock right now."""
    if not (run_dir / LOCK).exists():
        return False
    try:
        with exclusive(run_dir, wait_s=0.0):
            return False
    except RunLocked:
        return True


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def environment(device: torch.device) -> dict[str, Any]:
    """What a result was computed with: the code's git commit and whether its tree had
    uncommitted changes, the library versions, the device, the host."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
    }
