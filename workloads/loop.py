"""The timed iteration loop every workload kind runs.

One loop serves all kinds so warmup, per-iteration timing, progress events
and the bounds of the measured phase mean the same thing everywhere, and so
an in-process run and a worker-process run execute exactly the same code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workloads.common import Reporter, metric
from workloads.cpustate import CpuState, change
from workloads.gpu import GpuMonitor

# A fraction by which every iteration is stretched (mostly by sleeping: a long busy wait would
# compete with torch's own threads for the cores and slow the step by more than asked). It exists to
# check that bench detects a known slowdown on a given machine; the value in force is recorded
# in the cell's info, so such a cell is never mistaken for a real one.
SLOWDOWN_ENV = "BENCH_INJECT_SLOWDOWN"


@dataclass
class LoopResult:
    """Timings of one run of the loop.

    ``window_s`` spans the measured phase from just before its first
    iteration to the end of its last one; it includes the (rate-limited)
    progress bookkeeping between iterations, which the per-iteration times
    do not.
    """

    warmup_times: list[float]
    measured_times: list[float]
    outputs: list[Any]
    window_s: float
    before: CpuState
    after: CpuState
    slowdown: float = 0.0

    def common_metrics(self) -> dict[str, dict[str, Any]]:
        """CPU use of the measured phase: total, and split into user and system time."""
        used = self.after.times - self.before.times
        return {
            "cpu.util_pct": metric(100.0 * used.total / self.window_s, "%"),
            "cpu.user_pct": metric(100.0 * used.user / self.window_s, "%"),
            "cpu.sys_pct": metric(100.0 * used.system / self.window_s, "%"),
        }

    def info(self) -> dict[str, Any]:
        """What the verdict needs: how many iterations were measured, what the CPU did."""
        out: dict[str, Any] = {
            "measured_iterations": len(self.measured_times),
            "warmup_iterations": len(self.warmup_times),
            "cpu_state": change(self.before, self.after),
        }
        if self.slowdown:
            out["injected_slowdown"] = self.slowdown
        return out


MAX_SLOWDOWN = 10.0  # eleven times as long; enough for an effect no machine's noise can hide


def injected_slowdown() -> float:
    """The fraction from ``BENCH_INJECT_SLOWDOWN`` (0.05: each iteration 5% longer, 2: three
    times as long), 0 when unset; anything else is refused."""
    text = os.environ.get(SLOWDOWN_ENV, "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= MAX_SLOWDOWN:
        raise ValueError(
            f"{SLOWDOWN_ENV} must be a fraction from 0 to {MAX_SLOWDOWN:g}, got {text!r}"
        )
    return value


def stretch(started: float, slowdown: float) -> None:
    """Wait until the iteration has taken ``1 + slowdown`` times as long: sleep for most of
    it, then spin for the last fraction of a millisecond, which a sleep would overshoot."""
    clock = time.perf_counter
    until = started + (clock() - started) * (1.0 + slowdown)
    pause = until - clock() - 0.0005  # read once: a preemption between two reads can make
    if pause > 0.0005:  # a second reading negative, and sleep() refuses negative lengths
        time.sleep(pause)
    while clock() < until:
        pass


def _timed(
    step: Callable[[], Any],
    count: int,
    sync: Callable[[], None],
    reporter: Reporter,
    outputs: list[Any] | None,
    slowdown: float,
) -> list[float]:
    times: list[float] = []
    clock = time.perf_counter
    for _ in range(count):
        started = clock()
        output = step()
        sync()
        if slowdown:
            stretch(started, slowdown)
        times.append(clock() - started)
        if outputs is not None:
            outputs.append(output)
        reporter.iteration_done()
    return times


def run_loop(
    step: Callable[[], Any],
    warmup: int,
    measured: int,
    sync: Callable[[], None],
    reporter: Reporter,
    monitor: GpuMonitor,
) -> LoopResult:
    """Run ``warmup`` then ``measured`` iterations of ``step``, timing each.

    CPU time covers only the measured iterations, and the GPU timeline is marked where they
    begin and end, so start-up effects caught by warmup (allocator growth, lazy init, worker
    spawn) do not leak into the reported figures. ``step``'s return values from the measured
    iterations are kept for kinds whose iterations vary in size.
    """
    slowdown = injected_slowdown()
    warmup_times = _timed(step, warmup, sync, reporter, None, slowdown)
    outputs: list[Any] = []
    monitor.mark("measured_start")
    before = CpuState.now()
    window_start = time.perf_counter()
    measured_times = _timed(step, measured, sync, reporter, outputs, slowdown)
    window_s = time.perf_counter() - window_start
    after = CpuState.now()
    monitor.mark("measured_end")
    return LoopResult(warmup_times, measured_times, outputs, window_s, before, after, slowdown)
