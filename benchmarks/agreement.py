"""Do two runs of the benchmarks give the same verdicts? The test of a benchmark one can trust:
``python -m benchmarks.agreement FIRST.json SECOND.json`` (two ``make bench`` result files of
the same machine).

Every judged comparison of either file (a verdict against a goal, ``not judged`` left out) is
found in the other by its table and its (model, arm, baseline); each whose verdict differs is
printed with both figures, then the count that agree; a note first when the files' machines
(CPU, torch, Python) differ. Exit status 0 when all agree, 1 when one differs or is in one file
only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks.compare import NOT_JUDGED
from benchmarks.report import load, ratio_text

Key = tuple[str, str, str, str]


def judged(doc: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    """The judged comparisons of a result file, by (table id, model, arm, baseline)."""
    found = {}
    for t in doc["tables"]:
        for r in t["records"]:
            if r.get("verdict", NOT_JUDGED) != NOT_JUDGED:
                found[(t["id"], r["model"], r["arm"], r["baseline"])] = r
    return found


def disagreements(first: dict[str, Any], second: dict[str, Any]) -> tuple[list[str], int, int]:
    """(a line for each comparison whose verdicts differ or that one file lacks, the number of
    comparisons judged in both files, how many of those differ)."""
    a, b = judged(first), judged(second)
    lines, differ = [], 0
    for key in sorted(a.keys() | b.keys()):
        where = f"{key[0]}: {key[1]} {key[2]} / {key[3]}"
        if key not in a or key not in b:
            lines.append(f"{where}: judged in the {'first' if key in a else 'second'} file only")
        elif a[key]["verdict"] != b[key]["verdict"]:
            differ += 1
            lines.append(
                f"{where}: {a[key]['verdict']} at {ratio_text(a[key])} against "
                f"{b[key]['verdict']} at {ratio_text(b[key])} (goal {a[key]['goal']})"
            )
    return lines, len(a.keys() & b.keys()), differ


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", help="a result file of make bench (JSON)")
    parser.add_argument("second", help="another, of the same benchmarks on the same machine")
    args = parser.parse_args(argv)
    try:
        first, second = load(args.first), load(args.second)
    except (OSError, ValueError) as error:
        raise SystemExit(f"benchmarks.agreement: {error}") from None
    if first["machine"] != second["machine"]:
        print("note: the two files were measured on different machines or software")
    lines, both, differ = disagreements(first, second)
    for line in lines:
        print(line)
    print(f"{both - differ} of {both} verdicts agree" + ("" if both else " (none judged)"))
    if lines:
        sys.exit(1)


if __name__ == "__main__":
    main()
