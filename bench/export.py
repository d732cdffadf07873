"""A run's samples as a file other tools read: CSV for spreadsheets, Parquet for data tools
(pyarrow, the ``parquet`` extra), JSON Lines for scripts (``jq``, a log shipper). A run's key
metrics for Prometheus are ``bench.promexport``'s.

The table is exactly ``bench.results.load()``'s tidy one (run_id, target, kind, workload,
workload_kind, repetition, metric, value, unit, cell): what a notebook sees is what a
spreadsheet sees, and each format reads back through pandas into the same frame.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import IO

import pandas as pd

from bench.errors import InputError

FORMATS = ("csv", "parquet", "json")


def write(frame: pd.DataFrame, fmt: str, out: Path | None) -> None:
    """``frame`` as ``fmt`` into ``out`` (stdout when None; Parquet is binary and needs a
    file)."""
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        _parquet(frame, out)
        return
    if out is None:
        _text(frame, fmt, sys.stdout)
        return
    with out.open("w", encoding="utf-8", newline="") as handle:
        _text(frame, fmt, handle)


def _text(frame: pd.DataFrame, fmt: str, handle: IO[str]) -> None:
    if fmt == "csv":
        frame.to_csv(handle, index=False)
    else:
        frame.to_json(handle, orient="records", lines=True, double_precision=15)
        handle.write("\n")


def _parquet(frame: pd.DataFrame, out: Path | None) -> None:
    if out is None:
        raise InputError("--format parquet writes a binary file: give one with -o FILE")
    if importlib.util.find_spec("pyarrow") is None:
        raise InputError(
            "--format parquet needs pyarrow, which is not installed",
            hint="pip install 'isolation-bench[parquet]' (or pyarrow), or use --format csv or json",
        )
    frame.to_parquet(out, index=False)
