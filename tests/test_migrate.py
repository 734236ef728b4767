"""``lightsam migrate``: a store written under schema 1 brought up to date, nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lightsam import launch, store
from lightsam.migrate import migrate_store
from lightsam.sweep import load_sweep

ROOT = Path(__file__).parents[1]


def write_sweep(path: Path) -> Path:
    path.write_text(
        f"base: {ROOT / 'experiments' / 'mnist5k_lenet.yaml'}\n"
        "set: {epochs: 1, batch_size: 128}\nseeds: [0, 1]\n"
        "optimizers:\n  sgd: {lr: [0.05], hparams: {momentum: 0.9}}\n"
    )
    return path


def schema_1_dir(store_dir: Path, name: str, config: dict, hparams: dict) -> Path:
    """A run directory as lightsam wrote it before schema 2: hyperparameters as spelled, the
    runtime settings in the config, one environment, the plan in sweep.json."""
    old = {k: v for k, v in config.items() if k != "schema"}
    old["optimizer"] = {**old["optimizer"], "hparams": hparams}
    old |= {"device": "auto", "channels_last": False}
    run_dir = store_dir / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(old))
    (run_dir / "environment.json").write_text(json.dumps({"git_commit": "abc", "git_dirty": False}))
    result = {"status": "ok", "run_id": name, "seed": old["seed"], "val_acc": 0.5, "test_acc": 0.4}
    (run_dir / "result.json").write_text(json.dumps(result))
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 1.0}\n')
    return run_dir


def test_a_schema_1_store_migrates_to_canonical_ids_and_nothing_is_lost(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path / "s.yaml"))
    out = tmp_path / "store"
    plan = sweep.plan()
    (first, second) = plan.runs
    schema_1_dir(out, "0123456789abcdef", plan.runs[first], {"momentum": 0.9})
    schema_1_dir(out, "fedcba9876543210", plan.runs[second], {"momentum": 0.9})
    # The first run once more, its default dampening spelled out: another id under schema 1,
    # the same computation; killed before it finished, so the complete one takes the id.
    duplicate = schema_1_dir(
        out, "00000000aaaaaaaa", plan.runs[first], {"momentum": 0.9, "dampening": 0}
    )
    (duplicate / "result.json").unlink()
    (out / "sweep.json").write_text('{"sweep": "s", "runs": []}')

    migration = migrate_store(out)
    assert migration.renamed == {"0123456789abcdef": first, "fedcba9876543210": second}
    assert [name for name, _ in migration.left] == ["00000000aaaaaaaa"]
    assert "the same computation as run" in migration.left[0][1]
    for run_id in (first, second):
        assert store.read_config(out / run_id) == plan.runs[run_id]
        assert store.read_result(out / run_id)["run_id"] == run_id
        assert store.read_result(out / run_id)["test_acc"] == 0.4  # the result as it was
        assert store.read_environment(out / run_id) == [{"git_commit": "abc", "git_dirty": False}]
        assert store.read_metrics(out / run_id) == [{"epoch": 1, "train_loss": 1.0}]
    assert (out / "00000000aaaaaaaa" / "metrics.jsonl").exists()  # left as it was
    assert not (out / "sweep.json").exists()
    assert [p.name.endswith("-sweep.json") for p in (out / ".plans").iterdir()] == [True]

    again = migrate_store(out)
    assert not again.renamed and not again.rewritten and sorted(again.current) == sorted(plan.runs)

    # With the new plan, the sweep is done and nothing trains again; the duplicate is outside.
    store.write_plan(out, plan)
    state = launch.store_state(plan, out)
    assert set(state.states.values()) == {"done"} and state.outside == ("00000000aaaaaaaa",)


def test_the_migrate_command_names_what_it_did_and_writes_the_plan(tmp_path):
    sweep_path = write_sweep(tmp_path / "s.yaml")
    plan = load_sweep(sweep_path).plan()
    out = tmp_path / "store"
    for index, run_id in enumerate(plan.runs):
        schema_1_dir(out, f"old{index}", plan.runs[run_id], {"momentum": 0.9})
    command = [sys.executable, "-m", "lightsam", "migrate", str(out), "--sweep", str(sweep_path)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 run(s) renamed to their canonical id" in done.stdout
    assert "wrote the plan of sweep s (2 runs)" in done.stdout
    assert store.read_plan(out) == plan
