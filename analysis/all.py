"""Every figure and table of the study, from a result store and the agnostic experiment.

    python analysis/all.py --store runs/mnist5k_quick --agnostic results/agnostic --out figures

Either input may be absent; what needs it is skipped, and the output says so. The store is read
once and handed to each script.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import common
import fig_agnostic
import fig_heatmaps
import fig_robustness
import fig_sensitivity
import fig_training_curves
import table_best

STORE_SCRIPTS = (table_best, fig_heatmaps, fig_sensitivity, fig_robustness, fig_training_curves)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="the sweep's result store")
    parser.add_argument("--agnostic", type=Path, help="the synthetic experiment's output")
    parser.add_argument("--out", type=Path, required=True, help="where the outputs go")
    args = parser.parse_args(argv)
    names = ", ".join(script.__name__ for script in STORE_SCRIPTS)
    collection = None
    if args.store is None or not args.store.is_dir():
        print(f"no result store ({args.store}): skipping {names}")
    else:
        collection = common.load(args.store)
    if collection is not None:
        for script in STORE_SCRIPTS:
            common.report(script.make(collection, args.out))
    if args.agnostic is None or not (args.agnostic / "cells.csv").exists():
        print(f"no agnostic experiment ({args.agnostic}): skipping fig_agnostic")
    else:
        common.report(fig_agnostic.make(args.agnostic, args.out))


if __name__ == "__main__":
    main()
