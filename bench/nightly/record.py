"""One night's run added to the history: summarised, compared with the previous comparable run
(with the history's drift as the floor of a regression), and what changed in the targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench import results
from bench.compare import Comparison, compare_runs
from bench.nightly import drift, history
from bench.nightly.retention import forget_missing

FIRST = "no earlier comparable run"


@dataclass
class Outcome:
    """What one nightly run found and did; the CLI prints it, alerts and exports read it."""

    entry: history.Entry
    previous: history.Entry | None
    comparison: Comparison | None
    events: list[str]
    failed_cells: int
    alert: Path | None = None
    webhook: str | None = None  # None: not configured; else "sent" or why it failed
    pruned: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # run directories deleted by hand
    run_dir: Path | None = None
    run_failed: int = 0  # cells the runner counted as failed
    report: tuple[Path, Path] | None = None  # report.html and report.md
    report_error: str | None = None  # why the report could not be drawn (the run is stored)
    exports: tuple[Path, Path | None] | None = None  # metrics.prom, history.parquet (pyarrow)
    pushed: str | None = None  # None: no Pushgateway asked for; else where it went
    push_error: str | None = None  # why the push failed (the night is recorded all the same)
    warnings: list[str] = field(default_factory=list)  # pruning refusals, a skipped export

    @property
    def regressions(self) -> int:
        return 0 if self.comparison is None else len(self.comparison.regressions)

    @property
    def noteworthy(self) -> bool:
        return bool(self.regressions or self.events or self.failed_cells)

    @property
    def failing(self) -> bool:
        """Exit status 1: a regression was found, a cell failed, or the push to the
        Pushgateway failed (what the night measured is recorded, but a dashboard misses it)."""
        return bool(self.regressions or self.run_failed or self.push_error)


def record(
    root: Path,
    run_dir: Path,
    threshold: float | str = 0.05,
    overrides: dict[str, float] | None = None,
) -> Outcome:
    """Add the run to the history, compared with the previous comparable run."""
    store = history.History(root)
    entries = store.entries()
    missing = forget_missing(root, entries)
    entry = history.summarize_run(run_dir, root)
    before, events = history.previous(entries, entry)
    found = None
    if before is not None and before.path:
        same = [e for e in entries if e.suite_hash == entry.suite_hash]
        floors = drift.floors([e for e in same if e.targets == entry.targets])
        found = compare_runs(root / before.path, run_dir, threshold, overrides, floors=floors)
        entry.compared_with = before.run_id
        entry.regressions = len(found.regressions)
        entry.verdict = found.verdict()
    else:
        entry.verdict = FIRST
    entry.events = events
    store.save([*entries, entry])
    cells = results.load_cells(run_dir)
    failed = int((cells["status"] != "ok").sum()) if "status" in cells else 0
    return Outcome(entry, before, found, events, failed, missing=missing)
