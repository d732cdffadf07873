"""How far a metric's run median wanders between unchanged runs, from the history's index.

Separate runs differ by more than their repetitions do (the U test and the interval of one
comparison cannot see that), and an alert that fires on drift teaches people to ignore it: a
regression no larger than this drift is labelled as drift by ``compare_runs``, which gets the
floors computed here.
"""

from __future__ import annotations

import numpy as np

from bench.compare import Key
from bench.nightly.history import Entry

MIN_RUNS_FOR_DRIFT = 6  # five night-to-night steps: fewer say little about the spread
DRIFT_WIDTH = 3.0  # robust standard deviations of the log run medians
WINDOW = 10  # the latest runs only: a stack's drift changes over months


def drift(entries: list[Entry], key: Key) -> float | None:
    """How far this metric's run median wanders from one comparable run to the next with
    nothing changed: 3 robust standard deviations (1.4826 × MAD) of the night-to-night steps
    of its logarithm, as a fraction; None with fewer than ``MIN_RUNS_FOR_DRIFT`` earlier runs."""
    medians = [
        row["median"]
        for e in entries[-WINDOW:]
        for row in e.summary
        if (row["target"], row["workload"], row["metric"]) == key and row["median"] > 0
    ]
    if len(medians) < MIN_RUNS_FOR_DRIFT:
        return None
    steps = np.diff(np.log(np.asarray(medians, dtype=float)))
    # night-to-night steps: a real step change is one outlier among them, which the median
    # ignores; a step is the difference of two runs, hence the sqrt(2)
    spread = 1.4826 * float(np.median(np.abs(steps - np.median(steps)))) / np.sqrt(2)
    return float(np.expm1(DRIFT_WIDTH * spread))


def floors(entries: list[Entry]) -> dict[Key, float]:
    """The drift of every metric the latest of ``entries`` (earlier runs comparable with the
    new one) measured often enough to have one."""
    keys = {(r["target"], r["workload"], r["metric"]) for e in entries[-WINDOW:] for r in e.summary}
    found = {key: drift(entries, key) for key in keys}
    return {key: floor for key, floor in found.items() if floor is not None}
