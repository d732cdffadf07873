"""Where a metric's series of run medians steps: binary segmentation with a Mann-Whitney U
test per split, a threshold on the step's size, and a straight line as the alternative that a
step must beat (a slow drift is no step at any one run).

The series come from ``history.series``: one median per run, so these functions need only the
history's index, never the runs' directories.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bench.metrics import direction


@dataclass(frozen=True)
class ChangePoint:
    """A step in a metric's series of run medians: the first run after it, and its size."""

    workload: str
    target: str
    metric: str
    run_id: str
    index: int
    before: float
    after: float
    p_value: float

    @property
    def change(self) -> float:
        return self.after / self.before - 1.0 if self.before else float("nan")

    @property
    def worse(self) -> bool | None:
        """True when the step goes the metric's bad way; None for informational metrics."""
        better = direction(self.metric)
        if better is None:
            return None
        return self.after > self.before if better == "lower" else self.after < self.before


MIN_SEGMENT = 4  # with fewer runs a side, a two-sided U test cannot reach p < 0.05


def change_points(
    values: np.ndarray, threshold: float = 0.05, alpha: float = 0.05, min_segment: int = MIN_SEGMENT
) -> list[tuple[int, float]]:
    """Indices where the series steps, by binary segmentation: the split that best fits two
    levels (least total absolute deviation from each side's median) is kept when the sides
    differ by a two-sided Mann-Whitney U test on the run medians (p below ``alpha`` divided by
    the number of candidate splits, since the best of them was picked) and their medians by
    more than ``threshold``; then each side is searched again. The levels found in a stretch
    are kept only when they fit it clearly better than a straight line: a slow drift also makes
    two halves differ, but it is no step at any one run.

    The unit is the run, not the repetition: separate runs drift by more than their
    repetitions spread, and a step must stand out against that drift to count.
    """
    values = np.asarray(values, dtype=float)
    return sorted(_segment(values, threshold, alpha, min_segment))


def _refine(
    values: np.ndarray, found: list[tuple[int, float]], min_segment: int
) -> list[tuple[int, float]]:
    """Move each step to the best split between its neighbours: the first split of a
    staircase fits two levels to three, and one odd run can pull it off its true place."""
    out = list(found)
    for k, (_, p) in enumerate(out):
        low = out[k - 1][0] if k else 0
        high = out[k + 1][0] if k + 1 < len(out) else len(values)
        candidates = range(low + min_segment, high - min_segment + 1)
        if candidates:
            best = min(candidates, key=lambda i: _cost(values[low:i]) + _cost(values[i:high]))
            out[k] = (best, p)
    return out


def _segment(
    values: np.ndarray, threshold: float, alpha: float, min_segment: int
) -> list[tuple[int, float]]:
    """The steps in ``values`` (indices into it): one split, else a stretch that left and came
    back (a regression fixed a few nights later, which no single split separates); then the
    steps inside each part; all of it dropped when a line explains the stretch as well."""
    splits = list(range(min_segment, len(values) - min_segment + 1))
    if not splits:
        return []
    split = min(splits, key=lambda k: _cost(values[:k]) + _cost(values[k:]))
    p = _differ(values[:split], values[split:], threshold, alpha, len(splits))
    if p is not None:
        found = _within(values, [split], p, threshold, alpha, min_segment)
        if not _drift(values, found):
            return found
    # a stretch values[a:b] between two outer parts, each part at least min_segment long
    pairs = [(a, b) for a in splits for b in splits if b - a >= min_segment]
    if not pairs:
        return []
    a, b = min(pairs, key=lambda ab: sum(_cost(part) for part in np.split(values, ab)))
    p = _differ(np.r_[values[:a], values[b:]], values[a:b], threshold, alpha, len(pairs))
    if p is None:
        return []
    found = _within(values, [a, b], p, threshold, alpha, min_segment)
    return [] if _drift(values, found) else found


def _within(
    values: np.ndarray, edges: list[int], p: float, threshold: float, alpha: float, minimum: int
) -> list[tuple[int, float]]:
    """The steps at ``edges`` (all with p-value ``p``) and those found inside the parts."""
    found = [(edge, p) for edge in edges]
    for start, end in itertools.pairwise([0, *edges, len(values)]):
        found += [(start + i, q) for i, q in _segment(values[start:end], threshold, alpha, minimum)]
    return _refine(values, sorted(found), minimum)


def _differ(
    left: np.ndarray, right: np.ndarray, threshold: float, alpha: float, tried: int
) -> float | None:
    """The U test's p-value when the two sides differ in median by more than ``threshold``
    and significantly after a Bonferroni correction for the ``tried`` candidates; else None."""
    base = float(np.median(left))
    if base == 0 or abs(float(np.median(right)) / base - 1.0) <= threshold:
        return None
    p = float(scipy_stats.mannwhitneyu(left, right, alternative="two-sided").pvalue)
    return p if p * tried < alpha else None


# The levels between the steps found must leave at most this share of what the best straight
# line leaves unexplained: splits chosen among many always fit a little better than a line, even
# on a slow drift (rates measured on synthetic series by benchmarks/change_points.py).
STEP_GAIN = 0.8


def _drift(values: np.ndarray, found: list[tuple[int, float]]) -> bool:
    """True when a straight line (Theil-Sen, robust to a few odd runs) explains ``values``
    nearly as well as the levels between the steps ``found``: a machine or stack that drifts
    slowly also makes its two halves differ, and naming one run as the change would send
    people looking for a cause at the wrong night."""
    levels = sum(_cost(part) for part in np.split(values, [i for i, _ in found]))
    slope, intercept, _, _ = scipy_stats.theilslopes(values)
    line = intercept + slope * np.arange(len(values))
    return levels > STEP_GAIN * float(np.abs(values - line).sum())


def _cost(segment: np.ndarray) -> float:
    """Total absolute deviation from the segment's median: the L1 fit of one level."""
    return float(np.abs(segment - np.median(segment)).sum())


def detect(frame: pd.DataFrame, threshold: float = 0.05, alpha: float = 0.05) -> list[ChangePoint]:
    """Change points of every (workload, target, metric) series in ``series()``'s frame."""
    out = []
    for (workload, target, metric), group in frame.groupby(
        ["workload", "target", "metric"], sort=False
    ):
        group = group.sort_values("order")
        values = group["median"].to_numpy(dtype=float)
        found = change_points(values, threshold, alpha)
        edges = [0, *(i for i, _ in found), len(values)]
        for k, (index, p) in enumerate(found):  # sizes between the neighbouring steps
            before = float(np.median(values[edges[k] : index]))
            after = float(np.median(values[index : edges[k + 2]]))
            run_id = str(group["run_id"].iloc[index])
            out.append(ChangePoint(workload, target, metric, run_id, index, before, after, p))
    return out
