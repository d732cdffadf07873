"""What every target kind provides, and the start-up clock they all share.

A target turns a worker spec into a running worker and hands back a ``Deployment`` that streams
the worker's JSON events. Start-up phases are timed here, on the controller's monotonic clock,
so that every kind is measured the same way: clocks of different machines are never subtracted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from bench.names import Name

if TYPE_CHECKING:
    from bench.assets.model import AssetSet, Staged
    from bench.build.builder import Builder


class TargetConfig(BaseModel):
    """Suite keys common to all targets; each kind subclasses this with its own keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    kind: str
    baseline: bool = False
    workloads: list[Name] | None = Field(
        default=None,
        min_length=1,
        description="run only these of the suite's workloads (default: all of them)",
    )

    def builds(self) -> bool:
        """Whether the target runs matched artefacts that ``bench build`` makes."""
        return bool(getattr(self, "build", False))


@dataclass
class Measurement:
    """A value measured on the host side of a deployment (or the reason it could not be).

    ``timeline`` holds the readings the value was taken from, as (controller monotonic time,
    value) points, where the probe samples over time.
    """

    metric: str
    unit: str
    value: float | None = None
    reason: str | None = None
    timeline: list[tuple[float, float]] = field(default_factory=list)


def bare_metal_overhead() -> Measurement:
    """``mem.overhead_bytes`` of a target with no isolation layer: absent, with the reason."""
    reason = "bare-metal target: no isolation layer between the host and the worker"
    return Measurement("mem.overhead_bytes", "bytes", reason=reason)


class Deployment(Protocol):
    """A running worker on a target, from provisioned to removed."""

    def events(
        self, deadline: float, cancel: threading.Event | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield the worker's events until its result or error; raise WorkerError on failure."""
        ...

    def host_measurements(self) -> list[Measurement]:
        """Host-side probes (memory the host spends on the deployment)."""
        ...


class Target(Protocol):
    """One configured target of a suite."""

    kind: ClassVar[str]
    config: TargetConfig

    def host_id(self) -> str:
        """The machine this target runs on: cells with the same id never run concurrently."""
        ...

    def prepare(self, builder: Builder) -> dict[str, Any]:
        """Build or fetch what the target needs before any cell (off every clock); returns
        what the manifest records about it (image id, venv path, pull time)."""
        ...

    def fingerprint(self, run_id: str, torch: bool = True) -> dict[str, Any]:
        """The target's environment, as printed by the worker's fingerprint mode (torch's
        version and GPUs only when ``torch``: a suite of torchless kinds never imports it)."""
        ...

    def drop_caches(self) -> str | None:
        """Drop the page cache where the next deployment reads its files (``cache: cold``);
        None when done, else why it could not be."""
        ...

    def stage(self, assets: AssetSet, run_id: str) -> Staged:
        """Put a workload's assets where this target's workers read them at the suite's
        location, once per run and off every clock (``bench.assets``); returns the cells'
        ``assets`` as their workers see them. ``deploy`` does what each cell needs on top
        (a RAM directory, a mount, a copy into a fresh guest) and removes it with the cell."""
        ...

    def deploy(self, spec: dict[str, Any], run_id: str) -> AbstractContextManager[Deployment]:
        """Provision a fresh worker for one cell; leaving the context removes everything."""
        ...

    def cleanup(self, run_id: str) -> None:
        """Remove whatever the run left on the target (called once, after the last cell)."""
        ...


@dataclass
class StartupClock:
    """Start-up phases measured from the deploy request on the controller's monotonic clock.

    Phases are stored as durations that add up to ``startup.total_s`` (deploy request to first
    iteration done), which keeps them comparable across target kinds and stackable in plots.
    """

    started: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)

    PHASES: ClassVar[tuple[str, ...]] = ("provision", "ready", "first_step")

    def mark(self, phase: str) -> None:
        """Record that ``phase`` ended now (first time only)."""
        self.marks.setdefault(phase, time.monotonic())

    def durations(self) -> dict[str, float]:
        """Seconds spent in each completed phase, plus the total when all are done."""
        out: dict[str, float] = {}
        previous = self.started
        for phase in self.PHASES:
            if phase not in self.marks:
                break
            out[phase] = self.marks[phase] - previous
            previous = self.marks[phase]
        if len(out) == len(self.PHASES):
            out["total"] = previous - self.started
        return out
