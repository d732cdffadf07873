"""The timed iteration loop every workload kind runs.

One loop serves all kinds so warmup, per-iteration timing, progress events
and the bounds of the measured phase mean the same thing everywhere, and so
an in-process run and a worker-process run execute exactly the same code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workloads.common import Reporter, cpu_seconds, metric
from workloads.gpu import GpuMonitor, GpuReport


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
    cpu_s: float
    gpu: GpuReport

    def common_metrics(self) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """CPU and GPU metrics of the measured phase, plus absence reasons."""
        metrics = {"cpu.util_pct": metric(100.0 * self.cpu_s / self.window_s, "%")}
        metrics.update(self.gpu.metrics)
        return metrics, dict(self.gpu.absent)


def _timed(
    step: Callable[[], Any],
    count: int,
    sync: Callable[[], None],
    reporter: Reporter,
    outputs: list[Any] | None,
) -> list[float]:
    times: list[float] = []
    clock = time.perf_counter
    for _ in range(count):
        started = clock()
        output = step()
        sync()
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

    CPU time and GPU sampling cover only the measured iterations, so start-up
    effects caught by warmup (allocator growth, lazy init, worker spawn) do
    not leak into the reported figures. ``step``'s return values from the
    measured iterations are kept for kinds whose iterations vary in size.
    """
    warmup_times = _timed(step, warmup, sync, reporter, None)
    outputs: list[Any] = []
    monitor.start()
    try:
        cpu_before = cpu_seconds()
        window_start = time.perf_counter()
        measured_times = _timed(step, measured, sync, reporter, outputs)
        window_s = time.perf_counter() - window_start
        cpu_s = cpu_seconds() - cpu_before
    except BaseException:
        monitor.stop()
        raise
    gpu = monitor.stop()
    return LoopResult(warmup_times, measured_times, outputs, window_s, cpu_s, gpu)
