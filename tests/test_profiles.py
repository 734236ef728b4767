"""SLURM profiles are checked when they are read, before anything is submitted (no cluster
needed here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightsam import cost, slurm
from lightsam.cli import main, paper_cost
from lightsam.config import ConfigError, Runtime
from lightsam.reproduce import PRESETS
from lightsam.slurm import load_profile
from lightsam.sweep import load_sweep

ROOT = Path(__file__).parents[1]
PROFILES = sorted((ROOT / "slurm" / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_every_shipped_profile_reads(path):
    profile = load_profile(path)
    assert all(isinstance(line, str) for line in profile.setup)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("setup: module load cuda\n", "setup must be a list, got 'module load cuda'"),
        ("setup: [module load cuda, 3]\n", "setup"),
        ("mem_gb: lots\n", "mem_gb must be float, got 'lots'"),
        ("mem_gb: 0\n", "mem_gb must be > 0 or null"),
        ("cpus_per_task: 0\n", "cpus_per_task must be >= 1, got 0"),
        ("nodes: 1.5\n", "nodes must be int"),
        ("partion: gpu\n", "unknown key.*partion.*valid keys: partition"),
        ("timeout_min: 60\ntimeout_min: 90\n", "'timeout_min' a second time"),
        ("epoch_gpu_hours: {cifar10/resnet18: -1}\n", "epoch_gpu_hours.cifar10/resnet18 must be"),
        ("epoch_gpu_hours: {resnet18: 0.1}\n", "keys are <dataset>/<model>, got 'resnet18'"),
        ("epoch_gpu_hours: {cifar10/resnet18: lots}\n", "epoch_gpu_hours"),
        ("epoch_gpu_hours: {cifar10/resnet18: .inf}\n", "epoch_gpu_hours"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_key(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_profile(tmp_path / "bad.yaml")


def test_a_dry_run_with_a_profile_that_does_not_exist_says_so(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["sweep", "smoke", "--executor", "slurm", "--profile", "nowhere", "--dry-run",
              "--out", str(tmp_path / "out")])  # fmt: skip
    message = f"{stop.value.code}{capsys.readouterr().err}"
    assert "nowhere" in message and "runs to launch" not in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


class Submitted(Exception):
    """Stops submit() at the executor, before anything reaches a scheduler."""


def test_the_profile_sets_how_often_a_timed_out_run_is_requeued(tmp_path, monkeypatch):
    seen = {}

    class Executor:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def update_parameters(self, **parameters):
            pass

        def map_array(self, *args):
            raise Submitted

    monkeypatch.setattr(slurm.submitit, "AutoExecutor", Executor)
    monkeypatch.setattr(slurm, "cluster_max_array_size", lambda: None)
    (tmp_path / "long.yaml").write_text("timeout_min: 240\nmax_requeues: 80\n")
    config = load_sweep(ROOT / "sweeps" / "smoke.yaml").runs[0]
    for profile, requeues in ((load_profile(tmp_path / "long.yaml"), 80), (slurm.Profile(), 50)):
        with pytest.raises(Submitted):
            slurm.submit([config], tmp_path / "store", Runtime(), profile)
        assert seen["slurm_max_num_timeout"] == requeues


def priced_dry_run(tmp_path, capsys, seeds: str, optimizers: str) -> list[str]:
    """What a dry run of a halving sweep (rungs 1 and 3) prints, priced at 0.5 GPU-hours a
    one-pass epoch."""
    (tmp_path / "priced.yaml").write_text("epoch_gpu_hours: {mnist5k/lenet5: 0.5}\n")
    sweep = tmp_path / "h.yaml"
    sweep.write_text(
        f"base: {ROOT / 'experiments' / 'mnist5k_lenet.yaml'}\n"
        f"set: {{epochs: 3}}\nseeds: {seeds}\nhalving: {{rungs: [1, 3], keep: 0.5}}\n"
        f"optimizers:\n{optimizers}"
    )
    main(["sweep", str(sweep), "--dry-run", "--executor", "slurm",
          "--profile", str(tmp_path / "priced.yaml"), "--out", str(tmp_path / "out")])  # fmt: skip
    return capsys.readouterr().out.splitlines()


def test_a_dry_run_prices_every_rung_from_the_profile(tmp_path, capsys):
    said = priced_dry_run(
        tmp_path, capsys, "[0, 1]",
        "  sgd: {lr: [0.01, 0.1, 1.0]}\n  lightsam_i: {lr: [0.1, 1.0], rho: [0.05]}\n",
    )  # fmt: skip
    # rung 0: 10 one-epoch runs (SGD 0.5, LightSAM-I 1.0 GPU-hours an epoch); rung 1: half of
    # each arm's cells, rounded up (SGD 2 of 3, LightSAM-I 1 of 2), two seeds, two more epochs.
    assert "  rung 0: 10 runs, 10 run-epochs, 7.0 GPU-hours" in said
    assert "  rung 1: at most 6 runs, 12 run-epochs, 8.0 GPU-hours" in said
    assert said[-1].startswith("  total: 15.0 GPU-hours (profile ")
    assert not (tmp_path / "out").exists()


def test_the_paper_presets_dry_run_totals_its_sweeps(capsys):
    main(["reproduce", "--preset", "paper", "--profile", "gpu_example", "--dry-run"])
    said = capsys.readouterr().out.splitlines()
    totals = [float(line.split()[1]) for line in said if line.startswith("  total: ")]
    assert len(totals) == 4
    prefix, _, rest = said[-1].partition(": ")
    assert prefix == "preset paper" and rest.endswith(" GPU-hours in all, before any stage it adds")
    total = float(rest.split()[0])
    assert total == pytest.approx(sum(totals), abs=0.05 * len(totals))  # each line is rounded


def test_the_readmes_cost_block_is_the_paper_presets_priced_by_the_example_profile():
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(cost.README_START), readme.index(cost.README_END)
    assert readme[start : end + len(cost.README_END)] == paper_cost()  # else: make figures
    profile = load_profile(ROOT / "slurm" / "profiles" / "gpu_example.yaml")
    sweeps = [load_sweep(ROOT / "sweeps" / f"{name}.yaml") for name in PRESETS["paper"].sweeps]
    hours = sum(
        line.gpu_hours for s in sweeps for line in cost.sweep_cost(s, profile.epoch_gpu_hours)
    )
    assert f"| **total** | | | | **≤ {hours:,.0f}** |" in paper_cost()


def test_a_cell_at_rho_zero_is_priced_as_one_pass_and_a_later_rung_as_two(tmp_path, capsys):
    arm = "  lightsam_i: {lr: [0.1, 1.0], rho: [0.0, 0.05]}\n"
    said = priced_dry_run(tmp_path, capsys, "[0]", arm)
    # rung 0: two cells at rho = 0 (0.5 each) and two at 0.05 (1.0); rung 1: 2 of 4 cells, two
    # more epochs, priced as if both perturbed: 2 * 2 * 1.0.
    assert "  rung 0: 4 runs, 4 run-epochs, 3.0 GPU-hours" in said
    assert "  rung 1: at most 2 runs, 4 run-epochs, 4.0 GPU-hours" in said
