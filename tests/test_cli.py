from __future__ import annotations

import subprocess
import sys

import pytest

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
