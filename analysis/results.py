"""Reading a result store against its plan into tables, and the summaries the study reports.

The analysis reads only the JSON files a run leaves, through :mod:`lightsam.store` (the one
module that knows their names), never checkpoints, and nothing of the training code. It reads a
store that is still being written: a run without ``result.json`` is incomplete, one whose
``result.json`` does not parse, or holds a value of the wrong type, is corrupt; both are
reported and skipped, never fatal.

Which runs count: the store's plan (``plan.json``, written when the sweep is launched) says
which runs the sweep is made of, each with its canonical config. Only those are read. A run
directory that is not in the plan (a run of an earlier version of the sweep file, a copy such
as ``<id>.bak``, a run of another spelling migrated next to it) is listed as *outside the plan*
and never pooled. A store without a plan is read as it is: every run directory whose name is
its own run id.

Runs are pooled by identity: a *cell* is a whole config but the seed, an *arm* a cell but its
``lr`` and ``rho`` (:mod:`lightsam.plan`). Two cells that share (optimizer, lr, rho) but differ
in anything else are two cells, and their arms are labelled by what differs.

How runs count:

- ``ok`` runs give accuracies; means, standard deviations and confidence intervals are over them.
- A ``diverged`` run is a result, not a gap: in every score that ranks or summarises settings
  (the selection of the best cell, the grid median and worst, the fraction near the best, the
  expected best of k) it counts as chance accuracy, ``1 / num_classes``, which is what a model
  with non-finite weights scores. Without that, a setting that diverges on two seeds out of
  three would look as good as its one lucky seed.
- A ``failed`` run (an exception, a bug) says nothing about the optimizer: it is counted and
  shown, but scores nothing.
- A ``missing`` run is a run of the plan with no readable result: never started, incomplete,
  or corrupt.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lightsam import store as files
from lightsam.plan import Plan, arm_key, arm_labels, cell_key

STATUSES = files.STATUSES
COMPLETE = files.COMPLETE  # runs that say something about the optimizer
# An arm's runs at one lr and rho are the seeds of one cell: the whole config but the seed, as
# an arm label names one arm key.
ARM, CELL_ID = "arm", "cell_id"
CELL = [ARM, "lr", "rho"]
# What a run is, from its config.
CONFIG_COLUMNS = ["optimizer", "lr", "rho", "seed", "dataset", "model", "epochs", "batch_size"]
# What it gave, from its result.
NUMBERS = [
    "num_classes", "val_acc", "best_val_acc", "test_acc", "test_loss", "test_ce",
    "final_train_loss", "epochs_completed", "diverged_epoch", "wall_s", "perturbation_norm",
    "relative_perturbation",
    "perturbation_norm_first", "probe_loss_initial", "probe_grad_norm_initial", "stopping_loss",
    "steps_per_epoch",
]  # fmt: skip
RESULT_COLUMNS = ["status", *NUMBERS, "error"]
# What it ran on, from its environment segments: the last start's commit and libraries, how
# many commits and starts it spans, and whether any start was from a tree with changes.
ENVIRONMENT_COLUMNS = [
    "git_commit", "commits", "segments", "git_dirty", "python", "torch", "device_name",
    "cpu_threads",
]  # fmt: skip
RUN_COLUMNS = ["run_id", CELL_ID, ARM, *CONFIG_COLUMNS, *RESULT_COLUMNS, *ENVIRONMENT_COLUMNS]
MISSING_COLUMNS = ["run_id", CELL_ID, ARM, *CONFIG_COLUMNS, "reason"]
OUTSIDE_COLUMNS = ["run_id", *CONFIG_COLUMNS, "status"]
# Near the best: a cell's validation accuracy within NEAR_SE seed-noise stds of the best cell's,
# two standard errors of the difference of two single runs (each with std sigma, their
# difference std sqrt(2) sigma): a fixed point would be inside the noise of one method and far
# outside another's.
NEAR_SE = 2 * math.sqrt(2)


# -- reading a store ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Collection:
    """What a store holds.

    ``store``: where it was read; ``plan``: its plan, None if it has none (or it is
    unreadable). ``runs``: one row per planned run with a readable result (``RUN_COLUMNS``).
    ``missing``: the planned runs without one (``MISSING_COLUMNS``). ``outside``: the run
    directories that are not in the plan (``OUTSIDE_COLUMNS``). ``problems``: (run, reason) for
    every run directory that could not be used. ``expected``: the number of planned runs, None
    without a plan.
    """

    store: Path
    plan: Plan | None
    runs: pd.DataFrame
    missing: pd.DataFrame
    outside: pd.DataFrame
    problems: list[tuple[str, str]]
    expected: int | None

    def summary(self) -> str:
        """One paragraph for the console: what was read and what is not there."""
        statuses = self.runs["status"].value_counts()
        counts = ", ".join(f"{statuses.get(s, 0)} {s}" for s in STATUSES)
        lines = [f"{len(self.runs)} runs with results ({counts})"]
        if self.expected is not None:
            reasons = self.missing["reason"].value_counts()
            detail = ", ".join(f"{n} {reason}" for reason, n in reasons.items())
            missing = f"{len(self.missing)} of {self.expected} planned runs missing"
            lines.append(f"{missing} ({detail})" if detail else missing)
        else:
            lines.append("no plan.json: the planned runs are unknown, only what is present counts")
        if len(self.outside):
            lines.append(f"{len(self.outside)} run(s) outside the plan, not pooled")
        lines += [f"  {run_id}: {reason}" for run_id, reason in self.problems]
        commits = self.runs["git_commit"].dropna().unique()
        if len(commits) > 1:
            lines.append(f"warning: results come from {len(commits)} different git commits")
        if self.runs["git_dirty"].eq(True).any():
            lines.append("warning: some runs ran with uncommitted changes (git_dirty)")
        return "\n".join(lines)


def _description(config: Mapping[str, Any]) -> dict[str, Any]:
    optimizer = config.get("optimizer") or {}
    row = {column: config.get(column) for column in CONFIG_COLUMNS}
    row.update(optimizer=optimizer.get("name"), lr=optimizer.get("lr"), rho=optimizer.get("rho"))
    return row


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(key: str, value: Any) -> Any:
    if value is None or _is_number(value):
        return value
    raise ValueError(f"malformed value {key}={value!r}")


def _environment(run_dir: Path) -> dict[str, Any]:
    segments = files.read_environment(run_dir)
    last = segments[-1] if segments else {}
    commits = {s.get("git_commit") for s in segments if s.get("git_commit")}
    row = {column: last.get(column) for column in ENVIRONMENT_COLUMNS}
    row.update(
        commits=len(commits),
        segments=len(segments),
        git_dirty=any(s.get("git_dirty") for s in segments) if segments else None,
    )
    return row


def _run_row(run_dir: Path) -> dict[str, Any]:
    """A run's result and environment; raises ValueError for a result that is not a result
    (not an object, no known status, another run's, a value of the wrong type)."""
    result = files.read_json(run_dir / files.RESULT)
    if result is None:
        raise ValueError("result.json does not parse")
    if not isinstance(result, dict):
        raise ValueError("result.json is not a JSON object")
    if result.get("status") not in STATUSES:
        raise ValueError(f"no status among {', '.join(STATUSES)}")
    if result.get("run_id") not in (None, run_dir.name):
        raise ValueError(f"the result of run {result['run_id']}")
    row = {key: _number(key, result.get(key)) for key in NUMBERS}
    row.update(status=result["status"], error=result.get("error"))
    return row | _environment(run_dir)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as floats, so that a column of Nones (a store of diverged runs only)
    still compares and averages."""
    numeric = [c for c in ["lr", "rho", "epochs", *NUMBERS] if c in frame]
    return frame.astype(dict.fromkeys(numeric, "float64"))


def _read(path: Path, run_id: str, config: Mapping[str, Any], planned: bool) -> tuple[dict, str]:
    """(result row, "") for a run with a usable result, else ({}, why not)."""
    run_dir = path / run_id
    if not run_dir.is_dir():
        return {}, "not started"
    if not (run_dir / files.RESULT).exists():
        return {}, "incomplete: no result.json (running or killed)"
    if planned and files.read_config(run_dir) != dict(config):
        return {}, "corrupt: its config.json is not the plan's"
    try:
        return _run_row(run_dir), ""
    except ValueError as error:
        return {}, f"corrupt: {error}"


def collect(path: Path) -> Collection:
    """Read the store at ``path`` against its plan (see the module docstring)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no result store at {path}")
    problems: list[tuple[str, str]] = []
    try:
        plan = files.read_plan(path)
    except ValueError as error:
        problems.append((files.PLAN, f"unreadable, so the planned runs are unknown: {error}"))
        plan = None
    present = {run_dir.name: run_dir for run_dir in files.run_dirs(path)}
    if plan is not None:
        configs = dict(plan.runs)
    else:
        configs = {}
        for name, run_dir in present.items():
            result = files.read_result(run_dir) or {}
            if result.get("run_id") not in (None, name):
                problems.append((name, f"a copy of run {result['run_id']}: counted once"))
                continue
            configs[name] = files.read_config(run_dir) or {}
    labels = arm_labels(configs.values())
    rows, missing = [], []
    for run_id, config in configs.items():
        described = {"run_id": run_id, CELL_ID: cell_key(config), ARM: labels[arm_key(config)]}
        described |= _description(config)
        row, why = _read(path, run_id, config, planned=plan is not None)
        if not why:
            rows.append(described | row)
            continue
        if plan is not None:
            missing.append(described | {"reason": why.split(":")[0]})
        if why != "not started":
            problems.append((run_id, why))
    outside = []
    if plan is not None:
        for name in sorted(set(present) - set(configs)):
            result = files.read_result(present[name]) or {}
            description = _description(files.read_config(present[name]) or {})
            outside.append({"run_id": name, **description, "status": result.get("status")})
    return Collection(
        store=path,
        plan=plan,
        runs=_typed(pd.DataFrame(rows, columns=RUN_COLUMNS)),
        missing=_typed(pd.DataFrame(missing, columns=MISSING_COLUMNS)),
        outside=_typed(pd.DataFrame(outside, columns=OUTSIDE_COLUMNS)),
        problems=problems,
        expected=None if plan is None else len(plan.runs),
    )


def read_metrics(store: Path, run_ids: Iterable[str]) -> pd.DataFrame:
    """The per-epoch metrics of the given runs, one row per (run_id, epoch); a run whose
    metrics cannot be read is left out (its result is what counts)."""
    frames = []
    for run_id in run_ids:
        rows = files.read_metrics(Path(store) / run_id)
        if rows:
            frames.append(pd.DataFrame(rows).assign(run_id=run_id))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run_id"])


PROBE_COLUMNS = ["run_id", "step", "probe_loss"]


def read_probes(store: Path, run_ids: Iterable[str]) -> pd.DataFrame:
    """The probes the given runs took at their ``probe_steps`` (``result.json``'s ``probes``),
    one row per (run_id, step); a run whose probes are not a list of objects with an integer
    ``step`` and a numeric ``probe_loss`` is left out (its result is what counts)."""
    rows = []
    for run_id in run_ids:
        probes = (files.read_result(Path(store) / run_id) or {}).get("probes", [])
        if isinstance(probes, list) and all(_is_probe(p) for p in probes):
            rows += [(run_id, p["step"], float(p["probe_loss"])) for p in probes]
    return pd.DataFrame(rows, columns=PROBE_COLUMNS).astype({"step": int, "probe_loss": float})


def _is_probe(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and type(entry.get("step")) is int
        and _is_number(entry.get("probe_loss"))
    )


def write_csv(frame: pd.DataFrame, out: Path, name: str) -> Path:
    """Write ``frame`` to ``out/name.csv`` (beside the figures) and return the path."""
    path = out / f"{name}.csv"
    files.write_text(path, frame.to_csv(index=False))
    return path


# -- statistics -----------------------------------------------------------------------------------


def _t_two_sided_mass(t: float, dof: int) -> float:
    """P(|T| <= t) for Student's t with integer ``dof``, in closed form (Abramowitz & Stegun
    26.7.3-4), so that the analysis needs no statistics library."""
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    if dof % 2 == 1:
        term, total = math.cos(theta), 0.0
        for j in range(1, (dof - 1) // 2 + 1):
            total += term
            term *= c2 * (2 * j) / (2 * j + 1)
        return 2 / math.pi * (theta + math.sin(theta) * total)
    term, total = 1.0, 0.0
    for j in range(1, dof // 2 + 1):
        total += term
        term *= c2 * (2 * j - 1) / (2 * j)
    return math.sin(theta) * total


def t_critical(dof: int, level: float = 0.95) -> float:
    """The two-sided Student-t critical value: a ``level`` confidence interval of a mean of n
    values is mean ± t_critical(n - 1) * std / sqrt(n). Bisection on the closed-form CDF."""
    low, high = 0.0, 1.0
    while _t_two_sided_mass(high, dof) < level:
        low, high = high, 2 * high
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if _t_two_sided_mass(middle, dof) < level else (low, middle)
    return (low + high) / 2


def t_p_value(t: float, dof: int) -> float:
    """The two-sided p-value of a Student-t statistic ``t`` with ``dof`` degrees of freedom."""
    return 1.0 - _t_two_sided_mass(abs(t), dof) if math.isfinite(t) else 0.0


def mean_std_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, sample standard deviation and 95% CI half-width (Student t, n - 1 degrees of
    freedom); std and CI are NaN for a single value, which has no spread to estimate."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    if len(x) == 1:
        return float(x[0]), math.nan, math.nan
    std = float(x.std(ddof=1))
    return float(x.mean()), std, t_critical(len(x) - 1) * std / math.sqrt(len(x))


# -- per-cell summaries ---------------------------------------------------------------------------


def scored(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``chance``, ``val_score`` and ``test_score``: the accuracy of an ok run,
    chance for a diverged one, NaN for a failed one (see the module docstring). A result
    without ``num_classes`` (older stores) takes it from a run of the same dataset, else counts
    as 0, never above chance."""
    num_classes = runs.groupby("dataset", dropna=False)["num_classes"].transform("max")
    chance = (1.0 / num_classes).fillna(0.0)
    ok, diverged = runs["status"].eq("ok"), runs["status"].eq("diverged")
    return runs.assign(
        chance=chance,
        val_score=runs["val_acc"].where(ok, chance.where(diverged)),
        test_score=runs["test_acc"].where(ok, chance.where(diverged)),
    )


def cell_status(n_ok: int, n_diverged: int, n_failed: int) -> str:
    """``ok``, ``partial`` (some complete runs diverged), ``diverged`` (all did), ``failed``
    (no complete run, some failed) or ``missing`` (no result at all)."""
    if n_ok + n_diverged == 0:
        return "failed" if n_failed else "missing"
    if n_diverged == 0:
        return "ok"
    return "diverged" if n_ok == 0 else "partial"


def _summarise_cell(cell: pd.DataFrame) -> dict[str, Any]:
    status = cell["status"]
    counts = {f"n_{s}": int(status.eq(s).sum()) for s in (*STATUSES, "missing")}
    row: dict[str, Any] = {"n": len(cell) - counts["n_missing"], **counts}
    ok = cell[status.eq("ok")]
    for metric in ("test_acc", "val_acc"):
        mean, std, ci = mean_std_ci(ok[metric].dropna())
        row |= {f"{metric}_mean": mean, f"{metric}_std": std, f"{metric}_ci95": ci}
    # The realised size of the ascents, which the nominal rho means differently per method.
    for metric in ("perturbation_norm", "relative_perturbation"):
        row[f"{metric}_mean"] = ok[metric].mean()
    row["chance"] = cell["chance"].max()
    row["val_score"] = cell["val_score"].mean()
    row["test_score"] = cell["test_score"].mean()
    row["status"] = cell_status(counts["n_ok"], counts["n_diverged"], counts["n_failed"])
    return row


def aggregate(runs: pd.DataFrame, missing: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per cell (an arm at one lr and rho, with its ``optimizer``): run counts (``n``
    runs with a result, ``n_ok``, ``n_diverged``, ``n_failed``, ``n_missing``), mean / std /
    95% CI half-width of test and validation accuracy over the ok seeds, the scores
    (``val_score``, ``test_score``: means over the complete runs, diverged ones at chance) and
    the cell's ``status``, and the mean realised perturbation of its ok runs
    (``perturbation_norm_mean``, ``relative_perturbation_mean``). With ``missing``
    (``Collection.missing``), planned cells with no result yet are rows too, so that the table
    is the whole grid."""
    frames = [scored(runs)]
    if missing is not None and len(missing):
        frames.append(missing[[*CELL, "optimizer"]].assign(status="missing"))
    everything = pd.concat(frames, ignore_index=True)
    rows = [
        dict(zip(CELL, key, strict=True))
        | {"optimizer": cell["optimizer"].iloc[0]}
        | _summarise_cell(cell)
        for key, cell in everything.groupby(CELL, dropna=False, sort=True)
    ]
    return pd.DataFrame(rows)


# -- what the study reports -----------------------------------------------------------------------


def grid(agg: pd.DataFrame, arm: str) -> pd.DataFrame:
    """The cells of ``arm`` with at least one complete run: the grid its summaries range over
    (cells that are missing or only failed are unknown, not bad)."""
    cells = agg[agg[ARM].eq(arm)]
    return cells[cells["n_ok"] + cells["n_diverged"] > 0]


def pooled_seed_noise(agg: pd.DataFrame) -> pd.Series:
    """Per arm, the seed noise of one run: the std of validation accuracy over a cell's ok seeds,
    pooled over the arm's cells with two or more (NaN where it has none, as a grid of one seed a
    cell has). A seed stalled at chance among trained ones inflates it; the budget study takes
    its noise from its confirmation seeds that trained instead (``analysis.study``)."""
    several = agg[agg["n_ok"].ge(2) & agg["val_acc_std"].notna()]
    dof = several["n_ok"] - 1
    pooled = (dof * several["val_acc_std"] ** 2).groupby(several[ARM]).sum()
    noise = np.sqrt(pooled / dof.groupby(several[ARM]).sum())
    return noise.reindex(sorted(agg[ARM].unique()))


def best_settings(agg: pd.DataFrame, noise: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Per arm, the cell a practitioner would pick (the highest mean validation score,
    ties to the smaller lr, then rho) with its test accuracy mean ± std over the ok seeds; and
    how the whole grid fares: the median and worst cell test score, and ``frac_near_best``, the
    fraction of cells whose validation score is within ``near_threshold`` = ``NEAR_SE`` x
    ``seed_noise`` of the chosen cell's: ``noise`` per arm (the std of validation accuracy of
    one run), by default :func:`pooled_seed_noise`; NaN where the arm has none. Diverged runs
    count as chance throughout; counts of diverged, failed and missing runs go with it."""
    noise = pooled_seed_noise(agg) if noise is None else noise
    rows = []
    for arm in sorted(agg[ARM].unique()):
        cells, everything = grid(agg, arm), agg[agg[ARM].eq(arm)]
        optimizer = everything["optimizer"].iloc[0]
        counts = {c: int(everything[c].sum()) for c in ("n", "n_diverged", "n_failed", "n_missing")}
        if cells.empty:
            rows.append({ARM: arm, "optimizer": optimizer, "grid_cells": 0, **counts})
            continue
        best = cells.loc[cells["val_score"].idxmax()]
        scores = cells["test_score"]
        sigma = float(noise.get(arm, math.nan))
        threshold = NEAR_SE * sigma
        near = cells["val_score"].ge(best["val_score"] - threshold).mean()
        rows.append(
            {
                ARM: arm,
                "optimizer": optimizer,
                "lr": best["lr"],
                "rho": best["rho"],
                "val_score": best["val_score"],
                "test_acc_mean": best["test_acc_mean"],
                "test_acc_std": best["test_acc_std"],
                "n_seeds": int(best["n_ok"]),
                "best_status": best["status"],
                "best_test": best["test_score"],
                "median_test": scores.median(),
                "worst_test": scores.min(),
                "seed_noise": sigma,
                "near_threshold": threshold,
                "frac_near_best": float(near) if math.isfinite(sigma) else math.nan,
                "grid_cells": len(cells),
                **counts,
            }
        )
    return pd.DataFrame(rows)


def selection_weights(n: int, ks: Sequence[int]) -> np.ndarray:
    """``w[j, i]``: the probability that, of ``ks[j]`` cells drawn at random without
    replacement from ``n`` ranked by validation score, the ``i``-th best is the best drawn:
    C(n - 1 - i, k - 1) / C(n, k). Exact, so the tuning-cost curve has no sampling noise."""
    return np.array([[math.comb(n - 1 - i, k - 1) / math.comb(n, k) for i in range(n)] for k in ks])


def _tie_means(ranked_val: np.ndarray, ranked_test: np.ndarray) -> np.ndarray:
    """Each test score replaced by the mean over the cells tied with it on validation: a random
    search picks uniformly among tied cells (diverged cells all tie at chance)."""
    rows, n = ranked_val.shape
    new_group = ~np.isclose(ranked_val[:, 1:], ranked_val[:, :-1], rtol=0, atol=1e-12)
    group = np.concatenate([np.zeros((rows, 1), int), np.cumsum(new_group, axis=1)], axis=1)
    flat = (group + n * np.arange(rows)[:, None]).ravel()
    sums = np.bincount(flat, weights=ranked_test.ravel(), minlength=rows * n)
    counts = np.bincount(flat, minlength=rows * n)
    return (sums[flat] / counts[flat]).reshape(rows, n)


def expected_best(val: np.ndarray, test: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """For each row of per-cell scores ``(val, test)`` (shape ``(rows, n)``), the expected test
    score of the validation-best of ``k`` random cells, for each k: shape ``(rows, len(ks))``."""
    order = np.argsort(-val, axis=1, kind="stable")
    ranked_val = np.take_along_axis(val, order, axis=1)
    ranked_test = np.take_along_axis(test, order, axis=1)
    return _tie_means(ranked_val, ranked_test) @ selection_weights(val.shape[1], ks).T


def _bootstrap_scores(
    runs: pd.DataFrame, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell (val, test) scores, shape ``(n_boot, cells)``, with each cell's complete runs
    resampled with replacement: how much the cell means could move with other seeds."""
    val, test = [], []
    for _, cell in runs.groupby(CELL, dropna=False, sort=True):
        pairs = cell[["val_score", "test_score"]].to_numpy()
        draws = pairs[rng.integers(0, len(pairs), size=(n_boot, len(pairs)))].mean(axis=1)
        val.append(draws[:, 0])
        test.append(draws[:, 1])
    return np.stack(val, axis=1), np.stack(test, axis=1)


def expected_best_of_k(
    runs: pd.DataFrame, k_values: Sequence[int] | None = None, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """The tuning-cost curve: per arm and k, the expected test score of the setting a
    random search of k distinct grid cells would pick on validation (``expected``), computed
    exactly over all k-subsets from the cell means; and a 95% band (``low``, ``high``) from
    ``n_boot`` bootstrap resamples of each cell's seeds. k = 1 gives the grid's mean test score,
    k = the grid size the chosen cell's (averaged with any cell tied with it on validation).
    ``k_values`` default to 1..grid size; larger ones are dropped. Diverged runs count as
    chance, failed ones not at all."""
    complete = scored(runs)
    complete = complete[complete["status"].isin(COMPLETE)]
    rng = np.random.default_rng(seed)
    frames = []
    for arm, own in complete.groupby(ARM, sort=True):
        cells = own.groupby(CELL, dropna=False, sort=True)[["val_score", "test_score"]].mean()
        n = len(cells)
        ks = [k for k in (k_values or range(1, n + 1)) if 1 <= k <= n]
        val, test = (cells[[c]].T.to_numpy() for c in ("val_score", "test_score"))
        point = expected_best(val, test, ks)[0]
        low = high = np.full(len(ks), math.nan)
        if n_boot:
            boot = expected_best(*_bootstrap_scores(own, n_boot, rng), ks)
            low, high = np.percentile(boot, [2.5, 97.5], axis=0)
        frames.append(
            pd.DataFrame(
                {
                    ARM: arm,
                    "k": ks,
                    "grid_cells": n,
                    "expected": point,
                    "low": low,
                    "high": high,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=[ARM, "k", "grid_cells", "expected", "low", "high"])
    return pd.concat(frames, ignore_index=True)
