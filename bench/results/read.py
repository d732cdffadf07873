"""Reading stored runs: samples and cells as tidy DataFrames for analysis, the manifest as
its typed model, and what a cell's verdict means for the statistics.

Only committed cells are results (``cells.jsonl`` is written last and commits a cell); a
corrupt line is skipped with a ``ResultsWarning`` and the rest loads.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import TypeAdapter

from bench.errors import ResultsError
from bench.results import model
from bench.results import rows as resultrows
from bench.results.model import MANIFEST, Manifest
from bench.results.records import SAMPLE_COLUMNS, CellRecord, Sample
from bench.results.rows import ResultsWarning


def _run_dirs(path: Path) -> list[Path]:
    """``path`` itself when it is a run, else the runs directly under it (a suite directory)."""
    if (path / MANIFEST).is_file():
        return [path]
    runs = sorted(p.parent for p in path.glob(f"*/{MANIFEST}"))
    if not runs:
        raise ResultsError(f"{path}: not a run directory (no {MANIFEST}) and holds no runs")
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
    sample["unit"] = RENAMED_UNITS.get((sample["metric"], sample["unit"]), sample["unit"])
    return sample


RENAMED_UNITS = {("infer.throughput", "queries/s"): "samples/s"}
"""Units older runs wrote for the same quantity: inference throughput always counted samples
(batch size x requests per second), so a stored run and a new one compare as they are."""


def _cell_row(row: Any) -> dict[str, Any]:
    """A cells.jsonl row with at least the fields of ``CellRecord`` (typed), or ValueError;
    keys a newer bench added are kept."""
    if isinstance(row, dict) and "verdict" not in row:  # stored before cells had verdicts
        failed = row.get("status") != "ok"
        reasons = [f"the cell failed: {row.get('error')}"] if failed else []
        row = {**row, "verdict": "INVALID" if failed else "VALID", "reasons": reasons}
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
        run_id = run_name(run, read_manifest(run))
        rows += [{"run_id": run_id, **row} for row in _read_cells(run)]
    return pd.DataFrame(rows)


def load_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of one run directory as stored (a JSON object whose known fields have
    their documented shape, else a ``ResultsError``), for notebooks; bench itself reads
    ``read_manifest``."""
    raw, _ = _manifest(Path(path))
    return raw


def read_manifest(path: str | Path) -> Manifest:
    """The typed manifest of one run directory, migrated to the current schema; a
    ``ResultsError`` naming the field when it is malformed."""
    _, found = _manifest(Path(path))
    return found


def _manifest(path: Path) -> tuple[dict[str, Any], Manifest]:
    file = path / MANIFEST
    raw = resultrows.read_json(file, "malformed manifest")
    try:
        return raw, model.parse(raw)
    except ValueError as exc:
        raise ResultsError(f"{file}: malformed manifest: {exc}") from None


def run_dir(path: str | Path) -> Path:
    """``path`` if it holds one run, else a one-line error saying what it is instead."""
    path = Path(path)
    if not path.is_dir():
        raise ResultsError(f"{path}: no such run directory")
    if not (path / MANIFEST).is_file():
        raise ResultsError(
            f"{path}: not a run directory (no {MANIFEST})",
            hint="pass results/<suite>/<run-id>, as printed last by bench run",
        )
    return path


def run_name(path: Path, manifest: Manifest) -> str:
    """The run's id, or its directory's name for a run that never recorded one."""
    return manifest.run_id or path.name


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
    if (path / MANIFEST).is_file():
        return path
    if not path.is_dir():
        raise ResultsError(f"{path}: no such results directory")
    runs = [p for p in path.iterdir() if (p / MANIFEST).is_file()]
    if not runs:
        raise ResultsError(f"{path}: no runs in this directory (no */manifest.json)")
    return max(runs, key=lambda run: (read_manifest(run).created_at or "", run.name))


def invalid_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The INVALID cells with their reasons: their numbers do not mean what they claim
    (throttled CPU, too few iterations, cache not dropped…), so comparisons and histories
    leave them out and reports list them. A frame built without verdicts counts its failed
    cells as INVALID."""
    if cells.empty or "status" not in cells:
        return cells
    frame = cells.copy()
    if "verdict" not in frame:
        frame["verdict"] = frame["status"].map(lambda s: "VALID" if s == "ok" else "INVALID")
        frame["reasons"] = frame["error"].map(lambda e: [f"the cell failed: {e}"])
    return frame[frame["verdict"] == "INVALID"]


def invalid_numbers(cells: pd.DataFrame) -> set[int]:
    """The numbers of the INVALID cells (see ``invalid_cells``)."""
    flagged = invalid_cells(cells)
    return set(flagged["cell"]) if not flagged.empty else set()


def load_valid(path: str | Path) -> pd.DataFrame:
    """The samples of one run's VALID cells: what a comparison, the nightly index and a
    Prometheus export summarise (an INVALID cell's numbers do not mean what they claim)."""
    samples = load(path)
    return samples[~samples["cell"].isin(invalid_numbers(load_cells(path)))]
