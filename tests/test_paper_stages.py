"""The stages after a screening, on a miniature screen of mnist5k: the confirm stage (selected
cells under a cosine schedule on fresh seeds, the base at twice the epochs, the 3 x 3 block) and
the transfer onto another workload's spec."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from test_table_nine import write_block
from test_transfer import CURVES, write_store

from analysis.report import write_report
from lightsam import paper, reproduce, stages, store
from lightsam.config import Runtime, read_yaml
from lightsam.launch import launch_sweep
from lightsam.sweep import load_sweep

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def screen(tmp_path_factory):
    where = tmp_path_factory.mktemp("screen")
    path = where / "mini.yaml"
    path.write_text(
        f"base: {ROOT / 'experiments' / 'mnist5k_lenet.yaml'}\n"
        "set: {epochs: 2, batch_size: 128, lr_schedule: constant}\nseeds: [0]\n"
        "halving: {rungs: [1, 2], keep: 0.5}\n"
        "optimizers:\n"
        "  lightsam_i: {lr: [1.0e-4, 1.0], rho: [0.0, 0.05]}\n"
        "  sgd: {lr: [1.0e-4, 0.05], hparams: {momentum: 0.9}}\n"  # a base optimizer's own arm
    )
    sweep = load_sweep(path)
    before = sweep.plan()
    with pytest.raises(stages.GridIncomplete):
        paper.confirmation(before, where / "store", sweep.halving.rungs)
    launch_sweep(sweep, where / "store", Runtime(device="cpu", progress=False), max_parallel=2)
    return sweep, where / "store"


def test_the_confirm_stage_reruns_the_selection_as_the_paper_would(screen):
    sweep, out = screen
    plan, configs = paper.confirmation(sweep.plan(), out, sweep.halving.rungs)
    assert plan.stage == "confirm" and len(plan.runs) == len(configs)
    assert {c.lr_schedule for c in configs} == {"cosine"}
    assert all(c.seed in paper.SEEDS for c in configs)
    chosen = paper.selected(paper.last_rung(sweep.plan(), out, sweep.halving.rungs))
    best, base = chosen["lightsam_i"]
    # The base optimizer's arm: its best cell is its base, confirmed like the methods' bases.
    no_rho, sgd = chosen["sgd"]
    assert no_rho is None and (sgd.optimizer.name, sgd.optimizer.lr) == ("sgd", 0.05)
    sgd_runs = [c for c in configs if c.optimizer.name == "sgd"]
    assert {c.epochs for c in sgd_runs} == {2 * sgd.epochs} and len(sgd_runs) == 5
    assert not any(note.startswith("sgd: no cell") for note in plan.notes)
    assert "sgd's base (a base optimizer): lr=0.05, 4 epochs" in plan.notes
    configs = [c for c in configs if c.optimizer.name == "lightsam_i"]
    kept = {(c.optimizer.lr, c.optimizer.rho) for c in (best, base) if c is not None}
    assert kept <= {(1.0, 0.05), (1.0, 0.0), (1e-4, 0.05), (1e-4, 0.0)}
    method = [c for c in configs if c.optimizer.lr == best.optimizer.lr and c.optimizer.rho
              == best.optimizer.rho]  # fmt: skip
    assert sorted(c.seed for c in method) == list(paper.SEEDS)
    block = {(c.optimizer.lr, c.optimizer.rho) for c in configs if c.optimizer.rho}
    assert len(block) == 9
    assert min(lr for lr, _ in block) == pytest.approx(best.optimizer.lr / 10**0.5, rel=1e-2)
    if base is not None:
        bases = [c for c in configs if c.optimizer.rho == 0.0]
        assert {c.epochs for c in bases} == {2 * base.epochs} and len(bases) == 5
    # 5 seeds of the method, the block's other 8 settings on 3 seeds, 5 of the base if any.
    assert len(configs) == 5 + 8 * 3 + (5 if base is not None else 0)


def test_the_transfer_stage_moves_the_selected_settings_without_retuning(screen):
    sweep, out = screen
    spec = read_yaml(ROOT / "experiments" / "mnist5k_lenet.yaml", "spec")
    spec = {**spec, "batch_size": 256, "epochs": 3}
    plan, configs = paper.transfer(sweep.plan(), out, sweep.halving.rungs, spec)
    assert plan.stage == "transfer"
    chosen = paper.selected(paper.last_rung(sweep.plan(), out, sweep.halving.rungs))
    moved = [c for pair in chosen.values() for c in pair if c is not None]
    assert len(configs) == 3 * len(moved)
    for config in configs:
        assert (config.batch_size, config.epochs, config.lr_schedule) == (256, 3, "cosine")
        assert config.seed in paper.TRANSFER_SEEDS
        assert any(config.optimizer == c.optimizer for c in moved)


def test_the_paper_preset_confirms_every_screen_and_transfers_cifar10s_choices(tmp_path):
    preset = reproduce.PRESETS["paper"]
    made = {}
    for name in preset.sweeps:
        sweep = load_sweep(ROOT / "sweeps" / f"{name}.yaml")
        made[name] = reproduce.paper_stages(preset, sweep, tmp_path / name, ROOT / "experiments")
    assert {name: [stage for stage, _ in m] for name, m in made.items()} == {
        "screen_mnist_lenet": ["confirm"],
        "screen_cifar10_resnet18": [
            "confirm", "transfer_mnist_lenet", "transfer_cifar100_resnet18",
            "transfer_imagenet_vit", "transfer_cifar100_wrn16_8",
        ],
        "screen_cifar100_resnet18": ["confirm"],
        "screen_imagenet_vit": ["confirm"],
    }  # fmt: skip
    for _, make in made["screen_cifar10_resnet18"]:  # nothing screened yet: every stage waits
        with pytest.raises(stages.GridIncomplete):
            make()


def restage(path: Path, stage: str) -> None:
    plan = store.read_plan(path)
    (path / store.PLAN).unlink()
    store.write_plan(path, dataclasses.replace(plan, stage=stage))


def test_the_report_shows_the_nine_settings_and_the_transfer_profiles(screen, tmp_path):
    _, out = screen
    runs = out.parent
    write_block(store.stage_store(out, "confirm"))
    restage(store.stage_store(out, "confirm"), "confirm")
    for workload, curves in CURVES.items():
        write_store(store.stage_store(out, f"transfer_{workload}"), curves)
        restage(store.stage_store(out, f"transfer_{workload}"), "transfer")
    write_report(runs, tmp_path / "figures", tmp_path / "REPORT.md")
    report = (tmp_path / "REPORT.md").read_text()
    # The block's centre ran on the most seeds here: it is the selected cell; no base ran.
    assert "- LightSAM-I at lr 1, rho 0.03, 1 epochs: test accuracy" in report
    nine = report.split("### The nine settings around each selected cell (confirm stage)")[1]
    assert nine.split("### ")[0].count("| LightSAM-I | ") == 9
    assert "run without retuning on w1, w2." in report
    profile = pd.read_csv(tmp_path / "figures" / "store" / "transfer" / "transfer_profile.csv")
    assert profile.loc[profile["tau"].eq(1.0), "sgd"].item() == 0.5
    assert report.count("## ") - report.count("### ") == 1  # the stages are not sweeps of their own
