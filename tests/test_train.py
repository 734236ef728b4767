"""The training run: real data, every optimizer, resume, divergence, failure, determinism."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from configs import mnist5k_config as config
from interrupted import killed_after_the_first_epoch
from torch.optim.optimizer import register_optimizer_step_post_hook

import lightsam.train
from lightsam import store
from lightsam.config import ConfigError, Runtime
from lightsam.data import TRAIN_POOL_SIZES, DatasetUnavailableError, TensorLoader, load_splits
from lightsam.models import create_model
from lightsam.train import first_ascent_radius, lr_factor, run

SPEC = Path(__file__).parents[1] / "experiments" / "mnist5k_lenet.yaml"

# Settings that train LeNet on mnist5k in one epoch; rho for the elementwise variants is per
# coordinate, hence far smaller (see the LightSAM docstring).
OPTIMIZERS = {
    "sgd": {"lr": 0.05, "hparams": {"momentum": 0.9}},
    "adam": {"lr": 1e-3},
    "adamw": {"lr": 1e-3},
    "adagrad": {"lr": 1e-2},
    "adagrad_norm": {"lr": 1.0},
    "sgd_sam": {"lr": 0.05, "rho": 0.05, "hparams": {"momentum": 0.9}},
    "asam": {"lr": 0.05, "rho": 0.5, "hparams": {"momentum": 0.9}},
    "adasam": {"lr": 1e-3, "rho": 0.05},
    "lightsam_i": {"lr": 1.0, "rho": 0.05},
    "lightsam_ii": {"lr": 1e-2, "rho": 1e-4},
    "lightsam_iii": {"lr": 1e-3, "rho": 1e-4},
    "adam_sam": {"lr": 1e-3, "rho": 0.05},
    "adamw_sam": {"lr": 1e-3, "rho": 0.05},
    "adagrad_sam": {"lr": 1e-2, "rho": 0.05},
    "adagrad_norm_sam": {"lr": 1.0, "rho": 0.05},
    "lightsam_i_sgd": {"lr": 0.05, "rho": 0.05, "hparams": {"momentum": 0.9}},
    "sgd_sam_decay": {"lr": 0.05, "rho": 0.05, "hparams": {"momentum": 0.9}},
}


def without_times(rows):
    return [{k: v for k, v in row.items() if k != "wall_s"} for row in rows]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_one_epoch_of_lenet_on_mnist5k_is_well_above_chance(name, tmp_path):
    result = run(config(optimizer={"name": name, **OPTIMIZERS[name]}), tmp_path)
    assert result["status"] == "ok" and result["epochs_completed"] == 1
    assert result["test_acc"] > 0.6 and result["val_acc"] > 0.6, result
    run_dir = tmp_path / result["run_id"]
    assert {p.name for p in run_dir.iterdir()} >= {
        "config.json",
        "environment.json",
        "metrics.jsonl",
        "checkpoint.pt",
        "result.json",
    }
    written = json.loads((run_dir / "result.json").read_text())
    for key in (
        "status",
        "optimizer",
        "lr",
        "rho",
        "seed",
        "dataset",
        "model",
        "epochs_completed",
        "val_acc",
        "test_acc",
        "final_train_loss",
        "wall_s",
    ):
        assert key in written
    assert json.loads((run_dir / "config.json").read_text())["optimizer"]["name"] == name


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    first = run(config(epochs=2), tmp_path / "a")
    second = run(config(epochs=2), tmp_path / "b")
    rows = [
        store.read_jsonl(d / first["run_id"] / "metrics.jsonl")
        for d in (tmp_path / "a", tmp_path / "b")
    ]
    assert without_times(rows[0]) == without_times(rows[1])
    assert first["test_acc"] == second["test_acc"]
    other_seed = run(config(epochs=2, seed=1), tmp_path / "c")
    assert other_seed["final_train_loss"] != first["final_train_loss"]


def test_deterministic_runs_train_with_deterministic_kernels_and_restore_the_setting(
    tmp_path, monkeypatch
):
    seen = []

    def recording_train(*args, **kwargs):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return original(*args, **kwargs)

    original = lightsam.train.train
    monkeypatch.setattr(lightsam.train, "train", recording_train)
    plain = run(config(), tmp_path)
    deterministic = run(config(deterministic=True), tmp_path)
    assert seen == [False, True]
    assert not torch.are_deterministic_algorithms_enabled()
    assert deterministic["run_id"] != plain["run_id"]
    rows = [
        store.read_jsonl(tmp_path / r["run_id"] / "metrics.jsonl") for r in (plain, deterministic)
    ]
    assert without_times(rows[0]) == without_times(rows[1])  # on CPU it changes no number


def factors(cfg, steps_per_epoch):
    factor = lr_factor(cfg, steps_per_epoch)
    return [factor(step) for step in range(cfg.epochs * steps_per_epoch)]


def test_the_warm_up_ramps_linearly_then_hands_over_to_the_schedule():
    constant = factors(config(epochs=2, warmup_steps=4), 5)
    assert constant == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    cosine = factors(config(epochs=2, warmup_epochs=0.4, lr_schedule="cosine"), 5)  # 2 steps
    assert cosine[:3] == [0.5, 1.0, 1.0]  # the decay starts at the warm-up's end, from 1
    assert cosine[2:] == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)])
    step = factors(config(epochs=2, warmup_steps=2, lr_schedule="step", lr_milestones=[1]), 5)
    assert step == pytest.approx([0.5, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.1])


def test_under_a_constant_schedule_a_run_is_the_start_of_any_longer_one():
    short, long = config(epochs=2, warmup_steps=7), config(epochs=6, warmup_steps=7)
    assert factors(short, 5) == factors(long, 5)[:10]
    cosine = config(epochs=2, warmup_steps=7, lr_schedule="cosine")
    assert factors(cosine, 5) != factors(cosine.replace(epochs=6), 5)[:10]


def test_a_warm_up_as_long_as_the_run_fails_before_its_directory_exists(tmp_path):
    too_long = config(epochs=1, warmup_steps=3500 // 64)  # every step of the run
    with pytest.raises(ConfigError, match=r"the warm-up \(54 steps\) must end before the run"):
        run(too_long, tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_complete_run_is_not_trained_again(tmp_path):
    first = run(config(), tmp_path)
    os.utime(tmp_path / first["run_id"] / "result.json", (0, 0))
    assert run(config(), tmp_path) == first
    assert (tmp_path / first["run_id"] / "result.json").stat().st_mtime == 0


def test_divergence_is_a_result_not_a_failure(tmp_path):
    result = run(config(optimizer={"name": "sgd", "lr": 1e4}), tmp_path)
    assert result["status"] == "diverged"
    assert result["diverged_epoch"] == 1 and result["epochs_completed"] == 0
    assert result["test_acc"] is None and result["val_acc"] is None


def test_a_failed_run_leaves_its_traceback_and_a_failed_result(tmp_path):
    bad = config(dataset="cifar10", model="resnet18")
    with pytest.raises(DatasetUnavailableError):
        run(bad, tmp_path, Runtime(data_dir=tmp_path / "no-data"))
    run_dir = tmp_path / bad.run_id()
    assert store.read_result(run_dir)["status"] == "failed"
    assert "DatasetUnavailableError" in (run_dir / "error.txt").read_text()


def test_bf16_autocast_runs_on_cpu(tmp_path):
    result = run(config(precision="bf16"), tmp_path)
    assert result["status"] == "ok" and result["test_acc"] > 0.5


def lightsam_run(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lightsam",
            "run",
            str(SPEC),
            "--set",
            "epochs=3",
            "--set",
            "optimizer.name=sgd_sam",
            "--set",
            "optimizer.lr=0.05",
            "--set",
            "optimizer.hparams={momentum: 0.9}",
            "--out",
            str(out),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_then_resumed_run_ends_with_the_metrics_of_an_uninterrupted_one(tmp_path):
    straight = lightsam_run(tmp_path / "straight")
    assert straight.wait(timeout=300) == 0, straight.stderr.read()

    interrupted = lightsam_run(tmp_path / "resumed")
    run_id = interrupted.stdout.readline().split()[1]
    checkpoint = tmp_path / "resumed" / run_id / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert not (tmp_path / "resumed" / run_id / "result.json").exists(), "killed too late"
    assert torch.load(checkpoint, weights_only=False)["epoch"] < 3

    resumed = lightsam_run(tmp_path / "resumed")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "epoch 1/3" not in err  # no progress bar when stderr is not a terminal

    results = [store.read_result(tmp_path / d / run_id) for d in ("straight", "resumed")]
    metrics = [
        store.read_jsonl(tmp_path / d / run_id / "metrics.jsonl") for d in ("straight", "resumed")
    ]
    assert len(metrics[0]) == 3
    assert without_times(metrics[0]) == without_times(metrics[1])
    for key in ("test_acc", "val_acc", "final_train_loss", "status"):
        assert results[0][key] == results[1][key]


def test_cli_rejects_a_bad_override_before_training(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightsam",
            "run",
            str(SPEC),
            "--set",
            "optimizer.rho=-1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "rho" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_wandb_offline_logs_and_a_resumed_run_continues_the_same_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = config()
    run(cfg, tmp_path, Runtime(wandb=True))
    run_dir = tmp_path / cfg.run_id()
    wandb_id = torch.load(run_dir / "checkpoint.pt", weights_only=False)["wandb_id"]
    assert wandb_id
    (run_dir / "result.json").unlink()  # as if killed after the last checkpoint
    run(cfg, tmp_path, Runtime(wandb=True))
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(wandb_id) for r in runs)


def test_every_start_and_resume_records_its_environment_and_a_dirty_trees_diff(
    tmp_path, monkeypatch
):
    cfg, run_dir = config(epochs=2), tmp_path / config(epochs=2).run_id()
    git = {"rev-parse": "aaa\n", "status": "", "diff": ""}
    monkeypatch.setattr(store, "_git", lambda command, *_: git[command])
    # Each start reads the tree afresh, as a resume in a new process does.
    monkeypatch.setattr(store, "code_version", store.code_version.__wrapped__)
    killed_after_the_first_epoch(monkeypatch, lambda: run(cfg, tmp_path))
    # Resumed at another commit, from a tree with changes.
    git.update({"rev-parse": "bbb\n", "status": " M lightsam/train.py\n", "diff": "diff --git\n"})
    assert run(cfg, tmp_path)["status"] == "ok"

    segments = store.read_environment(run_dir)
    starts = [(s["git_commit"], s["git_dirty"], s["start_epoch"]) for s in segments]
    assert starts == [("aaa", False, 0), ("bbb", True, 1)]
    assert "git_diff" not in segments[0]
    assert (run_dir / segments[1]["git_diff"]).read_text() == "diff --git\n"


def test_the_realised_perturbation_is_logged_per_epoch_and_averaged_in_the_result(tmp_path):
    cfg = config(epochs=2)
    result = run(cfg, tmp_path)
    rows = store.read_metrics(tmp_path / cfg.run_id())
    norms = [row["perturbation_norm"] for row in rows]
    assert len(norms) == 2 and all(0 < n <= 0.05 * (1 + 1e-6) for n in norms)  # LightSAM-I: <= rho
    assert all(0 < row["relative_perturbation"] < row["perturbation_norm"] for row in rows)
    assert result["perturbation_norm"] == pytest.approx(sum(norms) / 2)
    assert norms[1] < norms[0]  # its radius shrinks as the ascent statistic grows

    base = config(optimizer={"name": "sgd", "lr": 0.05})
    plain = run(base, tmp_path)
    assert plain["perturbation_norm"] is None and plain["relative_perturbation"] is None
    assert "perturbation_norm" not in store.read_metrics(tmp_path / base.run_id())[0]


PROBE = ("probe_loss", "probe_grad_norm")


def test_the_probe_measures_the_training_subset_and_changes_nothing_else(tmp_path):
    probed, plain = config(epochs=2, probe_size=200), config(epochs=2)
    assert plain.run_id() == config(epochs=2, probe_size=0).run_id() != probed.run_id()
    result, reference = run(probed, tmp_path), run(plain, tmp_path)
    rows = store.read_metrics(tmp_path / probed.run_id())
    unprobed = [{k: v for k, v in row.items() if k not in PROBE} for row in rows]
    assert without_times(unprobed) == without_times(store.read_metrics(tmp_path / plain.run_id()))
    assert result["test_acc"] == reference["test_acc"]

    # The last epoch's probe by hand: the final weights, the first 200 training images at once.
    info, splits = load_splits("mnist5k", data_dir=tmp_path, val_size=500, split_seed=0)
    first = TensorLoader(
        splits["train"].subset(torch.arange(200)), info, batch_size=200, shuffle=False
    )
    x, y = next(iter(first))
    model = create_model("lenet5", num_classes=10, in_channels=1, image_size=28)
    model.load_state_dict(store.load_checkpoint(tmp_path / probed.run_id())["model"])
    loss = torch.nn.functional.cross_entropy(model.eval()(x), y)
    loss.backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert rows[-1]["probe_loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert rows[-1]["probe_grad_norm"] == pytest.approx(norm.item(), rel=1e-4)
    # Before the first step: an untrained classifier's loss, about ln 10, which training lowers.
    assert abs(result["probe_loss_initial"] - math.log(10)) < 0.2
    assert rows[-1]["probe_loss"] < rows[0]["probe_loss"] < result["probe_loss_initial"]
    assert result["probe_grad_norm_initial"] > 0


def test_probe_steps_probe_after_that_many_steps_and_change_nothing_else(tmp_path, monkeypatch):
    # 54 steps an epoch: step 3 inside epoch 1, step 60 inside epoch 2.
    plain = config(epochs=2, probe_size=200, optimizer={"name": "sgd", "lr": 0.05})
    probed = plain.replace(probe_steps=(3, 60))
    assert plain.run_id() == plain.replace(probe_steps=()).run_id() != probed.run_id()
    steps, calls, model = [0], [], []
    real_probe = lightsam.train.probe

    def counted_probe(module, *args):
        model[:] = [module]
        calls.append((steps[0], real_probe(module, *args)))
        return calls[-1][1]

    def after_step(*_):
        steps[0] += 1
        assert model[0].training  # every step after a probe trains in train mode

    monkeypatch.setattr(lightsam.train, "probe", counted_probe)
    hook = register_optimizer_step_post_hook(after_step)
    try:
        result = run(probed, tmp_path)
    finally:
        hook.remove()
    # Before the first step, after steps 3 and 54 (epoch 1), 60 and 108 (epoch 2).
    assert [step for step, _ in calls] == [0, 3, 54, 60, 108]
    assert result["probes"] == [{"step": 3, **calls[1][1]}, {"step": 60, **calls[3][1]}]
    assert result["steps_per_epoch"] == 54
    assert result["probes"][0]["probe_loss"] < result["probe_loss_initial"]

    monkeypatch.setattr(lightsam.train, "probe", real_probe)
    reference = run(plain, tmp_path)
    rows = store.read_metrics(tmp_path / probed.run_id())
    assert without_times(rows) == without_times(store.read_metrics(tmp_path / plain.run_id()))
    assert result["test_acc"] == reference["test_acc"] and "probes" not in reference


def test_a_resumed_run_keeps_the_probes_of_its_earlier_epochs(tmp_path, monkeypatch):
    cfg = config(epochs=2, probe_size=200, probe_steps=(3, 60))
    uninterrupted = run(cfg, tmp_path / "once")
    killed_after_the_first_epoch(monkeypatch, lambda: run(cfg, tmp_path / "twice"))
    resumed = run(cfg, tmp_path / "twice")
    assert resumed["probes"] == uninterrupted["probes"] and len(resumed["probes"]) == 2


def test_a_diverged_run_keeps_the_probes_it_took_before_it_stopped(tmp_path):
    cfg = config(probe_size=200, probe_steps=(3, 30), optimizer={"name": "sgd", "lr": 1e4})
    result = run(cfg, tmp_path)  # stopped at the first check of the loss, after 20 steps
    assert result["status"] == "diverged" and result["epochs_completed"] == 0
    assert [p["step"] for p in result["probes"]] == [3]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"probe_steps": (3, 54)}, "probe_steps: step 54 ends epoch 1, which is probed anyway"),
        ({"probe_steps": (108,)}, r"step 108 is not inside the run \(108 steps: 2 epochs of 54\)"),
    ],
)
def test_probe_steps_outside_the_run_fail_before_its_directory_exists(tmp_path, changes, message):
    bad = config(epochs=2, probe_size=200, **changes)
    with pytest.raises(ConfigError, match=message):
        run(bad, tmp_path)
    assert not (tmp_path / bad.run_id()).exists()


def test_the_first_ascent_is_recorded_at_its_radius(tmp_path):
    sam = config(optimizer={"name": "sgd_sam", "lr": 0.05, "rho": 0.3})
    assert run(sam, tmp_path)["perturbation_norm_first"] == pytest.approx(0.3, rel=1e-6)


def test_without_a_loss_limit_only_a_non_finite_loss_ends_a_run(tmp_path):
    strict = run(config(divergence_loss=1e-3), tmp_path)  # every loss is above 1e-3
    assert strict["status"] == "diverged" and strict["diverged_epoch"] == 1
    assert 1e-3 < strict["stopping_loss"] < 10  # finite: the stop rule ended it
    unlimited = run(config(divergence_loss=None), tmp_path)
    assert unlimited["status"] == "ok" and unlimited["stopping_loss"] is None
    exploding = config(divergence_loss=None, optimizer={"name": "sgd", "lr": 1e4})
    exploded = run(exploding, tmp_path)
    assert exploded["status"] == "diverged" and exploded["stopping_loss"] is None
    with pytest.raises(ConfigError, match="divergence_loss must be > 0 or null"):
        config(divergence_loss=0.0)


def test_the_first_ascents_radius_is_what_the_run_records(tmp_path):
    for optimizer in (
        {"name": "lightsam_ii", "lr": 1e-2, "rho": 1e-4},
        {"name": "lightsam_i", "lr": 1.0, "rho": 0.05},
    ):
        cfg = config(optimizer=optimizer, seed=3)
        assert first_ascent_radius(cfg) == run(cfg, tmp_path)["perturbation_norm_first"]
    with pytest.raises(ValueError, match="sgd is not sharpness-aware"):
        first_ascent_radius(config(optimizer={"name": "sgd", "lr": 0.1}))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_size": 3501}, "batch_size 3501 is larger than the training split: 3500 images"),
        ({"val_size": 4000}, "val_size 4000 leaves no training images: mnist5k has 4000"),
        ({"probe_size": 4000}, "probe_size 4000 is larger than the training split"),
    ],
)
def test_a_run_that_cannot_fit_its_data_fails_before_its_directory_exists(
    tmp_path, changes, message
):
    bad = config(**changes)
    with pytest.raises(ConfigError, match=message):
        run(bad, tmp_path)
    assert not (tmp_path / bad.run_id()).exists()
    _, splits = load_splits("mnist5k", data_dir=tmp_path, val_size=500, split_seed=0)
    assert len(splits["train"]) + len(splits["val"]) == TRAIN_POOL_SIZES["mnist5k"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_a_cuda_run_without_a_gpu_fails_before_its_directory_exists(tmp_path):
    with pytest.raises(ConfigError, match="torch sees no CUDA device here"):
        run(config(), tmp_path, Runtime(device="cuda"))
    assert not any(tmp_path.iterdir())


def test_a_killed_atomic_write_leaves_nothing_once_the_run_starts_again(tmp_path):
    cfg = config()
    run_dir = tmp_path / cfg.run_id()
    run_dir.mkdir()
    stale = run_dir / f".checkpoint.pt{store.TEMP_MARK}k1ll3d"
    stale.write_bytes(b"\0" * 4096)  # what a kill -9 during a checkpoint write leaves
    assert run(cfg, tmp_path)["status"] == "ok"
    assert not stale.exists()
    assert not list(run_dir.glob(f".*{store.TEMP_MARK}*"))


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_store_files_honour_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        store.write_json(tmp_path / "result.json", {"status": "ok"})
        store.save_checkpoint(tmp_path, {"epoch": 1})
    finally:
        os.umask(previous)
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "checkpoint.pt").stat().st_mode & 0o777 == mode


def test_validation_and_test_loss_are_also_reported_as_plain_cross_entropy(tmp_path):
    smoothed = run(config(label_smoothing=0.1), tmp_path)
    row = store.read_metrics(tmp_path / smoothed["run_id"])[-1]
    # Label smoothing adds to the loss of a confident model; plain cross-entropy does not.
    assert row["val_ce"] < row["val_loss"] and smoothed["test_ce"] < smoothed["test_loss"]
    plain = run(config(), tmp_path)
    plain_row = store.read_metrics(tmp_path / plain["run_id"])[-1]
    assert plain_row["val_ce"] == pytest.approx(plain_row["val_loss"], rel=1e-6)
    assert plain["test_ce"] == pytest.approx(plain["test_loss"], rel=1e-6)


def test_a_store_on_a_filesystem_without_locks_is_refused_saying_what_to_do(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(store.fcntl, "flock", no_locks)
    with pytest.raises(store.LocksUnsupported, match=r"does not support file locks .*--out"):
        run(config(), tmp_path)
    assert not (tmp_path / config().run_id() / "result.json").exists()
