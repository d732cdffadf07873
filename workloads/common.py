"""Helpers shared by every workload kind.

torch is imported inside the functions that need it, so the helpers that do
not (percentiles, CPU time, progress) stay usable from code that
must not pay for, or may not have, a torch import.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from workloads.protocol import Emit, make_event

if TYPE_CHECKING:
    import torch


class DeviceUnavailableError(RuntimeError):
    """The spec asked for a device this host cannot provide."""


def select_device(requested: str) -> torch.device:
    """Resolve "auto", "cpu" or "cuda" to a device.

    An explicit "cuda" never falls back to the CPU: a silent fallback would
    report CPU numbers under a GPU label.
    """
    import torch

    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise DeviceUnavailableError(
            "CUDA was requested but is not available "
            f"(torch {torch.__version__}, torch.version.cuda={torch.version.cuda})"
        )
    if requested == "cpu" or not available:
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def seed_everything(seed: int) -> None:
    """Seed every RNG a workload may touch, so inputs are reproducible."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def apply_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count when asked; return the count in use."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return {
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
    }[name]


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for queued device work to finish.

    Per-iteration times on an asynchronous device are only real if the timer
    stops after the work, not after the launch.
    """
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def process_age_s() -> float | None:
    """Seconds since this process was started, from the kernel's record of its start time
    (``/proc/self/stat``) and the same machine's boot clock; None where there is no /proc."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, in ticks
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def metric(value: float, unit: str) -> dict[str, Any]:
    return {"value": float(value), "unit": unit}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method)."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)


class Reporter:
    """Sends ``first_step`` and rate-limited ``progress`` events.

    Called after every iteration, so the common path is one monotonic clock
    read and a comparison; events are written at most once per interval.
    """

    def __init__(self, emit: Emit, total: int, every_s: float) -> None:
        self._emit = emit
        self._total = total
        self._every_s = every_s
        self._done = 0
        self._next_at = time.monotonic() + every_s

    def iteration_done(self) -> None:
        self._done += 1
        if self._done == 1:
            self._emit(make_event("first_step"))
        now = time.monotonic()
        if now >= self._next_at:
            self._next_at = now + self._every_s
            self._emit(make_event("progress", done=self._done, total=self._total))
