"""The ``bench`` command line: parses, calls, maps ``BenchError`` to exit codes.

Exit status: 0 success, 1 a benchmark failed, 2 bad input (suite, flags, paths), 130 Ctrl-C.
Errors are a single line on stderr saying what and where, plus the fix when known.
"""

from __future__ import annotations

import re
import signal
import sys
import warnings
from collections.abc import Callable
from functools import wraps
from gc import freeze as freeze_heap  # (``gc`` is also a command below)
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from bench import results
from bench.errors import BenchError, InputError, ResultsError
from bench.metadata import new_run_id
from bench.names import NAME_PATTERN
from bench.progress import RichObserver
from bench.runner import Runner, RunSummary
from bench.suite import load_suite
from bench.targets import registry

F = TypeVar("F", bound=Callable[..., Any])

# Tables are records, not decoration: never truncate them to 80 columns when piped.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


def fail(exc: BenchError) -> NoReturn:
    """Print one line and exit with the error's status."""
    click.echo(f"error: {exc.one_line()}", err=True)
    sys.exit(exc.exit_code)


def translate(fn: F) -> F:
    """Run a command, turning ``BenchError`` and Ctrl-C into the documented exit codes."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BenchError as exc:
            fail(exc)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def _warning_line(message: Warning | str, *_: Any, **__: Any) -> str:
    """A warning (e.g. a corrupt line skipped in a run directory) as one line, like errors."""
    return f"warning: {' '.join(str(message).split())}\n"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bench")
def main() -> None:
    """Measure what isolation costs AI workloads.

    Runs the same training, inference and data-loading workloads on bare metal (and other
    targets), records start-up, throughput, latency and memory, and summarises the differences.
    """
    warnings.formatwarning = _warning_line


@main.command()
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
    path, summary = _execute(suite, results_dir, run_id, parallel_hosts)
    _print_run(path)
    if report:
        _write_report(path)
    out.print(str(path), highlight=False, soft_wrap=True)
    if summary.failed:
        sys.exit(1)


def _execute(
    suite: Path, results_dir: Path, run_id: str | None, parallel_hosts: int
) -> tuple[Path, RunSummary]:
    """Validate SUITE and run every cell into ``results_dir/<suite>/<run-id>``."""
    if run_id is not None and not re.fullmatch(NAME_PATTERN, run_id):
        raise InputError(f"--run-id {run_id!r}: use letters, digits, '.', '_' and '-' only")
    spec = load_suite(suite)
    _print_exposure(spec)
    run_id = run_id or new_run_id(results_dir / spec.name)
    store = results.ResultStore(results_dir, spec.name, run_id)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    with RichObserver(err) as observer:
        summary = Runner(spec, store, observer).run(str(suite), parallel_hosts)
    return store.path, summary


def _print_exposure(spec: Any) -> None:
    """The run header's loud part: settings that give a workload or the network power over a
    host (also recorded in the manifest and shown in the report)."""
    from bench import exposure

    for line in exposure.warnings(spec):
        err.print(
            f"warning: {line}", style="bold red", highlight=False, markup=False, soft_wrap=True
        )


def _raise_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (e.g. a CI timeout) tears down like Ctrl-C."""
    raise KeyboardInterrupt


def _print_run(path: Path) -> None:
    from bench.report.terminal import print_summary  # scipy.stats: 0.5 s that validate skips

    manifest = results.load_manifest(path)
    name, run_id = manifest.get("suite", {}).get("name", "?"), manifest.get("run_id", path.name)
    title = f"{name} · run {run_id} · median, its 95% CI and IQR"
    samples, cells, raw = results.load(path), results.load_cells(path), results.load_raw(path)
    print_summary(out, samples, cells, title, manifest, raw)


def _write_report(path: Path) -> Path | None:
    """The run's report; a failure to draw it loses no results, so it is a warning here."""
    from bench.report import document

    try:
        html, md = document.write(path)
    except Exception as exc:  # the measurements are stored; say how to retry
        err.print(f"warning: the report could not be written ({exc}); run: bench report {path}")
        return None
    out.print(f"report: {html} (and {md.name})", highlight=False, soft_wrap=True)
    return html


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@translate
def report(run_dir: Path) -> None:
    """Write report.html (self-contained, figures embedded) and report.md into RUN_DIR."""
    from bench.report import document

    html, md = document.write(_run_dir(run_dir))
    out.print(str(html), highlight=False, soft_wrap=True)
    out.print(str(md), highlight=False, soft_wrap=True)


def _run_dir(path: Path) -> Path:
    """``path`` if it holds one run (a manifest), else a clear input error."""
    if not path.is_dir():
        raise ResultsError(f"{path}: no such run directory")
    if not (path / "manifest.json").is_file():
        raise ResultsError(
            f"{path}: not a run directory (no manifest.json); pass results/<suite>/<run-id>"
        )
    return path


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@translate
def summary(run_dir: Path) -> None:
    """Print the summary table of a stored run."""
    _print_run(run_dir)


@main.command()
@click.argument("suite", type=click.Path(path_type=Path))  # load_suite: one line for a dir
@translate
def validate(suite: Path) -> None:
    """Check SUITE without running it: schema, names, baseline; prints the plan size."""
    from bench.plan import build_plan

    spec = load_suite(suite)
    cells = build_plan(spec)
    _print_exposure(spec)
    out.print(
        f"{suite}: ok — {len(spec.targets)} targets × {len(spec.workloads)} workloads × "
        f"{spec.repetitions} repetitions = {len(cells)} cells ({spec.order} order)",
        highlight=False,
    )


@main.command()
@click.argument("suite", type=click.Path(path_type=Path))  # load_suite: one line for a dir
@translate
def build(suite: Path) -> None:
    """Build the matched artefacts SUITE's targets use: the wheelhouse, the bare-metal venv,
    the container image and the VM guest disk. Optional: bench run builds what is missing."""
    from bench.build.builder import Builder

    spec = load_suite(suite)
    builder = Builder(
        spec.build, note=lambda m: err.print(f"· {m}", highlight=False, soft_wrap=True)
    )
    wanted = [t for t in spec.targets if t.builds()]
    if not wanted:
        out.print(f"{suite}: no target uses built artefacts; nothing to build", highlight=False)
        return
    for config in wanted:
        made = registry.make_target(config).prepare(builder)
        out.print(f"{config.name}: {_describe_artefacts(made)}", highlight=False)
    wheels = builder.record().get("wheelhouse", {})
    if wheels:
        out.print(f"wheelhouse: {wheels['path']} ({len(wheels['files'])} wheels)", highlight=False)


def _describe_artefacts(made: dict[str, Any]) -> str:
    image = made.get("image")
    if isinstance(image, dict):
        return f"image {image.get('tag') or image.get('ref')} ({str(image.get('id'))[:19]})"
    guest = made.get("guest")
    if isinstance(guest, dict):
        accel = made.get("accel_label")
        return f"guest disk {guest.get('path')} (kernel {guest.get('kernel')}, {accel})"
    return f"python {made.get('python')}"


@main.command()
@click.option("--docker-host", help="Engine to clean (default: $DOCKER_HOST or the local socket).")
@click.option("--all", "everything", is_flag=True, help="Also remove what live runs own.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@translate
def gc(docker_host: str | None, everything: bool, dry_run: bool) -> None:
    """Remove what runs left behind after the controller was killed: local worker processes
    and their temp dirs, remote run directories, static VMs bench booted, VM guests and
    containers.

    Only what bench marked or recorded as its own is touched, and by default only what no
    live bench process owns. Exit status 1 when something could not be removed (it stays
    recorded for the next gc).
    """
    from bench import gc as collector

    verb = "would remove" if dry_run else "removed"
    found = collector.collect(docker_host, everything, dry_run)
    for kind, lines in found.removed.items():
        for line in lines:
            out.print(f"{verb} {line}", highlight=False, soft_wrap=True)
        out.print(f"{verb} {len(lines)} {kind}", highlight=False)
    for line in found.unchecked:
        err.print(f"containers: not checked ({line})", highlight=False, soft_wrap=True)
    for line in found.problems:
        err.print(f"not removed: {line}", highlight=False, soft_wrap=True)
    if found.problems:
        sys.exit(1)


@main.command()
def doctor() -> None:
    """Check this machine for what makes benchmark numbers noisy, and say how to fix it.

    Frequency governor, turbo/boost, ASLR, load, swap, memory pressure, other busy processes,
    GPU persistence mode and clocks. bench run records the same checks for every target (in
    its fingerprint) and warns about each problem before the first cell.
    """
    from rich.table import Table

    from workloads.environment import check_all

    table = Table(title="environment checks (this machine)")
    for column in ("check", "status", "value", "fix"):
        table.add_column(column, overflow="fold")
    styles = {"ok": "green", "warn": "yellow", "info": "cyan", "n/a": "dim"}
    for found in check_all():
        status = found["status"]
        table.add_row(
            found["check"],
            f"[{styles.get(status, '')}]{status}[/]",
            str(found["value"]),
            found["fix"] or "",
        )
    out.print(table)


@main.command()
def targets() -> None:
    """List the target kinds this build can deploy to."""
    for kind in registry.describe():
        out.print(f"[bold]{kind.name}[/]: {kind.summary}")
        for model in kind.models:
            fields = [f for f in model.model_fields if f not in ("name", "kind")]
            out.print(f"    keys: name, kind, {', '.join(fields)}", highlight=False)


@main.command()
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option(
    "--threshold",
    default="5%",
    show_default=True,
    help="Smallest change that counts as a regression or improvement (5% or 0.05).",
)
@click.option(
    "--metric-threshold",
    "metric_thresholds",
    multiple=True,
    metavar="METRIC=THRESHOLD",
    help="Per-metric threshold, e.g. infer.latency_p99_s=10% (repeatable).",
)
@click.option(
    "--allow-different-hosts",
    is_flag=True,
    help="Compare even when key fingerprints (hardware, kernel, torch, driver…) differ.",
)
@click.option(
    "--format",
    "form",
    type=click.Choice(["table", "md", "json"]),
    default="table",
    show_default=True,
)
@translate
def compare(
    base: Path,
    new: Path,
    threshold: str,
    metric_thresholds: tuple[str, ...],
    allow_different_hosts: bool,
    form: str,
) -> None:
    """Compare run NEW with run BASE, metric by metric; exit status 1 on a regression.

    BASE and NEW are run directories (results/<suite>/<run-id>). A change is a regression when
    it is significant (Mann-Whitney U and the 95% CI of the ratio of medians agree), beyond
    the threshold, and in the direction that is bad for the metric.
    """
    import json

    from bench import compare as comparing
    from bench.report import regressions as render

    found = comparing.compare_runs(
        base,
        new,
        threshold=comparing.parse_threshold(threshold),
        overrides=comparing.parse_overrides(metric_thresholds),
        allow_different_hosts=allow_different_hosts,
    )
    for line in render.host_warning(found):
        err.print(line, style="bold red", highlight=False, soft_wrap=True)
    if form == "json":
        click.echo(json.dumps(render.to_json(found), indent=2, default=str))
    elif form == "md":
        click.echo(render.markdown(found), nl=False)
    else:
        render.print_comparison(out, found)
    if found.has_regressions:
        sys.exit(1)


@main.command()
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
@translate
def nightly(
    suite: Path,
    history_dir: Path,
    threshold: str,
    metric_thresholds: tuple[str, ...],
    keep: int,
    parallel_hosts: int,
) -> None:
    """Run SUITE into a history, compare with the previous comparable run, alert and export.

    Exit status 1 when a regression is found or a cell failed; 2 when another nightly holds
    the history. The run directory is the last stdout line.
    """
    import os

    from bench.nightly import history
    from bench.nightly import workflow as night
    from bench.report import regressions as render

    limit, overrides = nightly_limits(threshold, metric_thresholds)
    with night.locked(history_dir):
        history.History(history_dir).entries()  # an unreadable index stops the night unrun
        path, summary = _execute(suite, history_dir / "runs", None, parallel_hosts)
        _print_run(path)
        report = _write_report(path)
        outcome = night.record(history_dir, path, limit, overrides)
        for line in outcome.missing:
            _warn(line)
        if outcome.comparison is not None:
            render.print_comparison(out, outcome.comparison)
        out.print(f"verdict: {outcome.entry.verdict}", highlight=False)
        for event in outcome.events:
            err.print(f"fingerprint change: {event}", style="bold yellow", highlight=False)
        if outcome.noteworthy:
            alert = night.write_alert(history_dir, outcome, report)
            out.print(f"alert: {alert}", highlight=False, soft_wrap=True)
            url = os.environ.get(night.WEBHOOK_ENV)
            if url:
                outcome.webhook = night.post_webhook(url, outcome, alert.read_text())
                err.print(f"webhook: {outcome.webhook}", highlight=False, markup=False)
        prom, parquet = night.export(history_dir, outcome)
        out.print(f"exports: {prom}, {parquet}", highlight=False, soft_wrap=True)
        for run_id in night.prune(history_dir, keep, _warn):
            out.print(f"pruned (summary kept): {run_id}", highlight=False)
    out.print(str(path), highlight=False, soft_wrap=True)
    if outcome.regressions or summary.failed:
        sys.exit(1)


def nightly_limits(
    threshold: str, metric_thresholds: tuple[str, ...]
) -> tuple[float, dict[str, float]]:
    """``bench nightly``'s thresholds, parsed; ``bench schedule install`` checks with this
    too, so a schedule never holds an option that would fail at night."""
    from bench import compare as comparing

    return comparing.parse_threshold(threshold), comparing.parse_overrides(metric_thresholds)


def nightly_arguments(suite: Path, history_dir: Path, options: list[str]) -> list[str]:
    """``bench nightly``'s arguments, checked now by its own parser and ``nightly_limits``:
    one line and exit status 2 for what the nightly run would refuse."""
    args = [str(suite), "--history", str(history_dir), *options]
    try:
        context = nightly.make_context("nightly", list(args))
    except click.ClickException as exc:
        raise InputError(f"bench nightly option: {exc.format_message()}") from None
    nightly_limits(context.params["threshold"], context.params["metric_thresholds"])
    return args


def _warn(line: str) -> None:
    err.print(f"warning: {line}", style="yellow", highlight=False, markup=False, soft_wrap=True)


@main.command(name="history")
@click.argument("history_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--threshold", default="5%", show_default=True, help="Smallest step that counts.")
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.05,
    show_default=True,
    help="Significance level of each step's Mann-Whitney U test.",
)
@translate
def history_command(history_dir: Path, threshold: str, alpha: float) -> None:
    """Trend table of HISTORY_DIR's runs with change points, and history.html beside it."""
    from bench import compare as comparing
    from bench.nightly import history
    from bench.report import trend

    entries = history.History(_history_dir(history_dir)).entries()
    frame = history.series(entries)
    points = history.detect(frame, comparing.parse_threshold(threshold), alpha)
    events = {e.run_id: e.events for e in entries if e.events}
    out.print(trend.table(frame, points, events))
    for entry in entries:
        for event in entry.events:
            out.print(f"fingerprint change at run {entry.run_id}: {event}", highlight=False)
    out.print(str(trend.page(history_dir, frame, points, events)), highlight=False)


def _history_dir(path: Path) -> Path:
    if not (path / "index.jsonl").is_file():
        raise ResultsError(f"{path}: not a history directory (no index.jsonl); see bench nightly")
    return path


@main.group()
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
    unit_dir: Path,
    cron_dir: Path,
) -> None:
    """Schedule SUITE's nightly run into HISTORY; installing it again changes nothing.
    Every option is checked now, as bench nightly will check it."""
    from bench.nightly import schedule as scheduling

    spec = load_suite(suite)  # refuse a broken suite now, not at 02:00
    given = {"--threshold": threshold, "--keep": keep, "--parallel-hosts": parallel_hosts}
    extra = [word for flag, value in given.items() if value is not None for word in (flag, value)]
    extra += [word for item in metric_thresholds for word in ("--metric-threshold", item)]
    nightly_arguments(suite, history_dir, extra)
    done = scheduling.install(
        suite,
        spec.name,
        history_dir,
        at,
        extra,
        kind,
        unit_dir=unit_dir,
        cron_dir=cron_dir,
        timeout_s=scheduling.start_timeout_s(spec),
    )
    for path, written in done.files.items():
        state = "written" if written else "unchanged"
        out.print(f"{state}: {path}", highlight=False, soft_wrap=True)
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
        out.print(f"removed: {path}", highlight=False, soft_wrap=True)


def entry() -> None:
    """The console script: the command line, then an exit that skips the collector's last
    pass over every object pandas, scipy and matplotlib made (about 0.35 s on a small host,
    after all output is written). Objects are still released and atexit handlers still run."""
    try:
        main()
    finally:
        freeze_heap()


if __name__ == "__main__":
    entry()
