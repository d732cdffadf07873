"""Exports of a history for dashboards: ``metrics.prom`` (OpenMetrics text of the latest run's
key metrics, for node_exporter's textfile collector) and ``history.parquet`` (every summary in
the index, one row per run and metric)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from bench.metrics import KEY_METRICS
from bench.nightly import history
from bench.nightly.record import Outcome

PROM = "metrics.prom"
PARQUET = "history.parquet"
EXPORT_MODE = 0o644  # read by exporters running as other users than the nightly job


def _label(value: Any) -> str:
    """An OpenMetrics label value: backslash, quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics(outcome: Outcome) -> str:
    """The latest run's key metrics as OpenMetrics text (node_exporter's textfile collector
    reads it): medians, the regression count and when the run finished."""
    entry = outcome.entry
    suite = _label(entry.suite)
    lines = [
        "# HELP bench_metric_median Median over the repetitions of the latest nightly run.",
        "# TYPE bench_metric_median gauge",
    ]
    for row in entry.summary:
        if row["metric"] not in KEY_METRICS:
            continue
        labels = (
            f'suite="{suite}",target="{_label(row["target"])}",'
            f'workload="{_label(row["workload"])}",metric="{_label(row["metric"])}",'
            f'unit="{_label(row["unit"])}"'
        )
        lines.append(f"bench_metric_median{{{labels}}} {row['median']!r}")
    lines += [
        "# HELP bench_regressions Regressions found against the previous comparable run.",
        "# TYPE bench_regressions gauge",
        f'bench_regressions{{suite="{suite}"}} {outcome.regressions}',
        "# HELP bench_fingerprint_changes Target fingerprint changes since the previous run.",
        "# TYPE bench_fingerprint_changes gauge",
        f'bench_fingerprint_changes{{suite="{suite}"}} {len(outcome.events)}',
        "# HELP bench_last_run_timestamp_seconds When the latest nightly run finished.",
        "# TYPE bench_last_run_timestamp_seconds gauge",
        f'bench_last_run_timestamp_seconds{{suite="{suite}"}} {_timestamp(entry)}',
        "# EOF",
    ]
    return "\n".join(lines) + "\n"


def _timestamp(entry: history.Entry) -> float:
    when = pd.Timestamp(entry.finished_at or entry.created_at)
    return round(when.timestamp(), 3)


def export(root: Path, outcome: Outcome) -> tuple[Path, Path]:
    """metrics.prom (replaced atomically, as the textfile collector requires) and
    history.parquet (every run's summaries, one row per run and metric), both mode 0644."""
    prom = root / PROM
    text = openmetrics(outcome)
    _publish(prom, lambda path: _write_text(path, text))
    frame = history.series(history.History(root).entries())
    parquet = root / PARQUET
    _publish(parquet, lambda path: frame.to_parquet(path, index=False))
    return prom, parquet


def _publish(path: Path, write: Callable[[Path], None]) -> None:
    """Replace ``path`` atomically by a file ``write`` fills, readable by everyone whatever the
    umask (a node_exporter or dashboard runs as another user than the root cron job). The
    temporary file has a fresh random name: nothing planted beside ``path`` is written to."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, EXPORT_MODE)
        os.close(fd)
        write(Path(name))
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    with path.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
