"""Sweeps and the local launcher."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lightsam import launch, slurm, store
from lightsam.config import ConfigError, Runtime, from_dict
from lightsam.plan import Plan
from lightsam.sweep import load_sweep

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
    assert runs[0].optimizer.hparams["momentum"] == 0.9
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
        ("  sgd: {lr: [0.1, 0.01, 0.1]}\n", r"optimizers.sgd.lr lists 0.1 more than once"),
        ("  lightsam_i: {lr: [1], rho: [0.1, 0.1]}\n", "optimizers.lightsam_i.rho lists 0.1"),
        ("  sgd: {lr: [0.1], lr: [0.2]}\n", "found the key 'lr' a second time"),
    ],
)
def test_invalid_sweeps_are_rejected(tmp_path, grids, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(tmp_path / "s.yaml", grids))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base: [a.yaml]\noptimizers: {sgd: {lr: 0.1}}\n", "base must be the path of a spec"),
        (f"base: {BASE}\nseeds: []\noptimizers: {{sgd: {{lr: 0.1}}}}\n", "non-empty list"),
        (f"base: {BASE}\nseeds: [0, 1, 0]\noptimizers: {{sgd: {{lr: 0.1}}}}\n", "seeds lists 0"),
        (f"base: {BASE}\nseeds: [true]\noptimizers: {{sgd: {{lr: 0.1}}}}\n", "integers"),
    ],
)
def test_a_sweep_files_base_and_seeds_are_checked(tmp_path, text, message):
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_sweep(tmp_path / "s.yaml")


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


def plan_of(configs) -> Plan:
    runs = {c.run_id(): c.to_dict() for c in configs}
    return Plan(sweep="t", source="t.yaml", source_sha256="-", runs=runs)


def test_local_launch_runs_everything_once_and_a_failure_does_not_stop_the_others(tmp_path):
    configs = [
        small("sgd", 0.05),
        small("lightsam_i", 1.0),
        small("sgd", 0.05, dataset="cifar10", model="resnet18"),  # its files are not there
    ]
    runtime = Runtime(data_dir=tmp_path / "no-data")
    counts = launch.launch_local(configs, tmp_path / "store", runtime, max_parallel=2)
    assert counts == {"done": 2, "failed": 1}
    failed = tmp_path / "store" / configs[2].run_id()
    assert store.read_result(failed)["status"] == "failed"
    assert "DatasetUnavailableError" in (failed / "error.txt").read_text()

    plan = plan_of(configs)
    state = launch.store_state(plan, tmp_path / "store")
    assert launch.to_launch(state, retry_failed=False) == []
    assert launch.to_launch(state, retry_failed=True) == [configs[2].run_id()]
    counts = state.counts(plan)
    assert counts["sgd"] == {"done": 1, "failed": 1} and counts["lightsam_i"] == {"done": 1}


def test_a_run_held_by_another_process_is_not_trained_again(tmp_path):
    config = small("sgd", 0.05)
    plan, run_dir = plan_of([config]), tmp_path / config.run_id()
    with store.exclusive(run_dir):
        assert launch.state_of(run_dir) == "running"
        state = launch.store_state(plan, tmp_path)
        assert state.counts(plan)["sgd"] == {"running": 1}
        assert launch.to_launch(state, retry_failed=False) == []
        assert launch.run_one(config.to_dict(), str(tmp_path), Runtime()) == "running"
        assert store.read_result(run_dir) is None
    assert launch.state_of(run_dir) == "missing"


def test_debug_executor_runs_in_process(tmp_path):
    counts = slurm.run_debug([small("sgd", 0.05)], tmp_path, Runtime())
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
    runs, cost = lines[1:9], lines[9:]
    ids = {c.run_id() for c in load_sweep(sweep).runs}
    assert {line.split()[4] for line in runs} == ids
    assert all(line.split()[-1] == "local" for line in runs)
    assert cost[0] == "cost of sweep s (a sharpness-aware epoch at rho > 0 counts twice):"
    assert cost[1].startswith("  grid: 8 runs, 8 run-epochs, GPU-hours unknown")
    assert "lr=0.01" in out and "rho=0.0001" in out and "seed=1" in out
    assert not (tmp_path / "store").exists()

    table = lightsam("status", str(sweep), "--out", str(tmp_path / "store"))
    assert table.splitlines()[-1].split() == ["total", "0", "0", "0", "0", "0", "8"]


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


# -- the sweep file merges, never drops --------------------------------------------------------


def write_spec(path: Path, hparams: str) -> Path:
    path.write_text(
        "dataset: mnist5k\nmodel: lenet5\nepochs: 1\nbatch_size: 128\nval_size: 500\n"
        f"optimizer: {{name: sgd, lr: 0.1, hparams: {hparams}}}\n"
    )
    return path


def sweep_file(path: Path, base: Path, optimizers: str, set_: str = "{epochs: 1}") -> Path:
    path.write_text(f"base: {base}\nset: {set_}\nseeds: [0]\noptimizers:\n{optimizers}")
    return path


def test_the_base_specs_hparams_reach_every_run_that_takes_them(tmp_path):
    base = write_spec(tmp_path / "base.yaml", "{momentum: 0.9, weight_decay: 5.0e-4}")
    grids = (
        "  sgd: {lr: [0.1]}\n  sgd_sam: {lr: [0.1], rho: [0.05]}\n"
        "  lightsam_i: {lr: [1.0], rho: [0.05]}\n"
    )
    sweep = load_sweep(sweep_file(tmp_path / "s.yaml", base, grids))
    hparams = {c.optimizer.name: c.optimizer.hparams for c in sweep.runs}
    assert hparams["sgd"]["momentum"] == hparams["sgd_sam"]["momentum"] == 0.9
    assert all(h["weight_decay"] == 5e-4 for h in hparams.values())
    assert "momentum" not in hparams["lightsam_i"]  # it takes no momentum: noted, not silent
    assert sweep.notes == ("optimizer.hparams.momentum=0.9 reaches sgd, sgd_sam; not lightsam_i",)
    assert sweep.plan().notes == sweep.notes


def test_set_then_the_grid_override_the_base_spec_argument_by_argument(tmp_path):
    base = write_spec(tmp_path / "base.yaml", "{momentum: 0.9, weight_decay: 5.0e-4}")
    grids = "  sgd: {lr: [0.1], hparams: {nesterov: true}}\n  sgd_sam: {lr: [0.1], rho: [0.05]}\n"
    set_ = "{epochs: 1, optimizer.hparams.momentum: 0.5}"
    sweep = load_sweep(sweep_file(tmp_path / "s.yaml", base, grids, set_))
    hparams = {c.optimizer.name: c.optimizer.hparams for c in sweep.runs}
    assert hparams["sgd"]["momentum"] == hparams["sgd_sam"]["momentum"] == 0.5
    assert hparams["sgd"]["nesterov"] and not hparams["sgd_sam"]["nesterov"]
    assert hparams["sgd"]["weight_decay"] == 5e-4


@pytest.mark.parametrize(
    ("set_", "message"),
    [
        ("{optimizer.lr: 0.3}", "set: optimizer.lr: each optimizer's grid sets"),
        ("{optimizer.rho: 0.3}", "set: optimizer.rho"),
        ("{optimizer.name: adam}", "set: optimizer.name"),
        ("{optimizer.hparams.betas: [0.9, 0.99]}", "betas is an argument of none of"),
    ],
)
def test_a_set_that_would_be_ignored_is_an_error(tmp_path, set_, message):
    base = write_spec(tmp_path / "base.yaml", "{}")
    path = sweep_file(tmp_path / "s.yaml", base, "  sgd: {lr: [0.1]}\n", set_)
    with pytest.raises(ConfigError, match=message):
        load_sweep(path)


def test_a_grids_own_set_overrides_the_sweeps_for_its_runs_alone(tmp_path):
    grids = (
        "  sgd: {lr: [0.1], set: {epochs: 2, probe_size: 64}}\n"
        "  sgd_sam: {lr: [0.1], rho: [0.05]}\n"
    )
    runs = load_sweep(write_sweep(tmp_path / "s.yaml", grids)).runs
    shape = {(c.optimizer.name, c.epochs, c.probe_size, c.batch_size) for c in runs}
    assert shape == {("sgd", 2, 64, 128), ("sgd_sam", 1, 0, 128)}
    with pytest.raises(ConfigError, match=r"optimizers.sgd.set: the grid sets its optimizer"):
        load_sweep(write_sweep(tmp_path / "t.yaml", "  sgd: {lr: [0.1], set: {optimizer.lr: 1}}\n"))
    with pytest.raises(ConfigError, match="epochs"):
        load_sweep(write_sweep(tmp_path / "u.yaml", "  sgd: {lr: [0.1], set: {epochs: 0}}\n"))


def test_three_spellings_of_one_computation_are_one_run(tmp_path):
    base = write_spec(tmp_path / "base.yaml", "{}")
    ids = set()
    for spelling in ("{momentum: 0}", "{momentum: 0.0}", "{}"):
        grids = f"  sgd: {{lr: [1, 1.0e-1], hparams: {spelling}}}\n"
        sweep = load_sweep(sweep_file(tmp_path / "s.yaml", base, grids))
        ids.add(tuple(c.run_id() for c in sweep.runs))
    assert len(ids) == 1


def test_a_sweep_listing_one_computation_twice_is_rejected(tmp_path):
    base = write_spec(tmp_path / "base.yaml", "{}")
    path = sweep_file(tmp_path / "s.yaml", base, "  sgd: {lr: [0.1, 1.0e-1]}\n")
    with pytest.raises(ConfigError, match="more than once"):
        load_sweep(path)


# -- the plan ------------------------------------------------------------------------------------


def test_an_edited_sweep_replaces_the_plan_and_its_old_runs_are_outside_it(tmp_path):
    base = write_spec(tmp_path / "base.yaml", "{}")
    path, out = tmp_path / "s.yaml", tmp_path / "store"
    sweep_file(path, base, "  sgd: {lr: [0.1]}\n", "{epochs: 1}")
    first = load_sweep(path)
    launch.launch_sweep(first, out, Runtime())
    assert store.read_plan(out) == first.plan()

    sweep_file(path, base, "  sgd: {lr: [0.1]}\n", "{epochs: 2}")
    second = load_sweep(path)
    (old_id,), (new_id,) = first.plan().runs, second.plan().runs
    state = launch.store_state(second.plan(), out)
    assert state.states == {new_id: "missing"} and state.outside == (old_id,)
    launch.launch_sweep(second, out, Runtime())
    assert store.read_plan(out) == second.plan()
    (kept,) = (out / store.PLANS).iterdir()  # the first plan, kept
    assert Plan.from_json(store.read_json(kept)) == first.plan()
    table = lightsam("status", str(path), "--out", str(out))
    assert table.splitlines()[-3].split() == ["total", "1", "0", "0", "0", "0", "0"]
    assert "1 run(s) outside the plan" in table and old_id in table and "epochs=1" in table


def test_a_store_answers_one_sweep(tmp_path):
    base = write_spec(tmp_path / "base.yaml", "{}")
    out = tmp_path / "store"
    a = load_sweep(sweep_file(tmp_path / "a.yaml", base, "  sgd: {lr: [0.1]}\n"))
    b = load_sweep(sweep_file(tmp_path / "b.yaml", base, "  sgd: {lr: [0.2]}\n"))
    store.write_plan(out, a.plan())
    with pytest.raises(store.PlanConflict, match="holds the grid plan of sweep 'a'"):
        store.write_plan(out, b.plan())
    assert store.read_plan(out) == a.plan()


def test_the_ablation_arms_sweep_like_any_optimizer(tmp_path):
    base = write_spec(tmp_path / "base.yaml", "{momentum: 0.9}")
    grids = (
        "  lightsam_i_sgd: {lr: [0.05], rho: [0.05], hparams: {ascent_eps: 1.0e-6}}\n"
        "  sgd_sam_decay: {lr: [0.05], rho: [0.05]}\n"
        "  adam_sam: {lr: [1.0e-3], rho: [0.05], hparams: {betas: [0.8, 0.99]}}\n"
    )
    sweep = load_sweep(sweep_file(tmp_path / "s.yaml", base, grids))
    hparams = {c.optimizer.name: c.optimizer.hparams for c in sweep.runs}
    assert hparams["lightsam_i_sgd"]["momentum"] == hparams["sgd_sam_decay"]["momentum"] == 0.9
    assert hparams["lightsam_i_sgd"]["ascent_eps"] == 1e-6
    assert hparams["adam_sam"]["betas"] == [0.8, 0.99] and "momentum" not in hparams["adam_sam"]
    assert sweep.notes == (
        "optimizer.hparams.momentum=0.9 reaches lightsam_i_sgd, sgd_sam_decay; not adam_sam",
    )


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_launcher_leaves_no_worker_training(tmp_path, signal_number):
    sweep = write_sweep(tmp_path / "long.yaml", "  sgd: {lr: [0.05]}\n")
    sweep.write_text(sweep.read_text().replace("epochs: 1", "epochs: 30").replace("[0, 1]", "[0]"))
    out = tmp_path / "store"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "lightsam", "sweep", str(sweep), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (run_id,) = load_sweep(sweep).plan().runs
    run_dir = out / run_id
    deadline = time.monotonic() + 120
    while not (run_dir / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # an epoch done: the worker is training
    assert store.is_running(run_dir)
    launcher.send_signal(signal_number)
    launcher.wait(timeout=30)
    deadline = time.monotonic() + 10 * launch.PARENT_POLL_S + 10
    while store.is_running(run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not store.is_running(run_dir)  # the worker let go of the run: it has stopped
    epochs = len(store.read_metrics(run_dir))
    time.sleep(4)
    assert len(store.read_metrics(run_dir)) == epochs < 30 and store.read_result(run_dir) is None
