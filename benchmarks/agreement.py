"""Do two runs of the benchmarks give the same verdicts? The test of a benchmark one can trust:
``python -m benchmarks.agreement FIRST.json SECOND.json`` (two ``make bench`` result files of
the same machine).

Every judged comparison of either file (a verdict against a goal, ``not judged`` left out) is
found in the other by its table and its (model, arm, baseline); each whose verdict differs is
printed with both figures, then the count that agree and the count that contradict ("ok" in one
run, "miss" in the other: each run confident of the opposite side of the goal, which 95%
intervals should make rare; a decided verdict against "within noise" is a step near its goal).
A note comes first when the files' machines (CPU, torch, Python) differ. Exit status 0 when all
agree, 1 when one differs or is in one file only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks.compare import MISS, NOT_JUDGED, OK
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


def disagreements(first: dict[str, Any], second: dict[str, Any]) -> tuple[list[str], int, int, int]:
    """(a line for each comparison whose verdicts differ or that one file lacks, the number of
    comparisons judged in both files, how many of those differ, how many contradict)."""
    a, b = judged(first), judged(second)
    lines, differ, contradict = [], 0, 0
    for key in sorted(a.keys() | b.keys()):
        where = f"{key[0]}: {key[1]} {key[2]} / {key[3]}"
        if key not in a or key not in b:
            lines.append(f"{where}: judged in the {'first' if key in a else 'second'} file only")
        elif a[key]["verdict"] != b[key]["verdict"]:
            differ += 1
            contradict += {a[key]["verdict"], b[key]["verdict"]} == {OK, MISS}
            lines.append(
                f"{where}: {a[key]['verdict']} at {ratio_text(a[key])} against "
                f"{b[key]['verdict']} at {ratio_text(b[key])} (goal {a[key]['goal']})"
            )
    return lines, len(a.keys() & b.keys()), differ, contradict


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
    lines, both, differ, contradict = disagreements(first, second)
    for line in lines:
        print(line)
    agree = f"{both - differ} of {both} verdicts agree" + ("" if both else " (none judged)")
    print(f"{agree}; {contradict} contradict (ok against miss)")
    if lines:
        sys.exit(1)


if __name__ == "__main__":
    main()
