"""Commands that read stored results: ``bench report``, ``summary``, ``compare``, ``history``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from bench.cli.common import err, line, out, translate
from bench.cli.run import print_run
from bench.errors import ResultsError

if TYPE_CHECKING:
    from bench.compare import Comparison
    from bench.promexport import Published


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@translate
def report(run_dir: Path) -> None:
    """Write report.html (self-contained, figures embedded) and report.md into RUN_DIR."""
    from bench import results
    from bench.report import document

    html, md = document.write(results.run_dir(run_dir))
    line(str(html))
    line(str(md))


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@translate
def summary(run_dir: Path) -> None:
    """Print the summary table of a stored run."""
    print_run(run_dir)


@click.command()
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
    from bench import compare as comparing

    found = comparing.compare_runs(
        base,
        new,
        threshold=comparing.parse_threshold(threshold),
        overrides=comparing.parse_overrides(metric_thresholds),
        allow_different_hosts=allow_different_hosts,
    )
    _print_comparison(found, form)
    if found.has_regressions:
        sys.exit(1)


def _print_comparison(found: Comparison, form: str) -> None:
    """The host warning on stderr, then the comparison as a table, Markdown or JSON."""
    import json

    from bench.report import regressions as render

    for warning in render.host_warning(found):
        err.print(warning, style="bold red", highlight=False, soft_wrap=True)
    if form == "json":
        click.echo(json.dumps(render.to_json(found), indent=2, default=str))
    elif form == "md":
        click.echo(render.markdown(found), nl=False)
    else:
        render.print_comparison(out, found)


@click.command(name="history")
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
    from bench.nightly import changepoints, history
    from bench.report import trend

    entries = history.History(_history_dir(history_dir)).entries()
    frame = history.series(entries)
    points = changepoints.detect(frame, comparing.parse_threshold(threshold), alpha)
    events = {e.run_id: e.events for e in entries if e.events}
    out.print(trend.table(frame, points, events))
    for entry in entries:
        for event in entry.events:
            line(f"fingerprint change at run {entry.run_id}: {event}")
    line(str(trend.page(history_dir, frame, points, events)))


def _history_dir(path: Path) -> Path:
    from bench.nightly.history import INDEX

    if not (path / INDEX).is_file():
        raise ResultsError(f"{path}: not a history directory (no {INDEX}); see bench nightly")
    return path


@click.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "json"]),
    default="csv",
    show_default=True,
    help="csv for spreadsheets, parquet for data tools (needs pyarrow: the parquet extra), "
    "json: one JSON object per line.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: standard output; parquet needs a file).",
)
@click.option(
    "--pushgateway",
    metavar="URL",
    help="Push the run's key metrics (medians of its VALID cells) to this Prometheus "
    "Pushgateway instead: job bench, grouped by suite, so it replaces the suite's previous "
    "push. RUN_DIR must be one run. A table is written too only when --format or -o is given.",
)
@translate
def export_command(run_dir: Path, fmt: str, output: Path | None, pushgateway: str | None) -> None:
    """Write the samples of RUN_DIR (a run, or a suite's directory of runs) as a table: the
    same columns bench.results.load() gives a notebook; or push its key metrics to a
    Prometheus Pushgateway.

    Exit status 2 for a malformed URL or a RUN_DIR that is not a run, 1 when the gateway
    cannot be reached or refuses the push.
    """
    from bench import export, results

    target = _pushed(run_dir, pushgateway)  # checked before anything is written
    if target is None or output is not None or _given("fmt"):
        export.write(results.load(run_dir), fmt, output)
        if output is not None:
            line(str(output))
    if target is not None:
        _push(*target)


def _pushed(run_dir: Path, url: str | None) -> tuple[str, Published] | None:
    """The checked URL and the run to push to it; None without --pushgateway."""
    from bench import promexport

    if url is None:
        return None
    return promexport.check_url(url), promexport.of_run(run_dir)


def _push(url: str, run: Published) -> None:
    """Push, and say so on stderr (stdout may be carrying the table)."""
    from bench import promexport

    count = promexport.push(url, run)
    err.print(
        f"pushed: run {run.run_id} to {promexport.shown(url)} "
        f"({count} series, job {promexport.JOB}, suite {run.suite})",
        highlight=False,
        markup=False,
    )


def _given(parameter: str) -> bool:
    """Whether the user wrote the option, rather than its default applying."""
    source = click.get_current_context().get_parameter_source(parameter)
    return source is ParameterSource.COMMANDLINE
