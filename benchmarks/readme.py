"""Rewrite the README's benchmark block from the benchmarks' result files (``make bench``):
``python -m benchmarks.readme README.md benchmarks/results/cpu.json [more.json ...]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from analysis.report import rewrite_readme
from benchmarks.optimizer_step import HPARAMS
from benchmarks.report import readme_block
from lightsam import OPTIMIZERS, method_memory

START = "<!-- bench:start (written by python -m benchmarks.readme; do not edit) -->"
END = "<!-- bench:end -->"


def memory_table() -> str:
    """Every registered method's extra memory in floats per parameter, read from the optimizer's
    own state after a step (``lightsam.method_memory``), at the benchmarks' hyperparameters."""
    rows = [
        "### Optimizer memory per parameter",
        "",
        "Floats kept per parameter beside the weights and their gradient, from each optimizer's "
        "state after one step (`lightsam.method_memory`): its statistics (of which the "
        "ascent's), and the weights a sharpness-aware step saves before its ascent.",
        "",
        "| method | statistics | of which the ascent's | saved weights | total |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in OPTIMIZERS:
        m = method_memory(name, **HPARAMS[name])
        rows.append(
            f"| {name} | {m.statistics:g} | {m.ascent_statistics:g} | {m.saved_weights:g} | "
            f"{m.per_parameter:g} |"
        )
    return "\n".join(rows) + "\n"


def block(results: Sequence[Path]) -> str:
    return f"{START}\n{readme_block(results)}\n{memory_table()}{END}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("readme", type=Path)
    parser.add_argument("results", nargs="+", type=Path, help="result files of make bench")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.results if not p.is_file()]
    if missing:
        parser.error(f"no such result file: {', '.join(missing)}")
    rewrite_readme(args.readme, block(args.results), (START, END))
    print(f"rewrote the benchmark block of {args.readme}")


if __name__ == "__main__":
    main()
