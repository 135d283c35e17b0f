"""Timing things honestly: repeat, keep every sample, report the median.

Used by ``01-containers-and-vms`` (how fast does a container start?) and by ``bench/``.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable
from ..ui.progress import Progress


def repeat(fn: Callable[[], object], n: int = 5, *, warmup: int = 1, progress: Progress = None,
           label: str = "") -> list[float]:
    """Run ``fn`` ``warmup`` + ``n`` times; return the ``n`` wall-clock durations in seconds."""
    for _ in range(warmup):
        fn()
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        if progress:
            progress(f"{label} run {i + 1}/{n}: {out[-1]:.3f} s")
    return out


def container_starts(n: int = 10, image: str = "coursekit/busybox:v1", command: str = "true",
                     progress: Progress = None) -> list[float]:
    """Seconds for ``docker run --rm IMAGE COMMAND``: create, start, wait for exit, remove."""
    from ..docker import engine

    return repeat(lambda: engine.run(image, command, network_mode="none"), n, progress=progress,
                  label="container")


def summary(samples: list[float]) -> str:
    med = statistics.median(samples)
    return f"median {med:.3f} s (min {min(samples):.3f}, max {max(samples):.3f}, n={len(samples)})"
