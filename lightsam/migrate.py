"""``lightsam migrate STORE``: bring a store written under an earlier identity schema up to date.

Schema 1 (lightsam before the run identity was canonical) named a run by its hyperparameters as
the spec spelled them, and kept ``device`` and ``channels_last`` in the config. Migrating a
schema-1 run directory reads its config as that version did (the fields added later at the
defaults it had), computes the run's canonical id, renames the directory to it and rewrites
``config.json`` canonically, ``result.json``'s ``run_id`` and ``environment.json`` as segments.
Results, metrics and checkpoints are kept as they are: the computation is the same, only its
name changes. The old plan (``sweep.json``, which held no configs) is kept in ``.plans/``;
``--sweep`` writes the sweep's new plan.

Nothing is lost or overwritten: a directory whose canonical id is already taken (two spellings
of one computation, or a copy; a complete run takes the name before an incomplete one) is left
where it is and reported, and then counts as outside the
plan; a run being trained is left for a later call. A second call finds nothing to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightsam import store
from lightsam.config import SCHEMA, Config, ConfigError, from_dict
from lightsam.optim.registry import IMPLEMENTATION
from lightsam.plan import SCHEMA_KEY

# Schema 1 kept these runtime settings in the config.
SCHEMA_1_RUNTIME = ("device", "channels_last")


@dataclass
class Migration:
    """What a migration did: ``renamed`` (old -> new id), ``rewritten`` (same id, files brought
    up to date), ``current`` (nothing to do), ``left`` ((directory, why) left in place)."""

    renamed: dict[str, str] = field(default_factory=dict)
    rewritten: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"{len(self.renamed)} run(s) renamed to their canonical id, {len(self.rewritten)} "
            f"rewritten in place, {len(self.current)} already up to date, {len(self.left)} left "
            "as they are"
        ]
        lines += [f"  {name}: {why}" for name, why in self.left]
        return "\n".join(lines)


def schema_1_config(data: dict[str, Any]) -> Config:
    """A schema-1 ``config.json`` as the config it describes today."""
    data = {k: v for k, v in data.items() if k not in SCHEMA_1_RUNTIME}
    optimizer = dict(data.get("optimizer") or {})
    hparams = optimizer.get("hparams") or {}
    optimizer["hparams"] = {k: v for k, v in hparams.items() if k not in IMPLEMENTATION}
    return from_dict({**data, "optimizer": optimizer})


def _migrate_run(run_dir: Path, report: Migration) -> None:
    data = store.read_config(run_dir)
    if data is None:
        report.left.append((run_dir.name, "config.json cannot be read"))
        return
    schema = data.get(SCHEMA_KEY, 1)
    try:
        config = from_dict(data) if schema == SCHEMA else schema_1_config(data)
    except ConfigError as error:
        report.left.append((run_dir.name, f"config is not valid today: {error}"))
        return
    run_id = config.run_id()
    if schema == SCHEMA:
        if run_id == run_dir.name:
            report.current.append(run_id)
        else:
            report.left.append((run_dir.name, f"a copy of run {run_id} (its config's id)"))
        return
    if store.is_running(run_dir):
        report.left.append((run_dir.name, "being trained: migrate it once it stops"))
        return
    target = run_dir.parent / run_id
    if target != run_dir:
        if target.exists():
            report.left.append((run_dir.name, f"the same computation as run {run_id}, kept"))
            return
        os.rename(run_dir, target)  # first: a migration killed after it resumes from here
        report.renamed[run_dir.name] = run_id
    else:
        report.rewritten.append(run_id)
    store.write_config(target, config.to_dict())
    result = store.read_result(target)
    if result is not None:
        store.write_result(target, {**result, "run_id": run_id})
    store.write_environment(target, store.read_environment(target))


def migrate_store(path: Path) -> Migration:
    """Migrate every run directory of the store at ``path`` (see the module docstring)."""
    if not path.is_dir():
        raise FileNotFoundError(f"no result store at {path}")
    report = Migration()
    # Complete runs first: of two spellings of one computation, a finished one keeps the name.
    for run_dir in sorted(store.run_dirs(path), key=lambda d: (not store.is_complete(d), d.name)):
        _migrate_run(run_dir, report)
    store.keep_legacy_plan_aside(path)
    return report
