"""What ``bench nightly`` does around a run: hold the history's lock, record the run in the
history, compare it with the previous comparable run, say what changed, alert, export for
dashboards and prune old runs."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from bench import results
from bench.compare import DRIFT, REGRESSION, Comparison, compare_runs
from bench.errors import InputError, ResultsError
from bench.nightly import history, webhook
from bench.report import regressions as render
from bench.report.terminal import KEY_METRICS

LOCK = "nightly.lock"
ALERTS = "alerts"
PROM = "metrics.prom"
PARQUET = "history.parquet"
EXPORT_MODE = 0o644  # metrics.prom and history.parquet: read by exporters running as others
DIR_MODE = 0o755  # a history directory bench creates: those readers must reach the exports
WEBHOOK_ENV = "BENCH_ALERT_WEBHOOK"


class LockedError(InputError):
    """Another ``bench nightly`` is using the history directory."""


def _open_lock(path: Path) -> IO[str]:
    """The lock file, opened without following a symbolic link (bench runs as root: a link
    planted there would have it truncate any file on the system) and refused unless it is a
    plain file with one name."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        what = "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be opened: {exc}"
        raise InputError(f"{path} {what}; nothing was changed", hint="remove it") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise InputError(
            f"{path} is not a plain file with a single name; nothing was changed",
            hint="remove it",
        )
    return os.fdopen(fd, "r+")


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold ``root/nightly.lock`` for the duration, or fail at once without touching anything.

    ``flock`` is released by the kernel when the holder dies, so a killed run never leaves a
    stale lock behind; the file only says who holds it.
    """
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, DIR_MODE)  # the exports inside are for readers running as other users
    handle = _open_lock(root / LOCK)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise LockedError(
            f"{root}: another bench nightly is running ({holder}); nothing was changed",
            hint="wait for it to finish; the lock goes away when that process exits",
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        handle.flush()
        yield
    finally:
        handle.truncate(0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@dataclass
class Outcome:
    """What one nightly run found."""

    entry: history.Entry
    previous: history.Entry | None
    comparison: Comparison | None
    events: list[str]
    failed_cells: int
    alert: Path | None = None
    webhook: str | None = None  # None: not configured; else "sent" or why it failed
    pruned: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # run directories deleted by hand

    @property
    def regressions(self) -> int:
        return 0 if self.comparison is None else len(self.comparison.regressions)

    @property
    def noteworthy(self) -> bool:
        return bool(self.regressions or self.events or self.failed_cells)


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
        found = compare_runs(root / before.path, run_dir, threshold, overrides)
        comparable = [e for e in entries if e.suite_hash == entry.suite_hash]
        discount_drift(found, [e for e in comparable if e.targets == entry.targets])
        entry.compared_with = before.run_id
        entry.regressions = len(found.regressions)
        entry.verdict = render.verdict(found)
    else:
        entry.verdict = "no earlier comparable run"
    entry.events = events
    store.save([*entries, entry])
    cells = results.load_cells(run_dir)
    failed = int((cells["status"] != "ok").sum()) if "status" in cells else 0
    return Outcome(entry, before, found, events, failed, missing=missing)


def forget_missing(root: Path, entries: list[history.Entry]) -> list[str]:
    """Entries whose run directory is gone (deleted by hand) become summaries only, as pruned
    ones are, so the comparison looks further back; one line for the user about each."""
    out = []
    for entry in entries:
        if entry.path and not (root / entry.path / "manifest.json").is_file():
            out.append(
                f"run {entry.run_id}: its directory {root / entry.path} is missing; compared "
                "with the newest earlier run still stored (its summary stays in the history)"
            )
            entry.path = ""
    return out


MIN_RUNS_FOR_DRIFT = 6  # five night-to-night steps: fewer say little about the spread
DRIFT_WIDTH = 3.0  # robust standard deviations of the log run medians


def drift(entries: list[history.Entry], key: tuple[str, str, str]) -> float | None:
    """How far this metric's run median wanders from one comparable run to the next with
    nothing changed: 3 robust standard deviations (1.4826 × MAD) of the night-to-night steps
    of its logarithm, as a fraction; None with fewer than ``MIN_RUNS_FOR_DRIFT`` earlier runs."""
    medians = [
        row["median"]
        for e in entries[-10:]
        for row in e.summary
        if (row["target"], row["workload"], row["metric"]) == key and row["median"] > 0
    ]
    if len(medians) < MIN_RUNS_FOR_DRIFT:
        return None
    steps = np.diff(np.log(np.asarray(medians, dtype=float)))
    # night-to-night steps: a real step change is one outlier among them, which the median
    # ignores; a step is the difference of two runs, hence the sqrt(2)
    spread = 1.4826 * float(np.median(np.abs(steps - np.median(steps)))) / np.sqrt(2)
    return float(np.expm1(DRIFT_WIDTH * spread))


def discount_drift(found: Comparison, earlier: list[history.Entry]) -> None:
    """A regression no larger than the drift the history shows between unchanged runs is
    relabelled: separate runs differ by more than their repetitions do (the U test and the
    interval cannot see that), and an alert that fires on drift teaches people to ignore it."""
    rows = found.rows
    for index in rows.index[rows["status"] == REGRESSION]:
        row = rows.loc[index]
        floor = drift(earlier, (row["target"], row["workload"], row["metric"]))
        if floor is not None and abs(row["ratio"] - 1.0) <= floor:
            rows.loc[index, "status"] = DRIFT


def alert_text(outcome: Outcome, report: Path | None) -> str:
    """The Markdown summary: the verdict, fingerprint events, regressions, where to look."""
    entry = outcome.entry
    lines = [f"# bench nightly: {entry.suite}, run {entry.run_id}", ""]
    lines.append(f"- **status**: {entry.status}")
    base = outcome.previous.run_id if outcome.previous else "none (first comparable run)"
    lines.append(f"- **compared with**: {base}")
    lines.append(f"- **verdict**: {entry.verdict}")
    if outcome.failed_cells:
        lines.append(f"- **failed cells**: {outcome.failed_cells}")
    if report is not None:
        lines.append(f"- **report**: {report}")
    if outcome.events:
        lines += ["", "## Fingerprint changes since the previous run of this suite", ""]
        lines += [f"- {event}" for event in outcome.events]
    if outcome.comparison is not None and outcome.regressions:
        rows = outcome.comparison.regressions
        lines += ["", "## Regressions", ""]
        lines += [
            f"- {r.target} · {r.workload} · {r.metric}: {r.change:+.1%} "
            f"[{r.ci_low - 1:+.1%}, {r.ci_high - 1:+.1%}], p={r.p_value:.3g}"
            for r in rows.itertuples(index=False)
        ]
    return "\n".join(lines) + "\n"


def write_alert(root: Path, outcome: Outcome, report: Path | None) -> Path:
    path = root / ALERTS / f"{outcome.entry.run_id}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    results.write_atomic(path, alert_text(outcome, report))
    return path


def post_webhook(
    url: str, outcome: Outcome, text: str, timeout_s: float = webhook.DEADLINE_S
) -> str:
    """POST the alert as JSON (``text`` is what chat webhooks display) within ``timeout_s``
    overall; "sent" or why not, in words that never include the URL (it comes from the
    environment, often holds a token, and is never written into the history or the log)."""
    payload = {
        "text": text,
        "suite": outcome.entry.suite,
        "run_id": outcome.entry.run_id,
        "regressions": outcome.regressions,
        "events": outcome.events,
        "failed_cells": outcome.failed_cells,
    }
    return webhook.post(url, payload, timeout_s)


# --- exports ----------------------------------------------------------------------------------


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


def prune(root: Path, keep: int, warn: Callable[[str], None] = lambda line: None) -> list[str]:
    """Delete the run directories of all but the newest ``keep`` runs in the index; their
    summaries stay, so trends and change points still cover them. An entry whose path leaves
    the history is left as it is, and ``warn`` is told (one line each)."""
    store = history.History(root)
    entries = store.entries()
    pruned = []
    for entry in entries[: max(len(entries) - keep, 0)]:
        if entry.path:
            try:
                path = history.run_path(root, entry)
            except ResultsError as exc:
                warn(exc.one_line())
                continue
            shutil.rmtree(path, ignore_errors=True)
            pruned.append(entry.run_id)
            entry.path = ""
    if pruned:
        store.save(entries)
    return pruned
