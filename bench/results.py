"""Stored results: one flat Sample record, the run directory, and ``load()`` for analysis.

Layout of ``<results>/<suite>/<run-id>/``::

    manifest.json   suite as run, versions, host and target fingerprints, plan, status
    samples.jsonl   one row per metric per cell (only measured values)
    cells.jsonl     one row per finished cell: status, verdict and its reasons, error, start-up,
                    absent metrics + reasons
    raw/<cell>.json per-iteration arrays (step times, latencies, batch times), the GPU timeline,
                    the host-side memory timeline and when each start-up phase ended

Every file is replaced atomically (write to a temporary file, then rename) after each cell, so
a run killed at any moment leaves every finished cell readable and never a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import ResultsError

SCHEMA_VERSION = 1
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


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a mix."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)


class ResultStore:
    """Writes one run directory incrementally as cells finish."""

    def __init__(self, root: str | Path, suite: str, run_id: str) -> None:
        self.path = Path(root) / suite / run_id
        self.run_id = run_id
        self.samples: list[Sample] = []
        self.cells: list[CellRecord] = []
        self.manifest: dict[str, Any] = {}

    def create(self, manifest: dict[str, Any]) -> None:
        """Make the run directory; refuses to touch an existing run."""
        if self.path.exists():
            raise ResultsError(
                f"{self.path}: a run with this id already exists",
                hint="choose another --run-id; existing results are never overwritten",
            )
        try:
            (self.path / "raw").mkdir(parents=True)
        except OSError as exc:
            raise ResultsError(f"{self.path}: cannot create results directory: {exc}") from None
        self.write_manifest({"schema": SCHEMA_VERSION, "run_id": self.run_id, **manifest})

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace the manifest (e.g. to record the final status)."""
        self.manifest = manifest
        write_atomic(self.path / "manifest.json", json.dumps(manifest, indent=2, default=str))

    def update_manifest(self, **fields: Any) -> None:
        """Merge ``fields`` into the manifest."""
        self.write_manifest({**self.manifest, **fields})

    def add_cell(self, record: CellRecord, samples: list[Sample], raw: dict[str, Any]) -> None:
        """Persist one finished cell: raw arrays, samples, then the record that commits them."""
        write_atomic(self.path / "raw" / f"{record.slug}.json", json.dumps(raw))
        self.samples += samples
        self.cells.append(record)
        write_atomic(self.path / "samples.jsonl", _jsonl([asdict(s) for s in self.samples]))
        write_atomic(self.path / "cells.jsonl", _jsonl([asdict(c) for c in self.cells]))


def _run_dirs(path: Path) -> list[Path]:
    """``path`` itself when it is a run, else the runs directly under it (a suite directory)."""
    if (path / "manifest.json").is_file():
        return [path]
    runs = sorted(p.parent for p in path.glob("*/manifest.json"))
    if not runs:
        raise ResultsError(f"{path}: not a run directory (no manifest.json) and holds no runs")
    return runs


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except ValueError as exc:
        raise ResultsError(f"{path}: malformed JSON line: {exc}") from None


def _committed_samples(run: Path) -> list[dict[str, Any]]:
    """Samples of the cells listed in cells.jsonl, which is written last and so commits a cell.

    A run killed between writing a cell's samples and its cell record leaves samples that no
    cell accounts for; they are not results.
    """
    committed = {row["cell"] for row in _read_jsonl(run / "cells.jsonl")}
    return [row for row in _read_jsonl(run / "samples.jsonl") if row.get("cell") in committed]


def load(path: str | Path) -> pd.DataFrame:
    """Samples of a run (or of every run in a suite directory) as a tidy DataFrame.

    Columns: run_id, target, kind, workload, workload_kind, repetition, metric, value, unit,
    cell. One row per metric per repetition; metrics that could not be measured are absent
    (their reasons are in ``load_cells``).
    """
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such results directory")
    rows = [row for run in _run_dirs(path) for row in _committed_samples(run)]
    frame = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
    return frame.astype({"value": "float64", "repetition": "int64", "cell": "int64"})


def load_cells(path: str | Path) -> pd.DataFrame:
    """One row per finished cell: status, error, start-up phases, absent metrics and reasons."""
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such results directory")
    rows = []
    for run in _run_dirs(path):
        run_id = load_manifest(run).get("run_id", run.name)
        rows += [{"run_id": run_id, **row} for row in _read_jsonl(run / "cells.jsonl")]
    return pd.DataFrame(rows)


def load_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of one run directory."""
    file = Path(path) / "manifest.json"
    try:
        return json.loads(file.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{file}: not found") from None
    except ValueError as exc:
        raise ResultsError(f"{file}: malformed manifest: {exc}") from None


def load_raw(path: str | Path) -> dict[str, dict[str, Any]]:
    """Per-iteration arrays of every cell of one run, keyed by the cell's file stem."""
    raw_dir = Path(path) / "raw"
    return {f.stem: json.loads(f.read_text()) for f in sorted(raw_dir.glob("*.json"))}


def tag_raw(raw: dict[str, dict[str, Any]], cells: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """``raw`` with each entry's target, workload and repetition added from ``cells``, so raw
    arrays can be grouped without parsing names (a target's name may contain dashes)."""
    if cells.empty:
        return {}
    by_number = cells.set_index("cell")[["target", "workload", "repetition"]].to_dict("index")
    tagged = {}
    for slug, entry in raw.items():
        known = by_number.get(int(slug.split("-", 1)[0]))
        if known is not None:
            tagged[slug] = {**entry, **known}
    return tagged


def latest_run(path: str | Path) -> Path:
    """``path`` when it is one run directory, else its newest run (by the manifest's start
    time): notebooks and scripts can point at ``results/<suite>`` and get the last run."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        return path
    if not path.is_dir():
        raise ResultsError(f"{path}: no such results directory")
    runs = [p for p in path.iterdir() if (p / "manifest.json").is_file()]
    if not runs:
        raise ResultsError(f"{path}: no runs in this directory (no */manifest.json)")
    return max(runs, key=lambda run: (load_manifest(run).get("created_at", ""), run.name))
