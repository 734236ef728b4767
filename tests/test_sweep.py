"""Sweeps and the local launcher."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lightsam import launch, store
from lightsam.config import ConfigError, from_dict
from lightsam.sweep import load_sweep
from lightsam.train import Runtime

ROOT = Path(__file__).parents[1]
BASE = ROOT / "experiments" / "mnist5k_lenet.yaml"


def write_sweep(path: Path, optimizers: str, extra: str = "") -> Path:
    path.write_text(
        f"base: {BASE}\nset: {{epochs: 1, batch_size: 128}}\nseeds: [0, 1]\n{extra}"
        f"optimizers:\n{optimizers}"
    )
    return path


GRIDS = """\
  sgd: {lr: [0.05, 0.1], hparams: {momentum: 0.9}}
  lightsam_ii: {lr: [0.01], rho: [1.0e-4, 1e-3]}
"""


def test_a_sweep_expands_into_every_cell_with_stable_ids(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path / "a.yaml", GRIDS))
    runs = sweep.runs
    assert len(runs) == 2 * 2 + 1 * 2 * 2
    cells = {(c.optimizer.name, c.optimizer.lr, c.optimizer.rho, c.seed) for c in runs}
    assert ("lightsam_ii", 0.01, 1e-3, 1) in cells and ("sgd", 0.1, None, 0) in cells
    assert all(c.epochs == 1 and c.batch_size == 128 for c in runs)
    assert runs[0].optimizer.hparams == {"momentum": 0.9}
    # The same cell is the same run whatever the order of the file.
    reordered = "".join(reversed(GRIDS.splitlines(keepends=True)))
    other = load_sweep(write_sweep(tmp_path / "b.yaml", reordered)).runs
    assert {c.run_id() for c in runs} == {c.run_id() for c in other}
    assert len({c.run_id() for c in runs}) == len(runs)


@pytest.mark.parametrize(
    ("grids", "message"),
    [
        ("  sgd: {lr: [0.1], rho: [0.1]}\n", "sgd takes no a rho grid|takes no"),
        ("  lightsam_i: {lr: [0.1]}\n", "needs a rho grid"),
        ("  lightsam_v: {lr: [0.1], rho: [0.1]}\n", "unknown optimizer"),
        ("  sgd: {lr: [0.1], momentum: 0.9}\n", "unknown key.*momentum"),
        ("  sgd: {lr: []}\n", "non-empty list"),
        ("  lightsam_i: {lr: [-0.1], rho: [0.1]}\n", "lr"),
    ],
)
def test_invalid_sweeps_are_rejected(tmp_path, grids, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(tmp_path / "s.yaml", grids))


def test_the_studys_sweeps_are_valid():
    for path in (ROOT / "sweeps").glob("*.yaml"):
        assert load_sweep(path).runs, path


def small(name: str, lr: float, **changes):
    rho = {"rho": 0.05} if name.startswith("lightsam") else {}
    base = {
        "dataset": "mnist5k",
        "model": "lenet5",
        "epochs": 1,
        "batch_size": 128,
        "val_size": 500,
        "optimizer": {"name": name, "lr": lr, **rho},
    }
    return from_dict({**base, **changes})


def test_local_launch_runs_everything_once_and_a_failure_does_not_stop_the_others(tmp_path):
    configs = [
        small("sgd", 0.05),
        small("lightsam_i", 1.0),
        small("sgd", 0.05, model="timm:no_such_model"),
    ]
    counts = launch.launch_local(configs, tmp_path, Runtime(), max_parallel=2)
    assert counts == {"done": 2, "failed": 1}
    failed = tmp_path / configs[2].run_id()
    assert store.read_result(failed)["status"] == "failed"
    assert "no_such_model" in (failed / "error.txt").read_text()

    assert launch.to_launch(configs, tmp_path, retry_failed=False) == []
    assert launch.to_launch(configs, tmp_path, retry_failed=True) == [configs[2]]
    counts = launch.status(configs, tmp_path)
    assert counts["sgd"] == {"done": 1, "failed": 1} and counts["lightsam_i"] == {"done": 1}


def test_a_run_held_by_another_process_is_not_trained_again(tmp_path):
    config = small("sgd", 0.05)
    run_dir = tmp_path / config.run_id()
    with store.exclusive(run_dir):
        assert launch.state_of(run_dir) == "running"
        assert launch.status([config], tmp_path)["sgd"] == {"running": 1}
        assert launch.to_launch([config], tmp_path, retry_failed=False) == []
        assert launch.run_one(config.to_dict(), str(tmp_path), Runtime()) == "running"
        assert store.read_result(run_dir) is None
    assert launch.state_of(run_dir) == "missing"


def test_debug_executor_runs_in_process(tmp_path):
    counts = launch.launch_debug([small("sgd", 0.05)], tmp_path, Runtime())
    assert counts == {"done": 1}


def lightsam(*args: str, cwd: Path = ROOT) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "lightsam", *args], capture_output=True, text=True, cwd=cwd
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_dry_run_lists_each_run_and_status_counts_them(tmp_path):
    sweep = write_sweep(tmp_path / "s.yaml", GRIDS)
    out = lightsam("sweep", str(sweep), "--dry-run", "--out", str(tmp_path / "store"))
    lines = out.splitlines()
    assert lines[0].startswith("sweep s: 8 of 8 runs to launch")
    ids = {c.run_id() for c in load_sweep(sweep).runs}
    assert {line.split()[4] for line in lines[1:]} == ids
    assert all(line.split()[-1] == "local" for line in lines[1:])
    assert "lr=0.01" in out and "rho=0.0001" in out and "seed=1" in out
    assert not (tmp_path / "store").exists()

    table = lightsam("status", str(sweep), "--out", str(tmp_path / "store"))
    assert table.splitlines()[-1].split() == ["total", "0", "0", "0", "0", "8"]


def test_a_status_probe_does_not_turn_a_starting_run_away(tmp_path):
    run_dir = tmp_path / "run"
    stop = threading.Event()

    def probe() -> None:  # `lightsam status` and relaunches look at the lock all the time
        while not stop.is_set():
            store.is_running(run_dir)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        for _ in range(200):
            with store.exclusive(run_dir):
                pass
    finally:
        stop.set()
        prober.join()
