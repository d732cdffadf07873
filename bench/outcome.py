"""What one deployment produced, and how it becomes the stored cell, samples and raw series.

The runner deploys and collects; this module owns the translation into what a stored run
holds, so the shape of a result is decided in one place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench import metadata
from bench.errors import BenchError, WorkerError
from bench.plan import Cell
from bench.results import CellRecord, Sample
from bench.targets.base import Measurement, StartupClock

STARTUP_UNIT = "s"


@dataclass
class Outcome:
    """What one deployment produced before it was torn down."""

    clock: StartupClock = field(default_factory=StartupClock)
    result: dict[str, Any] = field(default_factory=dict)
    host: list[Measurement] = field(default_factory=list)
    error: BenchError | None = None

    def record(
        self, cell: Cell, kind: str, workload_kind: str, started_at: str, start: float
    ) -> CellRecord:
        """The cell's stored record: status, timing, start-up phases, what was absent."""
        absent = dict(self.result.get("absent", {}))
        absent.update({m.metric: m.reason for m in self.host if m.value is None and m.reason})
        error = self.error
        return CellRecord(
            cell=cell.index,
            target=cell.target,
            kind=kind,
            workload=cell.workload,
            workload_kind=workload_kind,
            repetition=cell.repetition,
            status="failed" if error else "ok",
            started_at=started_at,
            finished_at=metadata.now_iso("milliseconds"),
            duration_s=time.monotonic() - start,
            error=error.one_line() if error else None,
            stderr_tail=error.stderr_tail if isinstance(error, WorkerError) else None,
            startup=self.clock.durations(),
            absent=absent,
            info=self.result.get("info", {}),
        )

    def host_raw(self) -> dict[str, Any]:
        """The controller's own series: when each start-up phase ended and each probe's
        timeline, all in seconds since the deploy request, so they line up with each other."""
        origin = self.clock.started
        timelines = {
            m.metric: {
                "t_s": [round(t - origin, 4) for t, _ in m.timeline],
                "value": [v for _, v in m.timeline],
                "unit": m.unit,
            }
            for m in self.host
            if m.timeline
        }
        marks = {phase: round(t - origin, 4) for phase, t in self.clock.marks.items()}
        return {"startup_marks_s": marks, "host_timelines": timelines}

    def samples(self, run_id: str, record: CellRecord) -> list[Sample]:
        """Measured values of a successful cell: start-up, worker metrics, host probes."""
        if record.status != "ok":
            return []
        values = [(f"startup.{k}_s", v, STARTUP_UNIT) for k, v in record.startup.items()]
        metrics = self.result.get("metrics", {})
        values += [(name, m["value"], m["unit"]) for name, m in metrics.items()]
        values += [(m.metric, m.value, m.unit) for m in self.host if m.value is not None]
        return [
            Sample(
                run_id=run_id,
                target=record.target,
                kind=record.kind,
                workload=record.workload,
                workload_kind=record.workload_kind,
                repetition=record.repetition,
                metric=name,
                value=float(value),
                unit=unit,
                cell=record.cell,
            )
            for name, value, unit in values
        ]
