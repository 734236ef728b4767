"""A miniature `make reproduce`, end to end: experiments, figures, tables, REPORT.md, README; then
the sweep file edited and rerun, whose old runs must stay out of every number."""

from __future__ import annotations

import collections
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from analysis import common
from analysis.results import aggregate, best_settings, collect
from lightsam import store as files

ROOT = Path(__file__).parents[1]
FIGURES = ("heatmaps", "sensitivity", "robustness", "training_curves")
ENDINGS = ("diverged", "stalled", "still improving", "trained")


def lightsam(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "lightsam", *args], capture_output=True, text=True, cwd=cwd
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def best_rows_agree(text: str, store: Path) -> None:
    collection = collect(store)
    best = best_settings(aggregate(collection.runs, collection.missing))
    for row in best.itertuples():
        std = "–" if math.isnan(row.test_acc_std) else f"{100 * row.test_acc_std:.2f}"
        assert f"{100 * row.test_acc_mean:.2f} ± {std} ({row.n_seeds})" in text, row.arm


def score(run: pd.Series) -> float:
    """A run's test accuracy, a diverged one at chance (10 classes)."""
    return run["test_acc"] if run["status"] == "ok" else 0.1


def t_half(values: np.ndarray) -> float:
    return scipy.stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))


def confirmation_agrees(text: str, confirm: pd.DataFrame) -> None:
    """Each selected cell's test accuracy and its 95% interval over the fresh seeds, and each
    paired difference against its base with its paired t interval, computed here from the
    confirmation store's results with scipy's Student t."""
    scores = {
        arm: own.set_index("seed").apply(score, axis=1) for arm, own in confirm.groupby("arm")
    }
    for arm, own in scores.items():
        assert len(own) == 3, arm
        mean, std = 100 * own.mean(), 100 * own.std(ddof=1)
        assert (f"test accuracy {mean:.2f}% (std {std:.2f}, 95% CI ±{100 * t_half(own):.2f} "
                "points, 3 fresh seeds" in text), arm  # fmt: skip
    contrasts = {("sgd_sam", "sgd (epochs=1)", "equal epochs"),
                 ("sgd_sam", "sgd (epochs=2)", "equal gradient evaluations")}  # fmt: skip
    for method, base, comparison in contrasts:
        d = (scores[method] - scores[base]).to_numpy()
        low, high = 100 * (d.mean() - t_half(d)), 100 * (d.mean() + t_half(d))
        assert (f"SGD-SAM (1 epochs) minus SGD at {base[-2]} epochs ({comparison}), test "
                f"accuracy: {100 * d.mean():+.2f} points, 95% CI [{low:+.2f}, {high:+.2f}] "
                "(paired t)" in text), comparison  # fmt: skip


def tuning_agrees(text: str, grid: pd.DataFrame) -> None:
    """k = 1 of the tuning cost: the mean test score of the arm's grid cells (one seed each)."""
    for arm, own in grid.groupby("arm"):
        expected = 100 * own.apply(score, axis=1).mean()
        assert f"{common.label(arm)}: {expected:.1f}% at k = 1" in text, arm


def ending(status: str, initial: float, losses: list[float]) -> str:
    """How a run ended, by the report's stated definitions: diverged; stalled at 0.9 x its
    initial probe loss or above; still improving when its loss fell by more than 10% over the
    last fifth of its epochs (at least the last one); else trained."""
    if status == "diverged":
        return "diverged"
    curve = [initial, *losses]
    if curve[-1] >= 0.9 * initial:
        return "stalled"
    earlier = curve[-1 - max(1, len(losses) // 5)]
    return "still improving" if curve[-1] < 0.9 * earlier else "trained"


def failures_agree(text: str, store: Path, grid: pd.DataFrame) -> None:
    """Each arm's count of every ending, from each run's result and metrics files."""
    for arm, own in grid.groupby("arm"):
        counts = collections.Counter(
            ending(run.status, run.probe_loss_initial,
                   [m["probe_loss"] for m in files.read_metrics(store / run.run_id)])
            for run in own.itertuples()
        )  # fmt: skip
        said = ", ".join(f"{counts[k]} {k}" for k in ENDINGS)
        epochs = int(own["epochs"].max())
        assert f"{common.label(arm)} ({len(own)} runs, {epochs} epochs): {said}" in text, arm


def study_agrees(text: str, runs: Path) -> None:
    """The budget study's sections, against the stores computed here by hand: each arm's
    failure count, the selected cells and paired differences on the fresh seeds, the tuning
    cost at one trial, and the recovery audit's size."""
    headings = ("What the data support", "learning-rate windows against the budget",
                "How each run ended", "Generalisation at the cells selected on validation",
                "Near best, by the seed noise", "The recovery audit", "Tuning cost")  # fmt: skip
    for heading in headings:
        assert heading in text, heading
    grid = collect(runs / "smoke").runs
    failures_agree(text, runs / "smoke", grid)
    confirmation_agrees(text, collect(runs / "smoke_confirm").runs)
    tuning_agrees(text, grid)
    reruns = len(collect(runs / "smoke_recovery").runs)
    assert f"of those, {reruns} were rerun without the limit" in text


def test_miniature_reproduce_writes_a_report_that_agrees_with_the_store(tmp_path):
    runs, figures = tmp_path / "runs", tmp_path / "figures"
    report, readme = tmp_path / "REPORT.md", tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    elsewhere = tmp_path / "elsewhere"  # the command works from any directory
    elsewhere.mkdir()

    first = lightsam("reproduce", "--preset", "smoke", "--out", str(runs), cwd=elsewhere)
    assert "sweep smoke: 10 of 10 runs to launch" in first
    # Fresh seeds 1-3 at each arm's selected cell: SGD-SAM, LightSAM-I, SGD at 1 and 2 epochs;
    # and SGD-SAM's runs at lr = 10 that the loss limit stopped (not a non-finite loss), without.
    assert "sweep smoke (confirm): 12 of 12 runs to launch" in first
    grid = collect(runs / "smoke").runs
    stopped = int(grid["stopping_loss"].notna().sum())
    assert stopped >= 1 and f"sweep smoke (recovery): {stopped} of {stopped} runs" in first
    again = lightsam("reproduce", "--preset", "smoke", "--out", str(runs), cwd=elsewhere)
    for stage in (
        "smoke: 0 of 10",
        "smoke (confirm): 0 of 12",
        f"smoke (recovery): 0 of {stopped}",
    ):
        assert f"sweep {stage} runs to launch" in again  # a second call trains nothing

    lightsam("figures", "--runs", str(runs), "--out", str(figures), "--report", str(report),
             "--readme", str(readme), cwd=elsewhere)  # fmt: skip
    for stem in FIGURES:
        for suffix in (".png", ".pdf"):
            assert (figures / "smoke" / f"{stem}{suffix}").stat().st_size > 0
    for name in ("best.md", "best.tex", "runs.csv", "aggregate.csv"):
        assert (figures / "smoke" / name).stat().st_size > 0
    for name in ("theorem_steps", "theorem_rates"):
        assert (figures / "theorem" / f"{name}.png").stat().st_size > 0
    for stem in ("budget_windows", "budget_failures", "budget_contrasts", "budget_tuning"):
        for suffix in (".png", ".pdf"):
            assert (figures / "smoke" / f"{stem}{suffix}").stat().st_size > 0

    text = report.read_text()
    best_rows_agree(text, runs / "smoke")
    assert "10 runs planned" in text and "0 missing" in text and "Outside the plan" not in text
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (report.parent / image).exists(), image
    assert "SGD-SAM: reached 1e-2:" in text  # the theorem's problem
    study_agrees(text, runs)

    block = readme.read_text().split("<!-- results:start")[1].split("<!-- results:end -->")[0]
    assert "budget_windows.png" in block and "| SGD-SAM |" in block
    assert "After 1 epochs at the middle radius" in block  # the plain statement
    assert "theorem_steps.png" in block and "LightSAM-I against" in block
    assert (ROOT / "README.md").read_text() != readme.read_text()

    # The sweep file edited (epochs 1 -> 2) and rerun into the same store: the old runs are
    # outside the new plan, listed, and pooled into nothing; SGD's runs, at 2 epochs already,
    # are the same computations and are not run again.
    edited = elsewhere / "smoke.yaml"
    text = (ROOT / "sweeps" / "smoke.yaml").read_text()
    text = text.replace("../experiments/", f"{ROOT}/experiments/").replace("epochs: 1", "epochs: 2")
    edited.write_text(text)
    rerun = lightsam("sweep", str(edited), "--out", str(runs / "smoke"), cwd=elsewhere)
    assert "8 of 10 runs to launch" in rerun and "8 run(s) in" in rerun
    status = lightsam("status", str(edited), "--out", str(runs / "smoke"), cwd=elsewhere)
    assert "8 run(s) outside the plan" in status
    lightsam("figures", "--runs", str(runs), "--out", str(figures), "--report", str(report),
             cwd=elsewhere)  # fmt: skip
    text = report.read_text()
    best_rows_agree(text, runs / "smoke")
    assert "`2` epochs" in text and "10 runs planned" in text
    assert "Outside the plan: 8 run directories" in text
    collection = collect(runs / "smoke")
    assert len(collection.runs) == 10 and set(collection.runs["epochs"]) == {2.0}
    assert aggregate(collection.runs)["n"].max() == 1  # one seed a cell, as planned


def test_make_dry_run_prices_the_paper_preset_and_runs_nothing():
    """`make reproduce PRESET=paper --dry-run`: make's own -n, under which the Makefile runs
    only the dry run of the preset."""
    before = sorted(p.name for p in ROOT.iterdir())
    done = subprocess.run(
        ["make", "reproduce", "PRESET=paper", "PROFILE=gpu_example", "--dry-run"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert sum(line.startswith("cost of sweep screen_") for line in lines) == 4
    assert any(line.startswith("preset paper: ") for line in lines)
    assert not any(line.startswith("submitted") for line in lines)
    assert sorted(p.name for p in ROOT.iterdir()) == before
