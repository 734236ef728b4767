from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from analysis import report
from lightsam import store
from lightsam.cli import main
from lightsam.optim import OPTIMIZERS


def test_optimizers_lists_every_registered_name_with_its_hyperparameters(capsys):
    main(["optimizers"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(OPTIMIZERS)
    lightsam_iii = next(line for line in lines if line.startswith("lightsam_iii"))
    assert "sharpness-aware" in lightsam_iii and "bias_correction" in lightsam_iii


def test_console_script_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "lightsam", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("lightsam ")


def test_a_command_is_required():
    with pytest.raises(SystemExit):
        main([])


@pytest.mark.parametrize("value", ["0", "-2", "two"])
@pytest.mark.parametrize("command", ["sweep", "reproduce"])
def test_max_parallel_below_one_is_refused_before_anything_runs(command, value, capsys, tmp_path):
    where = ["smoke"] if command == "sweep" else ["--preset", "smoke"]
    with pytest.raises(SystemExit) as stop:
        main([command, *where, "--out", str(tmp_path / "out"), "--max-parallel", value])
    assert stop.value.code == 2
    assert f"--max-parallel: must be an integer >= 1, got '{value}'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def read_only(*args, **kwargs):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


def one_line(stop: pytest.ExceptionInfo) -> str:
    message = str(stop.value.code)
    assert "\n" not in message and "Traceback" not in message
    return message


RUN = ["run", "mnist5k_lenet", "--set", "epochs=1", "--device", "cpu"]


def test_a_full_disk_stops_a_run_with_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", no_space)  # the checkpoint at the end of the epoch
    with pytest.raises(SystemExit) as stop:
        main([*RUN, "--out", str(tmp_path)])
    message = one_line(stop)
    assert message.startswith("lightsam run: could not write ")
    assert "checkpoint.pt: No space left on device" in message
    (run_dir,) = tmp_path.iterdir()
    assert not list(run_dir.glob(f".*{store.TEMP_MARK}*"))
    assert not (run_dir / store.CHECKPOINT).exists()
    assert store.read_result(run_dir)["status"] == "failed"  # whole, where the disk allows it


def test_a_read_only_output_directory_stops_a_run_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(store.tempfile, "mkstemp", read_only)
    with pytest.raises(SystemExit) as stop:
        main([*RUN, "--out", str(tmp_path)])
    message = one_line(stop)
    assert "config.json: Read-only file system" in message
    (run_dir,) = tmp_path.iterdir()
    assert not (run_dir / store.RESULT).exists()


def test_a_failed_rewrite_leaves_the_readme_as_it_was(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    before = f"# title\n\n{report.README_START}\nold results\n{report.README_END}\n\nthe rest\n"
    readme.write_text(before)
    monkeypatch.setattr(store.os, "fsync", no_space)  # the disk fills while the file is written
    with pytest.raises(store.WriteFailed, match=r"README\.md: No space left on device"):
        report.rewrite_readme(readme, "new results")
    assert readme.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("batch_size=100000", "batch_size 100000 is larger than the training split"),
        ("val_size=5000", "val_size 5000 leaves no training images"),
        ("optimizer.lr=.inf", "optimizer.lr must be finite"),
        ("epochs=[1", "the value is not valid YAML"),
    ],
)
def test_a_run_the_data_or_spec_refuses_stops_with_one_line_and_no_directory(
    override, said, tmp_path
):
    with pytest.raises(SystemExit) as stop:
        main([*RUN, "--set", override, "--out", str(tmp_path / "out")])
    assert one_line(stop).startswith("lightsam run: ") and said in str(stop.value.code)
    assert not (tmp_path / "out").exists()


def test_a_sweep_the_data_cannot_serve_stops_with_one_line_before_any_run(tmp_path):
    sweep = tmp_path / "big.yaml"
    sweep.write_text(
        f"base: {Path(__file__).parents[1] / 'experiments' / 'mnist5k_lenet.yaml'}\n"
        "set: {batch_size: 100000}\nseeds: [0]\n"
        "optimizers: {sgd: {lr: [0.1]}}\n"
    )
    with pytest.raises(SystemExit) as stop:
        main(["sweep", str(sweep), "--out", str(tmp_path / "out")])
    assert one_line(stop).startswith("lightsam sweep: batch_size 100000 is larger")
    assert not (tmp_path / "out").exists()
