"""The first lines of a run's summary: what isolation cost, in three numbers per target.

A newcomer reads the top of the screen and decides. Before the full table, each target is put
against the baseline on the three things an ML platform engineer asks first: how much longer
it takes to start (from the deploy request to the first iteration done: provisioning, torch's
import, the model), how much of the baseline's throughput it keeps, and how much more host
memory it costs. Each is the same
ratio, interval and rule as the comparison table (``stats.overhead``), said in words: a ratio
whose interval contains 1 is "no measurable difference", not a percentage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from rich.markup import escape
from rich.table import Table

from bench import stats


@dataclass(frozen=True)
class Aspect:
    """One column of the headline: a metric per workload kind, and words for each way."""

    title: str
    metrics: tuple[str, ...]  # the first one a workload has is used
    more: str  # what a ratio above 1 means, in words
    less: str


ASPECTS = (
    Aspect("start-up", ("startup.total_s",), "slower", "faster"),
    Aspect(
        "throughput",
        (
            "train.throughput",
            "infer.throughput",
            "gen.tokens_per_s",
            "data.throughput",
            "python.throughput",
        ),
        "higher",
        "lower",
    ),
    Aspect("host memory", ("mem.host_bytes",), "more", "less"),
)


def frame(
    samples: pd.DataFrame, baseline: str, labels: dict[str, str], paired: bool
) -> pd.DataFrame:
    """Every other target against ``baseline``, one row per target and workload, each aspect
    in words (empty when there is nothing to put against it): the terminal, the Markdown and
    the HTML report show this same frame."""
    wanted = [m for aspect in ASPECTS for m in aspect.metrics]
    found = stats.overhead(samples[samples["metric"].isin(wanted)], baseline, paired=paired)
    columns = ["target", "workload", *(aspect.title for aspect in ASPECTS)]
    rows = []
    for (target, workload), group in found.groupby(["target", "workload"], sort=False):
        by_metric = {row.metric: row for row in group.itertuples(index=False)}
        said_each = [_said(aspect, by_metric) for aspect in ASPECTS]
        rows.append([labels.get(str(target), str(target)), str(workload), *said_each])
    return pd.DataFrame(rows, columns=columns)


def title(baseline: str, paired: bool) -> str:
    how = "median of per-repetition ratios" if paired else "ratio of medians"
    return f"What isolation cost against {baseline!r} ({how}, 95% CI)"


def table(
    samples: pd.DataFrame, baseline: str, labels: dict[str, str], paired: bool
) -> Table | None:
    """``frame`` as a borderless terminal table; None when there is nothing to show."""
    found = frame(samples, baseline, labels, paired)
    if found.empty:
        return None
    grid = Table(
        title=title(baseline, paired), title_justify="left", box=None, padding=(0, 2, 0, 0)
    )
    for column in found.columns:
        grid.add_column(column, no_wrap=True)
    for row in found.itertuples(index=False):
        grid.add_row(*(escape(str(value)) for value in row))
    return grid


def _said(aspect: Aspect, rows: dict[str, Any]) -> str:
    row = next((rows[m] for m in aspect.metrics if m in rows), None)
    if row is None:
        return "—"
    return said(float(row.ratio), _number(row.ci_low), _number(row.ci_high), aspect)


def said(ratio: float, low: float | None, high: float | None, aspect: Aspect) -> str:
    """'1.21× slower [1.15, 1.30]', 'no measurable difference [0.97, 1.02]', or the ratio
    with 'no interval' when there were too few repetitions for one."""
    if low is None or high is None:
        return f"{_times(ratio)} (no interval: < {stats.MIN_FOR_CI} repetitions)"
    interval = f"[{_times(low, sign=False)}, {_times(high, sign=False)}]"
    if low <= 1.0 <= high:
        return f"no measurable difference {interval}"
    words = aspect.more if ratio > 1 else aspect.less
    return f"{_times(ratio)} {words} {interval}"


def _times(value: float, sign: bool = True) -> str:
    """A ratio to read at a glance: 1.05×, 38×, 0.021×."""
    digits = 0 if value >= 20 else 1 if value >= 10 else 2 if value >= 0.1 else 3
    if 0.995 <= value < 1.005:
        digits = 3  # a bound that excludes 1 must not read as 1.00
    return f"{value:.{digits}f}" + ("×" if sign else "")


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
