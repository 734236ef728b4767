"""Every figure and table of every store under a runs directory, and REPORT.md.

    lightsam figures [--runs runs --out figures --report REPORT.md --readme README.md]
    python -m analysis.report --runs runs --out figures --report REPORT.md

For each sweep store (a directory holding a plan) the figures and tables go to
``<out>/<sweep>/``, for the theorem's problem (``<runs>/theorem``, :mod:`lightsam.theorem`)
to ``<out>/theorem/``. REPORT.md says what was run, shows the figures and tables, and states in a
few sentences what the numbers show; every number in it is read from the store, none typed by
hand. With ``--readme``, the block between the README's results markers is rewritten from the
first sweep store, so that the README shows the study's own heatmap and table.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import (
    common,
    confirm,
    fig_halving,
    fig_heatmaps,
    fig_robustness,
    fig_sensitivity,
    fig_theorem,
    fig_training_curves,
    screening,
    study,
    table_best,
    table_nine,
    transfer,
)
from analysis.results import ARM, NEAR_SE, Collection, aggregate, best_settings
from analysis.study import StudyFindings
from lightsam import store as files

STORE_FIGURES = (table_best, fig_heatmaps, fig_sensitivity, fig_robustness, fig_training_curves)
# The ones that judge near best: by the seed noise of the budget study's confirmation seeds when
# the store is one (else their own default, ``analysis.results.pooled_seed_noise``).
BY_SEED_NOISE = (table_best, fig_robustness)
README_START = "<!-- results:start (written by analysis/report.py; do not edit) -->"
README_END = "<!-- results:end -->"
THEOREM_TARGETS = ("1e-2", "1e-3")  # the targets lightsam.theorem records, as named there
# The outside-the-plan runs the report names one by one; beyond, it counts them.
OUTSIDE_LISTED = 10

# What a rerun elsewhere can expect. Measured: three runs of the study on Intel Xeon VMs gave the
# same numbers, one on an AMD EPYC VM other ones (the theorem's float64 grid included), with
# verdicts near their thresholds changed; tests/test_train.py checks that a config and seed
# repeat exactly on one machine.
REPEATS = ("The runs repeat bit for bit on the same CPU type and torch build; on another CPU type "
           "float rounding differs and a rerun differs as a reseeded one would, so a window or a "
           "verdict near its threshold can change.")  # fmt: skip


def fmt(value: float) -> str:
    """A grid value as the figures write it: 1e-3, 1e0, 3e-1."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def unique(values: pd.Series) -> str:
    present = sorted({str(v) for v in values.dropna()})
    return ", ".join(present) if present else "unknown"


# -- what was run ---------------------------------------------------------------------------------


def settings(collection: Collection, key: str) -> str:
    """Every value the planned runs give the config field ``key`` (those present without a
    plan), in backticks: one value when the sweep fixes it."""
    if collection.plan is not None:
        configs = list(collection.plan.runs.values())
    else:
        configs = [files.read_config(collection.store / r) or {} for r in collection.runs["run_id"]]
    values = sorted({str(config.get(key)) for config in configs})
    return " / ".join(f"`{v}`" for v in values) if values else "unknown"


def provenance(runs: pd.DataFrame) -> str:
    """How many results trained under more than one commit, or from a changed tree."""
    several = int(runs["commits"].gt(1).sum())
    dirty = int(runs["git_dirty"].eq(True).sum())
    resumed = int(runs["segments"].gt(1).sum())
    return (
        f"{several} of {len(runs)} runs trained across more than one git commit, {dirty} from a "
        f"tree with uncommitted changes (its `git diff` kept in the run directory), {resumed} "
        "resumed at least once"
    )


def outside_the_plan(collection: Collection) -> list[str]:
    outside = collection.outside
    if outside.empty:
        return []
    lines = [
        f"- Outside the plan: {len(outside)} run directories of this store are not runs of "
        f"{collection.plan.source if collection.plan else 'its sweep'} as it stands (an earlier "
        "version of the sweep file, or a copy); they are not counted anywhere in this report:"
    ]
    for row in outside.head(OUTSIDE_LISTED).itertuples():
        lines.append(
            f"  - `{row.run_id}`: {row.optimizer}, lr {row.lr:g}, rho {row.rho}, seed "
            f"{row.seed}, {row.epochs:g} epochs, {row.status or 'no result'}"
        )
    if len(outside) > OUTSIDE_LISTED:
        lines.append(f"  - and {len(outside) - OUTSIDE_LISTED} more (`lightsam status` lists all)")
    return lines


def what_was_run(collection: Collection) -> list[str]:
    runs = collection.runs
    planned = pd.concat([runs, collection.missing], ignore_index=True)
    lines = [
        f"- Data and model: {settings(collection, 'dataset')} with "
        f"{settings(collection, 'model')}, {settings(collection, 'epochs')} epochs, batch size "
        f"{settings(collection, 'batch_size')}, {settings(collection, 'val_size')} training "
        f"images held out for validation, LR schedule {settings(collection, 'lr_schedule')}, "
        f"augmentation {settings(collection, 'augment')}.",
        f"- Seeds: {unique(planned['seed'])}; {collection.expected or len(runs)} runs planned, "
        f"{int(runs['status'].eq('ok').sum())} ok, {int(runs['status'].eq('diverged').sum())} "
        f"diverged, {int(runs['status'].eq('failed').sum())} failed, "
        f"{len(collection.missing)} missing.",
        "- Grids (learning rate x radius):",
    ]
    for arm in common.ordered(planned[ARM].unique()):
        cells = planned[planned[ARM].eq(arm)]
        lrs = ", ".join(fmt(v) for v in sorted(cells["lr"].unique()))
        rhos = sorted(cells["rho"].dropna().unique())
        rho_text = f"; rho {', '.join(fmt(v) for v in rhos)}" if rhos else ""
        lines.append(f"  - {common.label(arm)}: lr {lrs}{rho_text}")
    lines.append(
        f"- Environment: git commit {unique(runs['git_commit'])}, Python "
        f"{unique(runs['python'])}, torch {unique(runs['torch'])}, device "
        f"{unique(runs['device_name'])}, {unique(runs['cpu_threads'])} thread(s) per run. "
        + REPEATS
    )
    lines.append(f"- Provenance: {provenance(runs)}.")
    launches = files.read_launches(collection.store)
    if launches:
        wall = sum(launch["wall_s"] for launch in launches)
        cores = unique(pd.Series([launch["cores"] for launch in launches]))
        stages = {
            stage: minutes
            for stage in ("confirm", "recovery")
            if (minutes := stage_minutes(files.stage_store(collection.store, stage)))
        }
        later = "".join(
            f", {minutes:.1f} for its {stage} stage" for stage, minutes in stages.items()
        )
        total = f": {wall / 60 + sum(stages.values()):.1f} in all" if stages else ""
        lines.append(
            f"- Wall time: {wall / 60:.1f} minutes for the grid's runs ({len(launches)} "
            f"launch(es), {cores} cores){later}{total}; {runs['wall_s'].sum() / 60:.1f} minutes "
            "of training summed over the grid's runs."
        )
    return lines + outside_the_plan(collection)


def stage_minutes(store: Path) -> float:
    """The wall time of a stage's launches, in minutes (0 if it has none)."""
    return sum(launch["wall_s"] for launch in files.read_launches(store)) / 60


# -- what the numbers show ------------------------------------------------------------------------


def sensitivity(agg: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Per sharpness-aware arm with a seed noise (``best``'s ``near_threshold``, see
    ``analysis.results.best_settings``): at its best lr, how many rho values (of how many) have
    a validation score within the threshold of the best cell's, and the largest test drop over
    rho; at its best rho, the same over lr. Diverged runs count as chance (the ``val_score``
    and ``test_score`` of ``analysis.results``)."""
    rows = []
    for _, b in best.dropna(subset=["rho", "near_threshold"]).iterrows():
        cells = agg[agg[ARM].eq(b[ARM]) & agg["test_score"].notna()]
        over_rho, over_lr = cells[cells["lr"].eq(b["lr"])], cells[cells["rho"].eq(b["rho"])]
        near = b["val_score"] - b["near_threshold"]
        rows.append(
            {
                ARM: b[ARM],
                "rho_near": int(over_rho["val_score"].ge(near).sum()),
                "rho_count": len(over_rho),
                "rho_drop": b["best_test"] - over_rho["test_score"].min(),
                "lr_near": int(over_lr["val_score"].ge(near).sum()),
                "lr_count": len(over_lr),
                "lr_drop": b["best_test"] - over_lr["test_score"].min(),
            }
        )
    return pd.DataFrame(rows, columns=[ARM, "rho_near", "rho_count", "rho_drop", "lr_near",
                                       "lr_count", "lr_drop"])  # fmt: skip


def breaks_at(agg: pd.DataFrame, arm: str) -> str:
    """Where an arm breaks: the smallest lr at which a run of it diverged, and the smallest at
    which every run did."""
    cells = agg[agg[ARM].eq(arm) & (agg["n_ok"] + agg["n_diverged"]).gt(0)]
    some = cells[cells["n_diverged"].gt(0)]
    if some.empty:
        return "never diverged on its grid"
    by_lr = cells.groupby("lr")["status"].agg(lambda s: bool(s.eq("diverged").all()))
    every = by_lr[by_lr]
    every_text = f", every run from lr = {fmt(every.index.min())}" if len(every) else ""
    return f"first diverged at lr = {fmt(some['lr'].min())}{every_text}"


def findings(collection: Collection) -> list[str]:
    """A plain sweep's sentences: near best by the seed noise pooled over its cells with two
    seeds or more (no ranking of methods by these counts, which are themselves noisy), and where
    each arm breaks."""
    agg = aggregate(collection.runs, collection.missing)
    best = best_settings(agg)
    best = best.set_index(ARM).loc[common.ordered(best[ARM])].reset_index()
    label = {arm: common.label(arm) for arm in best[ARM]}
    out = [
        "Near best: a cell whose mean validation accuracy is within "
        f"{NEAR_SE:.2f}σ (two standard errors of a two-run difference) of its arm's best cell's, "
        "σ the std of one run's validation accuracy pooled over the arm's cells with two seeds "
        "or more; a diverged run counts as chance."
    ]
    grid_text = "; ".join(
        f"{label[b.arm]} {b.frac_near_best:.0%} of {b.grid_cells} cells (σ = "
        f"{100 * b.seed_noise:.2f} points)"
        if np.isfinite(b.frac_near_best)
        else f"{label[b.arm]}: no seed noise (one seed a cell)"
        for b in best.itertuples()
        if b.grid_cells
    )
    out.append(f"Share of each grid near its best: {grid_text}.")
    sens = sensitivity(agg, best)
    if not sens.empty:
        for axis, other in (("rho", "learning rate"), ("lr", "radius")):
            text = "; ".join(
                f"{label[r[ARM]]} {r[f'{axis}_near']}/{r[f'{axis}_count']} (largest test drop "
                f"{100 * r[f'{axis}_drop']:.1f} points)"
                for _, r in sens.iterrows()
            )
            what = "radii" if axis == "rho" else "learning rates"
            out.append(f"At each method's best {other}, the {what} near its best: {text}.")
    out.append(
        "Where each breaks: "
        + "; ".join(f"{label[a]} {breaks_at(agg, a)}" for a in best[ARM])
        + "."
    )
    return out


def theorem_shares(cells: pd.DataFrame, arm: str) -> dict[str, tuple[int, int]]:
    """Per target, (cells where every seed reached it, cells) of ``arm``'s grid."""
    shares = {}
    for target in THEOREM_TARGETS:
        own = fig_theorem.per_cell(cells[cells["arm"].eq(arm)], f"steps_to_{target}")
        shares[target] = (int(own["reached"].eq(own["seeds"]).sum()), len(own))
    return shares


def compare_shares(method: tuple[int, int], base: tuple[int, int]) -> str:
    """A method's share of its grid against its base's: wider or narrower only by more than one
    cell of the base's grid (its resolution), else about the same."""
    a, b = method[0] / method[1], base[0] / base[1]
    step = 1 / base[1]
    return (
        "wider than" if a > b + step else "narrower than" if a < b - step else "about the same as"
    )


@dataclass(frozen=True)
class TheoremFindings:
    """The theorem's problem in sentences: the setting, one per arm, and one per sharpness-aware
    arm against its base optimizer."""

    problem: str
    arms: list[str]
    contrasts: list[str]

    def all(self) -> list[str]:
        return [self.problem, *self.arms, *self.contrasts]


def theorem_findings(directory: Path) -> TheoremFindings:
    """What the theorem's problem shows: per arm, the share of its (lr, rho) grid where every
    seed reached each target, the cells where some seed diverged and those where every seed
    ended above its start without diverging, the learning rates at which most radii did, its
    best cell; and each sharpness-aware arm's share against its base optimizer's."""
    cells, _, meta = fig_theorem.read(directory)
    s = meta["settings"]
    lrs, rhos = sorted(cells["lr"].unique()), sorted(cells["rho"].dropna().unique())
    decades = (math.log10(lrs[-1] / lrs[0]), math.log10(rhos[-1] / rhos[0]))
    problem = (
        f"Problem: {meta['description']}; n = {s['n']}, d = {s['dim']}, L <= "
        f"{meta['smoothness']:.3g} (so 2/L = {2 / meta['smoothness']:.3g}), batch {s['batch']}, "
        f"D0 = {s['d0']:g}, D1 = {s['d1']:g}; T = {s['steps']} steps; lr from {fmt(lrs[0])} to "
        f"{fmt(lrs[-1])} ({decades[0]:.0f} decades), rho from {fmt(rhos[0])} to {fmt(rhos[-1])} "
        f"({decades[1]:.0f}); {len(s['seeds'])} seeds; {meta['cells']} runs in "
        f"{meta['wall_s']:.0f} s. Targets: the squared gradient norm at 1e-2 and at 1e-3 of its "
        f"start, within T, with every seed; {int(cells['min_sq_grad'].le(1e-4).sum())} of the "
        f"{len(cells)} runs ever came to 1e-4 (their smallest squared gradient norm)."
    )
    arms, contrasts = [], []
    shares = {arm: theorem_shares(cells, arm) for arm in cells["arm"].unique()}
    for arm in common.ordered(shares):
        own = cells[cells["arm"].eq(arm)]
        table = fig_theorem.per_cell(own)
        every = table.assign(every=table["reached"].eq(table["seeds"]))
        most = every.groupby("lr")["every"].mean()
        window = ", ".join(fmt(lr) for lr in most[most >= 0.5].index) or "none"
        by_cell = own.groupby(["lr", "rho"], dropna=False)
        cell = by_cell[["avg_sq_grad", "slope"]].median()
        position = int(np.argmin(cell["avg_sq_grad"].fillna(np.inf).to_numpy()))
        best_key, best = cell.index[position], cell.iloc[position]
        at = f"lr {fmt(best_key[0])}" + (
            "" if math.isnan(best_key[1]) else f", rho {fmt(best_key[1])}"
        )
        counts = "; ".join(f"{target}: {k} of {n} cells" for target, (k, n) in shares[arm].items())
        diverged = int(table["diverged"].gt(0).sum())
        # Not diverged is not trained: an adaptive step at a large lr can hover far above the
        # start for all of T without ever crossing the divergence limit.
        above = int((by_cell["diverged"].max().eq(0) & by_cell["final_sq_grad"].min().ge(1)).sum())
        arms.append(
            f"{common.label(arm)}: reached {counts}; some seed diverged in {diverged}; every seed "
            f"ended above its start without diverging in {above}; learning "
            f"rates at which at least half of the radii reached 1e-2: {window}; best cell ({at}): "
            f"mean squared gradient norm {best['avg_sq_grad']:.2g} of the start, slope against T "
            f"over the last two decades {best['slope']:.2f} (the theorem's rate is -0.5)."
        )
    for method, base in common.BASE_OF.items():
        if method in shares and base in shares:
            verdicts = "; ".join(
                f"at {target}, {compare_shares(shares[method][target], shares[base][target])} "
                f"its base's ({shares[method][target][0]}/{shares[method][target][1]} against "
                f"{shares[base][target][0]}/{shares[base][target][1]})"
                for target in THEOREM_TARGETS
            )
            contrasts.append(
                f"{common.label(method)} against {common.label(base)}, the share of the grid "
                f"that reached each target: {verdicts}."
            )
    return TheoremFindings(problem, arms, contrasts)


# -- writing ---------------------------------------------------------------------------------------


def image(path: Path, relative_to: Path, alt: str) -> str:
    return f"![{alt}]({os.path.relpath(path, relative_to)})"


# The budget study's parts in REPORT.md: heading, sentences, figures (stem and alt text).
STUDY_PARTS = (
    ("What the data support", "statement", ()),
    ("Optimisation: learning-rate windows against the budget", "windows",
     (("budget_windows", "learning-rate window width against epochs"),
      ("budget_lowest_lr", "the lowest learning rate that trains against the budget in steps"),
      ("budget_radius", "the realised perturbation through training at each radius level"))),
    ("How each run ended", "failures",
     (("budget_failures", "failure taxonomy"),
      ("budget_stationarity", "the theorem's gradient measure against the training loss"))),
    ("Generalisation at the cells selected on validation", "generalisation",
     (("budget_contrasts", "paired test-accuracy differences against the base optimizers"),)),
    ("Near best, by the seed noise", "near_best", ()),
    ("The recovery audit", "recovery", ()),
    ("Tuning cost", "tuning",
     (("budget_tuning", "expected best test accuracy against trials"),)),
)  # fmt: skip


def study_section(found: StudyFindings, figures: Path, report_dir: Path) -> list[str]:
    lines = []
    for heading, part, drawn in STUDY_PARTS:
        sentences = getattr(found, part)
        shown = [(stem, alt) for stem, alt in drawn if (figures / f"{stem}.png").exists()]
        if not sentences and not shown:
            continue
        lines += [f"### {heading}", "", *(f"- {f}" for f in sentences), ""]
        lines += [line for stem, alt in shown
                  for line in (image(figures / f"{stem}.png", report_dir, alt), "")]  # fmt: skip
    return lines


def store_section(
    collection: Collection,
    setup: list[str],
    facts: list[str] | StudyFindings,
    figures: Path,
    report_dir: Path,
) -> list[str]:
    """The store's part of REPORT.md: what was run, then the budget study's findings if
    ``facts`` are those, else the findings of a plain sweep, then the best settings and the
    sweep's figures."""
    lines = [f"## Sweep `{collection.store.name}`", "", *setup, ""]
    if len(collection.missing) or collection.problems:
        lines += [f"Partial store: {collection.summary()}", ""]
    if isinstance(facts, StudyFindings):
        lines += study_section(facts, figures, report_dir)
    else:
        lines += ["### What the numbers show", "", *(f"- {f}" for f in facts), ""]
    lines += ["### Best settings", "", (figures / "best.md").read_text().strip(), ""]
    for stem, alt in (
        ("heatmaps", "test accuracy over the grid"),
        ("sensitivity", "accuracy against rho and lr"),
        ("robustness", "best, median and worst accuracy, and tuning cost"),
        ("training_curves", "training curves of the best settings"),
    ):
        lines += [image(figures / f"{stem}.png", report_dir, alt), ""]
    return lines


def readme_block(
    collection: Collection,
    setup: list[str],
    facts: list[str] | StudyFindings,
    figures: Path,
    readme_dir: Path,
    theorem: list[str],
) -> str:
    """The README's results: for the budget study its plain statement, window, lowest-lr and
    realised-radius (where drawn) and contrast figures, for a plain sweep its heatmap and
    findings; the table of best settings, the wall time, then ``theorem``'s lines (the
    theorem's problem, if it ran)."""
    if isinstance(facts, StudyFindings):
        optional = (("budget_lowest_lr", "the lowest learning rate that trains"),
                    ("budget_radius", "the realised radius through training"))  # fmt: skip
        drawn = [line for stem, alt in optional if (figures / f"{stem}.png").exists()
                 for line in (image(figures / f"{stem}.png", readme_dir, alt), "")]  # fmt: skip
        shown = [
            *(f"- {f}" for f in facts.statement),
            "",
            image(figures / "budget_windows.png", readme_dir, "learning-rate windows"),
            "",
            *drawn,
            image(figures / "budget_contrasts.png", readme_dir, "differences against the bases"),
            "",
        ]
    else:
        shown = [
            image(figures / "heatmaps.png", readme_dir, "test accuracy over the grid"),
            "",
            *(f"- {f}" for f in facts),
            "",
        ]
    lines = [
        README_START,
        f"Results of `make reproduce` (sweep `{collection.store.name}`), from "
        f"[REPORT.md](REPORT.md):",
        "",
        *shown,
        (figures / "best.md").read_text().strip(),
        "",
        *(line for line in setup if line.startswith("- Wall time")),
        *theorem,
        README_END,
    ]
    return "\n".join(lines)


def rewrite_readme(
    readme: Path, block: str, markers: tuple[str, str] = (README_START, README_END)
) -> None:
    """Replace the README's block between ``markers`` (included; ``block`` starts with the
    first and ends with the second), written whole or not at all."""
    text = readme.read_text()
    first, last = markers
    start, end = text.find(first), text.find(last)
    if start < 0 or end < 0:
        raise SystemExit(f"{readme} has no markers {first} ... {last}")
    files.write_text(readme, text[:start] + block + text[end + len(last) :])


def paper_sections(grid: Path, figures: Path, report_dir: Path) -> list[str]:
    """The stages after a screening (``lightsam.paper``), where their stores hold results: the
    confirm stage's selected cells against their bases and its nine-settings table, the
    performance profiles of the transfer."""
    lines = []
    stage = files.stage_store(grid, "confirm")
    collection = common.load(stage) if (stage / files.PLAN).exists() else None
    if collection is not None:
        paths = table_nine.make(collection, figures / "confirm")
        paths += confirm.make(collection, figures / "confirm")
        common.report(paths)
        table = (figures / "confirm" / "nine_settings.md").read_text()
        lines += [
            "### Each method at its selected cell, against its base (confirm stage)",
            "",
            *(f"- {sentence}" for sentence in confirm.summary(figures / "confirm")),
            "",
            "### The nine settings around each selected cell (confirm stage)",
            "",
            table,
        ]
    transfers = {
        path.name.split("_transfer_", 1)[1]: path
        for path in sorted(grid.parent.glob(f"{grid.name}_transfer_*"))
        if (path / files.PLAN).exists()
    }
    paths = transfer.make(transfers, figures / "transfer") if transfers else []
    if paths:
        common.report(paths)
        profile = figures / "transfer" / "transfer_profile.png"
        lines += [
            "### Transfer: time to target on every workload",
            "",
            f"Settings selected on this screening, run without retuning on {', '.join(transfers)}.",
            "",
            image(profile, report_dir, "performance profiles"),
            "",
        ]
    return lines


def sweep_stores(runs: Path) -> list[Path]:
    """The stores under ``runs`` that hold a grid's plan (the theorem experiment's directory
    holds none; the stages of a grid are reported with it)."""
    stores = []
    for path in sorted(p.parent for p in runs.glob(f"*/{files.PLAN}")):
        try:
            plan = files.read_plan(path)
        except ValueError:
            plan = None  # unreadable: reported as a store, whose problems say so
        if plan is None or plan.stage == "grid":
            stores.append(path)
    return stores


def write_report(runs: Path, out: Path, report: Path, readme: Path | None = None) -> None:
    """Every figure and table of every sweep store under ``runs`` and of the theorem's problem
    (``runs/theorem``) into ``out``, REPORT.md into ``report``, and with ``readme`` the
    README's results block, from the first sweep store and the theorem's problem."""
    theorem = runs / "theorem"
    report_dir = report.parent
    header = [
        "# lightsam: the sensitivity study",
        "",
        "Written by `analysis/report.py` from the stored results; regenerate with "
        "`make figures`. Every number below is read from the result store.",
        "",
    ]
    lines: list[str] = []
    readme_theorem: list[str] = []
    if (theorem / files.THEOREM_CELLS).exists():
        common.report(fig_theorem.make(theorem, out / "theorem"))
        found = theorem_findings(theorem)
        steps = out / "theorem" / "theorem_steps.png"
        lines += [
            "## The theorem's problem",
            "",
            *(f"- {f}" for f in found.all()),
            "",
            image(steps, report_dir, "steps to the target"),
            "",
            image(out / "theorem" / "theorem_rates.png", report_dir, "rates against T"),
            "",
        ]
        if readme is not None:
            readme_theorem = [
                "",
                "The theorem's own problem, from [REPORT.md](REPORT.md):",
                "",
                image(steps, readme.parent, "steps to the target"),
                "",
                f"- {found.problem}",
                *(f"- {f}" for f in found.contrasts),
            ]
    block = None
    for store in sweep_stores(runs):
        collection = common.load(store)
        if collection is None:
            continue
        figures = out / store.name
        facts: list[str] | StudyFindings
        noise = None
        if collection.runs["probe_loss_initial"].notna().any():  # a budget study's grid
            tables = study.read_tables(
                store, files.stage_store(store, "confirm"), files.stage_store(store, "recovery")
            )
            facts, paths = study.make_all(tables, figures)
            common.report(paths)
            if tables.near_best is not None:
                noise = tables.near_best.set_index(ARM)["sigma"]
        else:
            facts = findings(collection)
        for script in STORE_FIGURES:
            given = {"noise": noise} if script in BY_SEED_NOISE else {}
            common.report(script.make(collection, figures, **given))
        setup = what_was_run(collection)
        lines += store_section(collection, setup, facts, figures, report_dir)
        halving = fig_halving.make(store, figures)
        if halving:
            common.report(halving)
            common.report(screening.make(store, figures))
            lines += [
                "### Successive halving",
                "",
                *(f"- {sentence}" for sentence in fig_halving.summary(store)),
                "",
                image(figures / "halving.png", report_dir, "successive halving"),
                "",
                "### The screening: windows against epochs, tuning cost against device-hours",
                "",
                *(f"- {sentence}" for sentence in screening.summary(figures)),
                "",
                image(figures / "screening.png", report_dir, "windows and tuning cost"),
                "",
                *(
                    [image(figures / "screening_failures.png", report_dir, "how runs ended"), ""]
                    if (figures / "screening_failures.png").exists()
                    else []
                ),
                *paper_sections(store, figures, report_dir),
            ]
        if block is None and readme is not None:
            block = readme_block(collection, setup, facts, figures, readme.parent, readme_theorem)
    if not lines:
        raise SystemExit(f"nothing to report: no results in {runs}")
    files.write_text(report, "\n".join(header + lines))
    print(f"wrote {report}")
    if block is not None:
        rewrite_readme(readme, block)
        print(f"rewrote the results block of {readme}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("figures"))
    parser.add_argument("--report", type=Path, default=Path("REPORT.md"))
    parser.add_argument("--readme", type=Path, help="rewrite this README's results block")
    args = parser.parse_args(argv)
    write_report(args.runs, args.out, args.report, args.readme)


if __name__ == "__main__":
    main()
