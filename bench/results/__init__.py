"""Stored results: one flat Sample record, the run directory, and ``load()`` for analysis.

Layout of ``<results>/<suite>/<run-id>/``::

    manifest.json   suite as run, versions, host and target fingerprints, plan, status
                    (``model.Manifest``: typed and versioned)
    samples.jsonl   one row per metric per cell (only measured values)
    cells.jsonl     one row per finished cell: status, verdict and its reasons, error, start-up,
                    absent metrics + reasons
    raw/<cell>.json per-iteration arrays (step times, latencies, batch times), the GPU timeline,
                    the host-side memory timeline and when each start-up phase ended

``store`` writes a run as its cells finish, ``read`` loads it back (tidy DataFrames for
notebooks, the typed manifest for bench's own readers), ``model`` says what a stored run means.
"""

from __future__ import annotations

from bench.results.model import MANIFEST, SCHEMA_VERSION, Manifest, TargetEntry
from bench.results.read import (
    invalid_cells,
    invalid_numbers,
    latest_run,
    load,
    load_cells,
    load_manifest,
    load_raw,
    load_valid,
    read_manifest,
    run_dir,
    run_name,
    tag_raw,
)
from bench.results.records import SAMPLE_COLUMNS, CellRecord, Sample
from bench.results.rows import ResultsWarning
from bench.results.store import RESERVE_FILE, ResultStore, write_atomic
from bench.results.swept import swept

__all__ = [
    "MANIFEST",
    "RESERVE_FILE",
    "SAMPLE_COLUMNS",
    "SCHEMA_VERSION",
    "CellRecord",
    "Manifest",
    "ResultStore",
    "ResultsWarning",
    "Sample",
    "TargetEntry",
    "invalid_cells",
    "invalid_numbers",
    "latest_run",
    "load",
    "load_cells",
    "load_manifest",
    "load_raw",
    "load_valid",
    "read_manifest",
    "run_dir",
    "run_name",
    "swept",
    "tag_raw",
    "write_atomic",
]
