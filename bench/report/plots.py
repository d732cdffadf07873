"""The report's figures (matplotlib). Every function takes stored results and returns a Figure,
or None when the run has nothing of that kind to show, so a notebook and the HTML report draw
the same pictures.

One colour per target, fixed by the suite's target order, in every figure: a reader who has
found the container's colour once finds it everywhere. Figures are made without pyplot, so
drawing a report touches no global state and needs no display, in a script or a notebook.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from bench import stats
from bench.report import frames
from bench.report.figstyle import MIB, PALETTE, PANEL_HEIGHT, PANEL_WIDTH, scale_for
from bench.report.sweepplots import sweep_figures
from bench.results import invalid_numbers
from bench.results.model import Manifest, as_manifest

STARTUP_PHASES = (
    ("startup.provision_s", "provision"),
    ("startup.ready_s", "ready"),
    ("startup.first_step_s", "first step"),
)
PHASE_ALPHA = (1.0, 0.6, 0.3)
THROUGHPUT = ("train.throughput", "infer.throughput", "data.throughput")
REPETITION_METRICS = (
    "train.step_time_s",
    "infer.latency_p50_s",
    "data.throughput",
    "startup.total_s",
)


def colours(targets: list[str]) -> dict[str, tuple[float, ...]]:
    """A fixed colour per target, in suite order."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(targets)}


def targets_of(
    samples: pd.DataFrame, manifest: Manifest | dict[str, Any] | None = None
) -> list[str]:
    """Targets in suite order (the manifest's), else in the order they appear."""
    listed = [t.get("name") for t in as_manifest(manifest or {}).suite.targets]
    seen = list(dict.fromkeys(samples["target"])) if "target" in samples else []
    return [t for t in listed if t in seen] + [t for t in seen if t not in listed]


def panel_grid(count: int, title: str) -> tuple[Figure, list[Any]]:
    columns = min(count, 3)
    rows = -(-count // columns)
    figure = Figure(figsize=(PANEL_WIDTH * columns, PANEL_HEIGHT * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for extra in axes.flat[count:]:
        extra.set_visible(False)
    figure.suptitle(title, fontweight="bold")
    return figure, list(axes.flat[:count])


def _per_workload(found: pd.DataFrame, title: str) -> tuple[Figure, list[tuple[Any, str, Any]]]:
    """One panel per workload in ``found``: the figure and (axis, workload, that workload's
    summary statistics) for each."""
    workloads = list(dict.fromkeys(found["workload"]))
    figure, axes = panel_grid(len(workloads), title)
    panels = [
        (axis, workload, stats.summarize(found[found["workload"] == workload]))
        for axis, workload in zip(axes, workloads, strict=True)
    ]
    return figure, panels


def finish(figure: Figure) -> Figure:
    figure.tight_layout()
    return figure


def startup_phases(samples: pd.DataFrame, palette: dict[str, Any]) -> Figure | None:
    """Per workload, one stacked bar per target: the median of each start-up phase, so the
    reader sees where a container or VM spends its extra start-up time."""
    startup = samples[samples["metric"].isin([m for m, _ in STARTUP_PHASES])]
    if startup.empty:
        return None
    figure, panels = _per_workload(startup, "Start-up phases (median per target)")
    for axis, workload, found in panels:
        names = [t for t in palette if t in set(found["target"])]
        left = np.zeros(len(names))
        for (metric, label), alpha in zip(STARTUP_PHASES, PHASE_ALPHA, strict=True):
            medians = found[found["metric"] == metric].set_index("target")["median"]
            widths = np.array([medians.get(t, 0.0) for t in names])
            axis.barh(
                names, widths, left=left, color=[palette[t] for t in names], alpha=alpha,
                edgecolor="black", linewidth=0.5, label=label,
            )  # fmt: skip
            left += widths
        axis.invert_yaxis()
        axis.set_title(workload)
        axis.set_xlabel("time from deploy request (s)")
    handles = [
        Patch(facecolor="grey", alpha=a, edgecolor="black", label=label)
        for (_, label), a in zip(STARTUP_PHASES, PHASE_ALPHA, strict=True)
    ]
    figure.legend(handles=handles, loc="lower center", ncol=3, frameon=False)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    return figure


def _bars(axis: Any, found: pd.DataFrame, palette: dict[str, Any], scale: float) -> None:
    """Median bars with asymmetric 95% CI error bars; a bar with no interval says so."""
    names = [t for t in palette if t in set(found["target"])]
    rows = found.set_index("target").loc[names]
    medians = rows["median"].to_numpy(dtype=float) / scale
    low = (rows["median"] - rows["ci_low"]).to_numpy(dtype=float) / scale
    high = (rows["ci_high"] - rows["median"]).to_numpy(dtype=float) / scale
    errors = np.nan_to_num(np.vstack([low, high]), nan=0.0)
    axis.bar(names, medians, color=[palette[t] for t in names], edgecolor="black", linewidth=0.5)
    axis.errorbar(names, medians, yerr=errors, fmt="none", ecolor="black", capsize=5)
    for x, (_, row) in enumerate(rows.iterrows()):
        if pd.isna(row["ci_low"]):
            axis.annotate(
                f"no CI (n={row['n']})", (x, medians[x]), ha="center", va="bottom", fontsize=7
            )
    axis.tick_params(axis="x", labelrotation=20)


def throughput_bars(samples: pd.DataFrame, palette: dict[str, Any]) -> Figure | None:
    """Per workload, the median throughput per target with its 95% CI."""
    found = samples[samples["metric"].isin(THROUGHPUT)]
    if found.empty:
        return None
    figure, panels = _per_workload(found, "Throughput (median, 95% CI)")
    for axis, workload, summary in panels:
        _bars(axis, summary, palette, 1.0)
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        axis.set_title(workload)
        axis.set_ylabel(f"{summary['metric'].iloc[0]} ({summary['unit'].iloc[0]})")
    return finish(figure)


def overhead_forest(headline: pd.DataFrame, palette: dict[str, Any]) -> Figure | None:
    """Each target's change against the baseline on every compared metric, with its 95% CI,
    one panel per workload and target: each panel has its own scale, so a container's 5 %
    and an emulated VM's 17,000 % are both readable (one shared axis would flatten the first
    to a dot on the baseline line). Hollow markers are changes whose interval contains zero
    (no measurable difference). ``headline`` is ``frames.headline``'s frame."""
    found = headline.dropna(subset=["ratio"])
    if found.empty:
        return None
    pairs = list(dict.fromkeys(zip(found["workload"], found["target"], strict=True)))
    figure, axes = panel_grid(len(pairs), "Change against the baseline (95% CI)")
    for axis, (workload, target) in zip(axes, pairs, strict=True):
        mask = (found["workload"] == workload) & (found["target"] == target)
        rows = found[mask].reset_index(drop=True)
        colour = palette.get(target, "grey")
        for y, row in rows.iterrows():
            _change(axis, y, row, colour)
        axis.axvline(0, color="black", linewidth=1)
        axis.set_yticks(range(len(rows)), list(rows.metric))
        axis.invert_yaxis()
        axis.tick_params(axis="y", labelsize=7)
        axis.set_title(f"{workload} · {target}", fontsize=9)
        axis.set_xlabel("change vs baseline (%)")
        axis.grid(True, axis="x", alpha=0.3)
    return finish(figure)


def _change(axis: Any, y: int, row: pd.Series, colour: Any) -> None:
    """One metric's change and its interval (solid when the interval excludes zero)."""
    point = (row["ratio"] - 1) * 100
    solid = False
    if not pd.isna(row["ratio_low"]):
        low, high = (row["ratio_low"] - 1) * 100, (row["ratio_high"] - 1) * 100
        axis.plot([low, high], [y, y], color=colour, linewidth=2)
        solid = not low <= 0 <= high
    face = colour if solid else "white"
    axis.plot(point, y, "o", color=colour, markerfacecolor=face, markersize=7)


def latency_cdfs(
    samples: pd.DataFrame, raw: dict[str, dict[str, Any]], palette: dict[str, Any]
) -> Figure | None:
    """Per inference workload, the distribution of every measured request's latency, pooled
    over repetitions, per target: tails and bimodality that p50/p99 alone hide."""
    latencies = _pooled(samples, raw, "latency_s")
    if not latencies:
        return None
    workloads = list(dict.fromkeys(w for w, _ in latencies))
    figure, axes = panel_grid(len(workloads), "Inference latency (all measured requests)")
    for axis, workload in zip(axes, workloads, strict=True):
        for target in palette:
            values = np.sort(latencies.get((workload, target), np.array([])))
            if len(values):
                share = np.arange(1, len(values) + 1) / len(values)
                axis.step(values * 1e3, share, where="post", color=palette[target], label=target)
        axis.set_xscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        axis.xaxis.set_major_formatter(plain)
        axis.xaxis.set_minor_formatter(plain)
        axis.tick_params(axis="x", which="minor", labelsize=7)
        axis.set_title(workload)
        axis.set_xlabel("latency (ms, log scale)")
        axis.set_ylabel("share of requests ≤ latency")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    return finish(figure)


def _pooled(
    samples: pd.DataFrame, raw: dict[str, dict[str, Any]], key: str
) -> dict[tuple[str, str], np.ndarray]:
    """Per (workload, target), one array of ``key`` from every cell's raw data."""
    pooled: dict[tuple[str, str], list[float]] = {}
    for entry in raw.values():
        values = entry.get(key)
        if values and "workload" in entry and "target" in entry:
            pooled.setdefault((entry["workload"], entry["target"]), []).extend(values)
    return {k: np.asarray(v, dtype=float) for k, v in pooled.items()}


def memory_bars(
    samples: pd.DataFrame, palette: dict[str, Any], baseline: str | None
) -> Figure | None:
    """Per workload, what the host spends on each deployment (median, 95% CI), with the
    baseline's level drawn across so the overhead is the gap above the line."""
    found = samples[samples["metric"] == "mem.host_bytes"]
    if found.empty:
        return None
    figure, panels = _per_workload(found, "Host memory per deployment (median, 95% CI)")
    for axis, workload, summary in panels:
        _bars(axis, summary, palette, MIB)
        level = summary[summary["target"] == baseline]["median"]
        if not level.empty:
            base = float(level.iloc[0])
            axis.axhline(base / MIB, color="black", linestyle="--", linewidth=1)
            for x, row in enumerate(summary.set_index("target").loc[
                [t for t in palette if t in set(summary["target"])]
            ].itertuples()):  # fmt: skip
                if row.Index != baseline:
                    extra = (row.median - base) / MIB
                    axis.annotate(
                        f"{extra:+,.0f} MiB", (x, row.median / MIB), ha="center",
                        va="bottom", fontsize=8, xytext=(0, 8), textcoords="offset points",
                    )  # fmt: skip
        axis.set_title(workload)
        axis.set_ylabel("mem.host_bytes (MiB)")
    return finish(figure)


def gpu_timelines(raw: dict[str, dict[str, Any]], palette: dict[str, Any]) -> Figure | None:
    """GPU utilisation and memory over each cell's life, aligned at the start of its measured
    phase (t = 0, the shaded band is the median measured phase); None without GPU data."""
    lines = [e for e in raw.values() if (e.get("gpu_timeline") or {}).get("t_s")]
    if not lines:
        return None
    workloads = list(dict.fromkeys(e["workload"] for e in lines))
    figure = Figure(figsize=(PANEL_WIDTH * len(workloads), PANEL_HEIGHT * 2))
    grid = figure.subplots(2, len(workloads), squeeze=False, sharex="col")
    figure.suptitle("GPU over each cell (t = 0: measured phase starts)", fontweight="bold")
    for column, workload in enumerate(workloads):
        util, memory = grid[0][column], grid[1][column]
        spans = []
        for entry in (e for e in lines if e["workload"] == workload):
            line = entry["gpu_timeline"]
            marks = line.get("marks_s") or {}
            start = marks.get("measured_start", 0.0)
            spans.append(marks.get("measured_end", start) - start)
            t = np.asarray(line["t_s"], dtype=float) - start
            colour = palette.get(entry["target"], "grey")
            util.plot(t, _floats(line.get("util_pct")), color=colour, alpha=0.5, linewidth=1)
            used = _floats(line.get("mem_used_bytes")) / 2**30
            memory.plot(t, used, color=colour, alpha=0.5, linewidth=1)
        for axis in (util, memory):
            axis.axvspan(0, float(np.median(spans)), color="grey", alpha=0.15)
            axis.grid(True, alpha=0.3)
        util.set_title(workload)
        util.set_ylabel("GPU utilisation (%)")
        util.set_ylim(0, 105)
        memory.set_ylabel("GPU memory used (GiB)")
        memory.set_xlabel("time from measured-phase start (s)")
    handles = [
        Line2D([], [], color=palette[t], label=t)
        for t in palette
        if any(e["target"] == t for e in lines)
    ]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return figure


def _floats(values: list[float | None] | None) -> np.ndarray:
    """A series with failed readings as NaN: gaps in the line, never zeros."""
    return np.array([np.nan if v is None else v for v in values or []], dtype=float)


def repetition_dots(
    samples: pd.DataFrame, cells: pd.DataFrame, palette: dict[str, Any]
) -> Figure | None:
    """Per workload, a main metric's value in each repetition, per target, in run order:
    drift, warm-up effects and one bad repetition show here and hide in a median. INVALID
    cells are drawn as crosses."""
    chosen = _repetition_metric(samples)
    if not chosen:
        return None
    invalid = invalid_numbers(cells)
    figure, axes = panel_grid(len(chosen), "Every repetition (run order; × = INVALID cell)")
    for axis, (workload, metric) in zip(axes, chosen.items(), strict=True):
        found = samples[(samples["workload"] == workload) & (samples["metric"] == metric)]
        scale, unit = scale_for(found["unit"].iloc[0], found["value"].to_numpy(dtype=float))
        for target in palette:
            rows = found[found["target"] == target].sort_values("repetition")
            if rows.empty:
                continue
            bad = rows["cell"].isin(invalid).to_numpy()
            x, y = rows["repetition"].to_numpy(), rows["value"].to_numpy(dtype=float) / scale
            axis.plot(x, y, color=palette[target], alpha=0.4, linewidth=1)
            axis.scatter(x[~bad], y[~bad], color=palette[target], s=18, label=target)
            axis.scatter(x[bad], y[bad], color=palette[target], marker="x", s=40)
        axis.set_title(workload)
        axis.set_xlabel("repetition")
        axis.set_ylabel(f"{metric} ({unit})")
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    return finish(figure)


def _repetition_metric(samples: pd.DataFrame) -> dict[str, str]:
    """Per workload, the first of ``REPETITION_METRICS`` it has."""
    chosen = {}
    for workload, group in samples.groupby("workload", sort=False):
        present = set(group["metric"])
        metric = next((m for m in REPETITION_METRICS if m in present), None)
        if metric:
            chosen[str(workload)] = metric
    return chosen


def named_figures(
    samples: pd.DataFrame,
    cells: pd.DataFrame,
    raw: dict[str, dict[str, Any]],
    manifest: Manifest | dict[str, Any],
) -> list[tuple[str, Figure]]:
    """Every figure the run has data for, titled, in reading order: what a report embeds and
    a notebook displays. ``raw`` is ``results.tag_raw``'s output."""
    manifest = as_manifest(manifest)
    palette = colours(targets_of(samples, manifest))
    headline = frames.headline(samples, manifest)
    drawn = [
        ("Change against the baseline", overhead_forest(headline, palette)),
        ("Start-up phases", startup_phases(samples, palette)),
        ("Throughput", throughput_bars(samples, palette)),
        ("Inference latency", latency_cdfs(samples, raw, palette)),
        ("Memory overhead", memory_bars(samples, palette, manifest.baseline)),
        ("GPU utilisation", gpu_timelines(raw, palette)),
        ("Every repetition", repetition_dots(samples, cells, palette)),
    ]
    drawn += [(f"Matrix: {title}", figure) for title, figure in sweep_figures(samples, manifest)]
    return [(title, figure) for title, figure in drawn if figure is not None]
