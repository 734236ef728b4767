"""The study's design: its radii matched by the first ascent, and the stages that follow its grid
(the selection on validation for fresh seeds, the recovery audit), on stores written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightsam import store
from lightsam.config import Runtime
from lightsam.launch import launch_plan
from lightsam.plan import Plan
from lightsam.stages import GridIncomplete, confirmation, recovery
from lightsam.sweep import load_sweep
from lightsam.train import first_ascent_radius

ROOT = Path(__file__).parents[1]
RADII = (0.01, 0.1, 1.0)


def test_every_rho_of_the_study_realises_its_radius_at_the_first_step():
    sweep = load_sweep(ROOT / "sweeps" / "mnist5k_study.yaml")
    radii: dict[str, list[float]] = {}
    for config in sweep.runs:
        if config.optimizer.rho is not None and config.optimizer.lr == 1e-2:
            radii.setdefault(config.optimizer.name, []).append(first_ascent_radius(config))
    assert len(radii) == 10
    for name, realised in radii.items():
        assert realised == pytest.approx(RADII, rel=0.02), name  # every arm over all three


def write_grid(tmp_path: Path, grids: str) -> tuple[Plan, Path]:
    sweep_file = tmp_path / "grid.yaml"
    sweep_file.write_text(
        f"base: {ROOT / 'experiments' / 'mnist5k_lenet.yaml'}\nset: {{epochs: 2}}\n"
        f"seeds: [0]\noptimizers:\n{grids}"
    )
    sweep = load_sweep(sweep_file)
    out = tmp_path / "grid"
    store.write_plan(out, sweep.plan())
    return sweep.plan(), out


def finish(out: Path, plan: Plan, outcome) -> None:
    """Write every run's result and metrics: ``outcome(config)`` gives (per-epoch validation
    accuracies, the epoch it diverged in or None, the stopping loss)."""
    for run_id, config in plan.runs.items():
        val, diverged, stopping = outcome(config)
        store.write_config(out / run_id, config)
        rows = [{"epoch": e + 1, "val_acc": acc} for e, acc in enumerate(val)]
        store.write_metrics(out / run_id, rows)
        status = "ok" if diverged is None else "diverged"
        store.write_result(
            out / run_id,
            {"status": status, "run_id": run_id, "num_classes": 10, "diverged_epoch": diverged,
             "stopping_loss": stopping},
        )  # fmt: skip


GRIDS = """\
  sgd_sam: {lr: [0.1, 1.0], rho: [0.05]}
  sgd: {lr: [0.1, 1.0], set: {epochs: 4}}
"""


def outcome(config):
    """SGD at lr 1 is best after 2 epochs and diverges in epoch 3; at lr 0.1 it is best after 4.
    SGD-SAM at lr 1 diverges in epoch 1, at chance, below lr 0.1's 0.6."""
    lr, name = config["optimizer"]["lr"], config["optimizer"]["name"]
    if name == "sgd":
        return ([0.5, 0.9], 3, 2e3) if lr == 1.0 else ([0.4, 0.8, 0.85, 0.95], None, None)
    return ([], 1, None) if lr == 1.0 else ([0.5, 0.6], None, None)


def test_each_arm_is_confirmed_at_each_budget_with_fresh_seeds(tmp_path):
    plan, out = write_grid(tmp_path, GRIDS)
    finish(out, plan, outcome)
    confirm, configs = confirmation(plan, out, seeds=(1, 2))
    chosen = {(c.optimizer.name, c.epochs, c.optimizer.lr) for c in configs}
    assert chosen == {("sgd_sam", 2, 0.1), ("sgd", 2, 1.0), ("sgd", 4, 0.1)}
    assert sorted(c.seed for c in configs) == [1, 1, 1, 2, 2, 2]
    assert confirm.stage == "confirm" and confirm.sweep == plan.sweep
    assert set(confirm.runs) == {c.run_id() for c in configs}
    assert "sgd_sam: lr=0.1, rho=0.05 selected at 2 epochs (validation accuracy 0.6000" in (
        "\n".join(confirm.notes)
    )
    with pytest.raises(ValueError, match="seeds \\[0\\] chose the cells"):
        confirmation(plan, out, seeds=(0, 1))


def test_ties_go_to_the_smaller_lr_and_a_run_diverged_by_the_budget_scores_chance(tmp_path):
    plan, out = write_grid(tmp_path, "  sgd_sam: {lr: [0.1, 1.0, 10.0], rho: [0.05]}\n")
    tied = {0.1: ([0.05, 0.1], None, None), 1.0: ([0.05, 0.1], None, None), 10.0: ([], 1, None)}
    finish(out, plan, lambda config: tied[config["optimizer"]["lr"]])
    _, configs = confirmation(plan, out, seeds=(1,))
    assert [c.optimizer.lr for c in configs] == [0.1]
    # Below chance everywhere else: the diverged cell, at chance (0.1), wins.
    low = {0.1: ([0.0, 0.05], None, None), 1.0: ([0.0, 0.02], None, None), 10.0: ([], 1, None)}
    finish(out, plan, lambda config: low[config["optimizer"]["lr"]])
    _, configs = confirmation(plan, out, seeds=(1,))
    assert [c.optimizer.lr for c in configs] == [10.0]


def test_a_stage_of_an_unfinished_grid_is_refused(tmp_path):
    plan, out = write_grid(tmp_path, GRIDS)
    finish(out, plan, outcome)
    first = next(iter(plan.runs))
    store.write_result(out / first, {"status": "failed", "run_id": first})
    with pytest.raises(GridIncomplete, match="1 of 4 runs of the grid"):
        confirmation(plan, out, seeds=(1,))
    with pytest.raises(GridIncomplete):
        recovery(plan, out)


def test_the_recovery_audit_reruns_every_run_the_stop_rule_ended(tmp_path):
    grids = "  sgd_sam: {lr: [0.1, 1.0, 10.0], rho: [0.05, 0.5]}\n  sgd: {lr: [0.1, 1.0]}\n"
    plan, out = write_grid(tmp_path, grids)

    def stopped(config):
        lr, rho = config["optimizer"]["lr"], config["optimizer"].get("rho")
        if config["optimizer"]["name"] == "sgd":
            return ([0.9, 0.9], None, None) if lr == 0.1 else ([], 1, None)  # non-finite
        if lr == 0.1:
            return [0.9, 0.9], None, None
        return [], 1, (5e3 if rho == 0.05 or lr == 10.0 else None)

    finish(out, plan, stopped)
    audit, configs = recovery(plan, out)
    chosen = {(c.optimizer.name, c.optimizer.rho, c.optimizer.lr) for c in configs}
    # Not the non-finite stops (sgd at lr 1, sgd_sam at rho 0.5, lr 1), which cannot recover.
    assert chosen == {("sgd_sam", 0.05, 1.0), ("sgd_sam", 0.05, 10.0), ("sgd_sam", 0.5, 10.0)}
    assert all(c.divergence_loss is None for c in configs)
    assert audit.stage == "recovery" and len(audit.notes) == 3
    assert "stopped in epoch 1 at loss 5e+03" in audit.notes[0]


def test_a_stage_has_a_store_of_its_own(tmp_path):
    plan, out = write_grid(tmp_path, GRIDS)
    finish(out, plan, outcome)
    confirm, configs = confirmation(plan, out, seeds=(1,))
    with pytest.raises(store.PlanConflict, match="holds the grid plan of sweep 'grid'"):
        store.write_plan(out, confirm)
    assert store.stage_store(out, "confirm") == tmp_path / "grid_confirm"
    with pytest.raises(ValueError, match="configs must be the plan's runs"):
        launch_plan(confirm, configs[:1], store.stage_store(out, "confirm"), Runtime())
    legacy = {k: v for k, v in plan.to_json().items() if k != "stage"}
    assert Plan.from_json(legacy).stage == "grid"
    with pytest.raises(ValueError, match="stage must be one of grid, confirm, recovery"):
        Plan.from_json({**legacy, "stage": "final"})
