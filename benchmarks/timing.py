"""The one timing loop of the benchmarks: arms interleaved call by call, round by round.

On a shared machine the machine itself changes while a benchmark runs (other processes, clock
frequency, caches), so timing one arm in a block and then the other compares two machines: the
same ``torch.optim.Adam`` once measured 9.7 ms as a baseline and 16.7 ms as an arm of the same
run. Here a round alternates the arms call by call (A B A B ... for ``calls`` calls each), so
what changes slower than a call cancels in the round's ratio and what changes faster averages
over its calls; the order is rotated from round to round so that no arm always goes first. Each
round's ratio (``benchmarks.compare``) then compares times taken a call apart.

Python's garbage collector is held off while a round runs, and run before each: a collection
is set off by whichever allocation crosses its threshold, so it would land on one arm's call or
the other's by chance, a cost of the benchmark process, not of the arm it interrupts (``timeit``
does the same).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Mapping

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


def interleaved_seconds(
    arms: Arms | Callable[[], Arms],
    device: torch.device,
    *,
    rounds: int,
    calls: int = 1,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Seconds per call of each arm, one value per round: the mean of its ``calls`` calls.

    First ``warmup`` calls of every arm (allocations, lazily created state, autotuning), then
    ``rounds`` rounds; round ``r`` runs the arms in turn starting at the ``r``-th, ``calls``
    times over (two arms: A B A B, then B A B A, ...).

    ``arms`` may instead be a function that builds them: it is called before every round, and
    the new arms are warmed up, so that each round times tensors allocated afresh. On a CPU the
    speed of a step depends on where its tensors happen to lie in memory (LightSAM-II's ResNet-18
    training step against AdaGrad's measured 2.17x to 2.30x across four builds in one process,
    within 0.02 in each): built once, that variance would stay out of the spread and show up
    only as a difference between runs of the benchmark.
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

    fixed = warmed(arms) if isinstance(arms, Mapping) else None
    times: dict[str, list[float]] = {}
    for r in range(rounds):
        current = fixed if fixed is not None else warmed(arms())
        names = list(current)
        shift = r % len(names)
        order = names[shift:] + names[:shift]
        readings: dict[str, list[Callable[[], float]]] = {name: [] for name in names}
        with collector_off():
            for _ in range(calls):
                for name in order:
                    readings[name].append(_timed(current[name], device))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        for name in names:
            times.setdefault(name, []).append(sum(read() for read in readings[name]) / calls)
    return times
