"""Summaries of repeated measurements, and comparisons of a target with the baseline.

Benchmarks on shared machines have skewed, outlier-prone distributions, so summaries are
robust ones: the median and the interquartile range, never a mean alone. Uncertainty is a
nonparametric bootstrap confidence interval of the median (benchmark times are not normal),
and a comparison is a ratio of medians with its own bootstrap interval: when that interval
contains 1.0 the honest statement is "no measurable difference", not a percentage.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

GROUP = ["workload", "target", "metric", "unit"]
CONFIDENCE = 0.95
RESAMPLES = 10_000
# Below 5 values per side a bootstrap "95%" interval covers far less than 95% (with 3 against 3,
# no nonparametric test can even reach 95%), so no interval is printed rather than a false one.
MIN_FOR_CI = 5
MIN_FOR_SPREAD = 3  # outliers and variation need at least a median and two values around it
OUTLIER_Z = 3.5  # Iglewicz and Hoaglin's cut-off for the modified z-score
COLUMNS = [*GROUP, "n", "median", "q1", "q3", "iqr", "min", "max", "ci_low", "ci_high", "outliers"]


def _median(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(samples[0], axis=axis)


def _ratio(target: np.ndarray, baseline: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(target, axis=axis) / np.median(baseline, axis=axis)


def median_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float] | None:
    """Bootstrap 95% interval of the median; None with fewer than ``MIN_FOR_CI`` values.

    Percentile intervals rather than BCa: with a handful of repetitions BCa's acceleration
    estimate is unstable and fails outright when values repeat.
    """
    values = np.asarray(values, dtype=float)
    if len(values) < MIN_FOR_CI:
        return None
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    result = stats.bootstrap(
        (values,), _median, vectorized=True, n_resamples=RESAMPLES, method="percentile",
        confidence_level=CONFIDENCE, rng=np.random.default_rng(seed),
    )  # fmt: skip
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def outliers(values: np.ndarray) -> np.ndarray:
    """Which values are outliers by the MAD-based modified z-score (kept, only flagged).

    When more than half the values are equal the MAD is zero; then any value that differs
    from the median is flagged, which is what the score tends to in the limit.
    """
    values = np.asarray(values, dtype=float)
    if len(values) < MIN_FOR_SPREAD:
        return np.zeros(len(values), dtype=bool)
    deviation = np.abs(values - np.median(values))
    mad = np.median(deviation)
    if mad == 0:
        return deviation > 0
    return 0.6745 * deviation / mad > OUTLIER_Z


def summarize(samples: pd.DataFrame) -> pd.DataFrame:
    """Median, quartiles, IQR, range, CI of the median and outlier count per workload, target
    and metric.

    The result keeps the order in which workloads and targets first appear in ``samples`` (the
    suite's order), which is the order users wrote and expect to read.
    """
    if samples.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for key, group in samples.groupby(GROUP, sort=False):
        values = group["value"].to_numpy(dtype=float)
        interval = median_ci(values)
        q1, q3 = np.quantile(values, [0.25, 0.75])
        rows.append(
            (*key, len(values), float(np.median(values)), float(q1), float(q3),
             float(q3 - q1), float(values.min()), float(values.max()),
             interval[0] if interval else np.nan, interval[1] if interval else np.nan,
             int(outliers(values).sum()))
        )  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


@dataclass(frozen=True)
class Ratio:
    """A target's value relative to the baseline's, with its bootstrap interval (None: too
    few repetitions)."""

    ratio: float
    low: float | None
    high: float | None
    why_no_interval: str = "too few repetitions for an interval"

    @property
    def measurable(self) -> bool:
        """Whether the interval excludes 1.0 (no interval: not established either way)."""
        return self.low is not None and self.high is not None and not self.low <= 1.0 <= self.high

    def describe(self) -> str:
        """'1.052 [0.959, 1.211]: no measurable difference' or '+8.3% [+5.1%, +11.2%]'."""
        if self.low is None or self.high is None:
            return f"{self.ratio:.3f} ({self.why_no_interval})"
        if not self.measurable:
            return f"{self.ratio:.3f} [{self.low:.3f}, {self.high:.3f}]: no measurable difference"
        return f"{self.ratio - 1:+.1%} [{self.low - 1:+.1%}, {self.high - 1:+.1%}]"


def ratio(target: np.ndarray, baseline: np.ndarray, seed: int = 0) -> Ratio | None:
    """Median(target) / median(baseline) with a bootstrap interval resampling each side
    independently; None when the baseline's median is zero."""
    target = np.asarray(target, dtype=float)
    baseline = np.asarray(baseline, dtype=float)
    if len(target) == 0 or len(baseline) == 0 or np.median(baseline) == 0:
        return None
    point = float(np.median(target) / np.median(baseline))
    if min(len(target), len(baseline)) < MIN_FOR_CI:
        return Ratio(point, None, None)
    if np.ptp(target) == 0 and np.ptp(baseline) == 0:
        return Ratio(point, point, point)
    # A resample whose baseline median is 0 (a metric that is often 0, such as system time)
    # divides by zero; the interval is then unbounded, which is said as "no interval".
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (target, baseline), _ratio, paired=False, vectorized=True, n_resamples=RESAMPLES,
            method="percentile", confidence_level=CONFIDENCE, rng=np.random.default_rng(seed),
        )  # fmt: skip
    low, high = result.confidence_interval
    if not (np.isfinite(low) and np.isfinite(high)):
        return Ratio(point, None, None, "no interval: the baseline is often 0")
    return Ratio(point, float(low), float(high))


def paired_ratio(target: np.ndarray, baseline: np.ndarray, seed: int = 0) -> Ratio | None:
    """Median of the per-repetition ratios target[i] / baseline[i], with a bootstrap interval
    of that median; None when no pair has a non-zero baseline.

    In an interleaved run, repetition i of every target ran within seconds of the others, so
    whatever the machine was doing then (another tenant, a clock regime) hits both sides of
    the pair and cancels in their ratio. Comparing the two groups as independent samples
    leaves that drift in the noise, and a real 5% can drown in it.
    """
    target = np.asarray(target, dtype=float)
    baseline = np.asarray(baseline, dtype=float)
    keep = baseline != 0
    ratios = target[keep] / baseline[keep]
    if len(ratios) == 0:
        return None
    interval = median_ci(ratios, seed)
    point = float(np.median(ratios))
    return Ratio(point, *interval) if interval else Ratio(point, None, None)


PAIR_KEYS = ["run_id", "repetition"]


def _pairs(values: pd.DataFrame, base: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Target and baseline values of the repetitions both have, aligned."""
    keys = [k for k in PAIR_KEYS if k in values and k in base]
    joined = values.merge(base, on=keys, suffixes=("", "_base"))
    return joined["value"].to_numpy(dtype=float), joined["value_base"].to_numpy(dtype=float)


def overhead(samples: pd.DataFrame, baseline: str, paired: bool = False) -> pd.DataFrame:
    """Every other target's ratio to ``baseline`` per workload and metric, in suite order.

    ``paired`` (for interleaved runs) compares repetition with repetition (``paired_ratio``);
    otherwise the two groups' medians are compared as independent samples (``ratio``).
    """
    columns = ["workload", "target", "metric", "unit", "ratio", "ci_low", "ci_high", "verdict"]
    paired = paired and "repetition" in samples
    rows = []
    for (workload, metric, unit), group in samples.groupby(
        ["workload", "metric", "unit"], sort=False
    ):
        base = group[group.target == baseline]
        for target, values in group[group.target != baseline].groupby("target", sort=False):
            if paired:
                found = paired_ratio(*_pairs(values, base))
            else:
                found = ratio(values["value"].to_numpy(dtype=float), base["value"].to_numpy())
            if found is None:
                continue
            rows.append(
                (workload, target, metric, unit, found.ratio, found.low, found.high,
                 found.describe())
            )  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
