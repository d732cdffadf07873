"""The summary table printed at the end of ``bench run`` (and by ``bench summary``)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench import cpushare, fleetcheck, stability, stats
from bench.metrics import KEY_METRICS
from bench.report import headline
from bench.report.labels import target_labels
from bench.report.sweeps import rich_tables
from bench.results import invalid_cells
from bench.results.model import Manifest, as_manifest, logical_cores
from bench.units import fmt


def summary_table(
    samples: pd.DataFrame,
    title: str,
    labels: dict[str, str] | None = None,
    invalid: dict[tuple[str, str], int] | None = None,
) -> Table:
    """Median and IQR of every metric, per workload and target, in suite order; a target with
    INVALID cells in a workload says how many (their numbers are in the statistics)."""
    labels, invalid = labels or {}, invalid or {}
    table = Table(title=title, show_lines=False)
    for column in ("workload", "target", "metric", "n", "median", "95% CI of median", "IQR"):
        right = column not in ("workload", "target", "metric")
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    previous = None
    for row in stats.summarize(samples).itertuples(index=False):
        key = (row.workload, row.target)
        if previous is not None and key != previous:
            table.add_section()
        table.add_row(
            escape(row.workload) if key != previous else "",
            escape(_label(labels.get(row.target, row.target), invalid.get(key, 0)))
            if key != previous
            else "",
            row.metric,
            _count(row.n, row.outliers),
            fmt(row.median, row.unit),
            _interval(row.ci_low, row.ci_high, row.unit),
            fmt(row.iqr, row.unit),
        )
        previous = key
    return table


def _label(label: str, invalid: int) -> str:
    return f"{label} ({invalid} INVALID)" if invalid else label


def _count(n: int, flagged: int) -> str:
    """The repetition count, with outliers (kept in the statistics) flagged."""
    return f"{n} ({flagged} outlier{'s' if flagged > 1 else ''})" if flagged else str(n)


def _interval(low: float, high: float, unit: str) -> str:
    """'[a, b]', or a dash when there were too few repetitions for an interval."""
    if pd.isna(low) or pd.isna(high):
        return "—"
    return f"[{fmt(low, unit)}, {fmt(high, unit)}]"


def overhead_table(
    samples: pd.DataFrame,
    baseline: str,
    labels: dict[str, str] | None = None,
    paired: bool = False,
) -> Table | None:
    """Each target's key metrics as a ratio to the baseline's, with the ratio's 95% CI; None
    when there is nothing to compare. ``paired``: the run was interleaved, so repetitions are
    compared pairwise (``stats.paired_ratio``)."""
    keyed = samples[samples["metric"].isin(KEY_METRICS)]
    found = stats.overhead(keyed, baseline, paired=paired)
    if found.empty:
        return None
    labels = labels or {}
    how = "median of per-repetition ratios" if paired else "ratio of medians"
    table = Table(title=f"compared with the baseline {baseline!r} ({how}, 95% CI)")
    for column in ("workload", "target", "metric", "target / baseline"):
        table.add_column(column, no_wrap=column != "target / baseline")
    for row in found.itertuples(index=False):
        target = labels.get(row.target, row.target)
        table.add_row(escape(row.workload), escape(target), row.metric, row.verdict)
    return table


def invalid_table(cells: pd.DataFrame) -> Table | None:
    """The cells whose numbers should not be trusted, and why; None when every cell is VALID."""
    invalid = invalid_cells(cells)
    if invalid.empty:
        return None
    table = Table(title="INVALID cells", title_style="bold red")
    for column in ("cell", "target", "workload", "rep", "why"):
        table.add_column(column, overflow="fold")
    for row in invalid.itertuples(index=False):
        why = "\n".join(row.reasons)
        table.add_row(
            str(row.cell), escape(row.target), escape(row.workload), str(row.repetition),
            escape(why),
        )  # fmt: skip
    return table


def _describe(hw: dict[str, Any]) -> str:
    logical = logical_cores(hw.get("cores"))
    memory = hw.get("memory_bytes")
    text = f"{hw.get('cpu_model') or 'unknown CPU'}, {logical or '?'} cores"
    text += f", {memory / 2**30:.0f} GiB" if isinstance(memory, int | float) else ""
    gpus = hw.get("gpu_names")
    return text + (f", GPUs: {', '.join(gpus)}" if gpus else "")


def hardware_note(manifest: Manifest | dict[str, Any]) -> str | None:
    """A warning when the targets of a run did not run on the same hardware, else None.

    Comparing targets on different machines measures the machines as much as the isolation;
    the numbers are still stored, but the reader has to know.
    """
    seen = {name: fp.hardware() for name, fp in as_manifest(manifest).fingerprints().items()}
    if len({json.dumps(hw, sort_keys=True) for hw in seen.values()}) <= 1:
        return None
    lines = [f"  {name}: {_describe(hw)}" for name, hw in seen.items()]
    return "note: targets ran on different hardware; differences include the machines:\n" + (
        "\n".join(lines)
    )


def print_summary(
    console: Console,
    samples: pd.DataFrame,
    cells: pd.DataFrame,
    title: str,
    manifest: Manifest | dict[str, Any] | None = None,
    raw: dict[str, dict[str, Any]] | None = None,
) -> None:
    """The headline (what isolation cost against the baseline, in words), the summary table,
    the comparison with the baseline, INVALID cells if any, stability warnings, and a note
    when targets differ in hardware."""
    manifest = as_manifest(manifest or {})
    labels = target_labels(manifest)
    baseline = manifest.baseline
    top = headline.table(samples, baseline, labels, manifest.paired) if baseline else None
    if top is not None:
        console.print(top)
        console.print()
    flagged = invalid_cells(cells)
    counts = flagged.groupby(["workload", "target"]).size().to_dict() if not flagged.empty else {}
    console.print(summary_table(samples, title, labels, counts))
    comparison = overhead_table(samples, baseline, labels, manifest.paired) if baseline else None
    if comparison is not None:
        console.print(comparison)
    for table in rich_tables(samples, manifest):
        console.print(table)
    invalid = invalid_table(cells)
    if invalid is not None:
        console.print(invalid)
    found = stability.warnings(samples, raw, cells) + cpushare.warnings(samples, manifest)
    for warning in found + fleetcheck.warnings(samples, manifest, cells):
        console.print(f"warning: {warning}", style="yellow", highlight=False)
    note = hardware_note(manifest)
    if note:
        console.print(note, style="yellow", highlight=False)
