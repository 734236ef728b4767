"""The paper-scale screening presets (sweeps/screen_*.yaml) follow the design their headers state:
successive halving to the full budget at a constant lr, half-decade lr grids, radii matched by
the first ascent plus rho = 0."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lightsam.config import Config
from lightsam.models import create_model
from lightsam.optim import OPTIMIZERS
from lightsam.reproduce import PRESETS
from lightsam.sweep import load_sweep
from lightsam.train import first_ascent_radius

ROOT = Path(__file__).parents[1]
SCREENS = sorted((ROOT / "sweeps").glob("screen_*.yaml"))
RADII = {0.01, 0.03, 0.1, 0.3, 1.0}
# LeNet-5's first ascent measured on mnist5k's real digits: ||e_1|| per unit of LightSAM-II's
# rho (tests/test_study.py checks the same ratio for the quick study).
LENET_PER_RHO = 223.8
# A first Adam ascent without bias correction moves each coordinate by (1 - b1) / sqrt(1 - b2).
ADAM_FIRST = 0.1 / math.sqrt(0.001)
SHAPES = {"mnist": (10, 1, 28), "cifar10": (10, 3, 32), "cifar100": (100, 3, 32),
          "imagenet": (1000, 3, 224)}  # fmt: skip


def test_the_paper_preset_screens_the_four_workloads():
    assert sorted(PRESETS["paper"].sweeps) == sorted(path.stem for path in SCREENS)
    assert len(SCREENS) == 4


@pytest.mark.parametrize("path", SCREENS, ids=[p.stem for p in SCREENS])
def test_a_screen_halves_to_its_full_budget_on_half_decade_grids(path):
    sweep = load_sweep(path)
    assert sweep.halving is not None and sweep.halving.keep == 0.34
    assert sweep.seeds == (0,)
    assert {(c.epochs, c.lr_schedule) for c in sweep.runs} == {(sweep.halving.rungs[0], "constant")}
    assert all(c.optimizer.hparams["weight_decay"] == 0.0 for c in sweep.runs)
    for name, grid in sweep.grids.items():
        ratios = [b / a for a, b in zip(grid.lr, grid.lr[1:], strict=False)]
        assert len(grid.lr) == 8 and all(2.9 < r < 3.5 for r in ratios), name
        if not OPTIMIZERS[name].sharpness_aware:
            continue  # a base optimizer of its own (AdamW)
        if not name.startswith(("lightsam_i_sgd", "adagrad", "adam_sam", "asam")):
            assert 0.0 in grid.rho, f"{name}: rho = 0, the base optimizer"
    # Nothing trained twice: ASAM at rho = 0 is SGD-SAM at rho = 0, SGD with momentum.
    if "asam" in sweep.grids:
        assert 0.0 not in sweep.grids["asam"].rho and 0.0 in sweep.grids["sgd_sam"].rho
    # AdamW, the Adam-type base a practitioner tunes, where no arm's rho = 0 is it already.
    has_adamw = "adamw" in sweep.grids
    corrected = any(c.optimizer.hparams.get("bias_correction") for c in sweep.runs)
    assert has_adamw != corrected, "AdamW, or LightSAM-III with bias correction at rho = 0"


def per_rho(config: Config) -> float:
    """||e_1|| per unit of rho of the first ascent, by the rule the headers state."""
    name = config.optimizer.name
    if name not in ("lightsam_ii", "lightsam_iii"):
        return 1.0
    if config.model == "lenet5":
        coordinates = LENET_PER_RHO
    else:
        classes, channels, size = SHAPES[config.dataset]
        model = create_model(
            config.model, num_classes=classes, in_channels=channels, image_size=size
        )
        coordinates = math.sqrt(sum(p.numel() for p in model.parameters()))
    bias_corrected = config.optimizer.hparams.get("bias_correction", False)
    return coordinates * (ADAM_FIRST if name == "lightsam_iii" and not bias_corrected else 1.0)


@pytest.mark.parametrize("path", SCREENS, ids=[p.stem for p in SCREENS])
def test_every_radius_of_a_screen_is_a_matched_first_ascent(path):
    sweep = load_sweep(path)
    sizes: dict[str, set[float]] = {}
    factors: dict[str, float] = {}
    for config in sweep.runs:
        name = config.optimizer.name
        if name == "asam" or not config.optimizer.rho:
            continue  # ASAM's grid is nominal (its radius depends on the weights)
        if name not in factors:
            factors[name] = per_rho(config)
        sizes.setdefault(name, set()).add(round(config.optimizer.rho * factors[name], 3))
    assert sizes
    for name, found in sizes.items():
        matched = {r for r in RADII for f in found if math.isclose(f, r, rel_tol=0.01)}
        assert len(matched) == len(found), (name, sorted(found))
        assert all(any(math.isclose(f, r, rel_tol=0.01) for r in RADII) for f in found), name


def test_lenets_screening_radii_are_realised_on_real_digits():
    sweep = load_sweep(ROOT / "sweeps" / "screen_mnist_lenet.yaml")
    for config in sweep.runs:
        if config.optimizer.lr != 1e-2 or not config.optimizer.rho:
            continue
        if config.optimizer.name in ("lightsam_ii", "lightsam_iii"):
            on_mnist5k = config.replace(dataset="mnist5k", val_size=500)
            realised = first_ascent_radius(on_mnist5k)
            assert any(realised == pytest.approx(r, rel=0.02) for r in RADII), config.optimizer
