"""How many CPU threads a model may use: the one place that reads the machine's cores."""

from __future__ import annotations

import os

__all__ = ["AUTO_THREADS_CAP", "auto_threads", "usable_cores"]

AUTO_THREADS_CAP = 4  # more intra-op threads than this buys little for these small models


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def auto_threads(requested: int) -> int:
    """``requested`` threads, or for 0 the usable cores, at most :data:`AUTO_THREADS_CAP`."""
    if requested < 0:
        raise ValueError(f"a thread count must be >= 0 (0 = auto), got {requested}")
    return requested or min(AUTO_THREADS_CAP, usable_cores())
