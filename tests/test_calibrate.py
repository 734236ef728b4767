"""`lightsam calibrate`: a short measured run prices an epoch, and dry runs price sweeps with it
(over the profile, for the workloads it measured), saying which source each cost came from."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from lightsam import calibrate, store
from lightsam.cli import main
from lightsam.config import Runtime, load_spec
from lightsam.sweep import load_sweep

ROOT = Path(__file__).parents[1]
SPEC = ROOT / "experiments" / "mnist5k_lenet.yaml"
MEASURED_AT = "2026-01-01T00:00:00+00:00"


def write_sweep(path: Path, optimizers: str, *, seeds: str = "[0]", epochs: int = 1) -> Path:
    path.write_text(
        f"base: {SPEC}\nset: {{epochs: {epochs}}}\nseeds: {seeds}\noptimizers:\n{optimizers}"
    )
    return path


# A sharpness-aware arm first and its base second: the base's one-pass run is the one measured.
TWO_ARMS = "  lightsam_i: {lr: [0.1], rho: [0.05]}\n  sgd: {lr: [0.1]}\n"


def entry(hours: float, device: str = "Test GPU", measured_at: str = MEASURED_AT) -> dict:
    return {"epoch_gpu_hours": hours, "device": device, "measured_at": measured_at}


def write_calibration(path: Path, workloads: dict) -> Path:
    path.write_text(json.dumps({"schema": 1, "workloads": workloads}))
    return path


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """One real calibration of a two-arm mnist5k sweep into a file that already holds another
    workload's measurement: (the sweep, the file, what was printed, the files written)."""
    where = tmp_path_factory.mktemp("calibrated")
    sweep = write_sweep(where / "two.yaml", TWO_ARMS, epochs=100)
    out = write_calibration(where / "calibration.json", {"cifar10/resnet18": entry(0.004)})
    written: list[Path] = []
    atomic = store._atomic

    def recording(path, write):
        written.append(Path(path))
        atomic(path, write)

    said = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(said):
        patch.setattr(store, "_atomic", recording)  # every file the store module writes
        main(["calibrate", str(sweep), "--steps", "3", "--warmup", "1", "--device", "cpu",
              "--out", str(out)])  # fmt: skip
    return sweep, out, said.getvalue().splitlines(), written


def test_calibrate_measures_the_workload_once_on_its_one_pass_run(calibrated):
    _, out, said, _ = calibrated
    data = json.loads(out.read_text())
    assert data["schema"] == 1
    measured = data["workloads"]["mnist5k/lenet5"]
    assert measured["optimizer"] == "sgd" and measured["passes"] == 1
    assert (measured["steps"], measured["warmup"], measured["batch_size"]) == (3, 1, 64)
    assert measured["steps_per_epoch"] == (5000 - 1000 - 500) // 64  # mnist5k less test, val
    assert measured["evals_per_epoch"] == 1.0 and measured["precision"] == "fp32"
    for key in ("seconds_per_step", "eval_seconds", "epoch_gpu_hours"):
        assert math.isfinite(measured[key]) and measured[key] > 0
    seconds = measured["seconds_per_step"] * measured["steps_per_epoch"] + measured["eval_seconds"]
    assert measured["epoch_gpu_hours"] == pytest.approx(seconds / 3600, rel=1e-12)
    assert measured["device"] == store.cpu_name()
    assert said[0].startswith("measuring mnist5k/lenet5 (run ")
    assert said[1].startswith(f"mnist5k/lenet5 on {store.cpu_name()}: ")
    assert "s a step (sgd, 1 pass), 54 steps an epoch, evaluation " in said[1]
    assert said[1].endswith(" GPU-hours an epoch of a one-pass optimizer")
    assert said[-1] == f"wrote {out}"


def test_calibrate_merges_into_the_file_and_writes_nothing_else(calibrated):
    sweep, out, _, written = calibrated
    assert set(json.loads(out.read_text())["workloads"]) == {"cifar10/resnet18", "mnist5k/lenet5"}
    assert set(written) == {out}  # no run directory, config, checkpoint or result
    assert sorted(p.name for p in sweep.parent.iterdir()) == ["calibration.json", "two.yaml"]


def test_a_workload_without_its_data_stops_calibrate_keeping_those_before(tmp_path):
    sweep = write_sweep(
        tmp_path / "s.yaml",
        "  sgd: {lr: [0.1]}\n  adam: {lr: [0.001], set: {dataset: cifar10, model: resnet18}}\n",
    )
    out = tmp_path / "calibration.json"
    with pytest.raises(SystemExit) as stop:
        main(["calibrate", str(sweep), "--steps", "1", "--warmup", "0", "--device", "cpu",
              "--out", str(out), "--data-dir", str(tmp_path / "no data")])  # fmt: skip
    message = str(stop.value.code)
    assert "\n" not in message
    assert message.startswith("lightsam calibrate: cifar10/resnet18: dataset 'cifar10' is not ")
    assert message.endswith(f"; measured before it and written to {out}: mnist5k/lenet5")
    assert set(calibrate.load(out)) == {"mnist5k/lenet5"}


def test_a_dry_run_prices_the_sweep_from_the_calibration_without_a_profile(calibrated, capsys):
    sweep, out, _, _ = calibrated
    hours = calibrate.load(out)["mnist5k/lenet5"]
    main(["sweep", str(sweep), "--dry-run", "--calibration", str(out),
          "--out", str(sweep.parent / "store")])  # fmt: skip
    said = capsys.readouterr().out.splitlines()
    # 100 epochs of SGD (one pass) and of LightSAM-I (two).
    total = hours["epoch_gpu_hours"] * 100 * (1 + 2)
    assert f"  grid: 2 runs, 200 run-epochs, {total:.1f} GPU-hours" in said
    source = f"by lightsam calibrate on {hours['device']} at {hours['measured_at']}, {out}"
    assert said[-1] == f"  total: {total:.1f} GPU-hours (measured: mnist5k/lenet5 {source})"
    assert not (sweep.parent / "store").exists()


def test_the_calibration_overrides_the_profile_for_its_workload_only(tmp_path, capsys):
    profile = tmp_path / "priced.yaml"
    profile.write_text("epoch_gpu_hours: {mnist5k/lenet5: 0.5, cifar10/resnet18: 0.004}\n")
    measured = write_calibration(tmp_path / "c.json", {"mnist5k/lenet5": entry(0.25)})
    sweep = write_sweep(
        tmp_path / "mixed.yaml",
        "  lightsam_i: {lr: [0.1], rho: [0.05]}\n"
        "  sgd: {lr: [0.1], set: {dataset: cifar10, model: resnet18, epochs: 250}}\n",
        seeds="[0, 1]",
        epochs=3,
    )
    dry = ["sweep", str(sweep), "--dry-run", "--executor", "slurm", "--profile", str(profile),
           "--out", str(tmp_path / "store")]  # fmt: skip
    main([*dry, "--calibration", str(measured)])
    said = capsys.readouterr().out.splitlines()
    # mnist5k: 2 seeds x 3 epochs x 2 passes x 0.25 measured; cifar10: 2 x 250 x 0.004 profiled.
    assert "  grid: 4 runs, 506 run-epochs, 5.0 GPU-hours" in said
    assert said[-1] == (
        f"  total: 5.0 GPU-hours (measured: mnist5k/lenet5 by lightsam calibrate on Test GPU at "
        f"{MEASURED_AT}, {measured}; profile {profile}: the rest)"
    )
    main(dry)  # the profile alone: 0.5 an epoch for mnist5k
    assert capsys.readouterr().out.splitlines()[-1] == f"  total: 8.0 GPU-hours (profile {profile})"
    assert not (tmp_path / "store").exists()


def test_a_workload_in_neither_source_is_unknown_and_calibrate_is_named(tmp_path, capsys):
    profile = tmp_path / "priced.yaml"
    profile.write_text("epoch_gpu_hours: {cifar10/resnet18: 0.004}\n")
    measured = write_calibration(tmp_path / "c.json", {"cifar10/resnet18": entry(0.25)})
    main(["sweep", str(write_sweep(tmp_path / "s.yaml", TWO_ARMS)), "--dry-run",
          "--executor", "slurm", "--profile", str(profile), "--calibration", str(measured),
          "--out", str(tmp_path / "store")])  # fmt: skip
    said = capsys.readouterr().out.splitlines()
    assert "  grid: 2 runs, 2 run-epochs, GPU-hours unknown" in said
    assert said[-1].startswith(
        f"  no cost of an epoch of mnist5k/lenet5 in profile {profile} or calibration "
        f"{measured}: measure it (lightsam calibrate"
    )


def test_make_reproduce_passes_the_calibration_to_its_dry_run(tmp_path):
    measured = write_calibration(tmp_path / "c.json", {"mnist5k/lenet5": entry(0.25)})
    done = subprocess.run(
        ["make", "reproduce", "PRESET=smoke", f"CALIBRATION={measured}", "--dry-run"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    # The smoke sweep: 16 two-pass run-epochs of each of its 3 sharpness-aware arms (4 runs of 2
    # epochs), 8 of each of its 2 bases (2 runs of 4), at 0.25 each.
    total = "  total: 16.0 GPU-hours (measured: mnist5k/lenet5 by lightsam calibrate on Test GPU"
    assert sum(line.startswith(total) for line in lines) == 1
    assert "preset smoke: 16.0 GPU-hours in all, before any stage it adds" in lines


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"schema": 2, "workloads": {}}', "schema must be 1"),
        ("[1, 2]", "schema must be 1"),
        ('{"schema": 1, "workloads": []}', "workloads must be a mapping"),
        ('{"schema": 1, "workloads": {"lenet5": {}}}', "workloads are <dataset>/<model>"),
        (json.dumps({"schema": 1, "workloads": {"mnist5k/lenet5": entry(-1)}}), "> 0, got -1"),
        (json.dumps({"schema": 1, "workloads": {"mnist5k/lenet5": entry(0)}}), "> 0, got 0"),
        ('{"schema": 1, "workloads": {"mnist5k/lenet5": {"epoch_gpu_hours": Infinity}}}', "inf"),
        ('{"schema": 1, "workloads": {"mnist5k/lenet5": {"epoch_gpu_hours": NaN}}}', "nan"),
        (json.dumps({"schema": 1, "workloads": {"m/l": entry("1")}}), "> 0, got '1'"),
        ('{"schema": 1, "workloads": {"m/l": {"epoch_gpu_hours": 1}}}', "device must be a str"),
        ("not json {", "is not JSON"),
    ],
)
def test_a_bad_calibration_stops_a_dry_run_with_one_line_naming_the_file(
    tmp_path, capsys, text, said
):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    sweep = write_sweep(tmp_path / "s.yaml", TWO_ARMS)
    with pytest.raises(SystemExit) as stop:
        main(["sweep", str(sweep), "--dry-run", "--calibration", str(bad),
              "--out", str(tmp_path / "store")])  # fmt: skip
    message = str(stop.value.code)
    assert "\n" not in message and said in message and f"calibration {bad}" in message
    assert "runs to launch" not in capsys.readouterr().out


def test_a_calibration_that_is_not_there_stops_the_dry_run_naming_it(tmp_path):
    with pytest.raises(SystemExit, match=r"cannot read calibration .*nowhere\.json: No such"):
        main(["reproduce", "--preset", "smoke", "--dry-run",
              "--calibration", str(tmp_path / "nowhere.json")])  # fmt: skip


def test_calibrate_refuses_a_damaged_file_before_measuring_and_leaves_it(tmp_path, monkeypatch):
    bad = tmp_path / "calibration.json"
    bad.write_text('{"schema": 7}')
    monkeypatch.setattr(calibrate, "measure", lambda *args, **kwargs: pytest.fail("measured"))
    with pytest.raises(SystemExit, match=f"calibration {bad}: schema must be 1"):
        main(["calibrate", str(write_sweep(tmp_path / "s.yaml", TWO_ARMS)), "--out", str(bad)])
    assert bad.read_text() == '{"schema": 7}'


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--steps", "0"], "argument --steps: must be an integer >= 1, got '0'"),
        (["--steps", "two"], "argument --steps: must be an integer >= 1, got 'two'"),
        (["--warmup", "-1"], "argument --warmup: must be an integer >= 0, got '-1'"),
        (["--preset", "smoke"], "argument --preset: not allowed with argument SWEEP"),
    ],
)
def test_calibrate_refuses_bad_arguments_before_anything_runs(tmp_path, capsys, argv, said):
    out = tmp_path / "calibration.json"
    with pytest.raises(SystemExit) as stop:
        main(["calibrate", "smoke", *argv, "--out", str(out)])
    assert stop.value.code == 2 and said in capsys.readouterr().err
    assert not out.exists()


def test_calibrate_needs_sweeps_or_a_preset(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["calibrate"])
    assert stop.value.code == 2
    assert "one of the arguments SWEEP --preset is required" in capsys.readouterr().err


@pytest.mark.parametrize(("steps", "warmup"), [(0, 1), (1, -1), (True, 1), (2.5, 1)])
def test_measure_refuses_bad_step_counts_naming_them(steps, warmup):
    name = "steps" if warmup == 1 else "warmup"
    with pytest.raises(ValueError, match=f"{name} must be an integer"):
        calibrate.measure(load_spec(SPEC), Runtime(device="cpu"), steps=steps, warmup=warmup)


def test_the_measured_run_of_a_workload_is_its_first_one_pass_run(tmp_path):
    sweep = load_sweep(
        write_sweep(
            tmp_path / "s.yaml",
            "  lightsam_i: {lr: [0.1, 1.0], rho: [0.05, 0.0]}\n  sgd: {lr: [0.1]}\n",
        )
    )
    # In the sweep's order: (lr, rho) = (0.1, 0.05), (0.1, 0.0), (1.0, 0.05), (1.0, 0.0), SGD.
    (chosen,) = calibrate.representatives(sweep.runs)
    assert chosen == sweep.runs[1] and chosen.optimizer.rho == 0.0
    two_pass = [c for c in sweep.runs if c.optimizer.rho == 0.05]
    assert calibrate.representatives(two_pass) == [two_pass[0]]  # none is one-pass: the first


def measurement(workload: str, measured_at: str, seconds_per_step: float = 0.36):
    return calibrate.Measurement(
        workload=workload, device="Test GPU", torch="2", measured_at=measured_at, steps=20,
        warmup=5, batch_size=128, precision="bf16", optimizer="sgd_sam", passes=2,
        seconds_per_step=seconds_per_step, steps_per_epoch=100, eval_seconds=36.0,
        evals_per_epoch=0.5,
    )  # fmt: skip


def test_an_epoch_of_a_one_pass_optimizer_is_the_step_over_its_passes_and_the_evaluation():
    # 0.36 s / 2 passes x 100 steps + 36 s / 2 (every other epoch) = 36 s.
    assert measurement("a/b", MEASURED_AT).epoch_gpu_hours == pytest.approx(0.01, rel=1e-12)


def test_a_newer_measurement_replaces_an_older_and_the_others_stay(tmp_path):
    path = tmp_path / "calibration.json"
    calibrate.write(path, [measurement("a/b", "2026-01-02T00:00:00+00:00")])
    calibrate.write(path, [measurement("c/d", "2026-01-02T00:00:00+00:00")])
    assert set(calibrate.load(path)) == {"a/b", "c/d"}
    newer = measurement("a/b", "2026-01-03T00:00:00+00:00", seconds_per_step=0.72)
    calibrate.write(path, [newer])
    assert calibrate.load(path)["a/b"] == newer.to_dict()
    calibrate.write(path, [measurement("a/b", "2026-01-01T00:00:00+00:00")])  # older: kept out
    assert calibrate.load(path)["a/b"] == newer.to_dict()
    assert calibrate.epoch_gpu_hours(calibrate.load(path))["a/b"] == newer.epoch_gpu_hours


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_calibration_that_cannot_be_written_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "calibration.json"
    calibrate.write(path, [measurement("a/b", MEASURED_AT)])
    before = path.read_text()
    monkeypatch.setattr(store.os, "fsync", no_space)  # the disk fills while the file is written
    with pytest.raises(store.WriteFailed, match=r"calibration\.json: No space left on device"):
        calibrate.write(path, [measurement("c/d", MEASURED_AT)])
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
