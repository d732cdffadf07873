"""The verdict on one metric: regression, improvement, or why neither.

A change is *significant* only when a two-sided Mann-Whitney U test (nonparametric: benchmark
times are not normal) and the bootstrap 95% interval of the ratio of medians agree. It is a
regression only when significant, larger than the threshold (a noise floor: the machine
drifts by a few percent between runs; asv and Firecracker's A/B tests use the same two-part
rule), and in the direction that is bad for the metric (``bench.metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from bench import stats
from bench.metrics import LOWER, direction

ALPHA = 0.05  # two-sided, per metric; the threshold keeps small significant drifts quiet

REGRESSION = "regression"
IMPROVEMENT = "improvement"
WITHIN = "within threshold"  # significant, but smaller than the threshold
NO_CHANGE = "no significant change"
INFORMATIONAL = "informational"
TOO_FEW = "too few repetitions"
NO_RATIO = "no ratio (base median is 0)"
ADDED = "added"
REMOVED = "removed"
DRIFT = "within run-to-run drift"  # a history that knows how much runs drift says so
STATUSES = (REGRESSION, IMPROVEMENT, WITHIN, DRIFT, NO_CHANGE, INFORMATIONAL, TOO_FEW, NO_RATIO)
STATUSES += (ADDED, REMOVED)


@dataclass(frozen=True)
class Decision:
    """The verdict on one metric and the numbers it rests on."""

    status: str
    ratio: stats.Ratio | None
    p_value: float | None


def mann_whitney(base: np.ndarray, new: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when every value is the same (no evidence)."""
    p = float(scipy_stats.mannwhitneyu(new, base, alternative="two-sided").pvalue)
    return 1.0 if np.isnan(p) else p


def decide(
    base: np.ndarray, new: np.ndarray, metric: str, threshold: float, alpha: float = ALPHA
) -> Decision:
    """Regression, improvement or why neither, for one metric's BASE and NEW repetitions.

    Informational metrics are never judged. Below ``stats.MIN_FOR_CI`` repetitions on either
    side there is no interval and no test worth the name, and the status says so rather than
    "no change". Otherwise the change must be significant (U test and interval agree) and,
    by its point estimate, beyond ``threshold`` in the metric's bad direction to regress.
    """
    base, new = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    found = stats.ratio(new, base)
    better = direction(metric)
    enough = min(len(base), len(new)) >= stats.MIN_FOR_CI
    p = mann_whitney(base, new) if enough else None
    if better is None:
        return Decision(INFORMATIONAL, found, p)
    if p is None:
        return Decision(TOO_FEW, found, None)
    if found is None:
        return Decision(NO_RATIO, None, p)
    if not (p < alpha and found.measurable):
        return Decision(NO_CHANGE, found, p)
    change = found.ratio - 1.0
    if abs(change) <= threshold:
        return Decision(WITHIN, found, p)
    worse = change > 0 if better == LOWER else change < 0
    return Decision(REGRESSION if worse else IMPROVEMENT, found, p)
