"""How two arms timed round by round become a figure and a verdict.

The figure is the median of the per-round ratios ``arm / baseline``, shown with their min-max.
The verdict judges a 95% confidence interval for the typical ratio: the geometric mean of the
rounds' ratios, Student's t on their logarithms (rounds are interleaved, so a slow stretch of
the machine slows both arms of a round and leaves its ratio). A verdict against a goal is given
only when the whole interval is on one side of the goal; a goal inside it is "within noise".
The min-max is not judged: with eight to ten rounds its edges are single rounds, and which
round is disturbed changes from run to run (20 to 24 of 32 verdicts agreed across four
``make bench`` runs on the min-max, 25 to 29 on the interval over the same stored rounds). The
interval does not make every verdict agree: a step whose typical ratio lies within about an
interval's half-width of its goal is "ok" or "miss" in one run and "within noise" in the next.
With the rounds of the comparisons interleaved (``benchmarks.timing``), two pairs of consecutive
runs agreed on 28 and 29 of 32 verdicts, none "ok" in one run and "miss" in the other, each
disagreement such a step; the typical ratios moved by a median 1.5% and 1.7% within the pairs.
With the allocator's thresholds fixed as well (``cpu.sh``), a pair agreed on 30 of 32, the
ratios moving by a median 1.1%: the two others were ResNet-18 training steps at the same typical
ratio in both runs (2.07x and 2.17x against the 2.1x goal), decided in one and within noise in
the other. On an AMD EPYC VM a pair agreed on 25 of 32, again none contradicting, the typical
ratios moving by a median 1.4%: seven steps lie that near their goals there; on a third Xeon VM
a pair agreed on 28 of 32, none contradicting, the typical ratios moving by a median 0.6%: the four
others lie within 3% of their goals.

A floor is a ratio below which no correct measurement can fall (a sharpness-aware step cannot
cost less than the two forward-backward passes it contains). An interval wholly below the floor
is a measurement problem, never a result: no verdict is given. An interval that reaches the
floor is a step measured at its floor (SGD-SAM on LeNet-5 on a CPU, whose update is a few per
cent of its step): its single rounds below the floor are counted and shown as noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

OK = "ok"
MISS = "miss"
WITHIN_NOISE = "within noise"
BELOW_FLOOR = "below floor"
NOT_JUDGED = "not judged"  # no goal, or a goal for another device
CONFIDENCE = 0.95


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


def t_within(t: float, dof: int) -> float:
    """P(|T| < t) for Student's t with ``dof`` (a whole number) degrees of freedom, in closed
    form (Abramowitz and Stegun 26.7.3 and 26.7.4)."""
    if dof < 1:
        raise ValueError(f"dof must be a whole number >= 1, got {dof}")
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    if dof % 2 == 0:
        term = total = 1.0
        for k in range(2, dof, 2):
            term *= c2 * (k - 1) / k
            total += term
        return math.sin(theta) * total
    if dof == 1:
        return 2 * theta / math.pi
    term = total = math.cos(theta)
    for k in range(3, dof, 2):
        term *= c2 * (k - 1) / k
        total += term
    return 2 / math.pi * (theta + math.sin(theta) * total)


def t_quantile(confidence: float, dof: int) -> float:
    """The t with P(|T| < t) = ``confidence``: the half-width, in standard errors, of a
    two-sided interval (bisection on :func:`t_within`, to machine precision)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    low, high = 0.0, 1.0
    while t_within(high, dof) < confidence:
        low, high = high, 2 * high
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        low, high = (middle, high) if t_within(middle, dof) < confidence else (low, middle)
    return high


@dataclass(frozen=True)
class Interval:
    """A confidence interval for the typical ratio of some rounds: their geometric mean times
    and divided by ``exp(t * standard error)`` of their logarithms. It needs two rounds at
    least: one round has no standard error (and an unbounded interval is no JSON number)."""

    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
        if any(not v > 0 for v in values):
            raise ValueError(f"an interval for ratios needs positive values, got {list(values)}")
        if len(values) < 2:
            raise ValueError(f"an interval needs two rounds at least, got {len(values)}")
        logs = [math.log(v) for v in values]
        centre = statistics.fmean(logs)
        half = t_quantile(confidence, len(logs) - 1) * statistics.stdev(logs) / len(logs) ** 0.5
        return cls(math.exp(centre - half), math.exp(centre + half))


def ratios(arm: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Round by round, ``arm / baseline``: each ratio compares times taken seconds apart."""
    if len(arm) != len(baseline):
        raise ValueError(f"{len(arm)} rounds of the arm against {len(baseline)} of the baseline")
    return [a / b for a, b in zip(arm, baseline, strict=True)]


def two_pass_floor(passes_seconds: Sequence[float], base_seconds: Sequence[float]) -> float:
    """The least a sharpness-aware step can cost relative to its base's, from the rounds of its
    two forward-backward passes timed alone (one after the other on the step's batch, no update)
    and of the base's step: the method's step is those two passes and more (its ascent and its
    update, whatever they cost), so no correct ratio falls below theirs. It is 2.0 when the
    base's update is free, less when that update is a share of the base's step.

    Not ``1 + P / (P + u)`` from one pass ``P`` timed alone: the second of two passes on one
    batch finds it and the weights in cache and costs less than the first, and a method's
    update may cost less than its base's (AdaSAM's AMSGrad against torch's), so a correct step
    can fall below that bound. The median of the per-round ratios, and never above 2.0: passes
    timed slower than the step that contains them are noise, not a higher floor."""
    return min(2.0, Spread.of(ratios(passes_seconds, base_seconds)).median)


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

    def verdict(self, interval: Interval, device: str) -> str:
        if self.device is not None and self.device != device:
            return NOT_JUDGED
        if self.at_most:
            met, missed = interval.high <= self.limit, interval.low > self.limit
        else:
            met, missed = interval.low >= self.limit, interval.high < self.limit
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

    @property
    def interval(self) -> Interval:
        return Interval.of(self.ratios)

    def verdict(self, device: str) -> str:
        if self.goal is None:
            return NOT_JUDGED
        interval = self.interval
        if self.floor is not None and interval.high < self.floor:
            return BELOW_FLOOR
        return self.goal.verdict(interval, device)

    def record(self, device: str) -> dict[str, Any]:
        """The comparison as the result files hold it."""
        spread, interval = Spread.of(self.ratios), self.interval
        return {
            "model": self.model,
            "arm": self.arm,
            "baseline": self.baseline,
            "arm_ms": statistics.median(self.arm_seconds) * 1e3,
            "baseline_ms": statistics.median(self.baseline_seconds) * 1e3,
            "ratio": spread.median,
            "low": spread.low,
            "high": spread.high,
            "interval_low": interval.low,
            "interval_high": interval.high,
            "ratios": self.ratios,
            "goal": None if self.goal is None else str(self.goal),
            "floor": self.floor,
            "rounds_below_floor": self.below_floor,
            "verdict": self.verdict(device),
        }
