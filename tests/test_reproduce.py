"""A miniature `make reproduce`, end to end: experiments, figures, tables, REPORT.md, README."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from lightsam.results import aggregate, best_settings, collect

ROOT = Path(__file__).parents[1]
FIGURES = ("heatmaps", "sensitivity", "robustness", "training_curves")


def run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_miniature_reproduce_writes_a_report_that_agrees_with_the_store(tmp_path):
    runs, figures = tmp_path / "runs", tmp_path / "figures"
    report, readme = tmp_path / "REPORT.md", tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)

    first = run("-m", "lightsam", "reproduce", "--preset", "smoke", "--out", str(runs))
    assert "sweep smoke: 20 of 20 runs to launch" in first
    again = run("-m", "lightsam", "reproduce", "--preset", "smoke", "--out", str(runs))
    assert "sweep smoke: 0 of 20 runs to launch" in again  # a second call trains nothing

    run("analysis/report.py", "--runs", str(runs), "--out", str(figures),
        "--report", str(report), "--readme", str(readme))  # fmt: skip
    for stem in FIGURES:
        for suffix in (".png", ".pdf"):
            assert (figures / "smoke" / f"{stem}{suffix}").stat().st_size > 0
    for name in ("best.md", "best.tex", "runs.csv", "aggregate.csv"):
        assert (figures / "smoke" / name).stat().st_size > 0
    assert (figures / "agnostic" / "agnostic.png").stat().st_size > 0

    text = report.read_text()
    collection = collect(runs / "smoke")
    best = best_settings(aggregate(collection.runs, collection.missing))
    for row in best.itertuples():
        mean, std = 100 * row.test_acc_mean, 100 * row.test_acc_std
        assert f"{mean:.2f} ± {std:.2f} ({row.n_seeds})" in text, row.optimizer
    assert "20 runs planned" in text and "0 missing" in text
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (report.parent / image).exists(), image
    assert "SGD-SAM: diverged in" in text  # the parameter-agnostic findings

    block = readme.read_text().split("<!-- results:start")[1].split("<!-- results:end -->")[0]
    assert "heatmaps.png" in block and "| SGD-SAM |" in block
    assert (ROOT / "README.md").read_text() != readme.read_text()
