"""The light install: ``pip install lightsam`` needs only torch; the study's dependencies come
with the ``study`` extra, and the command says so when they are missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from lightsam.__main__ import STUDY_MODULES

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# Every module of the study extra made unimportable, as in an environment with only torch.
WITHOUT_THE_STUDY = f"""
import sys
for name in {sorted(STUDY_MODULES)!r}:
    sys.modules[name] = None
"""


def run_without_the_study(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_STUDY + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def requirement_names(requirements: list[str]) -> set[str]:
    return {
        r.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower()
        for r in requirements
    }


def test_the_package_depends_on_torch_alone_and_the_study_extra_on_the_rest():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert requirement_names(project["dependencies"]) == {"torch"}
    study = requirement_names(project["optional-dependencies"]["study"])
    distributions = {"pyyaml" if m == "yaml" else m for m in STUDY_MODULES}
    assert study == distributions | {"torch"}


def test_the_optimizers_and_the_step_helper_work_with_only_torch():
    result = run_without_the_study(
        """
        import torch
        from torch import nn
        import lightsam
        from lightsam import TrainStep, create_optimizer, method_memory

        model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
        optimizer = create_optimizer("lightsam_iii", model.parameters(), lr=1e-2, rho=1e-3)
        step = TrainStep(model, optimizer, nn.CrossEntropyLoss())
        loss, _ = step(torch.randn(8, 4), torch.randint(0, 2, (8,)))
        assert torch.isfinite(loss)
        assert method_memory("lightsam_iii").per_parameter == 5
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_command_without_the_study_extra_says_how_to_install_it():
    result = run_without_the_study(
        """
        sys.argv = ["lightsam", "optimizers"]
        from lightsam.__main__ import main
        main()
        """
    )
    assert result.returncode != 0
    assert "pip install 'lightsam[study]'" in result.stderr
    assert "Traceback" not in result.stderr
