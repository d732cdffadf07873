"""``bench run``, and what ``bench nightly`` and ``bench summary`` share with it: running a
suite with a progress display, the summary table, the report line."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bench.cli.common import err, line, out, translate
from bench.errors import InputError
from bench.names import NAME_PATTERN
from bench.suite import load_suite

if TYPE_CHECKING:
    from bench.runner import RunSummary


@click.command()
@click.argument("suite", type=click.Path(path_type=Path))  # load_suite: one line for a dir
@click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Where runs are stored: DIR/<suite>/<run-id>/.",
)
@click.option(
    "--run-id", help="Name of this run's directory (default: UTC timestamp, random suffix)."
)
@click.option(
    "--parallel-hosts",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Run cells on up to N different hosts at once (cells on one host stay serial).",
)
@click.option(
    "--report/--no-report",
    default=True,
    show_default=True,
    help="Write report.html and report.md into the run directory at the end.",
)
@translate
def run(
    suite: Path, results_dir: Path, run_id: str | None, parallel_hosts: int, report: bool
) -> None:
    """Run every cell of SUITE and print a summary; the last line is the run directory.

    Each cell is written as soon as it finishes; a failed cell is recorded and the run goes
    on (exit status 1). Ctrl-C stops cleanly and keeps finished cells (exit status 130).
    """
    path, summary = execute(suite, results_dir, run_id, parallel_hosts)
    print_run(path)
    if report:
        print_report(path, *write_report(path))
    line(str(path))
    if summary.failed:
        sys.exit(1)


def execute(
    suite: Path, results_dir: Path, run_id: str | None, parallel_hosts: int
) -> tuple[Path, RunSummary]:
    """Validate SUITE and run every cell into ``results_dir/<suite>/<run-id>``."""
    from bench import fleet, results
    from bench.metadata import new_run_id
    from bench.progress import RichObserver
    from bench.runner import Runner

    if run_id is not None and not re.fullmatch(NAME_PATTERN, run_id):
        raise InputError(f"--run-id {run_id!r}: use letters, digits, '.', '_' and '-' only")
    spec = fleet.expand(load_suite(suite))
    print_exposure(spec)
    size = run_size(spec, results_dir)  # from earlier runs only: before this one is created
    run_id = run_id or new_run_id(results_dir / spec.name)
    store = results.ResultStore(results_dir, spec.name, run_id)
    observer = RichObserver(err, earlier_durations(spec, results_dir))
    runner = Runner(spec, store, observer)  # refuses a missing secret: no header before that
    err.print(size, highlight=False, markup=False, soft_wrap=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    with observer:
        summary = runner.run(str(suite), parallel_hosts)
    return store.path, summary


def print_exposure(spec: Any) -> None:
    """The run header's loud part: settings that give a workload or the network power over a
    host (also recorded in the manifest and shown in the report)."""
    from bench import exposure

    for warning in exposure.warnings(spec):
        err.print(
            f"warning: {warning}", style="bold red", highlight=False, markup=False, soft_wrap=True
        )


def earlier_durations(spec: Any, results_dir: Path) -> dict[tuple[str, str], float]:
    """Each (target, workload)'s median cell duration in earlier runs of the suite: the
    progress bar's first guess at the time left, until this run's own cells say more."""
    from bench import estimate

    return estimate.earlier_durations(results_dir / spec.name)


def run_size(spec: Any, results_dir: Path) -> str:
    """The run header's plain part: how many cells, and how long earlier runs of the suite
    say they take (a matrix multiplies cells before anyone counts them)."""
    from bench import estimate
    from bench.plan import build_plan

    return estimate.header(spec, build_plan(spec), results_dir)


def _raise_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (e.g. a CI timeout) tears down like Ctrl-C."""
    raise KeyboardInterrupt


def print_run(path: Path) -> None:
    """The summary table of the stored run in ``path``."""
    from bench import results  # pandas: what validate skips
    from bench.report.terminal import print_summary  # scipy.stats: 0.5 s that validate skips

    manifest = results.read_manifest(path)
    name, run_id = manifest.suite.name or "?", results.run_name(path, manifest)
    title = f"{name} · run {run_id} · median, its 95% CI and IQR"
    samples, cells, raw = results.load(path), results.load_cells(path), results.load_raw(path)
    print_summary(out, samples, cells, title, manifest, raw)


def write_report(path: Path) -> tuple[tuple[Path, Path] | None, str | None]:
    """The run's report.html and report.md, or why they could not be drawn: that loses no
    results, so it is a warning here."""
    from bench.report import document

    try:
        return document.write(path), None
    except Exception as exc:  # the measurements are stored; say how to retry
        return None, str(exc)


def print_report(path: Path, written: tuple[Path, Path] | None, error: str | None) -> None:
    """Where the report is, or why it is not and how to retry."""
    if written is None:
        err.print(f"warning: the report could not be written ({error}); run: bench report {path}")
        return
    html, md = written
    line(f"report: {html} (and {md.name})")
