"""The one timing loop of the benchmarks: arms interleaved call by call, comparisons round by
round.

On a shared machine the machine itself changes while a benchmark runs (other processes, clock
frequency, caches), so timing one arm in a block and then the other compares two machines: the
same ``torch.optim.Adam`` once measured 9.7 ms as a baseline and 16.7 ms as an arm of the same
run. Here a round alternates the arms call by call (A B A B ... for ``calls`` calls each), so
what changes slower than a call cancels in the round's ratio and what changes faster averages
over its calls; the order is rotated from round to round so that no arm always goes first. Each
round's ratio (``benchmarks.compare``) then compares times taken a call apart. A benchmark's
comparisons take their rounds in turn (:func:`interleaved_suite`), so that each comparison's
rounds are spread over the whole benchmark, not bunched in one stretch of it.

Python's garbage collector is held off while a round runs, and run before each: a collection
is set off by whichever allocation crosses its threshold, so it would land on one arm's call or
the other's by chance, a cost of the benchmark process, not of the arm it interrupts (``timeit``
does the same).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Hashable, Mapping
from typing import TypeVar

import torch


def _timed(fn: Callable[[], object], device: torch.device) -> Callable[[], float]:
    """Call ``fn``; return what reads its duration in seconds. On CUDA the duration is that of
    the stream between two events around the call, so the kernels the call queued count, the
    previous arm's still-queued kernels do not, and no synchronisation splits the round."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        return lambda: start.elapsed_time(end) / 1e3
    start_time = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start_time
    return lambda: elapsed


Arms = Mapping[str, Callable[[], object]]
K = TypeVar("K", bound=Hashable)


@contextlib.contextmanager
def collector_off():
    """No garbage collection inside, a full one just before; the collector's state restored
    after."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def interleaved_suite(
    suite: Mapping[K, Arms | Callable[[], Arms]],
    device: torch.device,
    *,
    rounds: int,
    calls: int = 1,
    warmup: int = 1,
) -> dict[K, dict[str, list[float]]]:
    """Seconds per call of each arm of each comparison of ``suite``, one value per round: the
    mean of its ``calls`` calls.

    The rounds of the comparisons are interleaved too: round ``r`` of every comparison, in
    the suite's order, before round ``r + 1`` of any. A machine that is slower for a minute
    (another tenant, a clock that drops) then slows one round of many comparisons, where timing
    each comparison in a block of its own would slow every round of one: its ratio would shift
    as a whole and its interval, taken over the rounds, could not show it (the same Adam baseline
    measured 82.9 ms in one ResNet-18 block and 51.5 ms in another of the same run, and whole
    comparisons disagreed between runs by more than their intervals). Spread over the suite, a
    comparison's rounds sample what the machine did over all of it.

    Within a round the arms alternate call by call (A B A B ... for ``calls`` calls each), the
    order rotated from round to round so that no arm always goes first (two arms: A B A B, then
    B A B A, ...). First ``warmup`` calls of every arm (allocations, lazily created state,
    autotuning).

    A comparison's arms may instead be a function that builds them: it is called before each
    of its rounds, and the new arms are warmed up, so that each round times tensors allocated
    afresh. On a CPU the speed of a step depends on where its tensors happen to lie in memory
    (LightSAM-II's ResNet-18 training step against AdaGrad's measured 2.17x to 2.30x across four
    builds in one process, within 0.02 in each): built once, that variance would stay out of the
    spread and show up only as a difference between runs of the benchmark. Built arms are
    dropped after their round, so one comparison's tensors are alive at a time.
    """
    if rounds < 1 or calls < 1 or warmup < 0:
        raise ValueError(
            f"need rounds, calls >= 1 and warmup >= 0; got {rounds}, {calls}, {warmup}"
        )

    def warmed(built: Arms) -> Arms:
        for arm in built.values():
            for _ in range(warmup):
                arm()
        return built

    fixed = {key: warmed(arms) for key, arms in suite.items() if isinstance(arms, Mapping)}
    times: dict[K, dict[str, list[float]]] = {key: {} for key in suite}
    for r in range(rounds):
        for key, arms in suite.items():
            current = fixed[key] if key in fixed else warmed(arms())
            for name, seconds in _round(current, device, r, calls).items():
                times[key].setdefault(name, []).append(seconds)
            del current
    return times


def interleaved_seconds(
    arms: Arms | Callable[[], Arms],
    device: torch.device,
    *,
    rounds: int,
    calls: int = 1,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """:func:`interleaved_suite` of one comparison: its arms' seconds per call, a value per
    round."""
    return interleaved_suite({None: arms}, device, rounds=rounds, calls=calls, warmup=warmup)[None]


def _round(arms: Arms, device: torch.device, r: int, calls: int) -> dict[str, float]:
    """Round ``r`` of ``arms``: each arm's mean seconds over ``calls`` calls, the arms
    alternating call by call from the ``r``-th (mod their number)."""
    names = list(arms)
    shift = r % len(names)
    order = names[shift:] + names[:shift]
    readings: dict[str, list[Callable[[], float]]] = {name: [] for name in names}
    with collector_off():
        for _ in range(calls):
            for name in order:
                readings[name].append(_timed(arms[name], device))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return {name: sum(read() for read in readings[name]) / calls for name in names}
