"""The benchmarks' result files: JSON documents, their markdown, and the README's block.

A document holds the machine it was measured on and a list of tables. A table has a kind:
``ratio`` (interleaved comparisons, ``benchmarks.compare``), ``memory`` (exact byte counts of an
arm and its baseline) or ``check`` (a smoke run's figures against what they must be). Every
figure the README shows is rendered from these files by :func:`readme_block`, never typed.

``python -m benchmarks.report PART.json ... --out FILE.json`` combines the documents of several
runs (the pieces of ``benchmarks/cpu.sh`` or ``benchmarks/gpu.sh``) into one, and writes
``FILE.md`` beside it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.compare import BELOW_FLOOR, NOT_JUDGED

SCHEMA = 2  # 2: ratio records carry the interval their verdict judges
KINDS = ("ratio", "memory", "check")


def machine(device: torch.device) -> dict[str, Any]:
    """What a figure was measured on: the processor or GPU, threads, software."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        cpuinfo = Path("/proc/cpuinfo")
        if cpuinfo.exists():
            models = [line for line in cpuinfo.read_text().splitlines() if "model name" in line]
            if models:
                name = models[0].split(":", 1)[1].strip()
    return {
        "device": device.type,
        "name": name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def table(
    id: str,
    title: str,
    kind: str,
    records: list[dict[str, Any]],
    *,
    notes: Sequence[str] = (),
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"table kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return {
        "id": id,
        "title": title,
        "kind": kind,
        "notes": list(notes),
        "settings": settings or {},
        "records": records,
    }


def command(module: str, argv: Sequence[str] | None) -> str:
    """The command line that runs ``module`` with ``argv`` (default: this process's)."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])


def document(device: torch.device, tables: list[dict[str, Any]], command: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(device),
        "commands": [command],
        "notes": [],
        "failures": [],
        "tables": tables,
    }


def combine(
    documents: Sequence[dict[str, Any]],
    *,
    failures: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """One document of several runs on one machine, their tables in order, with the pieces
    that failed to run and notes on the whole (``benchmarks/gpu.sh`` records both)."""
    if not documents:
        raise ValueError("nothing to combine")
    return {
        "schema": SCHEMA,
        "created": max(d["created"] for d in documents),
        "machine": documents[0]["machine"],
        "commands": [c for d in documents for c in d["commands"]],
        "notes": [n for d in documents for n in d["notes"]] + list(notes),
        "failures": [f for d in documents for f in d["failures"]] + list(failures),
        "tables": [t for d in documents for t in d["tables"]],
    }


def load(path: Path | str) -> dict[str, Any]:
    doc = json.loads(Path(path).read_text())
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a benchmark result of schema {SCHEMA}")
    return doc


def write(path: Path, doc: dict[str, Any]) -> None:
    """``path`` (JSON) and its markdown rendering beside it, ``path`` with ``.md``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    path.with_suffix(".md").write_text(render_markdown(doc))


def publish(
    tables: list[dict[str, Any]], device: torch.device, out: Path | None, command: str
) -> bool:
    """Print ``tables``, write them to ``out`` if given; whether every check in them passed."""
    for t in tables:
        print(render_table(t))
    if out is not None:
        write(out, document(device, tables, command))
    return all(r["passed"] for t in tables if t["kind"] == "check" for r in t["records"])


def entry(
    module: str,
    parse_args: Callable[[Sequence[str] | None], argparse.Namespace],
    run: Callable[[argparse.Namespace], list[dict[str, Any]]],
    argv: Sequence[str] | None,
) -> None:
    """A benchmark's ``main``: parse ``argv``, run, publish; exit 1 when a check failed."""
    args = parse_args(argv)
    if not publish(run(args), args.device, args.out, command(module, argv)):
        sys.exit(1)


# -- rendering ------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 1000 else f"{value:.3g}"


def _mb(value: float) -> str:
    return f"{value / 2**20:.1f}"


def _row(cells: Iterable[object]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _grid(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    return [_row(header), _row("---" for _ in header), *(_row(r) for r in rows)]


def verdict_text(record: dict[str, Any]) -> str:
    """The verdict, and the rounds below the floor: a measurement problem when the whole
    interval is below it, noise when it is not (``benchmarks.compare``)."""
    verdict = record["verdict"]
    if verdict == NOT_JUDGED:
        verdict = "not judged here" if record["goal"] else ""
    below = record["rounds_below_floor"]
    if not below:
        return verdict
    floor, rounds = (
        f"the {record['floor']:.2f}x floor",
        f"{below} of {len(record['ratios'])} rounds",
    )
    if verdict == BELOW_FLOOR:
        return f"**measurement problem**: the 95% interval below {floor} ({rounds})"
    noise = f"{rounds} below {floor}, as noise"
    return f"{verdict} ({noise})".strip()


def ratio_text(record: dict[str, Any]) -> str:
    """The median ratio, its min-max, and the 95% interval the verdict judges."""
    return (
        f"{record['ratio']:.2f}x ({record['low']:.2f}–{record['high']:.2f}; "
        f"95% {record['interval_low']:.2f}–{record['interval_high']:.2f})"
    )


def settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in settings.items())


def _ratio_row(r: dict[str, Any]) -> list[str]:
    floor = "" if r["floor"] is None else f"{r['floor']:.2f}x"
    return [
        *(r["model"], r["arm"], r["baseline"], _ms(r["arm_ms"]), _ms(r["baseline_ms"])),
        *(ratio_text(r), floor, r["goal"] or "", verdict_text(r)),
    ]


def _memory_row(r: dict[str, Any]) -> list[str]:
    return [
        *(r["model"], r["arm"], r["baseline"], _mb(r["arm_bytes"]), _mb(r["baseline_bytes"])),
        f"{r['arm_bytes'] / r['baseline_bytes']:.2f}x",
    ]


def _check_row(r: dict[str, Any]) -> list[str]:
    return [r["name"], r["value"], r["expected"], "ok" if r["passed"] else "**FAILED**"]


RATIO_HEADER = [
    *("model", "arm", "baseline", "arm ms", "baseline ms"),
    "ratio (min–max; 95% interval)",
]
FULL = {
    "ratio": ([*RATIO_HEADER, "floor", "goal", "verdict"], _ratio_row),
    "memory": (["model", "arm", "baseline", "arm MiB", "baseline MiB", "ratio"], _memory_row),
    "check": (["check", "value", "expected", "result"], _check_row),
}


def _full_grid(t: dict[str, Any]) -> list[str]:
    """Every record of a table with its absolute figures."""
    header, row = FULL[t["kind"]]
    return _grid(header, (row(r) for r in t["records"]))


def _pivot(t: dict[str, Any]) -> list[str]:
    """A ratio or memory table with one row per arm and one column per model."""
    models = list(dict.fromkeys(r["model"] for r in t["records"]))
    arms: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in t["records"]:
        arms.setdefault((r["arm"], r["baseline"]), {})[r["model"]] = r
    ratio = t["kind"] == "ratio"
    rows = []
    for (arm, baseline), by_model in arms.items():
        row = [arm, baseline]
        if ratio:
            row.append("; ".join(dict.fromkeys(r["goal"] for r in by_model.values() if r["goal"])))
        for model in models:
            r = by_model.get(model)
            if r is None:
                row.append("")
            elif ratio:
                row.append(f"{ratio_text(r)} {verdict_text(r)}".strip())
            else:
                times = r["arm_bytes"] / r["baseline_bytes"]
                row.append(f"{times:.2f}x ({_mb(r['arm_bytes'])} / {_mb(r['baseline_bytes'])} MiB)")
        rows.append(row)
    return _grid(["arm", "baseline", *(["goal"] if ratio else []), *models], rows)


def _heading(t: dict[str, Any]) -> list[str]:
    lines = [f"### {t['title']}", ""]
    if t["settings"]:
        lines += [settings_text(t["settings"]), ""]
    for note in t["notes"]:
        lines += [note, ""]
    return lines


def render_table(t: dict[str, Any]) -> str:
    """One table in full: its title, settings and notes, every record."""
    return "\n".join([*_heading(t), *_full_grid(t)]) + "\n"


def machine_text(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    return (
        f"{m['name']} ({m['device']}, threads {m['threads']}), torch {m['torch']}, "
        f"Python {m['python']}; measured {doc['created']}"
    )


def _preamble(doc: dict[str, Any]) -> list[str]:
    """The document's notes and failed pieces, a paragraph each."""
    lines = [f"**Failed: {failure}**" for failure in doc["failures"]] + doc["notes"]
    return [paragraph for line in lines for paragraph in (line, "")]


def render_markdown(doc: dict[str, Any]) -> str:
    """The whole document: the machine, any piece that failed, every table in full."""
    parts = ["# Benchmark results", "", machine_text(doc), "", *_preamble(doc)]
    return "\n".join(parts + [render_table(t) for t in doc["tables"]])


def readme_block(paths: Sequence[Path | str]) -> str:
    """The markdown the README shows for the result files ``paths`` (e.g.
    ``["benchmarks/results/cpu.json"]``): for each file the machine, then every table compact,
    one row per arm and one column per model, each cell the median ratio, its min-max, the 95%
    interval and the verdict (checks as they are)."""
    out: list[str] = []
    for path in paths:
        doc = load(path)
        out += [f"From `{Path(path).as_posix()}`: {machine_text(doc)}.", "", *_preamble(doc)]
        for t in doc["tables"]:
            out += _heading(t)
            out += _full_grid(t) if t["kind"] == "check" else _pivot(t)
            out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Combine benchmark result files into one.")
    parser.add_argument("parts", nargs="+", type=Path, help="result files of single runs")
    parser.add_argument("--out", type=Path, required=True, help="the combined JSON file")
    parser.add_argument(
        "--failure", action="append", default=[], help="a piece that failed, to record"
    )
    parser.add_argument("--note", action="append", default=[], help="a note on the whole run")
    args = parser.parse_args(argv)
    if args.out.suffix != ".json":
        parser.error(f"--out must end in .json, got {args.out}")
    missing = [str(p) for p in args.parts if not p.is_file()]
    if missing:
        parser.error(f"no such result file: {', '.join(missing)}")
    doc = combine([load(p) for p in args.parts], failures=args.failure, notes=args.note)
    write(args.out, doc)
    print(f"results in {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
