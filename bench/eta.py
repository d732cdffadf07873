"""How long the rest of a run will take, re-estimated as its cells finish.

The header's estimate (``bench.estimate``) comes from earlier runs and knows nothing of a new
suite or a machine that changed. While a run goes on, its own cells are the best evidence: a
planned cell is expected to take the median of this run's finished cells of the same target
and workload; before one has finished, the earlier runs' median for that pair; with neither,
the median of every cell this run has finished. Until any cell is known, nothing is said.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Mapping

from bench.plan import Cell

Pair = tuple[str, str]


class Remaining:
    """The expected seconds left in a run of ``plan``."""

    def __init__(self, plan: list[Cell], earlier: Mapping[Pair, float] | None = None) -> None:
        self.todo = {cell.index: (cell.target, cell.workload) for cell in plan}
        self.earlier = dict(earlier or {})
        self.measured: dict[Pair, list[float]] = defaultdict(list)
        self.running: dict[int, float] = {}

    def started(self, cell: Cell) -> None:
        self.running[cell.index] = time.monotonic()

    def finished(self, cell: Cell, seconds: float) -> None:
        self.running.pop(cell.index, None)
        pair = self.todo.pop(cell.index, None)
        if pair is not None:
            self.measured[pair].append(seconds)

    def seconds(self) -> float | None:
        """Seconds left (what the running cells have spent already taken off), or None while
        no cell's duration can be guessed."""
        everything = [s for values in self.measured.values() for s in values]
        fallback = statistics.median(everything) if everything else None
        total = 0.0
        for index, pair in self.todo.items():
            expected = self._expected(pair, fallback)
            if expected is None:
                return None
            spent = time.monotonic() - self.running[index] if index in self.running else 0.0
            total += max(expected - spent, 0.0)
        return total

    def _expected(self, pair: Pair, fallback: float | None) -> float | None:
        if self.measured.get(pair):
            return statistics.median(self.measured[pair])
        return self.earlier.get(pair, fallback)


def say(seconds: float | None) -> str:
    """'about 4 min left', 'about 40 s left', or '' when unknown."""
    if seconds is None:
        return ""
    if seconds < 90:
        return f"about {max(5, round(seconds / 5) * 5)} s left"
    return f"about {round(seconds / 60)} min left"
