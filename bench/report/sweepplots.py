"""The matrix figure: every headline metric against every swept value, with 95% intervals.

One figure per matrix group and workload (or target, for a workload matrix): a row of panels
per metric, a column per swept key. A panel puts the key's values on the x axis and draws one
line per combination of the other keys, so the cost of each setting reads off the slope; the
baseline target's median, where the run has one, is a dashed line to read the cost against.
"""

from __future__ import annotations

import itertools
import textwrap
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench import stats
from bench.matrix import label
from bench.metrics import HEADLINE_METRICS
from bench.report.figstyle import PALETTE, PANEL_HEIGHT, PANEL_WIDTH, scale_for
from bench.report.sweeps import Group, groups
from bench.results.model import Manifest, as_manifest


def sweep_figures(
    samples: pd.DataFrame, manifest: Manifest | dict[str, Any]
) -> list[tuple[str, Figure]]:
    """Each matrix group's figure per workload (target group) or target (workload group)."""
    manifest = as_manifest(manifest)
    keyed = samples[samples["metric"].isin(HEADLINE_METRICS)]
    if keyed.empty:
        return []
    found = stats.summarize(keyed)
    out = []
    for group in groups(manifest):
        part = found[found[group.column].isin(group.members)]
        for context, rows in part.groupby(group.across, sort=False):
            reference = _reference(found, group, str(context), manifest.baseline)
            title = group.title(str(context))
            out.append((title, _figure(group, rows, reference, title, manifest.baseline)))
    return out


def _reference(
    found: pd.DataFrame, group: Group, context: str, baseline: str | None
) -> dict[str, float]:
    """The baseline target's median per metric, for a target group's panels."""
    if baseline is None or group.of != "targets" or baseline in group.members:
        return {}
    rows = found[(found["target"] == baseline) & (found["workload"] == context)]
    return dict(zip(rows["metric"], rows["median"], strict=True))


def _figure(
    group: Group, rows: pd.DataFrame, reference: dict[str, float], title: str,
    baseline: str | None,
) -> Figure:  # fmt: skip
    metrics = [m for m in HEADLINE_METRICS if m in set(rows["metric"])]
    width = max(PANEL_WIDTH * len(group.keys), 2 * PANEL_WIDTH)  # room for the title
    figure = Figure(figsize=(width, PANEL_HEIGHT * len(metrics)))
    axes = figure.subplots(len(metrics), len(group.keys), squeeze=False)
    for (r, metric), (c, key) in itertools.product(enumerate(metrics), enumerate(group.keys)):
        found = rows[rows["metric"] == metric]
        _panel(axes[r][c], group, key, found, reference.get(metric), baseline)
        axes[r][c].set_title(f"{metric} by {key}", fontsize=9)
    figure.suptitle(textwrap.fill(title, int(width * 9)), fontweight="bold", fontsize=10)
    figure.tight_layout()
    return figure


def _panel(
    axis: Any, group: Group, key: str, found: pd.DataFrame, reference: float | None,
    baseline: str | None,
) -> None:  # fmt: skip
    """Median and 95% CI against ``key``'s values, one line per setting of the other keys."""
    if found.empty:
        axis.set_visible(False)
        return
    unit = str(found["unit"].iloc[0])
    scale, shown = scale_for(unit, found["median"].to_numpy(dtype=float))
    ticks = group.values(key)
    series: dict[str, list[tuple[int, Any]]] = {}
    for row in found.itertuples(index=False):
        values = group.members[getattr(row, group.column)]
        others = ",".join(f"{k}={label(v)}" for k, v in values.items() if k != key)
        series.setdefault(others, []).append((ticks.index(label(values[key])), row))
    width = 0.3 / max(1, len(series))
    for n, (others, points) in enumerate(series.items()):
        points.sort(key=lambda p: p[0])
        x = np.array([p[0] for p in points]) + (n - (len(series) - 1) / 2) * width
        median = np.array([p[1].median for p in points]) / scale
        low = np.array([p[1].ci_low for p in points], dtype=float) / scale
        high = np.array([p[1].ci_high for p in points], dtype=float) / scale
        errors = np.nan_to_num(np.vstack([median - low, high - median]), nan=0.0)
        axis.errorbar(
            x, median, yerr=errors, marker="o", capsize=3, color=PALETTE[n % len(PALETTE)],
            label=others or None,
        )  # fmt: skip
    if reference is not None:
        axis.axhline(reference / scale, color="grey", linestyle="--", label=f"{baseline}")
    axis.set_xticks(range(len(ticks)), ticks, fontsize=8)
    axis.set_xlim(-0.5, len(ticks) - 0.5)
    axis.set_xlabel(key)
    axis.set_ylabel(shown)
    if len(series) > 1 or reference is not None:
        axis.legend(fontsize=7)
