"""Rewrite the README's benchmark block from the benchmarks' result files (``make bench``):
``python -m benchmarks.readme README.md benchmarks/results/cpu.json [more.json ...]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from analysis.report import rewrite_readme
from benchmarks.report import readme_block

START = "<!-- bench:start (written by python -m benchmarks.readme; do not edit) -->"
END = "<!-- bench:end -->"


def block(results: Sequence[Path]) -> str:
    return f"{START}\n{readme_block(results)}\n{END}"


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
