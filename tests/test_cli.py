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
