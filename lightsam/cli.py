"""The ``lightsam`` command."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from lightsam import __version__
from lightsam.config import ConfigError, load_spec
from lightsam.optim import OPTIMIZERS
from lightsam.train import Runtime, run


def list_optimizers(_: argparse.Namespace) -> None:
    for name, entry in OPTIMIZERS.items():
        kind = "sharpness-aware" if entry.sharpness_aware else "base"
        print(f"{name:<14} {kind:<16} {', '.join(sorted(entry.hyperparameters))}")


def resolve_spec(spec: str) -> Path:
    """A spec's path, or the name of one in ./experiments (``mnist5k_lenet``)."""
    path = Path(spec)
    if path.exists() or path.suffix:
        return path
    return Path("experiments") / f"{spec}.yaml"


def run_command(args: argparse.Namespace) -> None:
    overrides = list(args.set) + ([f"seed={args.seed}"] if args.seed is not None else [])
    try:
        config = load_spec(resolve_spec(args.spec), overrides)
    except ConfigError as error:
        raise SystemExit(f"lightsam run: {error}") from error
    runtime = Runtime(data_dir=args.data_dir, download=args.download, wandb=args.wandb)
    print(f"run {config.run_id()} -> {args.out / config.run_id()}", flush=True)
    result = run(config, args.out, runtime)
    summary = ", ".join(
        f"{key}={result[key]}" for key in ("status", "epochs_completed", "val_acc", "test_acc")
    )
    print(summary)


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
    run_parser.add_argument("--data-dir", type=Path, default=Path("data"))
    run_parser.add_argument(
        "--download", action="store_true", help="download (and verify) missing datasets"
    )
    run_parser.add_argument(
        "--wandb",
        action="store_true",
        default=bool(os.environ.get("WANDB_MODE")),
        help="log to Weights & Biases (default: on when WANDB_MODE is set)",
    )
    run_parser.set_defaults(handler=run_command)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.handler(args)
