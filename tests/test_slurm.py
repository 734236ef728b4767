"""Sweeps on a real SLURM cluster: job arrays, requeue mid-training, relaunch, queued runs and
cancel.

These tests need a running cluster; `sudo bash slurm/local_cluster.sh start` gives a one-node
one on localhost, and CI (.ci/run) always starts it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lightsam import store
from lightsam.sweep import load_sweep


def cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return proc.returncode == 0 and any(s in proc.stdout for s in ("idle", "mix", "alloc"))


pytestmark = pytest.mark.skipif(
    not cluster_answers(),
    reason="no SLURM cluster answers (sinfo): start one with "
    "`sudo bash slurm/local_cluster.sh start`; CI always does",
)

ROOT = Path(__file__).parents[1]
TIMEOUT_S = 600


def write_sweep(path: Path, epochs: int) -> Path:
    path.write_text(
        f"base: {ROOT / 'experiments' / 'mnist5k_lenet.yaml'}\n"
        f"set: {{epochs: {epochs}, batch_size: 128}}\n"
        "seeds: [0]\n"
        "optimizers:\n"
        "  sgd: {lr: [0.05], hparams: {momentum: 0.9}}\n"
        "  lightsam_i: {lr: [1.0], rho: [0.05]}\n"
    )
    return path


def lightsam(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "lightsam", *args], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def submit(sweep: Path, out: Path) -> list[str]:
    stdout = lightsam("sweep", str(sweep), "--executor", "slurm", "--profile", "local",
                      "--out", str(out))  # fmt: skip
    match = re.search(r"submitted SLURM job arrays: ([\d ]+)", stdout)
    assert match, stdout
    return match.group(1).split()


def active(job_ids: list[str]) -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(job_ids)],
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    return out.split()


def wait_until_finished(job_ids: list[str]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while active(job_ids):
        assert time.monotonic() < deadline, f"jobs still queued: {active(job_ids)}"
        time.sleep(1)


def results(sweep: Path, out: Path) -> dict[str, dict]:
    return {c.run_id(): store.read_result(out / c.run_id()) for c in load_sweep(sweep).runs}


def metrics(out: Path, run_id: str) -> list[dict]:
    rows = store.read_jsonl(out / run_id / store.METRICS)
    return [{k: v for k, v in row.items() if k != "wall_s"} for row in rows]


def test_sweep_runs_as_job_arrays_and_a_second_launch_submits_nothing(tmp_path):
    sweep, out = write_sweep(tmp_path / "s.yaml", epochs=1), tmp_path / "store"
    job_ids = submit(sweep, out)
    wait_until_finished(job_ids)
    assert all(r is not None and r["status"] == "ok" for r in results(sweep, out).values())
    again = lightsam("sweep", str(sweep), "--executor", "slurm", "--out", str(out))
    assert "0 of 2 runs to launch" in again and "submitted" not in again
    table = lightsam("status", str(sweep), "--out", str(out))
    assert table.splitlines()[-1].split() == ["total", "2", "0", "0", "0", "0", "0"]


def test_a_requeued_job_resumes_and_ends_as_an_uninterrupted_run(tmp_path):
    sweep = write_sweep(tmp_path / "s.yaml", epochs=6)
    reference = tmp_path / "local"
    lightsam("sweep", str(sweep), "--executor", "local", "--out", str(reference))

    out = tmp_path / "slurm"
    order = [c.run_id() for c in load_sweep(sweep).runs]  # the array's task order
    (array_id,) = submit(sweep, out)
    target = out / order[0]
    deadline = time.monotonic() + TIMEOUT_S
    while True:  # requeue task 0 once it has checkpointed an epoch, before it finishes
        assert time.monotonic() < deadline, "task 0 never checkpointed"
        if (target / store.CHECKPOINT).exists() and not (target / store.RESULT).exists():
            break
        time.sleep(0.05)
    subprocess.run(["scontrol", "requeue", f"{array_id}_0"], check=True)
    checkpoint = torch.load(target / store.CHECKPOINT, weights_only=False)
    assert checkpoint["epoch"] < 6
    wait_until_finished([array_id])

    shown = subprocess.run(
        ["scontrol", "show", "job", f"{array_id}_0"], capture_output=True, text=True
    ).stdout
    assert re.search(r"Restarts=1\b", shown), shown
    got, want = results(sweep, out), results(sweep, reference)
    run_dirs = [p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert sorted(run_dirs) == sorted(order)
    for run_id in order:
        assert got[run_id]["status"] == want[run_id]["status"] == "ok"
        for key in ("val_acc", "test_acc", "final_train_loss", "epochs_completed"):
            assert got[run_id][key] == want[run_id][key], (run_id, key)
        assert metrics(out, run_id) == metrics(reference, run_id)
    config = json.loads((target / store.CONFIG).read_text())
    assert config["epochs"] == 6


def totals(sweep: Path, out: Path) -> dict[str, int]:
    """The total row of ``lightsam status``, by state."""
    lines = lightsam("status", str(sweep), "--out", str(out)).splitlines()
    header = next(line for line in lines if line.startswith("optimizer")).split()[1:]
    total = next(line for line in lines if line.startswith("total")).split()[1:]
    return dict(zip(header, map(int, total), strict=True))


def test_queued_runs_are_never_resubmitted_and_cancel_ends_the_sweeps_jobs(tmp_path):
    # Five runs far longer than the test (1000 epochs: minutes each even on the fastest 2-core
    # machine measured, where 40 epochs took seconds and had finished before the cancel came),
    # and the local profile lets two tasks run at once: three at least are still waiting when the
    # relaunch and the cancel come, and the cancel ends the two running ones.
    sweep = tmp_path / "q.yaml"
    sweep.write_text(
        f"base: {ROOT / 'experiments' / 'mnist5k_lenet.yaml'}\n"
        "set: {epochs: 1000, batch_size: 128}\n"
        "seeds: [0, 1, 2, 3, 4]\n"
        "optimizers:\n  sgd: {lr: [0.05], hparams: {momentum: 0.9}}\n"
    )
    out = tmp_path / "store"
    (array_id,) = submit(sweep, out)
    assert len(store.read_submissions(out)) == 5
    waiting = totals(sweep, out)
    assert waiting["missing"] == 0 and waiting["queued"] >= 3, waiting
    assert waiting["queued"] + waiting["running"] + waiting["done"] == 5

    again = lightsam("sweep", str(sweep), "--executor", "slurm", "--out", str(out))
    assert "0 of 5 runs to launch" in again and "submitted" not in again
    assert len(store.read_submissions(out)) == 5  # nothing submitted twice

    cancelled = lightsam("cancel", str(sweep), "--out", str(out))
    count = int(re.search(r"cancelled (\d+) queued or running job", cancelled).group(1))
    assert count >= 3, cancelled
    wait_until_finished([array_id])
    after = totals(sweep, out)
    assert after["queued"] == after["running"] == 0 and after["missing"] >= 3, after
    assert after["done"] + after["missing"] == 5
    dry = lightsam("sweep", str(sweep), "--dry-run", "--out", str(out))
    assert f"{after['missing']} of 5 runs to launch" in dry  # the cancelled ones, once more
    assert "cancelled 0 queued or running job" in lightsam("cancel", str(sweep), "--out", str(out))


def test_halving_submits_each_rung_once_the_one_before_has_finished(tmp_path):
    sweep = write_sweep(tmp_path / "h.yaml", epochs=2)
    sweep.write_text(sweep.read_text() + "halving: {rungs: [1, 2], keep: 0.5}\n")
    sweep.write_text(sweep.read_text().replace("lr: [0.05]", "lr: [1.0e-4, 0.05]"))
    reference = tmp_path / "local"
    lightsam("sweep", str(sweep), "--executor", "local", "--out", str(reference))

    out = tmp_path / "slurm"
    first = submit(sweep, out)  # rung 0; rung 1 waits for it
    wait_until_finished(first)
    second = submit(sweep, out)  # the same command, once rung 0 has finished: rung 1
    wait_until_finished(second)
    third = lightsam("sweep", str(sweep), "--executor", "slurm", "--out", str(out))
    assert "submitted" not in third  # every rung done

    rung1 = out.with_name("slurm_rung1")
    promotion = store.read_json(rung1 / store.PROMOTION)
    kept = [c for c in promotion["cells"] if c["decision"] == "kept"]
    assert [(c["arm"], c["lr"]) for c in kept] == [("sgd", 0.05), ("lightsam_i", 1.0)]
    plan = store.read_plan(rung1)
    for run_id in plan.runs:
        assert store.read_continued(rung1 / run_id)["store"] == str(out)
        assert metrics(rung1, run_id) == metrics(reference.with_name("local_rung1"), run_id)
