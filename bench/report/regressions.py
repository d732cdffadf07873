"""Rendering a ``bench.compare.Comparison``: a rich table, Markdown text, or a JSON document.

All three say the same things in the same order: one row per (target, workload, metric), a
summary that leads with the regressions, what was excluded (INVALID cells), how targets or
workloads were defined differently, and, when the user allowed it, how the hosts differ.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench import stats
from bench.compare import (
    ADDED,
    DRIFT,
    IMPROVEMENT,
    INFORMATIONAL,
    REGRESSION,
    REMOVED,
    SCHEMA_VERSION,
    TOO_FEW,
    WITHIN,
    Comparison,
)
from bench.report import markdown as md
from bench.units import fmt

COLUMNS = ("target", "workload", "metric", "base", "new", "change [95% CI]", "p", "status")
STYLES = {
    REGRESSION: "bold red",
    IMPROVEMENT: "green",
    WITHIN: "",
    DRIFT: "",
    INFORMATIONAL: "dim",
    TOO_FEW: "yellow",
    ADDED: "magenta",
    REMOVED: "magenta",
}
BETTER = {"lower": "↓", "higher": "↑", "none": ""}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _median(value: float, unit: str, n: int) -> str:
    """'12.3 ms (n=5)', or a dash when the run has no value."""
    return "—" if _missing(value) else f"{fmt(value, unit)} (n={n})"


def _change(row: Any) -> str:
    """'+30.1% [+25.0%, +35.2%]', the point alone when there is no interval, else a dash."""
    if _missing(row.change):
        return "—"
    if _missing(row.ci_low) or _missing(row.ci_high):
        return f"{row.change:+.1%} (no CI)"
    return f"{row.change:+.1%} [{row.ci_low - 1:+.1%}, {row.ci_high - 1:+.1%}]"


def _p(value: float) -> str:
    return "—" if _missing(value) else f"{value:.3f}" if value >= 0.001 else "<0.001"


def percent(fraction: float) -> str:
    """0.05 -> '5%', 0.025 -> '2.5%'."""
    return f"{fraction * 100:g}%"


def _status(row: Any) -> str:
    """The status, with the threshold that decided it where one applied."""
    if row.status in (REGRESSION, IMPROVEMENT):
        return f"{row.status} (>{percent(row.threshold)})"
    if row.status == WITHIN:
        return f"{row.status} ({percent(row.threshold)})"
    return row.status


def _cells(row: Any) -> list[str]:
    metric = f"{row.metric} {BETTER.get(row.direction, '')}".rstrip()
    return [
        row.target,
        row.workload,
        metric,
        _median(row.base_median, row.unit, row.n_base),
        _median(row.new_median, row.unit, row.n_new),
        _change(row),
        _p(row.p_value),
        _status(row),
    ]


def title(comparison: Comparison) -> str:
    """'NEW vs BASE · threshold 5% · α 0.05'."""
    return (
        f"{comparison.new_run_id} vs {comparison.base_run_id} · change = NEW/BASE medians − 1 · "
        f"threshold {percent(comparison.threshold)}{_overrides(comparison)} · "
        f"Mann-Whitney α {comparison.alpha:g}"
    )


def _overrides(comparison: Comparison) -> str:
    if not comparison.overrides:
        return ""
    return " (" + ", ".join(f"{m} {percent(t)}" for m, t in comparison.overrides.items()) + ")"


def table(comparison: Comparison) -> Table:
    """One row per (target, workload, metric), grouped by target and workload; ↓ / ↑ after a
    metric says which way is better, regressions are bold red."""
    out = Table(title=title(comparison))
    for column in COLUMNS:
        right = column in ("base", "new", "change [95% CI]", "p")
        out.add_column(column, justify="right" if right else "left", no_wrap=column != "status")
    previous = None
    heading = None
    for row in comparison.rows.itertuples(index=False):
        key = (row.target, row.workload)
        if previous is not None and key != previous:
            out.add_section()
        found = group_heading(comparison, row.target)
        if found is not None and found != heading:
            out.add_row(escape(found), style="bold")
            previous = None
        heading = found
        cells = _cells(row)
        cells[0], cells[1] = escape(cells[0]), escape(cells[1])  # names a matrix made: 'a[k=v]'
        if key == previous:
            cells[0] = cells[1] = ""
        out.add_row(*cells, style=STYLES.get(row.status, ""))
        previous = key
    return out


def group_heading(comparison: Comparison, target: str) -> str | None:
    """'ctr: matrix over runtime × network' above the targets one matrix made (None for a
    target no matrix made), so the expanded names read as one group."""
    base = comparison.group_of(target)
    if base is None:
        return None
    members = comparison.matrix["targets"].values()
    keys = dict.fromkeys(k for m in members if m["base"] == base for k in m["values"])
    return f"{base}: matrix over {' × '.join(keys)}"


def frame(comparison: Comparison) -> pd.DataFrame:
    """The table's rows as display text, for a notebook (same columns as the terminal)."""
    rows = [_cells(row) for row in comparison.rows.itertuples(index=False)]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def verdict(comparison: Comparison) -> str:
    """The one-line answer (``Comparison.verdict``)."""
    return comparison.verdict()


def notes(comparison: Comparison) -> list[str]:
    """What the reader must know besides the rows: excluded cells, changed definitions,
    statuses that are not a verdict."""
    out = [f"excluded from the statistics: {e.describe()}" for e in comparison.excluded]
    if comparison.rows.empty:
        out.append("neither run holds a measured value: nothing was compared")
    out += comparison.notes
    counts = comparison.counts()
    if counts.get(TOO_FEW):
        out.append(
            f"too few repetitions: fewer than {stats.MIN_FOR_CI} on a side, so no interval and "
            "no test; run more repetitions to judge these metrics"
        )
    return out


def host_warning(comparison: Comparison) -> list[str]:
    """The lines that say the hosts differ (empty when they do not)."""
    if not comparison.differences:
        return []
    head = "WARNING: comparing runs whose key fingerprints differ; changes include the hosts:"
    return [head, *(f"  {d.describe()}" for d in comparison.differences)]


def print_comparison(console: Console, comparison: Comparison) -> None:
    """The table, then the verdict (bold red when something regressed), then the notes."""
    console.print(table(comparison))
    style = "bold red" if comparison.has_regressions else "bold green"
    console.print(verdict(comparison), style=style, highlight=False)
    for line in notes(comparison):
        console.print(f"note: {line}", style="yellow", highlight=False)


def markdown(comparison: Comparison) -> str:
    """A GitHub-flavoured Markdown report: heading, verdict, host differences, table, notes."""
    lines = [f"## {md.escape(title(comparison))}", "", f"**{verdict(comparison)}**", ""]
    warning = host_warning(comparison)
    if warning:
        lines += [f"> **{warning[0]}**", *(f"> - {w.strip()}" for w in warning[1:]), ""]
    rows = []
    heading = None
    for row in comparison.rows.itertuples(index=False):
        found = group_heading(comparison, row.target)
        if found is not None and found != heading:
            rows.append([f"**{found}**", *([""] * (len(COLUMNS) - 1))])
        heading = found
        cells = _cells(row)
        if row.status == REGRESSION:
            cells[-1] = f"**{cells[-1]}**"
        rows.append(cells)
    lines.append(md.table(COLUMNS, rows))
    found = notes(comparison)
    if found:
        lines += ["", *(f"- {md.escape(n)}" for n in found)]
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> Any:
    """JSON-safe: NaN becomes null, numpy scalars become Python numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def to_json(comparison: Comparison) -> dict[str, Any]:
    """The comparison as a versioned JSON document (see the README for the schema)."""
    rows = [
        {key: _plain(value) for key, value in record.items()}
        for record in comparison.rows.to_dict("records")
    ]
    return {
        "schema": SCHEMA_VERSION,
        "base": {"path": str(comparison.base), "run_id": comparison.base_run_id},
        "new": {"path": str(comparison.new), "run_id": comparison.new_run_id},
        "threshold": comparison.threshold,
        "metric_thresholds": comparison.overrides,
        "alpha": comparison.alpha,
        "confidence": stats.CONFIDENCE,
        "rows": rows,
        "summary": {
            "regressions": int(comparison.counts().get(REGRESSION, 0)),
            "improvements": int(comparison.counts().get(IMPROVEMENT, 0)),
            "statuses": comparison.counts(),
            "verdict": verdict(comparison),
        },
        "host_differences": [
            {"target": d.target, "key": d.key, "base": d.base, "new": d.new}
            for d in comparison.differences
        ],
        "excluded_invalid_cells": [
            {
                "run": e.run,
                "target": e.target,
                "workload": e.workload,
                "cells": e.cells,
                "reasons": list(e.reasons),
            }
            for e in comparison.excluded
        ],
        "notes": notes(comparison),
        "matrix": comparison.matrix,
    }
