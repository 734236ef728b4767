"""The figure checks (``figure_checks``) on tiny stores: they pass on the figures the production
code draws, and fail once a drawn value is altered. Seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from figure_checks import (
    budget_figures_agree,
    complete,
    contrasts_drawn,
    failures_drawn,
    hand_cells,
    hand_noise,
    heatmaps_drawn,
    lowest_lr_drawn,
    rates_drawn,
    realised_radius_drawn,
    robustness_drawn,
    sensitivity_drawn,
    stationarity_drawn,
    steps_drawn,
    store_figures_agree,
    theorem_figures_agree,
    training_drawn,
    tuning_drawn,
    windows_drawn,
)

from analysis import (
    fig_budget,
    fig_heatmaps,
    fig_robustness,
    fig_sensitivity,
    fig_theorem,
    fig_training_curves,
)
from analysis.results import collect
from analysis.study import read_tables
from lightsam import store as files
from lightsam.plan import Plan
from lightsam.theorem import Problem, run_theorem

TINY = Problem(n=100, dim=5, steps=300, seeds=(0, 1), lr_decades=(-1, 1), rho_decades=(-2, -1))
INITIAL = 2.3


def config(optimizer: str, lr: float, rho: float | None, seed: int, epochs: int) -> dict[str, Any]:
    return {"schema": 2, "dataset": "mnist5k", "model": "lenet5", "epochs": epochs, "seed": seed,
            "lr_schedule": "constant",
            "optimizer": {"name": optimizer, "lr": lr, "rho": rho, "hparams": {}}}  # fmt: skip


def write_store(path: Path, runs: list[tuple[dict[str, Any], list[float], float]]) -> Path:
    """``runs``: (config, probe loss after each epoch, test accuracy); a run whose last loss is
    infinite diverged in that epoch."""
    ids = {f"r{i}": c for i, (c, _, _) in enumerate(runs)}
    files.write_plan(path, Plan(sweep=path.name, source="s.yaml", source_sha256="-", runs=ids))
    for (run_id, c), (_, losses, test) in zip(ids.items(), runs, strict=True):
        diverged = not np.isfinite(losses[-1])
        logged = losses[:-1] if diverged else losses
        files.write_config(path / run_id, c)
        files.write_metrics(path / run_id, [{"epoch": e, "probe_loss": loss, "train_loss": loss,
                                             "probe_grad_norm": loss / e,
                                             # each epoch's differs from the first
                                             # ascent's (rho): a line off by an
                                             # epoch fails its check
                                             "perturbation_norm": c["optimizer"]["rho"] and
                                             c["optimizer"]["rho"] / (e + 1),
                                             "val_acc": test + 0.01 * e}
                                            for e, loss in enumerate(logged, 1)])  # fmt: skip
        files.write_result(path / run_id, {
            "run_id": run_id, "status": "diverged" if diverged else "ok", "num_classes": 10,
            "epochs": c["epochs"], "epochs_completed": len(logged),
            "diverged_epoch": len(losses) if diverged else None,
            "val_acc": None if diverged else test + 0.01, "test_acc": None if diverged else test,
            "probe_loss_initial": INITIAL, "probe_grad_norm_initial": 2.0,
            "perturbation_norm_first": c["optimizer"]["rho"],
            "wall_s": 0.5 * c["epochs"], "steps_per_epoch": 10,
            "probes": [{"step": 3, "probe_loss": 0.95 * INITIAL, "probe_grad_norm": 1.0}],
        })  # fmt: skip
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A grid of SGD-SAM (one epoch, two lrs by two rhos, lr 10 diverged) and SGD (two epochs);
    SGD-SAM and SGD at one and two epochs on three fresh seeds."""
    root = tmp_path_factory.mktemp("stores")
    grid = [(config("sgd_sam", lr, rho, 0, 1), [loss], 0.5 + rho)
            for lr, loss in ((0.1, 1.0), (10.0, np.inf)) for rho in (0.01, 0.1)]  # fmt: skip
    grid += [(config("sgd", lr, None, 0, 2), losses, 0.6)
             for lr, losses in ((0.01, [2.2, 2.1]), (0.1, [1.5, 0.4]))]  # fmt: skip
    confirm = [(config(optimizer, 0.1, rho, seed, epochs), [1.0] * epochs, 0.5 + 0.1 * seed * k)
               for seed in (1, 2, 3)
               for optimizer, rho, epochs, k in (("sgd_sam", 0.1, 1, 1), ("sgd", None, 1, 2),
                                                 ("sgd", None, 2, 0))]  # fmt: skip
    return write_store(root / "grid", grid), write_store(root / "confirm", confirm), root / "none"


def test_the_budget_checks_pass_on_the_drawn_figures(stores):
    budget_figures_agree(*stores)


def test_the_budget_checks_fail_on_an_altered_value(stores):
    grid, confirm, recovery = stores
    tables = read_tables(grid, confirm, recovery)
    runs = complete(collect(grid).runs)

    figure = fig_budget.windows(tables)
    line = figure.axes[0].lines[0]
    line.set_ydata(line.get_ydata() + 0.1)
    with pytest.raises(AssertionError):
        windows_drawn(figure, grid, runs)

    figure = fig_budget.realised_radius(tables)
    line = figure.axes[1].lines[0]
    line.set_ydata(line.get_ydata() * 1.1)
    with pytest.raises(AssertionError):
        realised_radius_drawn(figure, grid, runs)

    figure = fig_budget.lowest_lr(tables)
    [line] = [line for line in figure.axes[0].lines if line.get_label() == "SGD"]
    line.set_ydata(line.get_ydata() * 1.1)
    with pytest.raises(AssertionError):
        lowest_lr_drawn(figure, grid, runs)

    figure = fig_budget.failures(tables.failure_counts, tables.failure_meanings)
    bar = figure.axes[0].containers[0].patches[0]
    bar.set_width(bar.get_width() + 1)
    with pytest.raises(AssertionError):
        failures_drawn(figure, grid, runs)

    figure = fig_budget.stationarity(tables.failures, tables.failure_meanings)
    points = figure.axes[0].collections[0]
    points.set_offsets(points.get_offsets() * [1.0, 1.1])
    with pytest.raises(AssertionError):
        stationarity_drawn(figure, grid, runs)

    figure = fig_budget.contrasts(tables.contrasts)
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    figure.axes[0].set_yticks(figure.axes[0].get_yticks(), labels[::-1])  # two rows swapped
    with pytest.raises(AssertionError):
        contrasts_drawn(figure, tables.contrasts, collect(confirm).runs)

    figure = fig_budget.tuning(tables.tuning)
    figure.axes[1].lines[0].set_xdata(figure.axes[1].lines[0].get_xdata() ** 2)
    with pytest.raises(AssertionError):
        tuning_drawn(figure, runs)


def test_the_theorem_checks_pass_and_fail_on_an_altered_value(tmp_path):
    run_theorem(tmp_path, TINY)
    theorem_figures_agree(tmp_path)
    cells, curves, meta = fig_theorem.read(tmp_path)

    figure = fig_theorem.steps(cells, meta)
    image = figure.axes[0].images[0]
    image.set_data(np.ones(image.get_array().shape))
    with pytest.raises(AssertionError):
        steps_drawn(figure, tmp_path)

    figure = fig_theorem.rates(curves, meta)
    line = figure.axes[0].lines[0]
    line.set_ydata(line.get_ydata() * 1.01)
    with pytest.raises(AssertionError):
        rates_drawn(figure, tmp_path)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """SGD-SAM over two lrs by two rhos on two seeds (at lr 1, both seeds diverged at rho
    0.01 and one at rho 0.1), and SGD over three lrs on two seeds, its runs at lr 1 without a
    result (a planned cell left blank)."""
    runs = [(config("sgd_sam", lr, rho, seed, 2),
             [2.0, np.inf if lr == 1 and (rho == 0.01 or seed) else 1.0],
             0.4 + rho + 0.05 * seed + 0.02 * lr)
            for lr in (0.1, 1.0) for rho in (0.01, 0.1) for seed in (0, 1)]  # fmt: skip
    runs += [(config("sgd", lr, None, seed, 2), [2.0, 1.5 - lr], 0.6 - lr / 10 + 0.03 * seed)
             for lr in (0.01, 0.1, 1.0) for seed in (0, 1)]  # fmt: skip
    store = write_store(tmp_path_factory.mktemp("sweep") / "sweep", runs)
    for run_id in (f"r{len(runs) - 2}", f"r{len(runs) - 1}"):
        (store / run_id / files.RESULT).unlink()
    return store


def test_the_store_checks_pass_and_fail_on_an_altered_figure(sweep):
    store_figures_agree(sweep)
    collection = collect(sweep)
    cells = hand_cells(collection.runs)

    figure = fig_heatmaps.heatmaps(collection)
    image = figure.axes[0].images[0]
    image.set_data(image.get_array() + 0.1)
    with pytest.raises(AssertionError):
        heatmaps_drawn(figure, cells, collection.missing)

    figure = fig_sensitivity.sensitivity(collection)
    line = figure.axes[0].lines[0]
    line.set_ydata(line.get_ydata() + 0.1)
    with pytest.raises(AssertionError):
        sensitivity_drawn(figure, cells)

    robustness_drawn(fig_robustness.robustness(collection, {}), cells, {})  # no seed noise
    figure = fig_robustness.robustness(collection)
    bar = figure.axes[1].patches[0]
    bar.set_width(bar.get_width() + 1)
    with pytest.raises(AssertionError):
        robustness_drawn(figure, cells, hand_noise(collection.runs))

    figure = fig_training_curves.training_curves(collection)
    figure.axes[1].lines[0].remove()  # an arm dropped from one panel
    with pytest.raises(AssertionError):
        training_drawn(figure, sweep, collection.runs, cells)
