"""The GPU paths on a real GPU: skipped where CUDA is absent (the usual test machine)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from workloads import run_workload
from workloads.gpu import GPU_METRICS, NVML_WINDOW_S

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def spec(kind: str, **options: Any) -> dict[str, Any]:
    return {"workload": {"name": f"gpu-{kind}", "kind": kind, "device": "cuda", **options}}


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        # ~0.7 ms a step or request on an H100: long enough to span NVML's 1 s window
        ("train_step", {"model": "mlp", "batch_size": 1024, "steps": 4000, "warmup_steps": 20}),
        (
            "inference",
            {"model": "cnn", "scenario": "offline", "batch_size": 8, "min_query_count": 32000},
        ),
    ],
)
def test_nvml_metrics_and_timeline_on_a_real_gpu(kind: str, options: dict[str, Any]) -> None:
    result = run_workload(spec(kind, **options))
    metrics, absent = result["metrics"], result["absent"]
    assert result["info"]["device"].startswith("cuda")
    assert set(GPU_METRICS) <= set(metrics) | set(absent)
    timeline = result["raw"]["gpu_timeline"]
    start, end = timeline["marks_s"]["measured_start"], timeline["marks_s"]["measured_end"]
    assert end - start >= NVML_WINDOW_S, "lengthen the workload: the phase must span NVML's window"
    for name in ("gpu.util_max_pct", "gpu.mem_peak_bytes", "gpu.sm_clock_mean_mhz"):
        assert metrics[name]["value"] > 0, name
    assert metrics["gpu.startup_mem_peak_bytes"]["value"] > 0
    assert metrics["gpu.power_mean_w"]["value"] > 0
    assert timeline["t_s"][0] <= start < end and len(timeline["t_s"]) >= 2
    readings = [v for v in timeline["mem_used_bytes"] if v is not None]
    assert readings and max(readings) >= metrics["gpu.mem_peak_bytes"]["value"]


def test_a_phase_shorter_than_nvml_window_leaves_utilization_absent() -> None:
    result = run_workload(spec("train_step", model="mlp", steps=20, warmup_steps=2))
    for name in ("gpu.util_mean_pct", "gpu.util_max_pct", "gpu.power_mean_w"):
        assert "shorter than the 1 s over which NVML" in result["absent"][name], name
    assert "gpu.util_mean_pct" not in result["metrics"]


def test_cpu_workload_on_a_gpu_host_leaves_gpu_metrics_absent() -> None:
    result = run_workload(spec("train_step", device="cpu", steps=3, warmup_steps=1))
    assert set(GPU_METRICS) <= set(result["absent"])
    assert not set(GPU_METRICS) & set(result["metrics"])
