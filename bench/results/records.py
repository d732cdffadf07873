"""The two record types every run is stored as: one flat ``Sample`` per measured value and
one ``CellRecord`` per finished cell (including what could not be measured and why)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SAMPLE_COLUMNS = [
    "run_id",
    "target",
    "kind",
    "workload",
    "workload_kind",
    "repetition",
    "metric",
    "value",
    "unit",
    "cell",
]


@dataclass(frozen=True)
class Sample:
    """One measured value: the single record type every metric is stored as."""

    run_id: str
    target: str
    kind: str
    workload: str
    workload_kind: str
    repetition: int
    metric: str
    value: float
    unit: str
    cell: int


@dataclass
class CellRecord:
    """What happened in one cell, including what could not be measured and why."""

    cell: int
    target: str
    kind: str
    workload: str
    workload_kind: str
    repetition: int
    status: str  # "ok" | "failed"
    started_at: str
    finished_at: str
    duration_s: float
    error: str | None = None
    stderr_tail: str | None = None
    startup: dict[str, float] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    verdict: str = "VALID"  # "VALID" | "INVALID"
    reasons: list[str] = field(default_factory=list)

    @property
    def slug(self) -> str:
        """File-name-safe identifier of the cell (names are restricted to a safe alphabet)."""
        return f"{self.cell:04d}-{self.target}-{self.workload}-r{self.repetition}"
