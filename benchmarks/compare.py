"""How two arms timed round by round become a figure and a verdict.

A figure is the median of the per-round ratios ``arm / baseline``; its spread is their min-max.
A verdict against a goal is given only when the whole spread is on one side of the goal: a goal
inside the spread is "within noise", however the median falls. A floor is a ratio below which no
correct measurement can fall (two forward-backward passes cannot cost less than one pass and a
step that has one pass). The figure, the median, below the floor is a measurement problem, never
a result: no verdict is given. Single rounds below it, in a spread whose median is above it,
are counted and shown as noise: where a method's step really costs the floor (SGD-SAM on
LeNet-5 on a CPU, whose update is a few per cent of its step), the few per cent a round varies
by put a share of a correct measurement's rounds below it. There the median lands on either side
of the floor from run to run, and so does the verdict: such a step is reported as at its floor,
not judged.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

OK = "ok"
MISS = "miss"
WITHIN_NOISE = "within noise"
BELOW_FLOOR = "below floor"
NOT_JUDGED = "not judged"  # no goal, or a goal for another device


@dataclass(frozen=True)
class Spread:
    """The median of some values and their min-max."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("a spread needs at least one value")
        return cls(statistics.median(values), min(values), max(values))


def ratios(arm: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Round by round, ``arm / baseline``: each ratio compares times taken seconds apart."""
    if len(arm) != len(baseline):
        raise ValueError(f"{len(arm)} rounds of the arm against {len(baseline)} of the baseline")
    return [a / b for a, b in zip(arm, baseline, strict=True)]


def two_pass_floor(pass_seconds: Sequence[float], base_seconds: Sequence[float]) -> float:
    """The least a sharpness-aware step can cost relative to its base's, from the rounds of the
    forward-backward pass timed alone and of the base's step.

    With ``P`` one forward-backward pass and ``u`` the base's update, the base's step is
    ``P + u`` and the method's at least ``2 P + u`` (two passes, and a descent that is the base's
    update or as much work), so the ratio is at least ``1 + P / (P + u)``: 2.0 when the update is
    free, less when it is a share of the step. ``P / (P + u)`` is the median of its per-round
    values, and the floor never above 2.0: a pass timed slower than the step that contains it is
    noise, not a higher floor."""
    return min(2.0, 1.0 + Spread.of(ratios(pass_seconds, base_seconds)).median)


@dataclass(frozen=True)
class Goal:
    """A ratio at most (or, with ``at_most=False``, at least) ``limit``, judged only on
    ``device`` when one is named (a CUDA goal is out of reach on CPU by construction)."""

    limit: float
    at_most: bool = True
    device: str | None = None

    def __str__(self) -> str:
        where = f" on {self.device}" if self.device else ""
        return f"{'<=' if self.at_most else '>='} {self.limit:g}x{where}"

    def verdict(self, spread: Spread, device: str) -> str:
        if self.device is not None and self.device != device:
            return NOT_JUDGED
        if self.at_most:
            met, missed = spread.high <= self.limit, spread.low > self.limit
        else:
            met, missed = spread.low >= self.limit, spread.high < self.limit
        return OK if met else MISS if missed else WITHIN_NOISE


@dataclass(frozen=True)
class Comparison:
    """One arm against its baseline over the same interleaved rounds (seconds per call), with
    the floor of the ratio where one is known."""

    model: str
    arm: str
    baseline: str
    arm_seconds: Sequence[float]
    baseline_seconds: Sequence[float]
    goal: Goal | None = None
    floor: float | None = None

    @property
    def ratios(self) -> list[float]:
        return ratios(self.arm_seconds, self.baseline_seconds)

    @property
    def below_floor(self) -> int:
        """How many rounds fell below the floor."""
        return 0 if self.floor is None else sum(r < self.floor for r in self.ratios)

    def verdict(self, device: str) -> str:
        if self.goal is None:
            return NOT_JUDGED
        spread = Spread.of(self.ratios)
        if self.floor is not None and spread.median < self.floor:
            return BELOW_FLOOR
        return self.goal.verdict(spread, device)

    def record(self, device: str) -> dict[str, Any]:
        """The comparison as the result files hold it."""
        spread = Spread.of(self.ratios)
        return {
            "model": self.model,
            "arm": self.arm,
            "baseline": self.baseline,
            "arm_ms": statistics.median(self.arm_seconds) * 1e3,
            "baseline_ms": statistics.median(self.baseline_seconds) * 1e3,
            "ratio": spread.median,
            "low": spread.low,
            "high": spread.high,
            "ratios": self.ratios,
            "goal": None if self.goal is None else str(self.goal),
            "floor": self.floor,
            "rounds_below_floor": self.below_floor,
            "verdict": self.verdict(device),
        }
