"""The result store: one directory per run, named by the run's id, and the sweep's records.

This module is the only one that knows the store's file names::

    <store>/
        plan.json            the sweep's plan: each run id with its canonical config
        .plans/              earlier plans of the store, kept when a new one replaces them
        launches.jsonl       one line per local launch: runs, wall time, cores
        submissions.jsonl    one line per run submitted to SLURM: its array job and task
        .submitit/           submitit's job folders (scripts, logs, pickled calls)
        promotion.json       a rung's store: which cells of the rung before continue to it
        <run_id>/
            config.json      the canonical config (``Config.to_dict``), written first
            environment.json one segment per start or resume: commit, dirty flag, host,
                             device, threads, library versions, time, first epoch
            git-<n>.diff     ``git diff HEAD`` of the tree segment n started from, if dirty
            metrics.jsonl    one JSON line per epoch, rewritten from the checkpoint on resume
            checkpoint.pt    model, optimizer, scheduler and RNG states after the last epoch
            continued.json   the shorter run this one was continued from (successive halving)
            error.txt        the traceback of a failed run
            result.json      written last: its presence with status ok or diverged means done
            .lock            held (flock) by the process training the run

Every file is written atomically (to a temporary name, then renamed), so a run killed at any
moment leaves either the old file or the new one, never half of one. Readers here take damaged
files in their stride: a missing or unparsable file reads as absent, never as an exception.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import hashlib
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

from lightsam.plan import Plan

PLAN, PLANS = "plan.json", ".plans"
LEGACY_PLAN = "sweep.json"  # schema 1's plan, which held no configs (see lightsam.migrate)
LAUNCHES, SUBMISSIONS, SUBMITIT = "launches.jsonl", "submissions.jsonl", ".submitit"
CONFIG, ENVIRONMENT, METRICS = "config.json", "environment.json", "metrics.jsonl"
CHECKPOINT, ERROR, RESULT = "checkpoint.pt", "error.txt", "result.json"
# A run continued from a shorter one (successive halving), and a rung's promotion decision.
CONTINUED, PROMOTION = "continued.json", "promotion.json"
LOCK = ".lock"
# Outputs of the theorem's problem (lightsam.theorem), a directory of its own.
THEOREM_CELLS, THEOREM_CURVES, THEOREM_META = "cells.csv", "curves.csv", "meta.json"
STATUSES = ("ok", "diverged", "failed")
COMPLETE = ("ok", "diverged")


# -- files ----------------------------------------------------------------------------------------


# An atomic write goes through ".<name>.tmp-<random>" beside its file; one a killed process left
# behind is removed when its run starts again (remove_interrupted_writes).
TEMP_MARK = ".tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class WriteFailed(OSError):
    """A file could not be written (a full disk, a read-only directory, a quota): the message
    names the file and the reason, and the file is as it was before."""


def _atomic(path: Path, write: Any) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, synced, then renamed over
    it; with the permissions of a plain ``open`` (0666 less the umask, so that a lab's group can
    read a store), where ``mkstemp`` alone would leave 0600. An ``OSError`` becomes
    ``WriteFailed`` naming ``path``."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMP_MARK}")
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, WriteFailed):
            reason = error.strerror or str(error)
            raise WriteFailed(f"could not write {path}: {reason}") from error
        raise


def remove_interrupted_writes(run_dir: Path) -> list[Path]:
    """Remove the temporary files of atomic writes that a killed process left in ``run_dir``
    (a checkpoint's is the size of the model); call it holding the run's lock. Returns them."""
    stale = sorted(run_dir.glob(f".*{TEMP_MARK}*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda handle: handle.write(data))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` added to the JSON lines of ``path`` (rewritten whole, atomically)."""
    write_jsonl(path, [*read_jsonl(path), *rows])


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None if it is missing or unreadable (a run still being written,
    or a store copied half-way)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` (none if it is missing); a line that does not parse is
    skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        with contextlib.suppress(ValueError):
            row = json.loads(line)
            if isinstance(row, dict):
                rows.append(row)
    return rows


# -- one run --------------------------------------------------------------------------------------


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    write_json(run_dir / CONFIG, config)


def read_config(run_dir: Path) -> dict[str, Any] | None:
    config = read_json(run_dir / CONFIG)
    return config if isinstance(config, dict) else None


def read_result(run_dir: Path) -> dict[str, Any] | None:
    result = read_json(run_dir / RESULT)
    return result if isinstance(result, dict) else None


def write_result(run_dir: Path, result: dict[str, Any]) -> None:
    write_json(run_dir / RESULT, result)


def is_complete(run_dir: Path) -> bool:
    """A run whose result says ``ok`` or ``diverged``: nothing left to do."""
    result = read_result(run_dir)
    return result is not None and result.get("status") in COMPLETE


def write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    write_jsonl(run_dir / METRICS, rows)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(run_dir / METRICS)


def write_error(run_dir: Path, text: str) -> None:
    write_text(run_dir / ERROR, text)


def clear_error(run_dir: Path) -> None:
    (run_dir / ERROR).unlink(missing_ok=True)


def read_error(run_dir: Path) -> str | None:
    try:
        return (run_dir / ERROR).read_text()
    except OSError:
        return None


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    import torch  # the analysis reads stores without loading torch's checkpoint code

    _atomic(run_dir / CHECKPOINT, lambda handle: torch.save(state, handle))


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CHECKPOINT
    if not path.exists():
        return None
    import torch

    # Our own checkpoints hold RNG states and Python values besides tensors.
    return torch.load(path, map_location="cpu", weights_only=False)


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / CHECKPOINT).exists()


def run_dirs(store: Path) -> Iterator[Path]:
    """Every run directory of a store (a visible directory holding a config), in name order."""
    if store.is_dir():
        for path in sorted(p.parent for p in store.glob(f"*/{CONFIG}")):
            if not path.name.startswith("."):
                yield path


# -- provenance -----------------------------------------------------------------------------------


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
    return out.stdout


@functools.cache
def code_version() -> tuple[str | None, bool | None, str | None]:
    """(commit, dirty, ``git diff HEAD`` if dirty) of the code this process runs. Read once: a
    process runs the code it imported, whatever the tree becomes later (a worker of a long
    sweep must not record the edits made while it trains)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    dirty = None if status is None else bool(status.strip())
    return (commit.strip() if commit else None), dirty, (_git("diff", "HEAD") if dirty else None)


def cpu_name() -> str:
    """The CPU's model name: float results on CPU can differ between models (their vector units
    pick different kernels), so a result records which one computed it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: Any) -> dict[str, Any]:
    """What a result is being computed with: the code's git commit and whether its tree had
    uncommitted changes (to tracked files), the library versions, the device, the host, the
    time (UTC)."""
    import torch

    commit, dirty, _ = code_version()
    return {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "git_dirty": dirty,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if getattr(device, "type", None) == "cuda"
        else cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
    }


def read_environment(run_dir: Path) -> list[dict[str, Any]]:
    """The run's environment segments, oldest first (a store written before segments holds one
    environment, read as one segment); none if the file is missing or damaged."""
    data = read_json(run_dir / ENVIRONMENT)
    if isinstance(data, dict) and isinstance(data.get("segments"), list):
        return [s for s in data["segments"] if isinstance(s, dict)]
    return [data] if isinstance(data, dict) else []


def write_environment(run_dir: Path, segments: list[dict[str, Any]]) -> None:
    write_json(run_dir / ENVIRONMENT, {"segments": segments})


def begin_segment(run_dir: Path, segment: dict[str, Any]) -> None:
    """Add a start (or resume) of the run to its ``environment.json``. From a tree with
    uncommitted changes, the changes (``git diff HEAD``) are kept beside it, so that the code a
    result came from can be rebuilt; the segment names the file."""
    segments = read_environment(run_dir)
    segment = dict(segment)
    if segment.get("git_dirty"):
        diff = code_version()[2]
        if diff:
            name = f"git-{len(segments)}.diff"
            write_text(run_dir / name, diff)
            segment["git_diff"] = name
    write_environment(run_dir, [*segments, segment])


# -- locks ----------------------------------------------------------------------------------------


class RunLocked(RuntimeError):
    """Another process is training this run."""


class LocksUnsupported(OSError):
    """The store's filesystem refuses ``flock`` (some NFS and FUSE mounts), so lightsam cannot
    keep two launches from training one run."""


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
        except OSError as error:  # ENOLCK, EOPNOTSUPP, ...: the filesystem has no flock
            os.close(fd)
            raise LocksUnsupported(
                error.errno,
                f"the filesystem of {run_dir.parent} does not support file locks (flock: "
                f"{error.strerror}), which keep two launches from training one run; put the "
                "store on a local disk or a filesystem with locking (--out), e.g. NFS mounted "
                "with local_lock=flock or lock support",
            ) from error
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


# -- the store's records --------------------------------------------------------------------------


class PlanConflict(ValueError):
    """A store already holds the plan of another sweep."""


def read_plan(store: Path) -> Plan | None:
    """The store's plan, None if it has none. Raises ValueError for a plan that cannot be read
    (the caller says so: the planned runs are then unknown)."""
    path = store / PLAN
    if not path.exists():
        return None
    try:
        return Plan.from_json(json.loads(path.read_text()))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error


def write_plan(store: Path, plan: Plan) -> None:
    """Make ``plan`` the store's plan. A different plan of the same sweep (its file was edited)
    replaces the old one, which is kept in ``.plans/``; the plan of another sweep is refused
    with :class:`PlanConflict`, as one store answers one sweep."""
    try:
        current = read_plan(store)
    except ValueError:
        current = None  # an unreadable plan is kept aside below, not trusted
    if current is not None and (current.sweep, current.stage) != (plan.sweep, plan.stage):
        raise PlanConflict(
            f"{store} holds the {current.stage} plan of sweep {current.sweep!r} (from "
            f"{current.source}); give the {plan.stage} of sweep {plan.sweep!r} a store of its "
            "own (--out)"
        )
    if current is not None and current.to_json() == plan.to_json():
        return
    _keep_aside(store, PLAN)
    write_json(store / PLAN, plan.to_json())


def continue_from(prefix: Path, run_dir: Path) -> bool:
    """Start ``run_dir`` from the final checkpoint of ``prefix``, a complete shorter run of the
    same computation (the caller checks that it is: ``lightsam.halving``), unless it already
    has a checkpoint or a result of its own; returns whether it did. The checkpoint is
    hard-linked where the filesystem allows (no copy of the weights; checkpoints are replaced,
    never written in place, so the shorter run's stays as it is), else copied; training then
    resumes from it as from its own, which continues the run exactly."""
    try:
        with exclusive(run_dir, wait_s=0.0):
            if has_checkpoint(run_dir) or read_result(run_dir) is not None:
                return False
            target = run_dir / CHECKPOINT
            try:
                os.link(prefix / CHECKPOINT, target)
            except OSError:
                write_bytes(target, (prefix / CHECKPOINT).read_bytes())
            write_json(run_dir / CONTINUED, {"run_id": prefix.name, "store": str(prefix.parent)})
            return True
    except RunLocked:  # being trained already
        return False


def read_continued(run_dir: Path) -> dict[str, Any] | None:
    """Which shorter run ``run_dir`` was continued from, if any (``continue_from``)."""
    data = read_json(run_dir / CONTINUED)
    return data if isinstance(data, dict) else None


def stage_store(grid_store: Path, stage: str) -> Path:
    """Where a later stage of the grid stored in ``grid_store`` keeps its runs (beside it)."""
    return grid_store.with_name(f"{grid_store.name}_{stage}")


def _keep_aside(store: Path, name: str) -> None:
    """Move the plan file ``name`` into ``.plans/`` under a name of its time and content."""
    path = store / name
    if not path.exists():
        return
    old = path.read_bytes()
    kept = f"{int(time.time())}-{hashlib.sha256(old).hexdigest()[:8]}-{name}"
    _atomic(store / PLANS / kept, lambda handle: handle.write(old))
    path.unlink()


def keep_legacy_plan_aside(store: Path) -> None:
    """A schema-1 plan (``sweep.json``) moved into ``.plans/``: it names runs by their old ids."""
    _keep_aside(store, LEGACY_PLAN)


def record_launch(store: Path, record: dict[str, Any]) -> None:
    """A local launch's runs, wall time and cores: the report states how long the study took
    (a resumed study took the sum of its launches)."""
    append_jsonl(store / LAUNCHES, [record])


def read_launches(store: Path) -> list[dict[str, Any]]:
    return read_jsonl(store / LAUNCHES)


def record_submissions(store: Path, rows: list[dict[str, Any]]) -> None:
    """Runs submitted to SLURM, one row each: ``run_id``, ``job_id`` (``<array>_<task>``),
    ``array_id``, ``task``, ``submitted_at``."""
    append_jsonl(store / SUBMISSIONS, rows)


def read_submissions(store: Path) -> list[dict[str, Any]]:
    return [row for row in read_jsonl(store / SUBMISSIONS) if "run_id" in row and "job_id" in row]


def submitit_folder(store: Path) -> Path:
    return store / SUBMITIT
