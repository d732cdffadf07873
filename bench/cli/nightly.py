"""``bench nightly`` (the workflow is ``bench.nightly.run``; this shows its outcome) and
``bench schedule``, which installs it as a daily job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bench.cli.common import F, err, line, out, translate, warn
from bench.cli.run import execute, print_report, print_run
from bench.errors import InputError
from bench.suite import load_suite

if TYPE_CHECKING:
    from bench.nightly import run as workflow
    from bench.nightly.record import Outcome
    from bench.runner import RunSummary


@click.command()
@click.argument("suite", type=click.Path(path_type=Path))  # load_suite: one line for a dir
@click.option(
    "--history",
    "history_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The history directory: runs, index, alerts and exports of this suite's nights.",
)
@click.option("--threshold", default="5%", show_default=True, help="Smallest change that counts.")
@click.option(
    "--metric-threshold",
    "metric_thresholds",
    multiple=True,
    metavar="METRIC=THRESHOLD",
    help="Per-metric threshold, e.g. startup.total_s=20% (repeatable).",
)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Runs kept in full; older ones keep only their summary in the index.",
)
@click.option("--parallel-hosts", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--pushgateway",
    metavar="URL",
    help="Also push the night's key metrics to this Prometheus Pushgateway (job bench, "
    "grouped by suite: each night replaces the suite's previous push).",
)
@translate
def nightly(
    suite: Path,
    history_dir: Path,
    threshold: str,
    metric_thresholds: tuple[str, ...],
    keep: int,
    parallel_hosts: int,
    pushgateway: str | None,
) -> None:
    """Run SUITE into a history, compare with the previous comparable run, alert and export
    (metrics.prom for node_exporter's textfile collector, history.parquet with pyarrow).

    Exit status 1 when a regression is found, a cell failed or the push to the Pushgateway
    failed (the night is recorded and exported all the same); 2 when another nightly holds
    the history. The run directory is the last stdout line.
    """
    from bench.nightly import run as workflow

    limit, overrides = nightly_limits(threshold, metric_thresholds)
    options = workflow.Options(limit, overrides, keep, pushgateway_url(pushgateway))
    outcome = workflow.night(history_dir, _shown(suite, parallel_hosts), options)
    show(outcome)
    if outcome.failing:
        sys.exit(1)


def _shown(suite: Path, parallel_hosts: int) -> workflow.Execute:
    """Run the suite into the history's runs and print its summary at once: a night that
    fails later (a full disk while exporting) has still shown what it measured."""

    def run(runs: Path) -> tuple[Path, RunSummary]:
        path, summary = execute(suite, runs, None, parallel_hosts)
        print_run(path)
        return path, summary

    return run


def show(outcome: Outcome) -> None:
    """The night as ``bench nightly`` prints it after the run's summary: the report, the
    comparison and verdict, what changed, the alert, exports and pruning; the run directory
    last."""
    from bench.report import regressions as render

    assert outcome.run_dir is not None and outcome.exports is not None  # set by night()
    print_report(outcome.run_dir, outcome.report, outcome.report_error)
    for missing in outcome.missing:
        warn(missing)
    if outcome.comparison is not None:
        render.print_comparison(out, outcome.comparison)
    out.print(f"verdict: {outcome.entry.verdict}", highlight=False)
    for event in outcome.events:
        err.print(f"fingerprint change: {event}", style="bold yellow", highlight=False)
    if outcome.alert is not None:
        line(f"alert: {outcome.alert}")
    if outcome.webhook is not None:
        err.print(f"webhook: {outcome.webhook}", highlight=False, markup=False)
    line(f"exports: {', '.join(str(path) for path in outcome.exports if path is not None)}")
    if outcome.pushed is not None:
        line(f"pushed: {outcome.pushed}")
    if outcome.push_error is not None:
        warn(f"{outcome.push_error}; the night is recorded and exported all the same")
    for warning in outcome.warnings:
        warn(warning)
    for run_id in outcome.pruned:
        line(f"pruned (summary kept): {run_id}")
    line(str(outcome.run_dir))


def nightly_limits(
    threshold: str, metric_thresholds: tuple[str, ...]
) -> tuple[float, dict[str, float]]:
    """``bench nightly``'s thresholds, parsed; ``bench schedule install`` checks with this
    too, so a schedule never holds an option that would fail at night."""
    from bench import compare as comparing

    return comparing.parse_threshold(threshold), comparing.parse_overrides(metric_thresholds)


def pushgateway_url(url: str | None) -> str | None:
    """``--pushgateway``, checked before the night runs (and by ``bench schedule install``):
    a URL no push can go to is bad input, not a failure found after hours of running."""
    from bench import promexport

    return None if url is None else promexport.check_url(url)


def nightly_arguments(suite: Path, history_dir: Path, options: list[str]) -> list[str]:
    """``bench nightly``'s arguments, checked now by its own parser, ``nightly_limits`` and
    ``pushgateway_url``: one line and exit status 2 for what the nightly run would refuse."""
    args = [str(suite), "--history", str(history_dir), *options]
    try:
        context = nightly.make_context("nightly", list(args))
    except click.ClickException as exc:
        raise InputError(f"bench nightly option: {exc.format_message()}") from None
    nightly_limits(context.params["threshold"], context.params["metric_thresholds"])
    pushgateway_url(context.params["pushgateway"])
    return args


@click.group()
def schedule() -> None:
    """Run bench nightly every day: a systemd timer, or a cron entry where systemd is absent."""


def _dirs(function: F) -> F:
    function = click.option(
        "--unit-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("/etc/systemd/system"),
        show_default=True,
        help="Where systemd units go.",
    )(function)
    return click.option(
        "--cron-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("/etc/cron.d"),
        show_default=True,
        help="Where the cron entry goes when systemd is not running.",
    )(function)


@schedule.command("install")
@click.argument("suite", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--history", "history_dir", type=click.Path(path_type=Path), required=True)
@click.option("--at", "at", default="02:00", show_default=True, help="Daily, HH:MM local time.")
@click.option(
    "--with",
    "kind",
    type=click.Choice(["auto", "systemd", "cron"]),
    default="auto",
    show_default=True,
    help="auto: a systemd timer when systemd runs, else cron.",
)
@click.option("--threshold", default=None, help="Passed to bench nightly.")
@click.option(
    "--metric-threshold",
    "metric_thresholds",
    multiple=True,
    metavar="METRIC=THRESHOLD",
    help="Passed to bench nightly (repeatable).",
)
@click.option("--keep", default=None, metavar="N", help="Passed to bench nightly.")
@click.option("--parallel-hosts", default=None, metavar="N", help="Passed to bench nightly.")
@click.option("--pushgateway", default=None, metavar="URL", help="Passed to bench nightly.")
@_dirs
@translate
def schedule_install(
    suite: Path,
    history_dir: Path,
    at: str,
    kind: str,
    threshold: str | None,
    metric_thresholds: tuple[str, ...],
    keep: str | None,
    parallel_hosts: str | None,
    pushgateway: str | None,
    unit_dir: Path,
    cron_dir: Path,
) -> None:
    """Schedule SUITE's nightly run into HISTORY; installing it again changes nothing.
    Every option is checked now, as bench nightly will check it."""
    from bench.nightly import schedule as scheduling

    spec = load_suite(suite)  # refuse a broken suite now, not at 02:00
    given = {"--threshold": threshold, "--keep": keep, "--parallel-hosts": parallel_hosts}
    given["--pushgateway"] = pushgateway
    extra = [word for flag, value in given.items() if value is not None for word in (flag, value)]
    extra += [word for item in metric_thresholds for word in ("--metric-threshold", item)]
    nightly_arguments(suite, history_dir, extra)
    timeout_s = scheduling.start_timeout_s(spec)
    done = scheduling.install(
        suite, spec.name, history_dir, at, extra, kind, unit_dir, cron_dir, timeout_s=timeout_s
    )
    for path, written in done.files.items():
        line(f"{'written' if written else 'unchanged'}: {path}")
    out.print(f"{done.name}: {done.kind}, daily at {at}", highlight=False)


@schedule.command("list")
@_dirs
@translate
def schedule_list(unit_dir: Path, cron_dir: Path) -> None:
    """The installed bench schedules."""
    from bench.nightly import schedule as scheduling

    found = scheduling.listed(unit_dir, cron_dir)
    for name, kind, when in found:
        click.echo(f"{name}\t{kind}\t{when}")  # tab-separated, for scripts
    if not found:
        out.print("no bench schedules installed", highlight=False)


@schedule.command("remove")
@click.argument("name")
@_dirs
@translate
def schedule_remove(name: str, unit_dir: Path, cron_dir: Path) -> None:
    """Remove the schedule NAME (bench-nightly-<suite>, or the suite's name)."""
    from bench.nightly import schedule as scheduling

    for path in scheduling.remove(name, unit_dir, cron_dir):
        line(f"removed: {path}")
