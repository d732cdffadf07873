"""``bench nightly`` as one function: under the history's lock, check the index, run the suite
into the history, write its report, record and compare it, alert, export (and push to a
Pushgateway when asked) and prune. It returns an ``Outcome`` and prints nothing: the command
line shows it.

How the suite is run is passed in (``execute``): the progress display and the warnings before
the first cell are the terminal's, and ``bench run`` shows them the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench import promexport
from bench.errors import PushError
from bench.nightly import history
from bench.nightly.alerts import WEBHOOK_ENV, post_webhook, write_alert
from bench.nightly.export import export, published
from bench.nightly.lock import locked
from bench.nightly.record import Outcome, record
from bench.nightly.retention import prune
from bench.report import document

if TYPE_CHECKING:
    from bench.runner import RunSummary

Execute = Callable[[Path], "tuple[Path, RunSummary]"]  # results directory -> run directory


@dataclass(frozen=True)
class Options:
    """``bench nightly``'s settings, parsed."""

    threshold: float = 0.05
    overrides: dict[str, float] = field(default_factory=dict)
    keep: int = 30  # runs kept in full; older ones keep only their summary in the index
    pushgateway: str | None = None  # where the night's key metrics are pushed, if anywhere


def night(root: Path, execute: Execute, options: Options) -> Outcome:
    """One night of the suite ``execute`` runs, recorded in the history ``root``.

    Raises ``LockedError`` (nothing changed) while another nightly holds the history, and
    ``ResultsError`` before anything runs when the index cannot be read: a night whose result
    could not be recorded would be lost.
    """
    with locked(root):
        history.History(root).entries()  # an unreadable index stops the night unrun
        run_dir, summary = execute(root / history.RUNS)
        report, report_error = _report(run_dir)
        outcome = record(root, run_dir, options.threshold, options.overrides)
        outcome.run_dir, outcome.run_failed = run_dir, summary.failed
        outcome.report, outcome.report_error = report, report_error
        if outcome.noteworthy:
            _alert(root, outcome)
        outcome.exports = export(root, outcome, outcome.warnings.append)
        if options.pushgateway:
            _push(options.pushgateway, outcome)
        outcome.pruned = prune(root, options.keep, outcome.warnings.append)
    return outcome


def _report(run_dir: Path) -> tuple[tuple[Path, Path] | None, str | None]:
    """The run's report.html and report.md, or why they could not be drawn: that loses no
    results (the run is stored and ``bench report`` can retry), so the night goes on."""
    try:
        return document.write(run_dir), None
    except Exception as exc:  # a drawing failure must not lose the night's record
        return None, str(exc)


def _alert(root: Path, outcome: Outcome) -> None:
    """The alert file, and the webhook when ``BENCH_ALERT_WEBHOOK`` is set."""
    outcome.alert = write_alert(root, outcome, outcome.report[0] if outcome.report else None)
    url = os.environ.get(WEBHOOK_ENV)
    if url:
        outcome.webhook = post_webhook(url, outcome, outcome.alert.read_text())


def _push(url: str, outcome: Outcome) -> None:
    """The night's gauges to the Pushgateway, after everything is recorded and exported: a
    gateway that is down loses no result, and the night goes on to prune."""
    try:
        count = promexport.push(url, published(outcome))
    except PushError as exc:
        outcome.push_error = exc.one_line()
        return
    outcome.pushed = f"{promexport.shown(url)} ({count} series, job {promexport.JOB})"
