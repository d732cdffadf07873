"""GPU utilisation, memory, power and SM clock sampled through NVML for the whole run.

torch can report its own allocations but not how busy the GPU is, how much power it draws or
at what clock it runs; NVML can. A background thread polls at about 10 Hz, which is as often as
NVML's utilisation counter usefully changes, and cheap enough not to disturb the workload.

Sampling starts as soon as the worker knows its device and ends after the last iteration, with
the measured phase marked on the same clock, so every reading is assigned to a phase:
``startup`` (CUDA initialisation, model and data construction, warmup) or ``steady`` (the
measured iterations). The headline metrics describe the steady state; the start-up phase gets
its own ``gpu.startup_*`` metrics; the whole series goes into the raw data as a timeline.
The clock-event reasons NVML reports (thermal slowdown, power brake) are collected so the
controller can declare a cell invalid when the GPU changed speed under the workload.

Every failure mode becomes an explicit reason, so the result never shows a zero for something
that was not measured.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from workloads.common import metric

# (series, metric name, reduction, unit) of the steady phase, the vocabulary's GPU metrics.
STEADY = (
    ("util_pct", "gpu.util_mean_pct", "mean", "%"),
    ("util_pct", "gpu.util_max_pct", "max", "%"),
    ("mem_used_bytes", "gpu.mem_peak_bytes", "max", "bytes"),
    ("power_w", "gpu.power_mean_w", "mean", "W"),
    ("sm_clock_mhz", "gpu.sm_clock_mean_mhz", "mean", "MHz"),
)
STARTUP = (
    ("util_pct", "gpu.startup_util_mean_pct", "mean", "%"),
    ("mem_used_bytes", "gpu.startup_mem_peak_bytes", "max", "bytes"),
    ("power_w", "gpu.startup_power_mean_w", "mean", "W"),
)
GPU_METRICS = tuple(name for _, name, _, _ in STEADY + STARTUP)
# NVML reports utilization as the share of its own last sample period (1/6 s to 1 s, by
# product) and, on Ampere and newer, power averaged over 1 s. A phase shorter than that is
# mostly described by readings of what ran before it (an H100 read 0% through a 0.1 s burst
# of training), so these two are absent for such a phase rather than reported wrong.
AVERAGED = frozenset({"util_pct", "power_w"})
NVML_WINDOW_S = 1.0
SERIES = ("util_pct", "mem_used_bytes", "power_w", "sm_clock_mhz")

# NVML clock-event reason bits (nvmlClocksEventReason*) and what they mean for a measurement.
# Idle, application clocks and display clocks are not slowdowns under load, so not listed.
EVENT_REASONS = {
    0x04: "software power cap",
    0x08: "hardware slowdown",
    0x10: "sync boost",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "hardware power brake",
}
# Reasons that mean the GPU ran slower than it can for reasons outside the workload.
SLOWDOWNS = frozenset(
    {
        "hardware slowdown",
        "software thermal slowdown",
        "hardware thermal slowdown",
        "hardware power brake",
    }
)

Reader = Callable[[], float]


@dataclass
class Timeline:
    """Readings on the worker's perf_counter clock; a reading that failed is None."""

    t: list[float] = field(default_factory=list)
    series: dict[str, list[float | None]] = field(
        default_factory=lambda: {name: [] for name in SERIES}
    )
    events: list[int | None] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)


@dataclass
class GpuReport:
    """Metrics, absence reasons, the raw timeline and facts for the cell's verdict."""

    metrics: dict[str, dict[str, Any]]
    absent: dict[str, str]
    raw: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def unavailable(reason: str) -> GpuReport:
    return GpuReport(metrics={}, absent=dict.fromkeys(GPU_METRICS, reason))


def _readers(nvml: ModuleType, handle: Any) -> dict[str, Reader]:
    sm_clock = getattr(nvml, "NVML_CLOCK_SM", 1)
    return {
        "util_pct": lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
        "mem_used_bytes": lambda: nvml.nvmlDeviceGetMemoryInfo(handle).used,
        "power_w": lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
        "sm_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(handle, sm_clock),
    }


def _events_reader(nvml: ModuleType, handle: Any) -> Callable[[], int]:
    """Current clock-event reasons; the call was renamed from "throttle" in newer drivers."""
    name = "nvmlDeviceGetCurrentClocksEventReasons"
    if not hasattr(nvml, name):
        name = "nvmlDeviceGetCurrentClocksThrottleReasons"
    call = getattr(nvml, name)
    return lambda: int(call(handle))


class NvmlSampler:
    """Polls one GPU from a daemon thread between ``start`` and ``stop``."""

    def __init__(
        self, nvml: ModuleType, handle: Any, interval_s: float, window_s: float = NVML_WINDOW_S
    ) -> None:
        self._nvml = nvml
        self._window_s = window_s
        self._readers = _readers(nvml, handle)
        self._events = _events_reader(nvml, handle)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nvml", daemon=True)
        self.timeline = Timeline()

    def _read(self, name: str, read: Callable[[], float]) -> float | None:
        try:
            return float(read())
        except Exception as exc:  # NVML raises a family of its own error types
            self.timeline.errors[name] = f"{type(exc).__name__}: {exc}"
            return None

    def _sample(self) -> None:
        line = self.timeline
        values = {name: self._read(name, read) for name, read in self._readers.items()}
        events = self._read("events", self._events)
        line.t.append(time.perf_counter())
        for name, value in values.items():
            line.series[name].append(value)
        line.events.append(None if events is None else int(events))

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(self._interval_s):
            self._sample()

    def start(self) -> None:
        self._thread.start()

    def mark(self, name: str) -> None:
        """Note that a phase boundary (``measured_start``, ``measured_end``) is now."""
        self.timeline.marks[name] = time.perf_counter()

    def stop(self) -> GpuReport:
        self._stop.set()
        self._thread.join()
        _shutdown(self._nvml)
        return summarize(self.timeline, self._window_s)


def _reduce(values: list[float], how: str) -> float:
    return max(values) if how == "max" else sum(values) / len(values)


def _phase_mask(line: Timeline) -> tuple[list[bool], list[bool]]:
    """Which readings fall before the measured phase and which inside it."""
    start = line.marks.get("measured_start", float("inf"))
    end = line.marks.get("measured_end", float("inf"))
    return [t < start for t in line.t], [start <= t <= end for t in line.t]


def _phase_metrics(
    line: Timeline,
    mask: list[bool],
    table: tuple,
    phase: str,
    duration: float | None,
    window_s: float,
    report: GpuReport,
) -> None:
    for series, name, how, unit in table:
        if series in AVERAGED and duration is not None and duration < window_s:
            report.absent[name] = (
                f"the {phase} phase lasted {duration:.2f} s, shorter than the {window_s:g} s"
                " over which NVML averages it; lengthen the workload (more steps or requests)"
            )
            continue
        values = [v for v, keep in zip(line.series[series], mask, strict=True) if keep]
        known = [v for v in values if v is not None]
        if known:
            report.metrics[name] = metric(_reduce(known, how), unit)
            continue
        error = line.errors.get(series)
        reason = f"no {phase} samples collected"
        report.absent[name] = f"{reason} ({error})" if error else reason


def _durations(line: Timeline) -> tuple[float | None, float | None]:
    """How long start-up (first reading to the measured phase) and the measured phase
    lasted; None where a mark is missing."""
    start, end = line.marks.get("measured_start"), line.marks.get("measured_end")
    startup = start - line.t[0] if start is not None and line.t else None
    steady = end - start if start is not None and end is not None else None
    return startup, steady


def _slowdowns(line: Timeline, mask: list[bool]) -> list[str]:
    seen = 0
    for bits, keep in zip(line.events, mask, strict=True):
        if keep and bits is not None:
            seen |= bits
    return [label for bit, label in EVENT_REASONS.items() if seen & bit]


def summarize(line: Timeline, window_s: float = NVML_WINDOW_S) -> GpuReport:
    """Metrics per phase, the timeline for the raw data, and what the verdict needs."""
    report = GpuReport(metrics={}, absent={})
    startup, steady = _phase_mask(line)
    startup_s, steady_s = _durations(line)
    _phase_metrics(line, steady, STEADY, "steady-state", steady_s, window_s, report)
    _phase_metrics(line, startup, STARTUP, "start-up", startup_s, window_s, report)
    origin = line.t[0] if line.t else 0.0
    report.raw["gpu_timeline"] = {
        "t_s": [round(t - origin, 4) for t in line.t],
        **line.series,
        "clock_event_reasons": line.events,
        "marks_s": {name: round(t - origin, 4) for name, t in line.marks.items()},
    }
    clocks = [c for c, keep in zip(line.series["sm_clock_mhz"], steady, strict=True) if keep]
    known = [c for c in clocks if c is not None]
    events = _slowdowns(line, steady)
    report.info["gpu_steady"] = {
        "samples": sum(steady),
        "clock_events": events,
        "slowdowns": [r for r in events if r in SLOWDOWNS],
        "sm_clock_min_mhz": min(known) if known else None,
        "sm_clock_max_mhz": max(known) if known else None,
        "errors": dict(line.errors),
    }
    return report


def _import_nvml() -> ModuleType | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def _cuda_uuid(cuda_index: int) -> str | None:
    try:
        import torch

        uuid = torch.cuda.get_device_properties(cuda_index).uuid
    except Exception:  # older torch builds have no uuid property
        return None
    return f"GPU-{uuid}"


def _device_handle(nvml: ModuleType, cuda_index: int) -> Any:
    """NVML handle of the GPU torch uses.

    NVML numbers GPUs in PCI order while CUDA may renumber them (for
    instance under CUDA_VISIBLE_DEVICES), so the UUID is matched when torch
    exposes it; the index is the fallback.
    """
    uuid = _cuda_uuid(cuda_index)
    if uuid is not None:
        try:
            return nvml.nvmlDeviceGetHandleByUUID(uuid)
        except Exception:  # MIG or older drivers: fall back to the index
            pass
    return nvml.nvmlDeviceGetHandleByIndex(cuda_index)


def _shutdown(nvml: ModuleType) -> None:
    """Best effort: nothing depends on a clean NVML exit."""
    with contextlib.suppress(Exception):
        nvml.nvmlShutdown()


class GpuMonitor:
    """What a run starts, marks and stops: a sampler, or a fixed reason for its absence."""

    def __init__(self, sampler: NvmlSampler | None, reason: str) -> None:
        self._sampler = sampler
        self.reason = reason

    @property
    def active(self) -> bool:
        return self._sampler is not None

    def start(self) -> None:
        if self._sampler is not None:
            self._sampler.start()

    def mark(self, name: str) -> None:
        if self._sampler is not None:
            self._sampler.mark(name)

    def stop(self) -> GpuReport:
        if self._sampler is None:
            return unavailable(self.reason)
        return self._sampler.stop()


def open_monitor(
    device_type: str,
    cuda_index: int | None,
    nvml: ModuleType | None = None,
    interval_s: float = 0.1,
) -> GpuMonitor:
    """Prepare GPU sampling for a run, or record why it cannot happen.

    ``nvml`` may be given explicitly so other NVML bindings (or a test
    double) can stand in for pynvml.
    """
    if device_type != "cuda" or cuda_index is None:
        return GpuMonitor(None, f"workload ran on {device_type}")
    nvml = nvml or _import_nvml()
    if nvml is None:
        return GpuMonitor(None, "nvidia-ml-py (pynvml) is not installed")
    try:
        nvml.nvmlInit()
    except Exception as exc:
        return GpuMonitor(None, f"NVML init failed: {exc}")
    try:
        handle = _device_handle(nvml, cuda_index)
        sampler = NvmlSampler(nvml, handle, interval_s)
    except Exception as exc:
        _shutdown(nvml)
        return GpuMonitor(None, f"NVML device lookup failed: {exc}")
    return GpuMonitor(sampler, "")
