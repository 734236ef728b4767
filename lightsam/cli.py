"""The ``lightsam`` command."""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from lightsam import __version__, launch
from lightsam.config import ConfigError, load_spec
from lightsam.optim import OPTIMIZERS
from lightsam.reproduce import PRESETS, reproduce
from lightsam.store import RunLocked
from lightsam.sweep import load_sweep
from lightsam.train import Runtime, run


def list_optimizers(_: argparse.Namespace) -> None:
    for name, entry in OPTIMIZERS.items():
        kind = "sharpness-aware" if entry.sharpness_aware else "base"
        print(f"{name:<14} {kind:<16} {', '.join(sorted(entry.hyperparameters))}")


def resolve(name_or_path: str, folder: str) -> Path:
    """A file's path, or the name of a YAML file in ./<folder> (``mnist5k_lenet``)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix:
        return path
    return Path(folder) / f"{name_or_path}.yaml"


def load_or_exit(loader, *args):
    try:
        return loader(*args)
    except ConfigError as error:
        raise SystemExit(f"lightsam: {error}") from error


def sweep_command(args: argparse.Namespace) -> None:
    sweep = load_or_exit(load_sweep, resolve(args.sweep, "sweeps"))
    out = args.out or Path("runs") / sweep.name
    if args.dry_run:
        configs = launch.to_launch(sweep.runs, out, retry_failed=args.retry_failed)
        where = args.executor + (f" (profile {args.profile})" if args.executor == "slurm" else "")
        print(f"sweep {sweep.name}: {len(configs)} of {len(sweep.runs)} runs to launch -> {out}")
        for c in configs:
            print(
                f"{c.optimizer.name:<14} lr={c.optimizer.lr:<10g} rho={c.optimizer.rho!s:<10} "
                f"seed={c.seed:<3} {c.run_id()}  {where}"
            )
        return
    profile = load_or_exit(launch.load_profile, args.profile) if args.executor == "slurm" else None
    launch.launch_sweep(
        sweep,
        out,
        Runtime(data_dir=args.data_dir, download=args.download, wandb=args.wandb),
        executor=args.executor,
        profile=profile,
        max_parallel=args.max_parallel,
        retry_failed=args.retry_failed,
    )


def status_command(args: argparse.Namespace) -> None:
    sweep = load_or_exit(load_sweep, resolve(args.sweep, "sweeps"))
    out = args.out or Path("runs") / sweep.name
    counts = launch.status(sweep.runs, out)
    print(f"{'optimizer':<14}" + "".join(f"{state:>10}" for state in launch.STATES))
    for name, counter in counts.items():
        print(f"{name:<14}" + "".join(f"{counter[state]:>10}" for state in launch.STATES))
    total = sum(counts.values(), collections.Counter())
    print(f"{'total':<14}" + "".join(f"{total[state]:>10}" for state in launch.STATES))


def run_command(args: argparse.Namespace) -> None:
    overrides = list(args.set) + ([f"seed={args.seed}"] if args.seed is not None else [])
    try:
        config = load_spec(resolve(args.spec, "experiments"), overrides)
    except ConfigError as error:
        raise SystemExit(f"lightsam run: {error}") from error
    runtime = Runtime(data_dir=args.data_dir, download=args.download, wandb=args.wandb)
    # Under torchrun every process runs this command; one of them speaks.
    speaks = os.environ.get("RANK", "0") == "0"
    if speaks:
        print(f"run {config.run_id()} -> {args.out / config.run_id()}", flush=True)
    try:
        result = run(config, args.out, runtime)
    except RunLocked as error:
        raise SystemExit(f"lightsam run: {error}") from error
    if speaks:
        keys = ("status", "epochs_completed", "val_acc", "test_acc")
        print(", ".join(f"{key}={result[key]}" for key in keys))


def reproduce_command(args: argparse.Namespace) -> None:
    runtime = Runtime(data_dir=args.data_dir, download=args.download, wandb=args.wandb)
    reproduce(
        args.preset,
        out=args.out,
        sweeps_dir=Path("sweeps"),
        runtime=runtime,
        profile=args.profile,
        max_parallel=args.max_parallel,
    )


def figures_command(args: argparse.Namespace) -> None:
    script = Path("analysis") / "report.py"
    if not script.exists():
        raise SystemExit("lightsam figures: run it from the repository root (analysis/report.py)")
    command = [sys.executable, str(script), "--runs", str(args.runs), "--out", str(args.out)]
    command += ["--report", str(args.report)]
    if args.readme is not None:
        command += ["--readme", str(args.readme)]
    raise SystemExit(subprocess.run(command).returncode)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightsam", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lightsam {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    optimizers = commands.add_parser(
        "optimizers", help="list the registered optimizers and their hyperparameters"
    )
    optimizers.set_defaults(handler=list_optimizers)

    run_parser = commands.add_parser(
        "run", help="train one experiment spec into a run directory (resumes if interrupted)"
    )
    run_parser.add_argument("spec", help="a YAML spec, or the name of one in ./experiments")
    run_parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value, e.g. --set epochs=1 --set optimizer.rho=0.1",
    )
    run_parser.add_argument("--seed", type=int, help="shorthand for --set seed=N")
    run_parser.add_argument("--out", type=Path, default=Path("runs"), help="the result store")
    add_runtime_arguments(run_parser)
    run_parser.set_defaults(handler=run_command)

    sweep_parser = commands.add_parser(
        "sweep", help="launch the runs of a sweep that are not complete yet"
    )
    sweep_parser.add_argument("sweep", help="a sweep file, or the name of one in ./sweeps")
    sweep_parser.add_argument("--executor", choices=launch.EXECUTORS, default="local")
    sweep_parser.add_argument(
        "--dry-run", action="store_true", help="print the runs it would launch, launch nothing"
    )
    sweep_parser.add_argument(
        "--max-parallel",
        type=int,
        help="runs at once (local: default one per core; slurm: the profile's array limit)",
    )
    sweep_parser.add_argument(
        "--retry-failed", action="store_true", help="rerun only the runs that failed"
    )
    sweep_parser.add_argument(
        "--profile", default="local", help="SLURM profile: a name in ./slurm/profiles or a path"
    )
    sweep_parser.add_argument("--out", type=Path, help="the result store (default runs/<sweep>)")
    add_runtime_arguments(sweep_parser)
    sweep_parser.set_defaults(handler=sweep_command)

    status_parser = commands.add_parser(
        "status", help="count a sweep's runs: done, diverged, failed, running, missing"
    )
    status_parser.add_argument("sweep")
    status_parser.add_argument("--out", type=Path, help="the result store (default runs/<sweep>)")
    status_parser.set_defaults(handler=status_command)

    reproduce_parser = commands.add_parser(
        "reproduce", help="run the study's experiments (then `lightsam figures`)"
    )
    reproduce_parser.add_argument("--preset", choices=PRESETS, default="quick")
    reproduce_parser.add_argument("--out", type=Path, default=Path("runs"))
    reproduce_parser.add_argument("--profile", default="local", help="SLURM profile (paper)")
    reproduce_parser.add_argument("--max-parallel", type=int)
    add_runtime_arguments(reproduce_parser)
    reproduce_parser.set_defaults(handler=reproduce_command)

    figures_parser = commands.add_parser(
        "figures", help="regenerate every figure, table and REPORT.md from stored results"
    )
    figures_parser.add_argument("--runs", type=Path, default=Path("runs"))
    figures_parser.add_argument("--out", type=Path, default=Path("figures"))
    figures_parser.add_argument("--report", type=Path, default=Path("REPORT.md"))
    figures_parser.add_argument(
        "--readme", type=Path, help="rewrite this README's results block (make figures does)"
    )
    figures_parser.set_defaults(handler=figures_command)
    return parser


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument(
        "--download", action="store_true", help="download (and verify) missing datasets"
    )
    parser.add_argument(
        "--wandb",
        action="store_true",
        default=bool(os.environ.get("WANDB_MODE")),
        help="log to Weights & Biases (default: on when WANDB_MODE is set)",
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.handler(args)
