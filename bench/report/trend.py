"""``bench history``: the trend table and page of a history directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from rich.markup import escape
from rich.table import Table

from bench import results
from bench.metrics import KEY_METRICS
from bench.nightly.changepoints import ChangePoint
from bench.report import document, plots
from bench.units import fmt

PAGE = "history.html"


def table(frame: pd.DataFrame, points: list[ChangePoint], events: dict[str, list[str]]) -> Table:
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
            escape(str(target)), escape(str(workload)), str(metric), str(len(medians)),
            fmt(medians[0], unit),
            fmt(medians[-1], unit), last, "\n".join(describe(p, events) for p in found) or "none",
        )  # fmt: skip
    return out


def describe(point: ChangePoint, events: dict[str, list[str]]) -> str:
    """'run 20261101T020000Z: +12.3% (worse), p=0.004; bare: kernel '6.1' -> '6.2''."""
    worse = {True: " (worse)", False: " (better)", None: ""}[point.worse]
    text = f"run {point.run_id}: {point.change:+.1%}{worse}, p={point.p_value:.3g}"
    changed = events.get(point.run_id, [])
    return text + ("; " + "; ".join(changed) if changed else "")


def page(
    root: Path,
    frame: pd.DataFrame,
    points: list[ChangePoint],
    events: dict[str, list[str]],
) -> Path:
    """history.html: the trend figure and every change point, self-contained like a report."""
    targets = list(dict.fromkeys(frame["target"]))
    figure = trend_figure(frame, points, plots.colours(targets), KEY_METRICS)
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


def trend_figure(
    frame: pd.DataFrame, points: list[Any], palette: dict[str, Any], metrics: tuple[str, ...]
) -> Figure | None:
    """Per (workload, metric), each target's run medians over the history with the
    interquartile range shaded; change points are dashed lines at the first run after them.
    ``frame`` is ``history.series``'s, ``points`` are ``ChangePoint``s."""
    found = frame[frame["metric"].isin(metrics)]
    keys = list(dict.fromkeys(zip(found["workload"], found["metric"], strict=True)))
    if not keys:
        return None
    figure, axes = plots.panel_grid(len(keys), "Trends over the history (median, IQR shaded)")
    for axis, (workload, metric) in zip(axes, keys, strict=True):
        rows = found[(found["workload"] == workload) & (found["metric"] == metric)]
        scale, unit = plots.scale_for(rows["unit"].iloc[0], rows["median"].to_numpy(dtype=float))
        for target in palette:
            line = rows[rows["target"] == target].sort_values("order")
            if line.empty:
                continue
            x = line["order"].to_numpy()
            axis.plot(x, line["median"] / scale, "o-", color=palette[target], label=target)
            axis.fill_between(
                x, line["q1"] / scale, line["q3"] / scale, color=palette[target], alpha=0.15
            )
        for point in points:
            if (point.workload, point.metric) == (workload, metric):
                colour = palette.get(point.target, "grey")
                axis.axvline(point.index - 0.5, color=colour, linestyle="--", linewidth=1.2)
        axis.set_title(f"{workload} · {metric}", fontsize=9)
        axis.set_xlabel("run (oldest first)")
        axis.set_ylabel(unit)
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    return plots.finish(figure)
