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

A write that fails (disk full, quota, I/O error) is a ``ResultsWriteError``: the cell being
written is dropped (cells.jsonl, written last, is what commits a cell, and it still holds the
previous cells) and the run stops. So that the final manifest can still say why, a run keeps
``manifest.reserve`` beside it, space set aside (twice the manifest's size, at least 64 KiB) and
given back just before the final manifest is written; if even that write fails, the manifest
is overwritten in place, compact, within the bytes it already occupies.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import TypeAdapter

from bench.errors import ResultsError, ResultsWriteError
from bench.results import rows as resultrows
from bench.results.rows import ResultsWarning

SCHEMA_VERSION = 1
RESERVE_FILE = "manifest.reserve"
RESERVE_MIN_BYTES = 64 << 10
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
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
        try:
            self.write_manifest({"schema": SCHEMA_VERSION, "run_id": self.run_id, **manifest})
        except ResultsWriteError:
            shutil.rmtree(self.path, ignore_errors=True)  # nothing ran: leave no empty run
            raise

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace the manifest, and keep enough space in reserve to write it once more."""
        self.manifest = manifest
        text = json.dumps(manifest, indent=2, default=str)
        file = self.path / "manifest.json"
        try:
            write_atomic(file, text)
            _reserve(self.path / RESERVE_FILE, max(RESERVE_MIN_BYTES, 2 * len(text)))
        except OSError as exc:
            raise self._write_error(f"cannot write {file}", exc) from None

    def update_manifest(self, **fields: Any) -> None:
        """Merge ``fields`` into the manifest."""
        self.write_manifest({**self.manifest, **fields})

    def finish(self, **fields: Any) -> None:
        """Write the final manifest (status, and why when the run failed) and give the reserve
        back. This is the write that must succeed when the disk is full: the reserve is freed
        first so the atomic write has room, and failing that the file is overwritten in place
        with a compact copy that fits in the bytes it already holds."""
        self.manifest = {**self.manifest, **fields}
        file = self.path / "manifest.json"
        (self.path / RESERVE_FILE).unlink(missing_ok=True)
        try:
            write_atomic(file, json.dumps(self.manifest, indent=2, default=str))
        except OSError as exc:
            if not _overwrite_in_place(file, self.manifest):
                raise self._write_error(f"cannot write {file}", exc) from None

    def add_cell(self, record: CellRecord, samples: list[Sample], raw: dict[str, Any]) -> None:
        """Persist one finished cell: raw arrays, samples, then the record that commits them.

        If a write fails, the cell is not committed (cells.jsonl still lists the earlier cells
        only; samples without a committed cell are not results) and its raw file is removed.
        """
        raw_file = self.path / "raw" / f"{record.slug}.json"
        try:
            write_atomic(raw_file, json.dumps(raw))
            all_samples = [asdict(s) for s in [*self.samples, *samples]]
            write_atomic(self.path / "samples.jsonl", _jsonl(all_samples))
            write_atomic(
                self.path / "cells.jsonl",
                _jsonl([asdict(c) for c in self.cells] + [asdict(record)]),
            )
        except OSError as exc:
            raw_file.unlink(missing_ok=True)
            what = (
                f"cannot record cell {record.cell} ({record.workload} on {record.target}, "
                f"repetition {record.repetition})"
            )
            raise self._write_error(what, exc) from None
        self.samples += samples
        self.cells.append(record)

    def _write_error(self, what: str, exc: OSError) -> ResultsWriteError:
        """One line: what could not be written, the system's reason, and what is kept."""
        name = errno.errorcode.get(exc.errno or 0, "")
        reason = f"{exc.strerror} ({name})" if exc.strerror and name else str(exc)
        where = f": {exc.filename}" if exc.filename and str(exc.filename) not in what else ""
        kept = f"{len(self.cells)} finished cell{'s are' if len(self.cells) != 1 else ' is'}"
        return ResultsWriteError(
            f"{what}{where}: {reason}; the run stopped, {kept} kept in {self.path}",
            hint="free space on the results filesystem or pass another --results-dir",
        )


def _reserve(path: Path, size: int) -> None:
    """Grow the reserve file to ``size`` bytes of allocated blocks (never shrinks it). Only a
    lack of space is an error: a filesystem that cannot allocate ahead just has no reserve."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        if os.fstat(fd).st_size < size:
            os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise
    finally:
        os.close(fd)


def _overwrite_in_place(file: Path, manifest: dict[str, Any]) -> bool:
    """Rewrite ``file`` with compact JSON padded with spaces to its current length, so no new
    block is needed (on filesystems that overwrite in place); False when it cannot."""
    text = json.dumps(manifest, separators=(",", ":"), default=str).encode()
    try:
        size = file.stat().st_size
        if len(text) > size:
            return False
        with file.open("r+b") as handle:
            handle.write(text + b" " * (size - len(text)))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        return False
    return True


def _run_dirs(path: Path) -> list[Path]:
    """``path`` itself when it is a run, else the runs directly under it (a suite directory)."""
    if (path / "manifest.json").is_file():
        return [path]
    runs = sorted(p.parent for p in path.glob("*/manifest.json"))
    if not runs:
        raise ResultsError(f"{path}: not a run directory (no manifest.json) and holds no runs")
    return runs


@cache
def _adapter(record: type) -> TypeAdapter[Any]:
    """The validator of a stored record type (built once: building one takes milliseconds)."""
    return TypeAdapter(record)


def _sample_row(row: Any) -> dict[str, Any]:
    """A samples.jsonl row with the columns of ``Sample`` and their types, or ValueError."""
    sample = asdict(_adapter(Sample).validate_python(row))
    resultrows.index(sample["cell"], "cell")
    resultrows.index(sample["repetition"], "repetition")
    return sample


def _cell_row(row: Any) -> dict[str, Any]:
    """A cells.jsonl row with at least the fields of ``CellRecord`` (typed), or ValueError;
    keys a newer bench added are kept."""
    record = asdict(_adapter(CellRecord).validate_python(row))
    resultrows.index(record["cell"], "cell")
    resultrows.index(record["repetition"], "repetition")
    return {**row, **record}


def _read_cells(run: Path) -> list[dict[str, Any]]:
    return resultrows.read_rows(run / "cells.jsonl", _cell_row, unique="cell")


def _committed_samples(run: Path) -> list[dict[str, Any]]:
    """Samples of the cells listed in cells.jsonl, which is written last and so commits a cell.

    A run killed between writing a cell's samples and its cell record leaves samples that no
    cell accounts for; they are not results.
    """
    committed = {row["cell"] for row in _read_cells(run)}
    rows = resultrows.read_rows(run / "samples.jsonl", _sample_row)
    return [row for row in rows if row["cell"] in committed]


def load(path: str | Path) -> pd.DataFrame:
    """Samples of a run (or of every run in a suite directory) as a tidy DataFrame.

    Columns: run_id, target, kind, workload, workload_kind, repetition, metric, value, unit,
    cell. One row per metric per repetition; metrics that could not be measured are absent
    (their reasons are in ``load_cells``). A corrupt line is skipped with a ``ResultsWarning``
    naming the file and line, and the rest loads; a file with no readable row, or a bad
    manifest, is a ``ResultsError``.
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
        rows += [{"run_id": run_id, **row} for row in _read_cells(run)]
    return pd.DataFrame(rows)


def load_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of one run directory (a JSON object, else a ``ResultsError``)."""
    file = Path(path) / "manifest.json"
    manifest = resultrows.read_json(file, "malformed manifest")
    problem = resultrows.manifest_problem(manifest)
    if problem:
        raise ResultsError(f"{file}: malformed manifest: {problem}")
    return manifest


def load_raw(path: str | Path) -> dict[str, dict[str, Any]]:
    """Per-iteration arrays of every cell of one run, keyed by the cell's file stem. A file
    that is not a JSON object is skipped with a ``ResultsWarning``."""
    out = {}
    for file in sorted(Path(path, "raw").glob("*.json")):
        try:
            entry = resultrows.read_json(file, "malformed raw file")
        except ResultsError as exc:
            warnings.warn(f"{exc.message}; skipped", ResultsWarning, stacklevel=2)
            continue
        if not isinstance(entry, dict):
            warnings.warn(f"{file}: not a JSON object; skipped", ResultsWarning, stacklevel=2)
            continue
        out[file.stem] = entry
    return out


def tag_raw(raw: dict[str, dict[str, Any]], cells: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """``raw`` with each entry's target, workload and repetition added from ``cells``, so raw
    arrays can be grouped without parsing names (a target's name may contain dashes)."""
    if cells.empty:
        return {}
    by_number = cells.set_index("cell")[["target", "workload", "repetition"]].to_dict("index")
    tagged = {}
    for slug, entry in raw.items():
        number = slug.split("-", 1)[0]
        known = by_number.get(int(number)) if number.isdecimal() else None
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
