"""GPU utilisation, memory and power sampled through NVML during a phase.

torch can report its own allocations but not how busy the GPU is or how
much power it draws; NVML can. A background thread polls at about 10 Hz,
which is as often as NVML's utilisation counter usefully changes, and cheap
enough not to disturb the workload. Every failure mode becomes an explicit
reason so the result never shows a zero for something that was not measured.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from workloads.common import metric

GPU_METRICS = (
    "gpu.util_mean_pct",
    "gpu.util_max_pct",
    "gpu.mem_peak_bytes",
    "gpu.power_mean_w",
)


@dataclass
class Samples:
    """Readings gathered by the sampler; each series may fail on its own."""

    util_pct: list[float] = field(default_factory=list)
    mem_used_bytes: list[float] = field(default_factory=list)
    power_w: list[float] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class GpuReport:
    metrics: dict[str, dict[str, Any]]
    absent: dict[str, str]


def unavailable(reason: str) -> GpuReport:
    return GpuReport(metrics={}, absent=dict.fromkeys(GPU_METRICS, reason))


def _read(samples: Samples, name: str, series: list[float], read: Any) -> None:
    try:
        series.append(float(read()))
    except Exception as exc:  # NVML raises a family of its own error types
        samples.errors[name] = f"{type(exc).__name__}: {exc}"


class NvmlSampler:
    """Polls one GPU from a daemon thread between ``start`` and ``stop``."""

    def __init__(self, nvml: ModuleType, handle: Any, interval_s: float) -> None:
        self._nvml = nvml
        self._handle = handle
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.samples = Samples()

    def _sample(self) -> None:
        nvml, handle, samples = self._nvml, self._handle, self.samples
        _read(
            samples,
            "util",
            samples.util_pct,
            lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
        )
        _read(
            samples,
            "memory",
            samples.mem_used_bytes,
            lambda: nvml.nvmlDeviceGetMemoryInfo(handle).used,
        )
        _read(
            samples,
            "power",
            samples.power_w,
            lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
        )

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(self._interval_s):
            self._sample()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> GpuReport:
        self._stop.set()
        self._thread.join()
        _shutdown(self._nvml)
        return summarize(self.samples)


def _absent_reason(samples: Samples, series: str) -> str:
    error = samples.errors.get(series)
    return f"no samples collected ({error})" if error else "no samples collected"


def summarize(samples: Samples) -> GpuReport:
    """Turn sample series into metrics, or reasons where a series is empty."""
    report = GpuReport(metrics={}, absent={})
    util, mem, power = samples.util_pct, samples.mem_used_bytes, samples.power_w
    if util:
        report.metrics["gpu.util_mean_pct"] = metric(sum(util) / len(util), "%")
        report.metrics["gpu.util_max_pct"] = metric(max(util), "%")
    else:
        reason = _absent_reason(samples, "util")
        report.absent["gpu.util_mean_pct"] = reason
        report.absent["gpu.util_max_pct"] = reason
    if mem:
        report.metrics["gpu.mem_peak_bytes"] = metric(max(mem), "bytes")
    else:
        report.absent["gpu.mem_peak_bytes"] = _absent_reason(samples, "memory")
    if power:
        report.metrics["gpu.power_mean_w"] = metric(sum(power) / len(power), "W")
    else:
        report.absent["gpu.power_mean_w"] = _absent_reason(samples, "power")
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
    """What a measured phase starts and stops: a sampler or a fixed reason."""

    def __init__(self, sampler: NvmlSampler | None, reason: str) -> None:
        self._sampler = sampler
        self._reason = reason

    def start(self) -> None:
        if self._sampler is not None:
            self._sampler.start()

    def stop(self) -> GpuReport:
        if self._sampler is None:
            return unavailable(self._reason)
        return self._sampler.stop()


def open_monitor(
    device_type: str,
    cuda_index: int | None,
    nvml: ModuleType | None = None,
    interval_s: float = 0.1,
) -> GpuMonitor:
    """Prepare GPU sampling for a phase, or record why it cannot happen.

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
    except Exception as exc:
        _shutdown(nvml)
        return GpuMonitor(None, f"NVML device lookup failed: {exc}")
    return GpuMonitor(NvmlSampler(nvml, handle, interval_s), "")
