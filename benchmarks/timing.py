"""The one timing loop of the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_seconds(fn: Callable[[], object], device: torch.device, *, calls: int, repeats: int):
    """Median over ``repeats`` of the mean time of ``calls`` calls of ``fn``, after three
    warm-up calls; CUDA work is waited for, so queued kernels are counted."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)
