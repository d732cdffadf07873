"""Exports of a history for dashboards: ``metrics.prom`` (the latest run's key metrics in the
Prometheus text format, for node_exporter's textfile collector; the series are
``bench.promexport``'s) and ``history.parquet`` (every summary in the index, one row per run
and metric; only where pyarrow is installed, the ``parquet`` extra)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from prometheus_client import write_to_textfile

from bench import promexport
from bench.nightly import history
from bench.nightly.record import Outcome

PROM = "metrics.prom"
PARQUET = "history.parquet"
EXPORT_MODE = 0o644  # read by exporters running as other users than the nightly job
NO_PYARROW = (
    f"{PARQUET} not written: pyarrow is not installed "
    "(pip install 'isolation-bench[parquet]' to have it; metrics.prom and the index are complete)"
)


def published(outcome: Outcome) -> promexport.Published:
    """The night's run as ``metrics.prom`` and a push show it: its medians, the regressions
    against the previous comparable run and the fingerprint changes."""
    entry = outcome.entry
    return promexport.Published(
        suite=entry.suite,
        run_id=entry.run_id,
        finished=promexport.timestamp(entry.finished_at, entry.created_at),
        summary=entry.summary,
        regressions=outcome.regressions,
        fingerprint_changes=len(outcome.events),
    )


def export(
    root: Path, outcome: Outcome, warn: Callable[[str], None] = lambda line: None
) -> tuple[Path, Path | None]:
    """metrics.prom (replaced atomically, as the textfile collector requires) and
    history.parquet (every run's summaries, one row per run and metric), both mode 0644.
    Without pyarrow there is no history.parquet (None), and ``warn`` is told once."""
    prom = root / PROM
    gauges = promexport.registry(published(outcome))
    _publish(prom, lambda path: write_to_textfile(str(path), gauges))
    if importlib.util.find_spec("pyarrow") is None:
        warn(NO_PYARROW)
        return prom, None
    frame = history.series(history.History(root).entries())
    parquet = root / PARQUET
    _publish(parquet, lambda path: frame.to_parquet(path, index=False))
    return prom, parquet


def _publish(path: Path, write: Callable[[Path], None]) -> None:
    """Replace ``path`` atomically by a file ``write`` makes, readable by everyone whatever the
    umask (a node_exporter or dashboard runs as another user than the root cron job), and on
    disk before it replaces the old one.

    ``write`` works in a fresh private directory beside ``path`` (same filesystem, so the final
    rename is atomic): writers that pick their own temporary names there (prometheus_client's
    is predictable) write to nothing planted beside ``path``, and the file gets its mode
    before anyone can see it under its name."""
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        staged = staging / path.name
        write(staged)
        fd = os.open(staged, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, EXPORT_MODE)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(staged, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
