"""Summaries of repeated measurements.

Benchmarks on shared machines have skewed, outlier-prone distributions, so summaries are
robust ones: the median and the interquartile range, never a mean alone.
"""

from __future__ import annotations

import pandas as pd

GROUP = ["workload", "target", "metric", "unit"]


def summarize(samples: pd.DataFrame) -> pd.DataFrame:
    """Median, quartiles, IQR and count per workload, target and metric.

    The result keeps the order in which workloads and targets first appear in ``samples`` (the
    suite's order), which is the order users wrote and expect to read.
    """
    if samples.empty:
        return pd.DataFrame(columns=[*GROUP, "n", "median", "q1", "q3", "iqr"])
    grouped = samples.groupby(GROUP, sort=False)["value"]
    out = pd.DataFrame(
        {
            "n": grouped.count(),
            "median": grouped.median(),
            "q1": grouped.quantile(0.25),
            "q3": grouped.quantile(0.75),
        }
    )
    out["iqr"] = out["q3"] - out["q1"]
    return out.reset_index()
