"""The ``lightsam`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lightsam import __version__
from lightsam.optim import OPTIMIZERS


def list_optimizers(_: argparse.Namespace) -> None:
    for name, entry in OPTIMIZERS.items():
        kind = "sharpness-aware" if entry.sharpness_aware else "base"
        print(f"{name:<14} {kind:<16} {', '.join(sorted(entry.hyperparameters))}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightsam", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lightsam {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    optimizers = commands.add_parser(
        "optimizers", help="list the registered optimizers and their hyperparameters"
    )
    optimizers.set_defaults(handler=list_optimizers)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.handler(args)
