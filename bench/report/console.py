"""The summary table printed at the end of ``bench run`` (and by ``bench summary``)."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

from bench import stats
from bench.report.units import fmt


def summary_table(samples: pd.DataFrame, title: str) -> Table:
    """Median and IQR of every metric, per workload and target, in suite order."""
    table = Table(title=title, show_lines=False)
    for column in ("workload", "target", "metric", "n", "median", "IQR"):
        right = column in ("n", "median", "IQR")
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    previous = None
    for row in stats.summarize(samples).itertuples(index=False):
        key = (row.workload, row.target)
        if previous is not None and key != previous:
            table.add_section()
        table.add_row(
            row.workload if key != previous else "",
            row.target if key != previous else "",
            row.metric,
            str(row.n),
            fmt(row.median, row.unit),
            fmt(row.iqr, row.unit),
        )
        previous = key
    return table


def failures_table(cells: pd.DataFrame) -> Table | None:
    """The cells that failed and why, or None when all succeeded."""
    if cells.empty or "status" not in cells:
        return None
    failed = cells[cells["status"] != "ok"]
    if failed.empty:
        return None
    table = Table(title="failed cells", title_style="bold red")
    for column in ("cell", "target", "workload", "rep", "error"):
        table.add_column(column, overflow="fold")
    for row in failed.itertuples(index=False):
        table.add_row(str(row.cell), row.target, row.workload, str(row.repetition), row.error)
    return table


def print_summary(console: Console, samples: pd.DataFrame, cells: pd.DataFrame, title: str) -> None:
    """Summary table, then failures if any."""
    console.print(summary_table(samples, title))
    failures = failures_table(cells)
    if failures is not None:
        console.print(failures)
