"""The ``lightsam`` command. It works from any directory: names of specs, sweeps and profiles,
and the default store and outputs, are the project's (:mod:`lightsam.project`)."""

from __future__ import annotations

import argparse
import collections
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lightsam import __version__, calibrate, cost, launch, project, store
from lightsam.config import ConfigError, Runtime, load_spec
from lightsam.data import DatasetUnavailableError
from lightsam.optim import OPTIMIZERS
from lightsam.reproduce import PRESETS, reproduce
from lightsam.sweep import Sweep, load_sweep
from lightsam.train import run

if TYPE_CHECKING:  # submitit is imported only by the commands that submit
    from lightsam.slurm import Profile

# A calibration file (``--calibration``) and its workloads (``lightsam.calibrate.load``).
Calibration = tuple[Path, dict[str, dict]]


def list_optimizers(_: argparse.Namespace) -> None:
    width = max(map(len, OPTIMIZERS))
    for name, entry in OPTIMIZERS.items():
        kind = "sharpness-aware" if entry.sharpness_aware else "base"
        print(f"{name:<{width}} {kind:<16} {', '.join(sorted(entry.hyperparameters))}")


def load_or_exit(loader, *args):
    try:
        return loader(*args)
    except ConfigError as error:
        raise SystemExit(f"lightsam: {error}") from error


def runtime_of(args: argparse.Namespace) -> Runtime:
    return load_or_exit(
        lambda: Runtime(
            device=args.device,
            channels_last=args.channels_last,
            data_dir=args.data_dir or project.default("data"),
            download=args.download,
            wandb=args.wandb,
        )
    )


def sweep_and_store(args: argparse.Namespace) -> tuple[Sweep, Path]:
    sweep = load_or_exit(load_sweep, project.find(args.sweep, "sweeps"))
    return sweep, args.out or project.default("runs") / sweep.name


def load_profile(name_or_path: str):
    from lightsam import slurm

    return load_or_exit(slurm.load_profile, project.find(name_or_path, "slurm/profiles"))


def load_calibration(args: argparse.Namespace) -> Calibration | None:
    """The ``--calibration`` file and its workloads, if one was given."""
    if args.calibration is None:
        return None
    return args.calibration, load_or_exit(calibrate.load, args.calibration)


def sweep_command(args: argparse.Namespace) -> None:
    sweep, out = sweep_and_store(args)
    profile = load_profile(args.profile) if args.executor == "slurm" else None
    if args.dry_run:
        calibration = load_calibration(args)
        plan = sweep.plan()
        state = launch.store_state(plan, out)
        run_ids = launch.to_launch(state, retry_failed=args.retry_failed)
        where = args.executor + (f" (profile {args.profile})" if args.executor == "slurm" else "")
        for note in plan.notes:
            print(f"note: {note}")
        print(f"sweep {sweep.name}: {len(run_ids)} of {len(plan.runs)} runs to launch -> {out}")
        for run_id in run_ids:
            optimizer, seed = plan.runs[run_id]["optimizer"], plan.runs[run_id]["seed"]
            print(
                f"{optimizer['name']:<14} lr={optimizer['lr']:<10g} rho={optimizer['rho']!s:<10} "
                f"seed={seed:<3} {run_id}  {where}"
            )
        print_cost(sweep, profile, args.profile, calibration)
        return
    try:
        launch.launch_sweep(
            sweep,
            out,
            runtime_of(args),
            executor=args.executor,
            profile=profile,
            max_parallel=args.max_parallel,
            retry_failed=args.retry_failed,
        )
    except store.PlanConflict as error:
        raise SystemExit(f"lightsam sweep: {error}") from error


def print_cost(
    sweep: Sweep, profile: Profile | None, name: str, calibration: Calibration | None = None
) -> float | None:
    """The sweep's cost lines (``lightsam.cost``) for a dry run; returns its GPU-hours. The cost
    of an epoch of a workload is the calibration's measurement if it has one, else the
    profile's ``epoch_gpu_hours``."""
    measured = calibration[1] if calibration else {}
    given = profile.epoch_gpu_hours if profile else {}
    per_epoch = {**given, **calibrate.epoch_gpu_hours(measured)}
    lines = cost.sweep_cost(sweep, per_epoch)
    print(f"cost of sweep {sweep.name} (a sharpness-aware epoch at rho > 0 counts twice):")
    for line in cost.describe(lines, cost_source(sweep, lines, profile, name, calibration)):
        print(line)
    hours = [line.gpu_hours for line in lines]
    return None if None in hours else sum(hours)


def cost_source(
    sweep: Sweep,
    lines: Sequence[cost.Line],
    profile: Profile | None,
    name: str,
    calibration: Calibration | None,
) -> str | None:
    """Where a dry run's costs of an epoch come from, as ``cost.describe`` prints it: for a
    sweep priced in full, the workloads the calibration measured (by whom, on what, when) and
    the profile for the rest; for one that is not, where the costs were looked for (None:
    nowhere)."""
    searched = [f"profile {name}"] if profile else []
    if calibration:
        searched.append(f"calibration {calibration[0]}")
    if not searched or any(line.missing for line in lines):
        return " or ".join(searched) or None
    measured = calibration[1] if calibration else {}
    workloads = sorted({cost.workload(config) for config in sweep.runs})
    used = [w for w in workloads if w in measured]
    said = []
    if used:
        by = [
            f"{w} by lightsam calibrate on {measured[w]['device']} at {measured[w]['measured_at']}"
            for w in used
        ]
        said.append(f"measured: {', '.join(by)}, {calibration[0]}")
    if len(used) < len(workloads):
        said.append(f"profile {name}: the rest" if used else f"profile {name}")
    return "; ".join(said)


def describe(run_dir: Path) -> str:
    """One line on a run directory: what it computed and how it ended."""
    config = store.read_config(run_dir) or {}
    optimizer = config.get("optimizer") or {}
    result = store.read_result(run_dir) or {}
    return (
        f"{run_dir.name}  {optimizer.get('name')} lr={optimizer.get('lr')} "
        f"rho={optimizer.get('rho')} seed={config.get('seed')} epochs={config.get('epochs')} "
        f"schema={config.get('schema', 1)}  {result.get('status', 'no result')}"
    )


def status_command(args: argparse.Namespace) -> None:
    sweep, out = sweep_and_store(args)
    plan = sweep.plan()
    state = launch.store_state(plan, out)
    try:
        stored = store.read_plan(out)
    except ValueError as error:
        print(f"warning: the store's plan is unreadable: {error}")
        stored = None
    if stored is not None and stored.runs.keys() != plan.runs.keys():
        print(
            f"note: {sweep.source} differs from the plan last launched into {out}; "
            "`lightsam sweep` makes it the plan"
        )
    if state.queue_note:
        print(f"warning: {state.queue_note}")
    counts = state.counts(plan)
    print(f"{'optimizer':<14}" + "".join(f"{s:>10}" for s in launch.STATES))
    for name, counter in counts.items():
        print(f"{name:<14}" + "".join(f"{counter[s]:>10}" for s in launch.STATES))
    total = sum(counts.values(), collections.Counter())
    print(f"{'total':<14}" + "".join(f"{total[s]:>10}" for s in launch.STATES))
    if state.outside:
        print(f"{len(state.outside)} run(s) outside the plan (never pooled into its cells):")
        for name in state.outside:
            print(f"  {describe(out / name)}")


def cancel_command(args: argparse.Namespace) -> None:
    from lightsam import slurm

    sweep, out = sweep_and_store(args)
    try:
        live = slurm.live_submissions(out)
        slurm.cancel(row["job_id"] for row in live)
    except slurm.SchedulerUnavailable as error:
        raise SystemExit(f"lightsam cancel: {error}") from error
    arrays = len({row["array_id"] for row in live})
    print(f"cancelled {len(live)} queued or running job(s) of sweep {sweep.name} ({arrays} arrays)")


def run_command(args: argparse.Namespace) -> None:
    overrides = list(args.set) + ([f"seed={args.seed}"] if args.seed is not None else [])
    try:
        config = load_spec(project.find(args.spec, "experiments"), overrides)
    except ConfigError as error:
        raise SystemExit(f"lightsam run: {error}") from error
    out = args.out or project.default("runs")
    # Under torchrun every process runs this command; one of them speaks.
    speaks = os.environ.get("RANK", "0") == "0"
    if speaks:
        print(f"run {config.run_id()} -> {out / config.run_id()}", flush=True)
    try:
        result = run(config, out, runtime_of(args))
    except store.RunLocked as error:
        raise SystemExit(f"lightsam run: {error}") from error
    if speaks:
        keys = ("status", "epochs_completed", "val_acc", "test_acc")
        print(", ".join(f"{key}={result[key]}" for key in keys))


def reproduce_command(args: argparse.Namespace) -> None:
    on_slurm = PRESETS[args.preset].executor == "slurm"
    profile = load_profile(args.profile) if on_slurm else None
    if args.dry_run:
        calibration = load_calibration(args)
        total: float | None = 0.0
        for name in PRESETS[args.preset].sweeps:
            sweep = load_or_exit(load_sweep, project.root() / "sweeps" / f"{name}.yaml")
            hours = print_cost(sweep, profile, args.profile, calibration)
            total = None if hours is None or total is None else total + hours
        said = "unknown (a workload above has no cost)" if total is None else f"{total:.1f}"
        print(f"preset {args.preset}: {said} GPU-hours in all, before any stage it adds")
        return
    try:
        reproduce(
            args.preset,
            out=args.out or project.default("runs"),
            sweeps_dir=project.root() / "sweeps",
            runtime=runtime_of(args),
            profile=profile,
            max_parallel=args.max_parallel,
        )
    except store.PlanConflict as error:
        raise SystemExit(f"lightsam reproduce: {error}") from error


def calibrate_command(args: argparse.Namespace) -> None:
    if args.preset is not None:
        names = [project.root() / "sweeps" / f"{n}.yaml" for n in PRESETS[args.preset].sweeps]
    else:
        names = [project.find(name, "sweeps") for name in args.sweeps]
    sweeps = [load_or_exit(load_sweep, path) for path in names]
    out = args.out or calibrate.default_path()
    if out.exists():
        load_or_exit(calibrate.load, out)  # refused before minutes of measuring, not after
    runtime = runtime_of(args)
    done: list[str] = []
    for config in calibrate.representatives(c for sweep in sweeps for c in sweep.runs):
        workload = cost.workload(config)
        print(f"measuring {workload} (run {config.run_id()})", flush=True)
        try:
            m = calibrate.measure(config, runtime, steps=args.steps, warmup=args.warmup)
        except DatasetUnavailableError as error:
            kept = f"; measured before it and written to {out}: {', '.join(done)}" if done else ""
            raise SystemExit(f"lightsam calibrate: {workload}: {error}{kept}") from error
        # Written at once: a workload that fails later (its data missing) keeps the ones before.
        calibrate.write(out, [m])
        done.append(workload)
        passes = "1 pass" if m.passes == 1 else f"{m.passes} passes"
        print(
            f"{m.workload} on {m.device}: {m.seconds_per_step:.4g} s a step ({m.optimizer}, "
            f"{passes}), {m.steps_per_epoch} steps an epoch, evaluation {m.eval_seconds:.3g} s: "
            f"{m.epoch_gpu_hours:.3g} GPU-hours an epoch of a one-pass optimizer",
            flush=True,
        )
    print(f"wrote {out}")


def figures_command(args: argparse.Namespace) -> None:
    try:
        from analysis.report import write_report
    except ImportError as error:
        raise SystemExit(
            "lightsam figures needs the study's analysis package, which a checkout of the "
            f"repository installs (pip install -e .): {error}"
        ) from error
    write_report(
        runs=args.runs or project.default("runs"),
        out=args.out or project.default("figures"),
        report=args.report or project.default("REPORT.md"),
        readme=args.readme,
    )
    if args.readme is not None:
        from analysis.report import rewrite_readme

        rewrite_readme(args.readme, paper_cost(), (cost.README_START, cost.README_END))
        print(f"rewrote the cost block of {args.readme}")


def paper_cost() -> str:
    """The README's block: the paper preset's sweeps priced with the example profile."""
    from lightsam import slurm

    sweeps = [load_sweep(project.root() / "sweeps" / f"{n}.yaml") for n in PRESETS["paper"].sweeps]
    source = Path("slurm/profiles/gpu_example.yaml")
    profile = slurm.load_profile(project.root() / source)
    table = cost.table(sweeps, profile.epoch_gpu_hours, f"[`{source}`]({source})'s estimates")
    return f"{cost.README_START}\n{table}{cost.README_END}"


def migrate_command(args: argparse.Namespace) -> None:
    from lightsam.migrate import migrate_store

    try:
        migration = migrate_store(args.store)
    except FileNotFoundError as error:
        raise SystemExit(f"lightsam migrate: {error}") from error
    print(f"{args.store}: {migration.summary()}")
    if args.sweep is not None:
        sweep = load_or_exit(load_sweep, project.find(args.sweep, "sweeps"))
        try:
            store.write_plan(args.store, sweep.plan())
        except store.PlanConflict as error:
            raise SystemExit(f"lightsam migrate: {error}") from error
        print(f"wrote the plan of sweep {sweep.name} ({len(sweep.runs)} runs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightsam", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"lightsam {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    optimizers = commands.add_parser(
        "optimizers", help="list the registered optimizers and their hyperparameters"
    )
    optimizers.set_defaults(handler=list_optimizers)

    run_parser = commands.add_parser(
        "run", help="train one experiment spec into a run directory (resumes if interrupted)"
    )
    run_parser.add_argument("spec", help="a YAML spec, or the name of one in experiments/")
    run_parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, e.g. --set epochs=1 --set optimizer.rho=0.1",
    )
    run_parser.add_argument("--seed", type=int, help="shorthand for --set seed=N")
    run_parser.add_argument("--out", type=Path, help="the result store (default: runs/)")
    add_runtime_arguments(run_parser)
    run_parser.set_defaults(handler=run_command)

    sweep_parser = commands.add_parser(
        "sweep", help="write a sweep's plan and launch the runs the store still lacks"
    )
    add_sweep_arguments(sweep_parser)
    sweep_parser.add_argument("--executor", choices=launch.EXECUTORS, default="local")
    sweep_parser.add_argument(
        "--dry-run", action="store_true", help="print the runs it would launch, launch nothing"
    )
    sweep_parser.add_argument(
        "--max-parallel",
        type=at_least_one,
        help="runs at once (local: default one per core; slurm: the profile's array limit)",
    )
    sweep_parser.add_argument(
        "--retry-failed", action="store_true", help="rerun only the runs that failed"
    )
    sweep_parser.add_argument(
        "--profile", default="local", help="SLURM profile: a name in slurm/profiles or a path"
    )
    add_calibration_argument(sweep_parser)
    add_runtime_arguments(sweep_parser)
    sweep_parser.set_defaults(handler=sweep_command)

    status_parser = commands.add_parser(
        "status",
        help="count a sweep's runs (done, diverged, failed, running, queued, missing) and list "
        "the store's runs outside its plan",
    )
    add_sweep_arguments(status_parser)
    status_parser.set_defaults(handler=status_command)

    cancel_parser = commands.add_parser(
        "cancel", help="cancel the SLURM jobs of a sweep that are still queued or running"
    )
    add_sweep_arguments(cancel_parser)
    cancel_parser.set_defaults(handler=cancel_command)

    reproduce_parser = commands.add_parser(
        "reproduce", help="run the study's experiments (then `lightsam figures`)"
    )
    reproduce_parser.add_argument("--preset", choices=PRESETS, default="quick")
    reproduce_parser.add_argument("--out", type=Path, help="the result stores (default: runs/)")
    reproduce_parser.add_argument("--profile", default="local", help="SLURM profile (paper)")
    reproduce_parser.add_argument("--max-parallel", type=at_least_one)
    reproduce_parser.add_argument(
        "--dry-run", action="store_true", help="print each sweep's runs and cost, run nothing"
    )
    add_calibration_argument(reproduce_parser)
    add_runtime_arguments(reproduce_parser)
    reproduce_parser.set_defaults(handler=reproduce_command)

    calibrate_parser = commands.add_parser(
        "calibrate",
        help="measure the GPU-hours of an epoch of each workload of sweeps in a short run here, "
        "for their dry runs (--calibration); trains nothing into a store",
    )
    what = calibrate_parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "sweeps", nargs="*", default=[], metavar="SWEEP",
        help="sweep files, or names of ones in sweeps/",
    )  # fmt: skip
    what.add_argument("--preset", choices=PRESETS, help="instead of sweeps: a preset's sweeps")
    calibrate_parser.add_argument(
        "--steps", type=at_least(1), default=20, help="timed training steps (default: 20)"
    )
    calibrate_parser.add_argument(
        "--warmup", type=at_least(0), default=5, help="untimed steps first (default: 5)"
    )
    calibrate_parser.add_argument(
        "--out", type=Path, help="the file to merge into (default: runs/calibration.json)"
    )
    add_runtime_arguments(calibrate_parser, wandb=False)
    calibrate_parser.set_defaults(handler=calibrate_command, wandb=False)

    figures_parser = commands.add_parser(
        "figures", help="regenerate every figure, table and REPORT.md from stored results"
    )
    figures_parser.add_argument("--runs", type=Path, help="the result stores (default: runs/)")
    figures_parser.add_argument("--out", type=Path, help="where figures go (default: figures/)")
    figures_parser.add_argument("--report", type=Path, help="the report (default: REPORT.md)")
    figures_parser.add_argument(
        "--readme", type=Path, help="rewrite this README's results block (make figures does)"
    )
    figures_parser.set_defaults(handler=figures_command)

    migrate_parser = commands.add_parser(
        "migrate", help="rename a store's runs written under an earlier identity schema"
    )
    migrate_parser.add_argument("store", type=Path, help="a result store (runs/<sweep>)")
    migrate_parser.add_argument("--sweep", help="also write this sweep's plan into the store")
    migrate_parser.set_defaults(handler=migrate_command)
    return parser


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", help="a sweep file, or the name of one in sweeps/")
    parser.add_argument("--out", type=Path, help="the result store (default: runs/<sweep>)")


def add_calibration_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calibration",
        type=Path,
        help="a file of lightsam calibrate: a dry run prices its measured workloads with it "
        "(over the profile); read by dry runs only",
    )


def at_least(minimum: int):
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    return parse


at_least_one = at_least(1)  # runs at once


def add_runtime_arguments(parser: argparse.ArgumentParser, *, wandb: bool = True) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--channels-last", action="store_true", help="channels-last memory format for images"
    )
    parser.add_argument("--data-dir", type=Path, help="where datasets are (default: data/)")
    parser.add_argument(
        "--download", action="store_true", help="download (and verify) missing datasets"
    )
    if wandb:  # calibrate trains nothing to log
        parser.add_argument(
            "--wandb",
            action="store_true",
            default=bool(os.environ.get("WANDB_MODE")),
            help="log to Weights & Biases (default: on when WANDB_MODE is set)",
        )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    # A spec the data cannot serve (found when a run or a sweep starts), a full disk, a
    # read-only directory: one line naming the field or the file, no traceback.
    except (ConfigError, store.WriteFailed) as error:
        raise SystemExit(f"lightsam {args.command}: {error}") from error
