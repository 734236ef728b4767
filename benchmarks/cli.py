"""What the benchmarks' command lines share: the device and its threads, the rounds, precision,
and the result file; each argument checked as it is parsed."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Sizes:
    """A benchmark's default rounds, calls per round and warm-up calls on one kind of device
    (CUDA needs more warm-up: lazy initialisation, cuDNN's choices, the caching allocator)."""

    rounds: int
    calls: int
    warmup: int = 1

    def __str__(self) -> str:
        return f"{self.rounds} rounds x {self.calls} call(s) per arm, {self.warmup} warm-up"


def sizes(args: argparse.Namespace, default: Sizes) -> Sizes:
    """``default`` with what the command line sets instead."""
    return Sizes(
        rounds=args.rounds or default.rounds,
        calls=args.calls or default.calls,
        warmup=default.warmup if args.warmup is None else args.warmup,
    )


def device(text: str) -> torch.device:
    try:
        parsed = torch.device(text)
    except RuntimeError as error:
        raise argparse.ArgumentTypeError(f"not a device: {text!r} ({error})") from None
    if parsed.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"device must be cpu or cuda[:N], got {text!r}")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: torch sees no CUDA device on this machine")
    if parsed.type == "cuda" and (parsed.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(
            f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    return parsed


def _integer(text: str, minimum: int, why: str = "") -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{why}must be >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1)


def non_negative_int(text: str) -> int:
    return _integer(text, 0)


def rounds(text: str) -> int:
    return _integer(text, 2, "a spread needs two rounds at least: rounds ")


def choices(text: str, valid: Iterable[str]) -> list[str]:
    """A comma-separated list of names, each one of ``valid``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in valid]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown: {', '.join(unknown) or 'nothing given'}; valid: {', '.join(valid)}"
        )
    return names


def assignment(text: str, valid: Iterable[str]) -> tuple[str, int]:
    """``NAME=N``: a name of ``valid`` and a positive integer."""
    name, sep, value = text.partition("=")
    if not sep or name not in valid:
        raise argparse.ArgumentTypeError(
            f"expected NAME=N with NAME one of {', '.join(valid)}, got {text!r}"
        )
    return name, positive_int(value)


def parser(description: str, *, timed: bool = True) -> argparse.ArgumentParser:
    """A parser with the shared arguments; ``timed`` adds the interleaved loop's sizes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--device",
        type=device,
        default=torch.device("cuda" if torch.cuda.is_available() else "cpu"),
        help="cpu or cuda[:N] (default: cuda when there is one)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        help="CPU threads for torch (default: torch's choice, one per core)",
    )
    p.add_argument("--out", type=Path, help="write the results to this JSON file (and .md)")
    if timed:
        p.add_argument("--rounds", type=rounds, help="interleaved rounds (default: per device)")
        p.add_argument("--calls", type=positive_int, help="calls per arm and round")
        p.add_argument(
            "--warmup",
            type=non_negative_int,
            help="untimed calls per arm first (default: per device)",
        )
    return p


def add_precision(p: argparse.ArgumentParser, *, channels_last: bool = True) -> None:
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp32, or bf16 (autocast for a training step, bf16 weights for an optimizer step)",
    )
    if channels_last:
        p.add_argument(
            "--channels-last", action="store_true", help="models and inputs in channels_last"
        )


def setup(args: argparse.Namespace) -> torch.device:
    """Apply the device settings of ``args`` and return the device."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device.type == "cuda":
        torch.cuda.set_device(args.device)  # the timing events record on its current stream
    else:
        # Benchmarks repeat steps on one fixed batch, which drives gradients and statistics
        # towards zero; denormal arithmetic would then time the CPU's slow path, not the code.
        torch.set_flush_denormal(True)
    return args.device
