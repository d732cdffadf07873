"""``bench history``: the trend table and page of a history directory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.table import Table

from bench import history, results
from bench.report import document, plots
from bench.report.terminal import KEY_METRICS
from bench.units import fmt

PAGE = "history.html"


def table(
    frame: pd.DataFrame, points: list[history.ChangePoint], events: dict[str, list[str]]
) -> Table:
    """Per (target, workload, key metric): runs, first and latest median, the last step
    (latest vs previous run) and every change point with the fingerprint changes of its run."""
    out = Table(title="history: run medians of the key metrics")
    for column in ("target", "workload", "metric", "runs", "first", "latest", "vs previous"):
        out.add_column(column, no_wrap=True, justify="right" if column == "runs" else "left")
    out.add_column("change points (first run after the step)", overflow="fold")
    keyed = frame[frame["metric"].isin(KEY_METRICS)]
    for (target, workload, metric), rows in keyed.groupby(["target", "workload", "metric"]):
        rows = rows.sort_values("order")
        medians, unit = rows["median"].to_numpy(dtype=float), rows["unit"].iloc[0]
        last = f"{medians[-1] / medians[-2] - 1:+.1%}" if len(medians) > 1 and medians[-2] else "—"
        key = (target, workload, metric)
        found = [p for p in points if (p.target, p.workload, p.metric) == key]
        out.add_row(
            str(target), str(workload), str(metric), str(len(medians)), fmt(medians[0], unit),
            fmt(medians[-1], unit), last, "\n".join(describe(p, events) for p in found) or "none",
        )  # fmt: skip
    return out


def describe(point: history.ChangePoint, events: dict[str, list[str]]) -> str:
    """'run 20261101T020000Z: +12.3% (worse), p=0.004; bare: kernel '6.1' -> '6.2''."""
    worse = {True: " (worse)", False: " (better)", None: ""}[point.worse]
    text = f"run {point.run_id}: {point.change:+.1%}{worse}, p={point.p_value:.3g}"
    changed = events.get(point.run_id, [])
    return text + ("; " + "; ".join(changed) if changed else "")


def page(
    root: Path,
    frame: pd.DataFrame,
    points: list[history.ChangePoint],
    events: dict[str, list[str]],
) -> Path:
    """history.html: the trend figure and every change point, self-contained like a report."""
    targets = list(dict.fromkeys(frame["target"]))
    figure = plots.trends(frame, points, plots.colours(targets), KEY_METRICS)
    image = document.data_uri_payload(document.png(figure)) if figure is not None else None
    html = document.template("history.html.j2").render(
        root=str(root),
        runs=frame["run_id"].nunique(),
        image=image,
        points=[(p, describe(p, events)) for p in points],
    )
    path = root / PAGE
    results.write_atomic(path, html)
    return path
