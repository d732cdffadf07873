"""What a workload kind receives from the runner and hands back to it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workloads.common import Reporter
from workloads.gpu import GpuMonitor
from workloads.loop import LoopResult
from workloads.protocol import Emit, make_event
from workloads.spec import Spec

if TYPE_CHECKING:
    import torch


@dataclass
class Context:
    """The resolved environment of one run.

    ``started`` is the perf_counter reading taken before torch was imported,
    so ``ready`` can report how long set-up took.
    """

    spec: Spec
    emit: Emit
    device: torch.device
    threads: int
    torch_version: str
    started: float
    setup_s: float | None = None
    gpu: GpuMonitor = field(default_factory=lambda: GpuMonitor(None, "not monitored"))
    ran_on: str | None = None

    @property
    def workload(self) -> dict[str, Any]:
        return self.spec.workload

    def ready(self, device: str) -> None:
        """Announce that everything is built and iterations are about to start."""
        self.setup_s = time.perf_counter() - self.started
        self.ran_on = device
        self.emit(
            make_event("ready", device=device, threads=self.threads, torch=self.torch_version)
        )

    def reporter(self, total: int) -> Reporter:
        return Reporter(self.emit, total, self.spec.progress_every_s)

    def monitor(self, device: torch.device) -> GpuMonitor:
        """The run's GPU monitor, sampling since set-up began, when ``device`` is the run's
        device; otherwise one that only says where the workload ran."""
        if device == self.device:
            return self.gpu
        return GpuMonitor(None, f"workload ran on {device.type}")


@dataclass
class Outcome:
    """A kind's measurements; the runner adds the metrics common to all.

    ``files``: text files the kind wrote that the controller keeps beside the cell's raw data
    (a relative path, like ``loadgen/mlperf_log_detail.txt``, to its text): the target's disk
    is gone after the cell, so what must outlive it travels in the result.
    """

    loop: LoopResult
    metrics: dict[str, dict[str, Any]]
    raw: dict[str, list[float]]
    info: dict[str, Any]
    absent: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
